"""The effective configuration written out (``taskmill-supervisor --check``): TOML that loads back to the same
configuration, or JSON."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .settings import SchedulerConfig


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else msgspec.json.encode(key).decode()


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _table(prefix: str, data: dict[str, Any], lines: list[str]) -> None:
    """Scalars of a table, then its sub-tables (``[a.b]``), recursively."""
    tables: list[tuple[str, dict[str, Any]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key), value))
        elif value is None:
            lines.append(f"# {key} = (unset)")
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        _table(name, table, lines)


def to_toml(cfg: SchedulerConfig) -> str:
    """The effective configuration as TOML (unset optional keys appear as comments)."""
    lines: list[str] = []
    _table("", msgspec.to_builtins(cfg), lines)
    return "\n".join(lines) + "\n"


def to_json(cfg: SchedulerConfig) -> str:
    return msgspec.json.format(msgspec.json.encode(cfg), indent=2).decode()

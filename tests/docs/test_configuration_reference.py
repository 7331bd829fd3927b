"""docs/configuration.md names every option the code has, with the default the code uses.

The option lists come from the code itself (signatures, config structs, the environment variables the
package reads), so adding an option without documenting it, or changing a default without updating the
page, fails here.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

import msgspec
import pytest

import taskmill as tm
from taskmill.handle import DomainHandle
from taskmill.settings import SchedulerConfig, decode_config, scheduler_kwargs

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text()


def section(title: str) -> str:
    """The text under the heading containing ``title``, up to the next heading of the same or a higher level."""
    lines = DOC.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"(#+) ", line)
        if m and title in line:
            level = len(m.group(1))
            body = []
            for rest in lines[i + 1 :]:
                n = re.match(r"(#+) ", rest)
                if n and len(n.group(1)) <= level:
                    break
                body.append(rest)
            return "\n".join(body)
    raise AssertionError(f"docs/configuration.md has no heading containing {title!r}")


def row(body: str, name: str) -> str | None:
    """The first table row that has ``name`` as a cell."""
    return next((line for line in body.splitlines() if line.startswith("|") and f"| `{name}` |" in line), None)


def literals(value: Any) -> list[str]:
    """How a default may be written: TOML (``true``, ``"full"``, ``0.5``) or Python (``True``)."""
    if isinstance(value, bool):
        return ["`true`", "`True`"] if value else ["`false`", "`False`"]
    if isinstance(value, str):
        return [f"`{json.dumps(value)}`"]
    return [f"`{value!r}`"]


def simple(value: Any) -> bool:
    return isinstance(value, bool | int | float | str)


def params(func: Any, *skip: str) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(func).parameters.items() if n not in ("self", *skip)}


def check_rows(body: str, names: dict[str, Any], where: str) -> None:
    """Every name has a row, and every simple default is written in its row."""
    missing = [n for n in names if row(body, n) is None]
    assert missing == [], f"{where}: no row for {missing}"
    wrong = []
    for name, default in names.items():
        if simple(default):
            line = row(body, name)
            assert line is not None
            if not any(lit in line for lit in literals(default)):
                wrong.append(f"{name} (code: {default!r}): {line}")
    assert wrong == [], f"{where}: defaults differ from the code:\n" + "\n".join(wrong)


def test_every_scheduler_keyword_is_documented_with_its_default() -> None:
    found = {n: p.default for n, p in params(tm.Scheduler.__init__).items()}
    check_rows(section("Scheduler options"), found, "Scheduler(...)")


def test_keywords_without_a_toml_form_are_exactly_those_the_file_cannot_set() -> None:
    body = section("Scheduler options")
    no_toml = {n for n in params(tm.Scheduler.__init__) if (line := row(body, n)) and line.split("|")[2].strip() == "—"}
    built = scheduler_kwargs(decode_config({"domains": ["tests.integration.domains:main"]}))
    assert no_toml == set(params(tm.Scheduler.__init__)) - set(built)


def test_every_key_of_the_toml_file_is_documented_with_its_default() -> None:
    body = section("Scheduler options")
    defaults = SchedulerConfig(domains=[])
    keys = SchedulerConfig.__struct_fields__
    missing = [k for k in keys if f"`{k}`" not in body and f"`[{k}]`" not in body and f"`[{k}." not in body]
    assert missing == [], f"TOML keys not in the Scheduler options tables: {missing}"
    wrong = []
    for key in keys:
        value = getattr(defaults, key)
        if simple(value):
            line = row(body, key)
            assert line is not None, key
            if not any(lit in line for lit in literals(value)):
                wrong.append(f"{key} (code: {value!r}): {line}")
    assert wrong == [], "TOML defaults differ from the code:\n" + "\n".join(wrong)


def _tables() -> dict[str, type[msgspec.Struct]]:
    """TOML keys whose value is a table of fixed keys (a Struct), directly or as the values of a mapping."""
    out: dict[str, type[msgspec.Struct]] = {}
    for field in msgspec.inspect.type_info(SchedulerConfig).fields:  # type: ignore[union-attr]
        stack = [field.type]
        while stack:
            t = stack.pop()
            if isinstance(t, msgspec.inspect.StructType):
                out[field.name] = t.cls
            elif isinstance(t, msgspec.inspect.UnionType):
                stack.extend(t.types)
            elif isinstance(t, msgspec.inspect.DictType):
                stack.append(t.value_type)
    return out


@pytest.mark.parametrize("table", sorted(_tables()))
def test_every_table_key_is_documented_with_its_default(table: str) -> None:
    cls = _tables()[table]
    given = getattr(SchedulerConfig(domains=[]), table)
    names = {}
    for f in msgspec.structs.fields(cls):
        if isinstance(given, msgspec.Struct):  # the file's default table, e.g. [retention] keep_count = 100000
            names[f.name] = getattr(given, f.name)
        else:
            names[f.name] = None if f.default is msgspec.NODEFAULT else f.default
    check_rows(section(f"`[{table}"), names, f"[{table}]")


def test_every_domain_option_is_documented_with_its_default() -> None:
    found = {n: p.default for n, p in params(tm.Domain.__init__, "name").items()}
    check_rows(section("Domain options"), found, "Domain(...)")


def test_every_task_type_option_is_documented() -> None:
    found = {f.name: f.default for f in msgspec.structs.fields(tm.TaskTypeConfig)}
    check_rows(section("Task type options"), found, "TaskTypeConfig")
    hooks = [h for h in ("config", "key", "tags") if f"`{h}()`" not in section("Task type options")]
    assert hooks == [], f"Task hooks not described: {hooks}"


def test_every_submit_option_is_documented() -> None:
    body = section("Submit options")
    check_rows(body, {n: None for n in params(DomainHandle.submit, "task")}, "submit()")
    batch = [n for n in params(DomainHandle.submit_batch, "tasks") if f"{n}=" not in body]
    assert batch == [], f"submit_batch options not described: {batch}"
    untyped = set(tm.TaskSubmission.__struct_fields__) - set(params(DomainHandle.submit)) - {"task_type", "payload"}
    assert untyped == set(), f"TaskSubmission fields that submit() does not have, undocumented: {untyped}"


def test_every_client_option_is_documented_with_its_default() -> None:
    found = {n: p.default for n, p in params(tm.Client.__init__, "path").items()}
    check_rows(section("Client options"), found, "connect()")


def test_every_environment_variable_is_documented() -> None:
    pattern = re.compile(r"""(?:envvar=|environ\.get\(|environ\[|getenv\()["']([A-Z][A-Z0-9_]+)["']""")
    read = {m for path in (ROOT / "taskmill").rglob("*.py") for m in pattern.findall(path.read_text())}
    assert read, "found no environment variables: the pattern is broken"
    body = section("Environment variables")
    assert sorted(v for v in read if row(body, v) is None) == []


def test_the_toml_example_is_the_one_the_python_example_loads() -> None:
    text = (ROOT / "examples" / "docs" / "configuration.py").read_text()
    config = re.search(r'CONFIG = """\\\n(.*?)"""', text, re.S)
    assert config is not None
    assert f"```toml\n{config.group(1)}```" in DOC

"""``taskmill-supervisor`` reads a plain command line without importing typer; it must mean what typer reads."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from taskmill.supervisor import daemon
from taskmill.supervisor.entry import plain_command

PLAIN = [
    ["--config", "t.toml"],
    ["-c", "t.toml"],
    ["--config=t.toml"],
    ["--config", "a.toml", "--config", "b.toml"],  # the last one wins
    ["--config", "t.toml", "--workers", "3", "--max-concurrency=16"],
    ["--allow-root", "--config", "t.toml", "--db", "/var/lib/tm/x.db", "--durability", "full"],
    ["--config", "t.toml", "--log-level", "debug", "--log-format=json", "--workers", "+4"],
    ["--config", "t.toml", "--workers=2", "--workers", "5"],
]

NOT_PLAIN = [
    [],
    ["--help"],
    ["--config", "t.toml", "--check"],
    ["--config", "t.toml", "--format", "json"],
    ["--config", "t.toml", "--workers", "two"],  # typer reports the bad value
    ["--config", "t.toml", "--wrkers", "2"],  # an unknown option
    ["--config"],  # no value
    ["--config", "t.toml", "--db", "--workers"],
    ["-ct.toml"],
    ["-c=t.toml"],
    ["--config", "t.toml", "extra"],
    ["--workers", "2"],  # no config
]


def typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    seen: list[tuple[Any, ...]] = []

    def fake_main(config: str, overrides: dict[str, Any], *, allow_root: bool = False) -> int:
        seen.append((config, dict(overrides), allow_root))
        return 0

    monkeypatch.setattr(daemon, "main", fake_main)
    from taskmill.cli_daemon import supervisor_app

    result = CliRunner().invoke(supervisor_app, argv)
    assert result.exit_code == 0, result.output
    (call,) = seen
    return call


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_a_plain_command_line_means_what_typer_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    plain = plain_command(argv)
    assert plain is not None
    assert (plain.config, plain.overrides, plain.allow_root) == typer_reads(argv, monkeypatch)


@pytest.mark.parametrize("argv", NOT_PLAIN, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert plain_command(argv) is None

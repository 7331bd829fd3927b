"""``taskmill-supervisor``: the daemon's command (typer), apart from the operator CLI's tables, views and client.

The console script enters through :func:`taskmill.supervisor.entry.main`, which execs the worker processes
before this module (and typer) is imported.
"""

from __future__ import annotations

from typing import Annotated

import typer

supervisor_app = typer.Typer(help="Run the taskmill supervisor daemon.", add_completion=False)


@supervisor_app.command()
def serve(
    config: Annotated[str, typer.Option("--config", "-c", help="Path to taskmill.toml.")],
    check: Annotated[bool, typer.Option("--check", help="Validate, print the effective config, exit.")] = False,
    output: Annotated[str, typer.Option("--format", help="--check output: toml or json.")] = "toml",
    workers: Annotated[int | None, typer.Option("--workers", help="Override `workers`.")] = None,
    max_concurrency: Annotated[int | None, typer.Option("--max-concurrency", help="Override `max_concurrency`.")
                               ] = None,
    db: Annotated[str | None, typer.Option("--db", help="Override `store` (the database path).")] = None,
    durability: Annotated[str | None, typer.Option("--durability", help="Override `durability` (full, normal).")
                          ] = None,
    log_level: Annotated[str | None, typer.Option("--log-level", help="Override `logging.level`.")] = None,
    log_format: Annotated[str | None, typer.Option("--log-format", help="Override `logging.format` (human, json).")
                          ] = None,
    allow_root: Annotated[bool, typer.Option("--allow-root", help="Run even as root (not recommended).")] = False,
) -> None:  # fmt: skip
    """Run the supervisor daemon for the database named in the config file (exit codes: docs/server.md)."""
    from .supervisor import daemon

    if output not in ("toml", "json"):
        raise _fail("--format must be toml or json", 2)
    overrides = {"workers": workers, "max_concurrency": max_concurrency, "store": db, "durability": durability,
                 "logging.level": log_level, "logging.format": log_format}  # fmt: skip
    if check:
        raise typer.Exit(daemon.check_only(config, overrides, output))
    raise typer.Exit(daemon.main(config, overrides, allow_root=allow_root))


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"taskmill-supervisor: {message}", err=True)
    return typer.Exit(code)

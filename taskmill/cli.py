"""Command-line entry points (typer): ``taskmill`` (operator commands) and ``taskmill-supervisor``."""

from __future__ import annotations

import typer

app = typer.Typer(help="Inspect and manage a taskmill database.", no_args_is_help=True)
supervisor_app = typer.Typer(help="Run the taskmill supervisor daemon.")


@app.command()
def status(db: str = typer.Option("tasks.db", "--db", help="Path to the task database.")) -> None:
    """Counts of active tasks by status, and of history by outcome."""
    from .client import Client

    with Client(db) as client:
        counts = client.status_counts()
        history = client._store().history_status_counts()
    for name, n in counts.items():
        typer.echo(f"{name:>12}  {n}")
    for name, n in sorted(history.items()):
        typer.echo(f"{name:>12}  {n}  (history)")


@app.command()
def version() -> None:
    """Print the taskmill, SQLite and apsw versions."""
    import apsw

    from . import __version__

    typer.echo(f"taskmill {__version__} (SQLite {apsw.sqlite_lib_version()}, apsw {apsw.apsw_version()})")


@supervisor_app.command()
def serve(config: str = typer.Option(..., "--config", help="Path to taskmill.toml.")) -> None:
    """Server mode is not implemented yet: embed the scheduler with Scheduler.run() for now."""
    typer.echo("taskmill-supervisor: server mode (--config) is not available in this version yet; "
               "embed taskmill.Scheduler and call run() instead.", err=True)  # fmt: skip
    raise typer.Exit(2)

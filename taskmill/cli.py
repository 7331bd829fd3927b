"""Command-line entry points (typer): ``taskmill`` (operator commands) and ``taskmill-supervisor`` (the daemon).

Operator commands work on the database file, so they need no running daemon, and print tables by default
or one JSON document with ``--json``. Exit codes: 0 success, 1 the operation failed (not found, wrong state,
invalid payload, integrity problems), 2 usage error (bad option, no database at the path, bad config).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from . import cli_views as v
from .cli_daemon import supervisor_app  # noqa: F401  (the daemon's command, kept importable from here)

app = typer.Typer(help="Inspect and manage a taskmill database.", no_args_is_help=True, add_completion=False)
dead_letter_app = typer.Typer(help="Tasks that ran out of retries.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(dead_letter_app, name="dead-letter")
app.add_typer(db_app, name="db")

Db = Annotated[str | None, typer.Option("--db", envvar="TASKMILL_DB", help="Task database [default: tasks.db].")]
Config = Annotated[str | None, typer.Option("--config", "-c", envvar="TASKMILL_CONFIG",
                                            help="Daemon config: database path and domain modules.")]  # fmt: skip
Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="Rows to show.")]
Offset = Annotated[int, typer.Option("--offset", min=0, help="Rows to skip.")]


@app.command()
def status(db: Db = None, config: Config = None, json: Json = False) -> None:
    """Counts of active tasks by status and of history by outcome, and the supervisor's pid."""
    path = v.resolve_db(db, config)
    with v.open_client(db, config) as client:
        store = client._store()
        data = {"database": path, "supervisor_pid": v.supervisor_pid(path), "counts": store.status_counts(),
                "history": store.history_status_counts(), "pending_by_type": store.pending_by_type(),
                "paused": store.is_paused(), "paused_groups": client.paused_groups()}  # fmt: skip
    if json:
        v.echo_json(data)
        return
    pid = data["supervisor_pid"]
    typer.echo(f"database {path}: " + (f"supervisor pid {pid}" if pid else "no supervisor running")
               + ("; dispatch PAUSED" if data["paused"] else ""))  # fmt: skip
    if data["paused_groups"]:
        typer.echo("paused groups: " + ", ".join(data["paused_groups"]))  # type: ignore[arg-type]
    v.console().print(v.counts_table(data["counts"], data["history"]))  # type: ignore[arg-type]


@app.command()
def tasks(
    db: Db = None, config: Config = None, json: Json = False, limit: Limit = 50, offset: Offset = 0,
    status: Annotated[list[str] | None, typer.Option("--status", "-s", help="running, pending, paused, waiting, "
                                                      "blocked (repeatable; default: all).")] = None,
    domain: Annotated[str | None, typer.Option("--domain", "-d", help="Only this domain.")] = None,
    task_type: Annotated[str | None, typer.Option("--type", "-t", help="Only this qualified type.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only tasks with KEY=VALUE; repeatable.")] = None,
) -> None:  # fmt: skip
    """Active tasks (queued, running, paused), in dispatch order within each status."""
    statuses = status or list(v.ACTIVE_STATUSES)
    bad = [s for s in statuses if s not in v.ACTIVE_STATUSES]
    if bad:
        raise v.fail(f"unknown status {bad[0]!r}; choose from {', '.join(v.ACTIVE_STATUSES)}", 2)
    with v.open_client(db, config) as client:
        store = client._store()
        source = v.chain([lambda n, o, s=s: store.tasks_by_status(s, n, o) for s in statuses])  # type: ignore[misc]
        tags = v.parse_tags(tag)
        rows = v.filtered(source, lambda r: (domain is None or r.domain == domain)
                          and (task_type is None or r.task_type == task_type)
                          and all(r.tags.get(k) == val for k, val in tags.items()), limit, offset)  # fmt: skip
    if json:
        v.echo_json([v.record_dict(r) for r in rows])
    else:
        v.console().print(v.task_table(rows))


@app.command()
def show(task_id: int, db: Db = None, config: Config = None, json: Json = False) -> None:
    """One task: its active record (with the decoded payload) and every finished run of that id."""
    with v.open_client(db, config) as client:
        active = client.task(task_id)
        runs = client.history_of(task_id)
    if active is None and not runs:
        raise v.fail(f"no task with id {task_id}")
    doc = {"id": task_id, "location": "active" if active else "history",
           "active": v.record_dict(active, payload=True) if active else None,
           "runs": [v.record_dict(r, payload=True) for r in runs]}  # fmt: skip
    if json:
        v.echo_json(doc)
        return
    out = v.console()
    if active is not None:
        out.print(v.task_table([active], title=f"task {task_id} (active)"))
    if runs:
        out.print(v.history_table(runs, title=f"task {task_id}: finished runs"))
    payload = v.decode_payload(active.payload if active is not None else runs[0].payload)
    typer.echo("payload: " + msgspec.json.encode(payload).decode())
    last = (active.last_error if active else None) or (runs[0].last_error if runs else None)
    if last:
        typer.echo(f"last error: {last}")


@app.command()
def submit(
    task_type: Annotated[str, typer.Argument(help="Qualified type, e.g. media::resize.")],
    payload: Annotated[str, typer.Option("--payload", "-p", help="JSON object for the task class.")] = "{}",
    domain_module: Annotated[list[str] | None, typer.Option("--domain-module", "-m",
                             help="Module defining the domain (package.module[:attr]); repeatable.")] = None,
    priority: Annotated[int | None, typer.Option("--priority", min=0, max=255)] = None,
    key: Annotated[str | None, typer.Option("--key", help="Explicit dedup key.")] = None,
    label: Annotated[str | None, typer.Option("--label")] = None,
    run_after: Annotated[float | None, typer.Option("--run-after", min=0, help="Delay in seconds.")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Group key.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeatable.")] = None,
    db: Db = None, config: Config = None, json: Json = False,
) -> None:  # fmt: skip
    """Queue a task by type name (needs its domain module: --domain-module or --config)."""
    from .errors import SubmitError
    from .submission import TaskSubmission

    try:
        data = msgspec.json.decode(payload)
    except msgspec.DecodeError as exc:
        raise v.fail(f"--payload is not valid JSON: {exc}", 2) from None
    if not isinstance(data, dict):
        raise v.fail("--payload must be a JSON object", 2)
    if not domain_module and not config:
        raise v.fail("submit needs the task's domain module: --domain-module package.module or --config FILE", 2)
    with v.open_client(db, config, modules=domain_module or []) as client:
        try:
            out = client.submit(TaskSubmission(task_type=task_type, payload=data, priority=priority, key=key,
                                               label=label, run_after=run_after, group=group,
                                               tags=v.parse_tags(tag) or None))  # fmt: skip
        except SubmitError as exc:
            raise v.fail(str(exc)) from None
    if json:
        v.echo_json(out)
    else:
        typer.echo(f"{out.kind}" + (f": task {out.id}" if out.id is not None else ""))


@app.command()
def history(
    db: Db = None, config: Config = None, json: Json = False, limit: Limit = 50, offset: Offset = 0,
    status: Annotated[str | None, typer.Option("--status", "-s", help="completed, failed, cancelled, "
                                                "dead_letter, superseded, expired, dependency_failed.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", "-d")] = None,
    task_type: Annotated[str | None, typer.Option("--type", "-t")] = None,
) -> None:  # fmt: skip
    """Finished tasks, newest first."""
    with v.open_client(db, config) as client:
        store = client._store()
        if task_type is None and domain is None and status is None:
            rows = store.history(limit, offset)
        elif task_type is None and status is not None:
            rows = store.history_by_status(status, limit, offset, domain=domain)
        else:
            source = (lambda n, o: store.history_by_type(task_type, n, o)) if task_type else store.history
            rows = v.filtered(source, lambda r: (status is None or r.status == status)
                              and (domain is None or r.domain == domain), limit, offset)  # fmt: skip
    if json:
        v.echo_json([v.record_dict(r) for r in rows])
    else:
        v.console().print(v.history_table(rows))


@dead_letter_app.command("list")
def dead_letter_list(db: Db = None, config: Config = None, json: Json = False, limit: Limit = 50,
                     offset: Offset = 0, domain: Annotated[str | None, typer.Option("--domain", "-d")] = None,
                     ) -> None:  # fmt: skip
    """Dead-lettered tasks, newest first."""
    with v.open_client(db, config) as client:
        rows = client._store().history_by_status("dead_letter", limit, offset, domain=domain)
    if json:
        v.echo_json([v.record_dict(r) for r in rows])
    else:
        v.console().print(v.history_table(rows, title="dead letters"))


@dead_letter_app.command("retry")
def dead_letter_retry(task_id: int, db: Db = None, config: Config = None, json: Json = False) -> None:
    """Queue a dead-lettered task again with a fresh retry count (it gets a new id)."""
    from .errors import StoreError

    with v.open_client(db, config) as client:
        try:
            out = client.retry_dead_letter(task_id)
        except StoreError as exc:
            raise v.fail(str(exc)) from None
    if json:
        v.echo_json(out)
    else:
        typer.echo(f"{out.kind}" + (f": task {out.id}" if out.id is not None else ""))


@db_app.command("check")
def db_check(db: Db = None, config: Config = None, json: Json = False) -> None:
    """PRAGMA integrity_check; exit 1 if SQLite reports any problem."""
    with v.open_client(db, config) as client:
        problems = [p for p in client._store().integrity_check() if p != "ok"]
    if json:
        v.echo_json({"ok": not problems, "problems": problems})
    else:
        typer.echo("ok" if not problems else "\n".join(problems))
    if problems:
        raise typer.Exit(1)


@db_app.command("prune")
def db_prune(
    keep: Annotated[int | None, typer.Option("--keep", min=0, help="Keep the newest N history rows.")] = None,
    days: Annotated[float | None, typer.Option("--days", min=0, help="Delete history older than D days.")] = None,
    db: Db = None, config: Config = None, json: Json = False,
) -> None:  # fmt: skip
    """Delete finished tasks from history (active tasks are never touched)."""
    if (keep is None) == (days is None):
        raise v.fail("give exactly one of --keep N or --days D", 2)
    with v.open_client(db, config) as client:
        deleted = client.prune_history_by_count(keep) if keep is not None else client.prune_history_by_age(days)  # type: ignore[arg-type]
    if json:
        v.echo_json({"deleted": deleted})
    else:
        typer.echo(f"deleted {deleted} history row(s)")


@app.command()
def cancel(
    task_ids: Annotated[list[int], typer.Argument(help="Task ids.")], db: Db = None, config: Config = None,
    json: Json = False,
) -> None:  # fmt: skip
    """Cancel tasks (and their children). Running ones are asked to stop, then signalled, then killed."""
    with v.open_client(db, config) as client:
        done = client.cancel_many(task_ids)
    missing = [i for i in task_ids if i not in done]
    if json:
        v.echo_json({"cancelled": done, "not_active": missing})
    else:
        typer.echo(f"cancelled {len(done)} task(s)" + (f"; not active: {missing}" if missing else ""))
    if not done:
        raise typer.Exit(1)


Domain = Annotated[str | None, typer.Option("--domain", "-d", help="Only this domain.")]
Group = Annotated[str | None, typer.Option("--group", "-g", help="Only this group.")]


@app.command()
def pause(
    domain: Domain = None, group: Group = None,
    seconds: Annotated[float | None, typer.Option("--for", min=0, help="Group only: resume after N seconds.")] = None,
    db: Db = None, config: Config = None, json: Json = False,
) -> None:  # fmt: skip
    """Pause dispatch: everything, one domain or one group. Running tasks are stopped and paused."""
    if domain and group:
        raise v.fail("give --domain or --group, not both", 2)
    if seconds is not None and not group:
        raise v.fail("--for applies to a group pause only", 2)
    with v.open_client(db, config) as client:
        if group:
            n = client.pause_group_until(group, seconds) if seconds is not None else client.pause_group(group)
        elif domain:
            n = client._store().pause_domain(domain)
            client._notify()
        else:
            n = client.pause_all()
    _scope_result("paused", domain, group, n, json)


@app.command()
def resume(domain: Domain = None, group: Group = None, db: Db = None, config: Config = None,
           json: Json = False) -> None:  # fmt: skip
    """Resume what ``pause`` paused (a task paused for several reasons waits until all are lifted)."""
    if domain and group:
        raise v.fail("give --domain or --group, not both", 2)
    with v.open_client(db, config) as client:
        if group:
            n = client.resume_group(group)
        elif domain:
            n = client._store().resume_domain(domain)
            client._notify()
        else:
            n = client.resume_all()
    _scope_result("resumed", domain, group, n, json)


def _scope_result(action: str, domain: str | None, group: str | None, n: int, json: bool) -> None:
    scope = f"domain {domain}" if domain else f"group {group}" if group else "all"
    if json:
        v.echo_json({action: scope, "tasks": n})
    else:
        typer.echo(f"{action} {scope} ({n} task(s) affected)")


@app.command()
def top(
    db: Db = None, config: Config = None,
    interval: Annotated[float, typer.Option("--interval", "-i", min=0.1, help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    http: Annotated[str | None, typer.Option("--http", help="The daemon's HTTP address for live progress, "
                                             "e.g. http://127.0.0.1:9465 (default: from --config).")] = None,
) -> None:  # fmt: skip
    """Live view of queue counts and depth, running tasks with progress, throughput and recent history."""
    from .cli_top import run

    path = v.resolve_db(db, config)
    if http is None and config:
        cfg = v.load_config_or_fail(config)
        if cfg.http.enabled:
            host, port = cfg.http.address()
            http = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    with v.open_client(db, config) as client:
        run(client, path, interval=interval, once=once, http=http)


@app.command()
def version() -> None:
    """Print the taskmill, SQLite and apsw versions."""
    import apsw

    from . import __version__

    typer.echo(f"taskmill {__version__} (SQLite {apsw.sqlite_lib_version()}, apsw {apsw.apsw_version()})")

"""Rendering for the operator CLI: records as table rows or JSON-ready dicts, and opening the database.

Listings never include payloads (they can hold user data and are large); ``taskmill show ID`` decodes one
task's payload on request of the operator who has read access to the database anyway.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from .client import Client
from .errors import ConfigError
from .settings import extend_sys_path, import_object, load_config
from .store.records import HistoryRecord, TaskRecord

R = TypeVar("R")
ACTIVE_STATUSES = ("running", "pending", "paused", "waiting", "blocked")
PAGE = 500


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, soft_wrap=False)


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"taskmill: {message}", err=True)
    return typer.Exit(code)


def echo_json(obj: Any) -> None:
    typer.echo(msgspec.json.encode(obj).decode())


# -- opening ------------------------------------------------------------------------------------------------
def resolve_db(db: str | None, config: str | None) -> str:
    """``--db`` wins, then the config file's ``store``, then ``tasks.db``."""
    if db:
        return db
    if config:
        try:
            return load_config(config).store
        except ConfigError as exc:
            raise fail(f"config error: {exc}", 2) from None
    return "tasks.db"


def load_config_or_fail(config: str) -> Any:
    try:
        return load_config(config)
    except ConfigError as exc:
        raise fail(f"config error: {exc}", 2) from None


def open_client(db: str | None, config: str | None, *, modules: Sequence[str] | None = None) -> Client:
    """A client on an existing database. ``modules`` (for untyped submits): domain modules to import, to
    which the config file's ``domains`` are added."""
    path = resolve_db(db, config)
    if not os.path.exists(path):
        raise fail(f"no database at {path} (use --db PATH or --config FILE)", 2)
    durability = "full"
    if modules is not None:
        if config:
            try:
                cfg = load_config(config)
            except ConfigError as exc:
                raise fail(f"config error: {exc}", 2) from None
            extend_sys_path(cfg.python_path)
            modules, durability = [*modules, *cfg.domains], cfg.durability
        extend_sys_path([os.getcwd()])
        for spec in modules:
            try:
                import_object(spec, "--domain-module")
            except ConfigError as exc:
                raise fail(str(exc).replace("key `--domain-module`: ", ""), 2) from None
    return Client(path, durability=durability)  # type: ignore[arg-type]


def parse_tags(items: Sequence[str] | None) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--tag takes KEY=VALUE, got {item!r}", 2)
        tags[key] = value
    return tags


# -- paging with filters ------------------------------------------------------------------------------------
def filtered(fetch: Callable[[int, int], list[R]], keep: Callable[[R], bool], limit: int, offset: int) -> list[R]:
    """Page through ``fetch(limit, offset)`` until ``limit`` matching rows after ``offset`` matching ones."""
    out: list[R] = []
    skipped, at = 0, 0
    while len(out) < limit:
        page = fetch(PAGE, at)
        for row in page:
            if not keep(row):
                continue
            if skipped < offset:
                skipped += 1
            elif len(out) < limit:
                out.append(row)
        if len(page) < PAGE:
            break
        at += PAGE
    return out


def chain(parts: Iterable[Callable[[int, int], list[R]]]) -> Callable[[int, int], list[R]]:
    """One paged source made of several (e.g. running, then pending), for :func:`filtered`."""
    cached: list[R] | None = None

    def fetch(limit: int, offset: int) -> list[R]:
        nonlocal cached
        if cached is None:
            cached = [row for part in parts for row in _all(part)]
        return cached[offset : offset + limit]

    return fetch


def _all(fetch: Callable[[int, int], list[R]]) -> Iterator[R]:
    at = 0
    while True:
        page = fetch(PAGE, at)
        yield from page
        if len(page) < PAGE:
            return
        at += PAGE


# -- records --------------------------------------------------------------------------------------------------
def when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return ""
    s = max(0.0, (now or time.time()) - ts)
    return f"{s:.1f}s" if s < 60 else f"{s / 60:.1f}m" if s < 3600 else f"{s / 3600:.1f}h"


def record_dict(rec: TaskRecord | HistoryRecord, *, payload: bool = False) -> dict[str, Any]:
    """A record as JSON-ready builtins; the payload decoded from msgpack only when asked for."""
    data: dict[str, Any] = msgspec.to_builtins(rec)
    data.pop("payload", None)
    if payload:
        data["payload"] = decode_payload(rec.payload)
    return data


def decode_payload(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return msgspec.to_builtins(msgspec.msgpack.decode(raw))
    except msgspec.DecodeError:
        return {"undecodable_bytes": len(raw)}


def task_table(records: Sequence[TaskRecord], title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("id", "type", "status", "prio", "attempt", "retries", "created", "started/due"):
        t.add_column(col, justify="right" if col in ("id", "prio", "attempt", "retries") else "left")
    for r in records:
        due = when(r.started_at) if r.started_at else (f"due {when(r.run_after)}" if r.run_after else "")
        t.add_row(str(r.id), r.task_type, r.status, str(r.priority), str(r.attempt), str(r.retry_count),
                  when(r.created_at), due)  # fmt: skip
    return t


def history_table(records: Sequence[HistoryRecord], title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("id", "type", "status", "prio", "retries", "duration", "finished", "error"):
        t.add_column(col, justify="right" if col in ("id", "prio", "retries", "duration") else "left")
    for r in records:
        err = (r.last_error or "").splitlines()[0][:60] if r.last_error else ""
        dur = "" if r.duration is None else f"{r.duration:.3f}s"
        t.add_row(str(r.task_id), r.task_type, r.status, str(r.priority), str(r.retry_count), dur,
                  when(r.completed_at), err)  # fmt: skip
    return t


def counts_table(active: dict[str, int], history: dict[str, int]) -> Table:
    t = Table(title="tasks", title_justify="left")
    t.add_column("status")
    t.add_column("count", justify="right")
    t.add_column("where")
    for name, n in active.items():
        t.add_row(name, str(n), "queue")
    for name, n in sorted(history.items()):
        t.add_row(name, str(n), "history")
    return t


def supervisor_pid(db_path: str) -> int | None:
    """The pid written in the supervisor's lock file if that process is alive (read only: no lock probe,
    so a supervisor starting at this moment is never disturbed)."""
    import psutil

    try:
        with open(os.path.abspath(db_path) + ".supervisor.lock", encoding="ascii", errors="replace") as f:
            raw = f.readline(32).strip()  # the first line; worker pids follow
    except OSError:
        return None
    pid = int(raw) if raw.isdigit() else 0
    return pid if pid > 0 and psutil.pid_exists(pid) else None

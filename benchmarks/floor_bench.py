"""What this machine allows a single submit at best: the cost of the disk and of SQLite alone, no taskmill code.

A single ``submit`` is one write transaction. Its cost has a floor set by the machine, which no scheduler
code can go below, and the suite measures it so that a missed target can be told apart from slow code:

- ``fsync_us``: one ``fdatasync`` after a 4 KiB write, in the directory the databases use. With
  ``durability="full"`` every commit waits for one, so ``1e6 / fsync_us`` bounds single submits per second
  whatever the schema.
- ``commit_page_us``: ``BEGIN IMMEDIATE``, an insert into a one-column table, ``COMMIT``: the cheapest write
  transaction SQLite can make durable (one WAL frame), through a bare apsw connection.
- ``commit_task_us``: the same with taskmill's own task row (``INSERT_TASK``, a fresh key each time) on a
  taskmill database: the table, the key index and the ready index each add a WAL frame. ``ceiling_per_s`` is
  its inverse, the best a single submit on this schema can do here (taskmill's submit also looks the key up,
  encodes the payload and pings the supervisor).

Both commit loops time a WAL in its steady state: a first pass of as many commits grows it, a checkpoint
restarts it, and the timed pass writes over it, as taskmill's own WAL is written over once checkpoints have
run. (Appending to a fresh WAL makes every ``full`` commit sync the file's new size too: ~440 against ~300 µs
here.) No checkpoint runs during the timed pass: a floor, with checkpoints left to whoever pays for them.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from pathlib import Path

import apsw

import taskmill as tm
from taskmill.store import sql

from .harness import Result
from .scratch import Durability, scratch_dir
from .workload_tasks import Noop, bench

SYNCHRONOUS = {"normal": "NORMAL", "full": "FULL"}
PAGE = b"\xa5" * 4096
_COLUMNS = sql.INSERT_TASK.split("(", 1)[1].split(")", 1)[0]
_KEY = [c.strip() for c in _COLUMNS.split(",")].index("key")


def fsync_us(root: Path, n: int) -> float:
    """Median ``fdatasync`` after rewriting one 4 KiB block, in microseconds."""
    with scratch_dir(root, "fsync") as d:
        fd = os.open(d / "blocks", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            times = []
            for i in range(n):
                os.pwrite(fd, PAGE, (i % 64) * 4096)
                t_a = time.perf_counter()
                os.fdatasync(fd)
                times.append(time.perf_counter() - t_a)
        finally:
            os.close(fd)
    return statistics.median(times) * 1e6


def _bare(path: Path, durability: Durability) -> apsw.Connection:
    """A connection with only what the cost needs: WAL, the durability's synchronous, no checkpoints."""
    conn = apsw.Connection(str(path))
    for pragma in ("journal_mode=WAL", f"synchronous={SYNCHRONOUS[durability]}", "wal_autocheckpoint=0"):
        list(conn.execute(f"PRAGMA {pragma}"))  # one pragma per call, cursor consumed (DESIGN.md §5)
    return conn


def _commits(conn: apsw.Connection, statement: str, rows: list[tuple[object, ...]]) -> float:
    t_a = time.perf_counter()
    for row in rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(statement, row)
        conn.execute("COMMIT")
    return (time.perf_counter() - t_a) / len(rows) * 1e6


def _per_commit_us(
    conn: apsw.Connection, statement: str, warm: list[tuple[object, ...]], rows: list[tuple[object, ...]]
) -> float:
    """Microseconds per commit of ``rows``, one each, timed over a WAL that ``warm`` grew and a checkpoint
    restarted (see the module doc)."""
    _commits(conn, statement, warm)
    list(conn.execute("PRAGMA wal_checkpoint(RESTART)"))
    return _commits(conn, statement, rows)


def commit_page_us(root: Path, durability: Durability, n: int) -> float:
    with scratch_dir(root, "page") as d:
        conn = _bare(d / "plain.db", durability)
        try:
            conn.execute("CREATE TABLE t (v INTEGER)")
            return _per_commit_us(conn, "INSERT INTO t (v) VALUES (?)", [(i,) for i in range(n)],
                                  [(i,) for i in range(n, 2 * n)])  # fmt: skip
        finally:
            conn.close()


def commit_task_us(root: Path, durability: Durability, n: int) -> float:
    """One submitted no-op's row, inserted ``2 n`` more times under fresh keys by a bare connection."""
    with scratch_dir(root, "row") as d:
        db = str(d / "tasks.db")
        with tm.connect(db, durability=durability) as client:
            client.domain(bench).submit(Noop(i=-1))
        conn = _bare(d / "tasks.db", durability)
        try:
            row = list(next(iter(conn.execute(f"SELECT {_COLUMNS} FROM tasks"))))
            rows = []
            for i in range(2 * n):  # keys spread over the key index as SHA-256 digests are
                row[_KEY] = hashlib.sha256(b"floor %d" % i).hexdigest()
                rows.append(tuple(row))
            return _per_commit_us(conn, sql.INSERT_TASK, rows[:n], rows[n:])
        finally:
            conn.close()


def floors(root: Path, durability: Durability, commits: int, fsyncs: int) -> Result:
    """``commits`` transactions per loop with ``normal``; a fifth as many with ``full``, each waiting on the disk."""
    out: Result = {"problems": []}
    if durability == "full":
        out["fsync_us"] = fsync_us(root, fsyncs)
        commits = max(1, commits // 5)
    out["commit_page_us"] = commit_page_us(root, durability, commits)
    out["commit_task_us"] = commit_task_us(root, durability, commits)
    out["ceiling_per_s"] = 1e6 / out["commit_task_us"]
    return out

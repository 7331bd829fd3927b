"""Statistics over history, IO totals of running tasks, and the metric counters kept in the database.

Counters in the ``counters`` table count transitions that any process can make (see ``schema._V4``): a statement
that makes one calls :func:`bump` in the same transaction. The supervisor reports them as deltas from the values it
found when it was created; everything it does itself (dispatch, results, stops) it counts in memory.
"""

from __future__ import annotations

import apsw

from ..task import IoBudget
from . import sql_control, sql_obs, tags
from .connection import translate_errors
from .records import TypeStats

# status a task ends with -> the counter that counts it
ENDED = {
    "completed": "completed", "failed": "failed", "dead_letter": "dead_lettered", "cancelled": "cancelled",
    "superseded": "superseded", "expired": "expired", "dependency_failed": "dependency_failures",
}  # fmt: skip
BATCH_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10000)


def bump(conn: apsw.Connection, name: str, label: str = "", n: int = 1) -> None:
    conn.execute(sql_obs.BUMP, (name, label, n))


def ended(conn: apsw.Connection, task_id: int, status: str, task_type: str) -> None:
    """A task ended outside the supervisor's own batched writes: unindex its tags and count it."""
    tags.drop(conn, task_id)
    name = ENDED.get(status)
    if name is not None:
        bump(conn, name, task_type)


def batch(conn: apsw.Connection, size: int) -> None:
    """One submitted batch of ``size`` items: the count and the ``batch_size`` histogram (one bucket per batch)."""
    le = next((str(b) for b in BATCH_BUCKETS if size <= b), "+Inf")
    conn.executemany(sql_obs.BUMP, [("batches_submitted", "", 1), ("batch_size", le, 1), ("batch_size_sum", "", size)])


def counters(conn: apsw.Connection) -> dict[tuple[str, str], int]:
    return {(str(n), str(label)): int(v) for n, label, v in conn.execute(sql_obs.COUNTERS)}


NEW_ROWS_PER_SCAN = 4096  # ~10 ms of counting at most per turn, however large a batch just arrived


def new_rows(
    conn: apsw.Connection, after_id: int, limit: int | None = None
) -> tuple[list[tuple[str, str | None, int]], int, bool]:
    """Submissions among the ``limit`` row ids (default :data:`NEW_ROWS_PER_SCAN`) after ``after_id``:
    ``[(task_type, group, n)]``, the new watermark, and whether rows may remain past it."""
    limit = NEW_ROWS_PER_SCAN if limit is None else limit
    found: list[tuple[str, str | None, int]] = []
    try:
        rows = conn.execute(sql_obs.NEW_ROWS, (after_id, limit)).fetchall()  # its own read, outside a transaction
    except apsw.Error as exc:
        raise translate_errors(exc) from exc
    for task_type, group, n in rows[:-1]:
        if n:
            found.append((str(task_type), None if group is None else str(group), int(n)))
    newest = rows[-1][2]
    return (found, *scanned_to(after_id, limit, None if newest is None else int(newest)))


def scanned_to(after_id: int, limit: int, newest: int | None) -> tuple[int, bool]:
    """After a scan of the ids in ``(after_id, after_id + limit]`` that also read the newest committed id: the
    new watermark, and whether committed rows remain past it. Rows committed later get larger ids."""
    end = after_id + limit
    if newest is None or newest <= after_id:  # nothing new (or the newest rows were deleted)
        return after_id, False
    return min(newest, end), newest > end


def max_id(conn: apsw.Connection) -> int:
    row = next(iter(conn.execute(sql_control.MAX_ID)))
    return 0 if row[0] is None else int(row[0])


def paused_group_count(conn: apsw.Connection) -> int:
    return int(next(iter(conn.execute(sql_obs.PAUSED_GROUP_COUNT)))[0])


def running_io(conn: apsw.Connection, domain: str | None = None) -> IoBudget:
    r, w, rx, tx = next(iter(conn.execute(sql_obs.RUNNING_IO, (domain,))))
    return IoBudget(read=int(r), write=int(w), net_rx=int(rx), net_tx=int(tx))


def history_stats(conn: apsw.Connection, task_type: str) -> TypeStats:
    count, completed, failed, dur, rd, wr, rx, tx = next(iter(conn.execute(sql_obs.HISTORY_STATS, (task_type,))))
    ran = int(completed) + int(failed)
    return TypeStats(
        task_type=task_type, count=int(count), completed=int(completed), failed=int(failed),
        failure_rate=int(failed) / ran if ran else 0.0, avg_duration_ms=dur, avg_read_bytes=rd, avg_write_bytes=wr,
        avg_net_rx_bytes=rx, avg_net_tx_bytes=tx,
    )  # fmt: skip


def avg_throughput(conn: apsw.Connection, task_type: str, n: int = 20) -> tuple[float, float]:
    """Mean ``(read, write)`` bytes per second over the last ``n`` completed runs that took measurable time."""
    if n < 1:
        raise ValueError("n must be >= 1")
    found, rd, wr = next(iter(conn.execute(sql_obs.AVG_THROUGHPUT, (task_type, n))))
    return (float(rd), float(wr)) if found else (0.0, 0.0)

"""The supervisor's side of the store: claim runnable tasks and record their outcomes in batches.

Claims and results are coalesced: one write transaction per dispatch-loop turn, however many tasks it
covers, so ``durability="full"`` costs one fsync per turn rather than per task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import apsw
import msgspec

from . import sql, sql_policy, stats, tags
from .connection import translate_errors, write_tx
from .records import Candidate, Claimed

_json = msgspec.json.encode

# A finished row: (status, finished_ms, started_ms, duration_ms, read, write, rx, tx, retry_delta, error,
#                  id, attempt) — the parameters of sql.FINISH.
FinishRow = tuple


def claim_next(conn: apsw.Connection, limit: int, now_ms: int) -> list[Claimed]:
    """Claim up to ``limit`` runnable tasks in priority then FIFO order (no gates apply)."""
    rows = [Claimed(*r) for r in conn.execute(sql.CLAIM_NEXT, (now_ms, limit))]
    rows.sort(key=lambda c: (c.priority, c.id))
    return rows


def claim_ids(conn: apsw.Connection, ids: Sequence[int], now_ms: int) -> list[Claimed]:
    rows = [Claimed(*r) for r in conn.execute(sql.CLAIM_IDS, (now_ms, _json(list(ids)).decode()))]
    rows.sort(key=lambda c: (c.priority, c.id))
    return rows


ALL = "\x00all"  # the scope of a peek over every group (a group key cannot be this)


def peek_ready(
    conn: apsw.Connection,
    after: tuple[int, int],
    limit: int,
    *,
    skip_domains: Sequence[str] = (),
    skip_types: Sequence[str] = (),
    skip_groups: Sequence[str] = (),
    ceiling: int = 256,
    group: str | None = ALL,
) -> list[Candidate]:
    """Runnable candidates strictly after ``(priority, id)`` (keyset paging past denied tasks) and more urgent
    than ``ceiling``, in priority then FIFO order. Capped domains, rate-limited types and full groups are left
    out inside SQLite, so a saturated backlog costs nothing. ``group``: every group (default), None for
    ungrouped tasks only, or one group."""
    args = [after[0], after[1], limit, _json(list(skip_domains)).decode(), _json(list(skip_types)).decode(),
            _json(list(skip_groups)).decode(), ceiling]  # fmt: skip
    if group == ALL:
        query = sql_policy.PEEK_READY
    elif group is None:
        query = sql_policy.PEEK_READY_UNGROUPED
    else:
        query, args = sql_policy.PEEK_READY_GROUP, [*args, group]
    return [Candidate(*r) for r in conn.execute(query, args)]


def ready_levels(conn: apsw.Connection, group: str | None = ALL) -> list[int]:
    """Distinct priorities of runnable tasks (of one group, or all)."""
    if group == ALL or group is None:
        return [int(r[0]) for r in conn.execute(sql_policy.READY_LEVELS)]
    return [int(r[0]) for r in conn.execute(sql_policy.READY_LEVELS_GROUP, (group,))]


def ready_groups(conn: apsw.Connection, limit: int = 10_000) -> list[str]:
    return [r[0] for r in conn.execute(sql_policy.READY_GROUPS, (limit,))]


def ready_count(conn: apsw.Connection, group: str | None, limit: int) -> int:
    """Runnable tasks in ``group`` (None: ungrouped), counted up to ``limit``."""
    if group is None:
        return int(next(iter(conn.execute(sql_policy.READY_UNGROUPED, (limit,))))[0])
    return int(next(iter(conn.execute(sql_policy.READY_IN_GROUP, (group, limit))))[0])


def candidate(conn: apsw.Connection, task_id: int) -> tuple[Candidate, str, int | None, int] | None:
    """An active task as the gate sees it, with its status, run_after and pause bits (for diagnostics)."""
    r = next(iter(conn.execute(sql_policy.CANDIDATE_BY_ID, (task_id,))), None)
    return None if r is None else (Candidate(*r[:11]), r[11], r[12], r[13])


def running_expected_io(conn: apsw.Connection) -> tuple[int, int, int, int]:
    r = next(iter(conn.execute(sql_policy.RUNNING_EXPECTED_IO)))
    return (int(r[0]), int(r[1]), int(r[2]), int(r[3]))


def promote_due(conn: apsw.Connection, now_ms: int) -> int:
    conn.execute(sql.PROMOTE_DUE, (now_ms,))
    return conn.changes()


def next_run_after(conn: apsw.Connection) -> int | None:
    row = next(iter(conn.execute(sql.NEXT_RUN_AFTER)), None)
    return None if row is None or row[0] is None else int(row[0])


# A completed run: (id, finished_ms, started_ms, read, write, rx, tx, attempt) — the parameters of sql.COMPLETE.
CompleteRow = tuple


def complete(conn: apsw.Connection, rows: Sequence[CompleteRow]) -> int:
    """Mark completed runs (fenced on the attempt). Returns how many were requeued instead: a task resubmitted
    while it ran keeps this run as a finished copy and goes back to pending."""
    before = conn.total_changes()
    conn.executemany(sql.COMPLETE, rows)
    if conn.total_changes() - before == len(rows):
        return 0
    return _requeue(conn, _json([[r[0], r[2], r[1], r[3], r[4], r[5], r[6], r[7]] for r in rows]).decode())


def _requeue(conn: apsw.Connection, leftovers: str) -> int:
    conn.execute(sql.REQUEUE_COPY, (leftovers,))
    requeued = conn.changes()
    if requeued:
        conn.execute(sql.REQUEUE_RESET, (leftovers,))
    return requeued


def finish(conn: apsw.Connection, rows: Sequence[FinishRow]) -> int:
    """Mark finished runs in place (fenced on the attempt). Returns how many completed runs were requeued.

    A task resubmitted while it ran (``requeue``) is not finished by ``FINISH``; its run is kept as a copy
    row and the task goes back to pending instead.
    """
    before = conn.total_changes()
    conn.executemany(sql.FINISH, rows)
    if conn.total_changes() - before == len(rows) or rows[0][0] != "completed":
        return 0
    return _requeue(conn, _json([[r[10], r[2], r[1], r[4], r[5], r[6], r[7], r[11]] for r in rows]).decode())


def drop_finished_tags(conn: apsw.Connection, ids: Sequence[int]) -> None:
    """Unindex the tags of tasks this turn finished (``ids``: those that carry tags; a requeued run keeps them)."""
    tags.drop_finished(conn, ids)


def retry_later(conn: apsw.Connection, items: Iterable[tuple[str, int | None, int, int]]) -> None:
    """``items``: (error, run_after_ms or None, id, attempt). The task goes back to the queue."""
    conn.executemany(sql.RETRY_LATER, list(items))


def retry_inline(conn: apsw.Connection, error: str, now_ms: int, tid: int, attempt: int) -> tuple[int, int] | None:
    """Count a failed attempt and keep the task running for an immediate re-run: (new attempt, retries)."""
    row = next(iter(conn.execute(sql.RETRY_INLINE, (error, now_ms, tid, attempt))), None)
    return None if row is None else (int(row[0]), int(row[1]))


def release(conn: apsw.Connection, items: Iterable[tuple[int, int]]) -> None:
    """Give claimed-but-never-started tasks back to the queue, uncounted. ``items``: (id, attempt)."""
    conn.executemany(sql.RELEASE, list(items))


def recover(conn: apsw.Connection, now_ms: int, ended: list[int] | None = None) -> int:
    """After a crash: running tasks go back to pending without using a retry. Returns how many. Runs that were
    being stopped land where their request said; their ids go to ``ended`` (to settle what follows)."""
    rows = list(conn.execute(sql.RECOVER_RUNNING, (now_ms,)))
    for tid, finished, status, task_type in rows:
        if finished is not None:
            stats.ended(conn, int(tid), str(status), str(task_type))
            if ended is not None:
                ended.append(int(tid))
    conn.execute(sql.RECOVER_PAUSED, (now_ms,))
    return len(rows)


def sync(conn: apsw.Connection) -> None:
    """Wait for the disk to hold every commit so far, after a ``durable=False`` one that turned out to record
    an outcome: one synced commit flushes the whole WAL. Raises :class:`StoreError` if it cannot."""
    try:
        with write_tx(conn):
            conn.execute(sql.META_BUMP, ("syncs",))  # a row that changes: SQLite writes no unchanged one
    except apsw.Error as exc:
        raise translate_errors(exc) from exc


def announce(conn: apsw.Connection) -> None:
    """A supervisor has bound its wake-up socket: clients that stopped pinging nobody start again (the epoch's
    comment in sql.py). Runs in a transaction that commits before the supervisor's first dispatch turn."""
    conn.execute(sql.META_BUMP, ("supervisor_epoch",))


def _delete(conn: apsw.Connection, ids: list[int]) -> int:
    if not ids:
        return 0
    payload = _json(ids).decode()
    conn.execute(sql.DELETE_TAGS_OF_IDS, (payload,))
    conn.execute(sql.DELETE_IDS, (payload,))
    return conn.changes()


def prune_by_count(conn: apsw.Connection, keep: int, limit: int = 50_000) -> int:
    """Delete the oldest finished rows beyond the newest ``keep`` (at most ``limit`` per call)."""
    return _delete(conn, [int(r[0]) for r in conn.execute(sql.PRUNE_IDS_BY_COUNT, (keep, limit))])


def prune_by_age(conn: apsw.Connection, cutoff_ms: int, limit: int = 50_000) -> int:
    return _delete(conn, [int(r[0]) for r in conn.execute(sql.PRUNE_IDS_BY_AGE, (cutoff_ms, limit))])

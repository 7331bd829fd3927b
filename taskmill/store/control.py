"""Cancel, pause and resume, as database writes any process can make.

Queued tasks change state at once. A running task only carries the request (``cancel_requested``, or pause
bits in ``pause_reasons``): the supervisor sees it, stops the executor, and then records where the run
landed (``stop_applied``), so the row never says "stopped" while code is still running.
"""

from __future__ import annotations

from collections.abc import Iterable

import apsw

from .. import events as ev
from . import flow, sql, sql_control, stats, tags
from .submit import PAUSE_DOMAIN, PAUSE_GLOBAL, PAUSE_GROUP, PAUSE_PREEMPTION

__all__ = [
    "CANCEL", "PAUSE_DOMAIN", "PAUSE_GLOBAL", "PAUSE_GROUP", "PAUSE_PREEMPTION", "SUPERSEDE", "cancel",
]  # fmt: skip

CANCEL, SUPERSEDE = 1, 2  # values of cancel_requested
GLOBAL_PAUSE_KEY = "paused_all"


def cancel(
    conn: apsw.Connection, task_id: int, now_ms: int, reason: int = CANCEL, fx: flow.Effects | None = None
) -> tuple[bool, list[int]]:
    """Cancel a task and its active children. Returns (found, ids of running tasks asked to stop).

    The task is marked first, so a waiting parent losing its last child is not resolved (finalized) on the
    way. What follows from a queued task's end (its dependents' policies, its parent, its schedule) is
    settled here, in the same transaction; ``fx`` collects the events (a stopped run settles when it lands).
    """
    row = next(iter(conn.execute(sql_control.ACTIVE_ROW, (task_id,))), None)
    if row is None:
        return False, []
    fx = fx if fx is not None else flow.Effects()
    requested: list[int] = []
    running = row[1] == "running"
    if running:
        conn.execute(sql_control.REQUEST_STOP, (task_id, reason))
        requested.append(task_id)
    else:
        conn.execute(sql_control.CANCEL_QUEUED, (task_id, now_ms))
        r = flow.flow_row(conn, task_id)
        if r is not None:
            fx.events.append(ev.Cancelled(flow.header(r)))  # a running one is announced when it has stopped
        stats.ended(conn, task_id, "cancelled", str(row[3]))
    for (child,) in list(conn.execute(sql_control.ACTIVE_CHILDREN, (task_id,))):
        requested.extend(cancel(conn, int(child), now_ms, CANCEL, fx)[1])
    if not running:
        flow.settle(conn, now_ms, [task_id], fx)
    requested.extend(fx.stop)
    fx.stop.clear()
    return True, requested


def domain_task_ids(conn: apsw.Connection, domain: str) -> list[int]:
    return [int(r[0]) for r in conn.execute(sql_control.ACTIVE_IDS_OF_DOMAIN, (domain,))]


def _changes(conn: apsw.Connection, statement: str, args: tuple[object, ...]) -> int:
    conn.execute(statement, args)
    return conn.changes()


def pause_domain(conn: apsw.Connection, domain: str, now_ms: int) -> int:
    conn.execute(sql_control.ADD_PAUSED_DOMAIN, (domain, now_ms))
    n = _changes(conn, sql_control.PAUSE_DOMAIN_QUEUED, (PAUSE_DOMAIN, now_ms, domain))
    return n + _changes(conn, sql_control.PAUSE_RUNNING, (PAUSE_DOMAIN, domain, None))


def resume_domain(conn: apsw.Connection, domain: str, now_ms: int) -> int:
    conn.execute(sql_control.DEL_PAUSED_DOMAIN, (domain,))
    conn.execute(sql_control.WITHDRAW_RUNNING, (PAUSE_DOMAIN, domain, None))
    return _changes(conn, sql_control.CLEAR_DOMAIN, (PAUSE_DOMAIN, now_ms, domain))


def is_domain_paused(conn: apsw.Connection, domain: str) -> bool:
    return next(iter(conn.execute(sql_control.IS_DOMAIN_PAUSED, (domain,))), None) is not None


def pause_group(conn: apsw.Connection, group: str, now_ms: int, resume_at_ms: int | None) -> tuple[int, int]:
    """Returns (queued tasks paused, running tasks asked to pause)."""
    if next(iter(conn.execute(sql_control.IS_GROUP_PAUSED, (group,))), None) is None:
        stats.bump(conn, "group_pauses", group)
    conn.execute(sql_control.ADD_PAUSED_GROUP, (group, now_ms, resume_at_ms))
    queued = _changes(conn, sql_control.PAUSE_GROUP_QUEUED, (PAUSE_GROUP, now_ms, group))
    return queued, _changes(conn, sql_control.PAUSE_RUNNING, (PAUSE_GROUP, None, group))


def resume_group(conn: apsw.Connection, group: str, now_ms: int) -> int | None:
    """Returns how many tasks became pending, or None if the group was not paused."""
    if next(iter(conn.execute(sql_control.IS_GROUP_PAUSED, (group,))), None) is None:
        return None
    conn.execute(sql_control.DEL_PAUSED_GROUP, (group,))
    stats.bump(conn, "group_resumes", group)
    conn.execute(sql_control.WITHDRAW_RUNNING, (PAUSE_GROUP, None, group))
    return _changes(conn, sql_control.CLEAR_GROUP, (PAUSE_GROUP, now_ms, group))


def paused_groups(conn: apsw.Connection) -> list[tuple[str, int, int | None]]:
    return [(str(g), int(p), None if r is None else int(r)) for g, p, r in conn.execute(sql_control.PAUSED_GROUPS)]


def due_group_resumes(conn: apsw.Connection, now_ms: int) -> list[str]:
    return [str(r[0]) for r in conn.execute(sql_control.DUE_GROUP_RESUMES, (now_ms,))]


def next_group_resume(conn: apsw.Connection) -> int | None:
    row = next(iter(conn.execute(sql_control.NEXT_GROUP_RESUME)), None)
    return None if row is None or row[0] is None else int(row[0])


def pause_all(conn: apsw.Connection, now_ms: int) -> int:
    """Global pause: nothing new starts; running tasks are asked to pause. Queued tasks stay pending."""
    conn.execute(sql.META_SET, (GLOBAL_PAUSE_KEY, str(now_ms)))
    return _changes(conn, sql_control.PAUSE_RUNNING, (PAUSE_GLOBAL, None, None))


def resume_all(conn: apsw.Connection, now_ms: int) -> int:
    conn.execute("DELETE FROM meta WHERE name = ?", (GLOBAL_PAUSE_KEY,))
    conn.execute(sql_control.WITHDRAW_RUNNING, (PAUSE_GLOBAL, None, None))
    return _changes(conn, sql_control.CLEAR_ALL, (PAUSE_GLOBAL, now_ms))


def is_paused(conn: apsw.Connection) -> bool:
    return next(iter(conn.execute(sql.META_GET, (GLOBAL_PAUSE_KEY,))), None) is not None


def turn_state(conn: apsw.Connection) -> tuple[int, int, bool]:
    """The data version, the dependency epoch and the global pause, as the caller's transaction sees them."""
    version, epoch, paused = next(iter(conn.execute(sql_control.TURN_STATE, (GLOBAL_PAUSE_KEY,))))
    return int(version), 0 if epoch is None else int(epoch), bool(paused)


# -- the supervisor's side -------------------------------------------------------------------------------
def stop_requests(conn: apsw.Connection) -> list[tuple[int, int, int, int]]:
    """Running tasks with a pending cancel/supersede/pause request: (id, attempt, cancel_requested, reasons)."""
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in conn.execute(sql_control.STOP_REQUESTS)]


def mark_preempted(conn: apsw.Connection, items: Iterable[tuple[int, int]]) -> None:
    conn.executemany(sql_control.MARK_PREEMPTED, list(items))


def stop_applied(conn: apsw.Connection, now_ms: int, task_id: int, attempt: int) -> tuple[str, int] | None:
    """Record where a stopped run landed: (new status, pause reasons), None if the attempt is stale."""
    row = next(iter(conn.execute(sql_control.STOP_APPLIED, (now_ms, task_id, attempt))), None)
    if row is None:
        return None
    if row[1] not in ("pending", "paused"):
        tags.drop(conn, task_id)  # ended (counted by the supervisor, which applies stops)
    return str(row[1]), int(row[2])


def new_urgent(conn: apsw.Connection, after_id: int, preempt_priority: int) -> tuple[int | None, int, bool]:
    """The most urgent preempting priority among the next :data:`stats.NEW_ROWS_PER_SCAN` tasks submitted after
    ``after_id``, the newest id among them, and whether rows may remain past it (a bounded scan per turn)."""
    limit = stats.NEW_ROWS_PER_SCAN
    urgent, newest = next(iter(conn.execute(sql_control.NEW_URGENT, (after_id, preempt_priority, limit))))
    top, more = stats.scanned_to(after_id, limit, newest)
    return (None if urgent is None else int(urgent)), top, more


def max_id(conn: apsw.Connection) -> int:
    row = next(iter(conn.execute(sql_control.MAX_ID)))
    return 0 if row[0] is None else int(row[0])


def ready_head_priority(conn: apsw.Connection) -> int | None:
    row = next(iter(conn.execute(sql_control.READY_HEAD_PRIORITY)), None)
    return None if row is None else int(row[0])


def resume_preempted(conn: apsw.Connection, now_ms: int, up_to_priority: int) -> int:
    """Clear the preemption reason of paused tasks no active preemptor outranks (priority <= the bound)."""
    return _changes(conn, sql_control.RESUME_PREEMPTED, (PAUSE_PREEMPTION, now_ms, up_to_priority))


def preempted_count(conn: apsw.Connection) -> int:
    row = next(iter(conn.execute(sql_control.PAUSED_COUNT_WITH, (PAUSE_PREEMPTION,))))
    return int(row[0])

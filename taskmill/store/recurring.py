"""Recurring schedules in the database: the schedule lives on its task's row, which runs every occurrence.

When an occurrence ends (completed, failed, dead-lettered or expired), a copy of its run is kept as history
(``run_of`` = the task id) and the same row is queued again for the next fire time, in the same transaction.
So the schedule keeps one id and holds its dedup key for as long as it lives: ``pause_recurring(id)``,
``history_of(id)`` and a resubmission of the same task all keep working across occurrences, and a restart
finds the schedule exactly where it was. A cancel or a supersede ends the schedule; so does reaching
``max_occurrences`` (counted in occurrences that ran; an expired one did not).
"""

from __future__ import annotations

from typing import Any

import apsw

from .. import events as ev
from ..policy.recurrence import plan_next
from . import sql_flow as q
from . import stats, tags
from .records import F_RECURRING, F_TTL, F_TTL_FIRST, RecurringScheduleInfo

CONTINUES = frozenset({"completed", "failed", "dead_letter", "expired"})
PAUSE_RECURRING = 16  # pause_reasons bit of a paused schedule's queued occurrence


def after_occurrence(
    conn: apsw.Connection, now_ms: int, task_id: int, status: str, head: ev.EventHeader, fx: Any
) -> None:
    """Queue the next occurrence of the schedule on ``task_id`` (its row just ended with ``status``)."""
    row = next(iter(conn.execute(q.RECURRING_ROW, (task_id,))), None)
    if row is None:
        return
    interval, cron, tz, max_n, count, at, started, ttl_s, ttl_from, _flags = row
    if (interval is None and cron is None) or status not in CONTINUES:
        return  # cancelled, superseded or failed on a dependency: the schedule ends with this occurrence
    ran = started is not None and status != "expired"
    count = int(count) + (1 if ran else 0)
    if max_n is not None and count >= int(max_n):
        conn.execute(q.SET_RECURRING_COUNT, (task_id, count))
        if status == "completed":
            fx.events.append(ev.RecurringCompleted(head, count, None))
        return
    scheduled = int(at) if at is not None else now_ms
    plan = plan_next(interval_s=interval, cron=cron, tz=tz, scheduled_ms=scheduled,
                     started_ms=int(started) if ran else None, now_ms=now_ms)  # fmt: skip
    due = max(plan.scheduled_ms, now_ms)
    flags = F_RECURRING
    expires = None
    if ttl_s is not None:
        flags |= F_TTL
        if ttl_from == "first_attempt":
            flags |= F_TTL_FIRST
        else:
            expires = due + int(float(ttl_s) * 1000)
    conn.execute(q.OCCURRENCE_COPY, (task_id,))
    run_after = due if due > now_ms else None
    conn.execute(q.NEXT_OCCURRENCE, (task_id, now_ms, run_after, plan.scheduled_ms, count, expires, flags))
    tags.restore(conn, task_id)
    fx.queued = True
    if status == "completed":
        fx.events.append(ev.RecurringCompleted(head, count, due / 1000.0))
    if plan.skipped:
        why = "the previous occurrence was still queued or running at those fire times"
        stats.bump(conn, "recurring_skipped", head.task_type, plan.skipped)
        fx.events.append(ev.RecurringSkipped(head, plan.skipped, due / 1000.0, why))


def set_schedule(
    conn: apsw.Connection, task_id: int, interval: float | None, cron: str | None, tz: str | None,
    max_n: int | None, scheduled_ms: int,
) -> None:  # fmt: skip
    conn.execute(q.SET_RECURRING, (task_id, interval, cron, tz, max_n, scheduled_ms))


def schedules(conn: apsw.Connection) -> list[RecurringScheduleInfo]:
    out = []
    for r in conn.execute(q.RECURRING_SCHEDULES):
        (tid, ttype, domain, key, label, status, interval, cron, tz, max_n, count, at, run_after, paused) = r
        when = run_after if run_after is not None else at
        nxt = None if status == "running" or when is None else when / 1000.0
        out.append(RecurringScheduleInfo(
            task_id=tid, task_type=ttype, domain=domain, key=key, label=label, status=status, interval=interval,
            cron=cron, timezone=tz, max_occurrences=max_n, occurrences=count, next_run=nxt, paused=bool(paused),
        ))  # fmt: skip
    return out


def target(conn: apsw.Connection, task_id: int, domain: str | None) -> tuple[int, str] | None:
    row = next(iter(conn.execute(q.RECURRING_TARGET, (task_id,))), None)
    if row is None or (domain is not None and row[2] != domain):
        return None
    return int(row[0]), str(row[1])


def pause(conn: apsw.Connection, task_id: int, now_ms: int) -> None:
    """No further occurrence starts: a queued one is held (paused), a running one finishes and its successor
    is queued paused."""
    conn.execute(q.PAUSE_RECURRING, (task_id,))
    conn.execute(q.PAUSE_RECURRING_QUEUED, (task_id, now_ms))


def resume(conn: apsw.Connection, task_id: int, now_ms: int) -> None:
    conn.execute(q.RESUME_RECURRING, (task_id,))
    conn.execute(q.RESUME_RECURRING_QUEUED, (PAUSE_RECURRING, now_ms, task_id))


def end(conn: apsw.Connection, task_id: int) -> None:
    """End the schedule on a running occurrence: it finishes, and nothing follows it."""
    conn.execute(q.END_SCHEDULE, (task_id,))

"""Why a task is not running: its state, then the gate's verdict as the supervisor sees it right now."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
from typing import Any

from ..policy.gate import DOMAIN_CAP, GROUP_CAP, IO_BUDGET, RATE_LIMITED, THROTTLED
from ..store import dispatch, now_ms
from ..store.submit import PAUSE_DOMAIN, PAUSE_GLOBAL, PAUSE_GROUP, PAUSE_PREEMPTION
from .selection import explain

_PAUSES = ((PAUSE_PREEMPTION, "preempted by more urgent work"), (PAUSE_DOMAIN, "its domain is paused"),
           (PAUSE_GROUP, "its group is paused"), (PAUSE_GLOBAL, "the scheduler is paused"))  # fmt: skip


def _gate_words(reason: str, c: Any, scheduler: Any) -> str:
    policy = scheduler.policy
    if reason == DOMAIN_CAP:
        return f"domain {c.domain!r} is at its concurrency cap ({scheduler.registry.domains[c.domain].max_concurrency})"
    if reason == GROUP_CAP:
        cap = policy.group_limits.get(c.group_key, policy.default_group_limit)
        return f"group {c.group_key!r} is at its concurrency limit ({cap})"
    if reason == RATE_LIMITED:
        return f"rate-limited (type {c.task_type!r} or group {c.group_key!r} is out of tokens)"
    if reason == THROTTLED:
        return f"throttled: pressure {policy.pressure:.2f} holds back priority {c.priority} and below"
    if reason == IO_BUDGET:
        return "its expected IO does not fit beside the running tasks' at the observed throughput"
    return reason


def describe(scheduler: Any, task_id: int, timeout: float) -> str | None:
    store = scheduler._store()
    found = dispatch.candidate(store.conn, task_id)
    if found is None:
        runs = store.history_of_task(task_id)
        return f"it has finished ({runs[0].status})" if runs else "no such task"
    c, status, run_after, pauses = found
    if status == "running":
        return None
    if status == "paused":
        words = [w for bit, w in _PAUSES if pauses & bit]
        return "paused: " + ", ".join(words or ["paused"])
    if status == "blocked":
        return f"blocked until its dependencies complete: {store.task_dependencies(task_id)}"
    if status == "waiting":
        return "waiting for its children to finish before finalize()"
    if run_after is not None and run_after > now_ms():
        when = dt.datetime.fromtimestamp(run_after / 1000, dt.UTC).isoformat(timespec="milliseconds")
        return f"delayed until {when}"
    sup = scheduler._supervisor
    if sup is None or sup.loop is None or sup.dispatcher is None:
        return "the scheduler is not running"
    if scheduler.is_paused():
        return "paused: the scheduler is paused"
    d = sup.dispatcher

    def verdict() -> str | None:
        return explain(d.store.conn, d.workers, scheduler.registry.domain_caps(), d.policy, c)

    if threading.get_ident() == sup.thread_id:
        reason = verdict()
    else:
        fut: concurrent.futures.Future[str | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(verdict())
            except BaseException as exc:  # reported to the caller
                fut.set_exception(exc)

        sup.loop.call_soon_threadsafe(run)
        reason = fut.result(timeout)
    if reason is not None:
        return _gate_words(reason, c, scheduler)
    busy = d.inflight_count()
    if busy >= scheduler.max_concurrency:
        return f"all {scheduler.max_concurrency} slots are busy (max_concurrency)"
    return None

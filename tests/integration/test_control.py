"""Preemption, cancellation, pause/resume, supersede, time limits and worker recycling, with real workers."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

import taskmill as tm

from ..helpers import entries, wait_for
from . import control_domains as C


def started(log: str, tag: str, n: int = 1) -> list[dict[str, Any]]:
    return wait_for(
        lambda: len(entries(log, "start", tag)) >= n and entries(log, "start", tag), 15, what=f"{tag} start"
    )


def history_status(s: tm.Scheduler, task_id: int) -> str | None:
    runs = s.history_of(task_id)
    return runs[0].status if runs else None


def test_realtime_preempts_a_busy_loop_that_never_checks_and_it_resumes_after(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    sub = s.subscribe()
    h = s.domain(C.ctl)
    low = h.submit(C.Spin(log=log, tag="low")).id
    started(log, "low")
    t0 = time.monotonic()
    urgent = h.submit(C.Quick(log=log, tag="urgent", seconds=0.3), priority=tm.Priority.REALTIME).id
    first = started(log, "urgent")[0]
    assert time.monotonic() - t0 < 1.0  # the busy loop was interrupted, not waited out (30 s)
    assert s.wait_until_idle(20)
    assert history_status(s, urgent) == "completed" and history_status(s, low) == "completed"
    low_runs = entries(log, "start", "low")
    assert [e["attempt"] for e in low_runs] == [1, 2]  # preempted, then rerun from the start
    urgent_end = entries(log, "end", "urgent")[0]["t"]
    assert low_runs[1]["t"] >= urgent_end  # resumed only after the preemptor finished
    assert first["pid"] == low_runs[0]["pid"]  # the worker survived: the signal path, no kill
    assert s.history_of(low)[0].retry_count == 0  # preemption does not use a retry
    kinds = []
    while (e := sub.get_nowait()) is not None:
        kinds.append(type(e).__name__)
    assert "Preempted" in kinds


def test_an_urgent_task_from_another_process_preempts_and_a_cancel_from_it_is_seen(
    make_scheduler: Any, log: str
) -> None:
    """A producer's wake-up says whether it only added tasks; either kind must still preempt and cancel."""
    s = make_scheduler([C.ctl], workers=1, poll_interval=5.0, start=True)  # only a wake-up can be this quick
    low = s.domain(C.ctl).submit(C.Spin(log=log, tag="low")).id
    started(log, "low")
    with tm.connect(s.path) as client:
        t0 = time.monotonic()
        client.domain(C.ctl).submit(C.Quick(log=log, tag="urgent", seconds=0.1), priority=tm.Priority.REALTIME)
        started(log, "urgent")
        assert time.monotonic() - t0 < 1.0  # preempted at once, not at the next slow poll
        started(log, "low", 2)  # resumed after the urgent task
        t1 = time.monotonic()
        assert client.cancel(low)
        wait_for(lambda: history_status(s, low) == "cancelled", 5, what="the cancel to stop the running task")
        assert time.monotonic() - t1 < 1.0


def test_an_executor_ignoring_the_signal_is_killed_after_the_grace_with_its_children(
    make_scheduler: Any, log: str
) -> None:
    s = make_scheduler([C.ctl], workers=1, preempt_grace=1.0, start=True)
    h = s.domain(C.ctl)
    victim = h.submit(C.Stubborn(log=log)).id
    child = started(log, "stubborn")[0]["child"]
    t0 = time.monotonic()
    h.submit(C.Quick(log=log, tag="urgent"), priority=tm.Priority.REALTIME)
    wait_for(lambda: entries(log, "start", "urgent"), 10, what="urgent start")
    assert time.monotonic() - t0 < 1.0 + 2.5  # grace + margin for a loaded machine
    wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE, 5)
    assert s.wait_until_idle(20)
    assert history_status(s, victim) == "completed"  # it came back after the preemptor, as attempt 2
    assert [e["attempt"] for e in entries(log, "start", "stubborn")] == [1, 2]


def test_cancel_in_each_state(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    sub = s.subscribe()
    h = s.domain(C.ctl)
    running = h.submit(C.Hooked(log=log, tag="running")).id
    started(log, "running")
    pending = h.submit(C.Quick(log=log, tag="pending")).id
    delayed = h.submit(C.Quick(log=log, tag="delayed"), run_after=60).id
    assert s.cancel(pending) is True and s.cancel(delayed) is True  # queued behind the running one
    assert s.cancel(running) is True
    wait_for(lambda: history_status(s, running) == "cancelled", 10, what="running task cancelled")
    assert entries(log, "on_cancel", "running")  # the hook ran after the executor stopped
    assert not entries(log, "end", "running")
    h.pause()
    paused = h.submit(C.Quick(log=log, tag="paused"))
    assert paused.paused and s.task(paused.id).status == "paused"  # type: ignore[union-attr]
    assert s.cancel(paused.id) is True  # type: ignore[arg-type]
    h.resume()
    for tid in (pending, delayed, paused.id):
        assert history_status(s, tid) == "cancelled"  # type: ignore[arg-type]
    assert s.cancel(running) is False and s.cancel(10_000) is False
    time.sleep(0.2)
    assert not entries(log, "start", "pending") and not entries(log, "start", "paused")
    cancelled = set()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and running not in cancelled:
        e = sub.get(0.1)
        if isinstance(e, tm.Cancelled) and e.header is not None:
            cancelled.add(e.header.task_id)
    assert running in cancelled


def test_cancel_from_another_process_stops_a_running_task(make_scheduler: Any, log: str, db: Path) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    tid = s.domain(C.ctl).submit(C.Hooked(log=log, tag="x")).id
    started(log, "x")
    with tm.connect(db) as client:
        t0 = time.monotonic()
        assert client.cancel(tid)
    wait_for(lambda: history_status(s, tid) == "cancelled", 5)
    assert time.monotonic() - t0 < 2.0


def test_domain_cancel_all_and_cancel_where(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1)  # not started: everything stays queued
    h = s.domain(C.ctl)
    ids = [h.submit(C.Quick(log=log, tag=f"t{i}")).id for i in range(4)]
    odd = h.cancel_where(lambda r: r.id % 2 == 1)
    assert set(odd) == {i for i in ids if i % 2 == 1}
    rest = h.cancel_all()
    assert set(rest) == {i for i in ids if i % 2 == 0}
    assert s.pending_count() == 0


def test_pause_reasons_combine(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.grouped], workers=1, start=True)
    h = s.domain(C.grouped)
    h.pause()
    s.pause_group("g1")
    tid = h.submit(C.Member(log=log, tag="m")).id
    rec = s.task(tid)
    assert rec is not None and rec.status == "paused"
    h.resume()
    time.sleep(0.3)
    assert s.task(tid).status == "paused"  # type: ignore[union-attr]  # still paused by its group
    assert not entries(log, "end", "m")
    assert s.resume_group("g1") == 1
    assert s.wait_until_idle(10) and entries(log, "end", "m")


def test_a_timed_group_pause_resumes_on_its_own(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.grouped], workers=1, start=True)
    assert s.pause_group_until("g1", 0.5) == 0
    assert s.is_group_paused("g1") and s.paused_groups() == ["g1"]
    outcome = s.domain(C.grouped).submit(C.Member(log=log, tag="m"))
    assert outcome.group_paused
    t0 = time.time()
    wait_for(lambda: entries(log, "end", "m"), 5, what="group auto-resume")
    ran = entries(log, "end", "m")[0]["t"] - t0
    assert 0.4 <= ran < 1.5
    assert not s.is_group_paused("g1")


def test_global_pause_holds_everything_until_resumed(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    h = s.domain(C.ctl)
    s.pause_all()
    assert s.is_paused()
    h.submit(C.Quick(log=log, tag="held"))
    time.sleep(0.4)
    assert not entries(log, "start", "held")
    s.resume_all()
    assert s.wait_until_idle(10) and entries(log, "end", "held")


def test_a_task_submitted_after_a_global_pause_is_held_even_by_a_turn_ahead_of_the_pause_wake_up(
    make_scheduler: Any, log: str
) -> None:
    """The pause's wake-up is a callback on the supervisor's loop, but a turn can run before it (a turn with
    writes left over follows the last one at once): that turn sees the task committed after the pause, so it
    must see the pause too."""
    import threading

    s = make_scheduler([C.ctl], workers=1, start=True)
    h = s.domain(C.ctl)
    sup = s._supervisor
    assert sup is not None and sup.loop is not None and sup.dispatcher is not None
    d = sup.dispatcher
    held, go, claimed = threading.Event(), threading.Event(), []

    def early_turn() -> None:  # runs on the loop, ahead of the callbacks the pause and the submit queue
        held.set()
        go.wait(10)
        d.queue_maybe_nonempty = True
        d.turn()
        claimed.append(d.inflight_count())

    sup.loop.call_soon_threadsafe(early_turn)
    assert held.wait(10)
    s.pause_all()
    task = h.submit(C.Quick(log=log, tag="held")).id
    go.set()
    wait_for(lambda: claimed, 10, what="the early turn")
    assert claimed == [0]
    time.sleep(0.2)
    assert not entries(log, "start", "held") and s.task(task).status == "pending"  # type: ignore[union-attr]
    s.resume_all()
    assert s.wait_until_idle(10) and entries(log, "end", "held")


def test_a_preempted_task_resumes_even_when_the_urgent_one_ended_before_it_stopped(
    make_scheduler: Any, log: str
) -> None:
    s = make_scheduler([C.ctl], workers=2, preempt_grace=5.0, start=True)
    h = s.domain(C.ctl)
    victim = h.submit(C.SlowToStop(log=log)).id
    wait_for(lambda: entries(log, "start", "slow"), 15, what="victim start")
    urgent = h.submit(C.Quick(log=log, tag="urgent"), priority=tm.Priority.REALTIME).id  # on the idle worker
    assert s.wait_until_idle(15), s.status_counts()  # the victim was paused after the urgent task had ended
    assert history_status(s, urgent) == "completed" and history_status(s, victim) == "completed"
    assert [e["attempt"] for e in entries(log, "start", "slow")] == [1, 2]
    assert entries(log, "end", "urgent")[0]["t"] < entries(log, "start", "slow")[1]["t"]


def test_supersede_stops_the_running_task_and_runs_the_new_one(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    h = s.domain(C.ctl)
    old = h.submit(C.Keyed(log=log, tag="old")).id
    started(log, "old")
    out = h.submit(C.Keyed(log=log, tag="new", seconds=0.0), on_duplicate="supersede")
    assert out.kind == "superseded" and out.replaced_id == old and out.id != old
    assert s.wait_until_idle(15)
    assert history_status(s, old) == "superseded"
    assert history_status(s, out.id) == "completed"  # type: ignore[arg-type]
    assert entries(log, "on_cancel", "old") and not entries(log, "end", "old")


def test_a_time_limit_interrupts_a_sleeping_task_and_counts_as_a_failure(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    tid = s.domain(C.ctl).submit(C.Sleepy(log=log)).id
    assert s.wait_until_idle(15)
    rec = s.history_of(tid)[0]
    assert rec.status == "dead_letter" and rec.retry_count == 2  # max_retries=1: two attempts, both timed out
    assert "TaskTimeout" in (rec.last_error or "")
    pids = {e["pid"] for e in entries(log, "start", "sleepy")}
    assert len(pids) == 1  # interrupted in place, the worker was not killed


def test_a_task_deaf_to_its_time_limit_gets_its_worker_killed(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, preempt_grace=0.5, start=True)
    t0 = time.monotonic()
    tid = s.domain(C.ctl).submit(C.Sleepy(log=log, ignore_alarm=True), max_retries=0).id
    wait_for(lambda: history_status(s, tid) == "dead_letter", 10, what="timeout kill")
    assert time.monotonic() - t0 < 0.5 + 0.5 + 1.5  # timeout + grace + margin
    assert "time limit" in (s.history_of(tid)[0].last_error or "")


def test_workers_are_recycled_by_task_count_and_the_pool_stays_full(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, max_tasks_per_worker=4, prefetch=False, start=True)
    h = s.domain(C.ctl)
    for i in range(16):
        h.submit(C.WhoAmI(log=log, n=i))
    assert s.wait_until_idle(30)
    pids = [e["pid"] for e in entries(log, "end", "whoami")]
    assert len(pids) == 16 and len(set(pids)) >= 3
    assert s._supervisor is not None and sum(w.alive for w in s._supervisor.dispatcher.workers) == 1  # type: ignore[union-attr]


def test_workers_are_recycled_by_memory(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, max_worker_memory=200 << 20, prefetch=False, start=True)
    h = s.domain(C.ctl)
    # 120 MB: under the limit, the worker stays; 240 MB: over it, the worker retires; then a fresh worker
    for i, grow_mb in enumerate((120, 120, 0)):
        h.submit(C.WhoAmI(log=log, n=i, grow_mb=grow_mb))
        assert s.wait_until_idle(30)
        if i == 0:
            time.sleep(1.05)  # a worker sends its RSS with a result at most once a second: the next result has it
    pids = [e["pid"] for e in sorted(entries(log, "end", "whoami"), key=lambda e: e["n"])]
    assert pids[0] == pids[1] != pids[2], pids


def test_a_hung_worker_is_killed_and_its_task_retried(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, hang_timeout=1.0, heartbeat_interval=0.2, start=True)
    tid = s.domain(C.ctl).submit(C.Freeze(log=log)).id
    assert s.wait_until_idle(15)
    assert history_status(s, tid) == "completed"
    runs = entries(log, "start", "freeze")
    assert [e["attempt"] for e in runs] == [1, 2] and runs[0]["pid"] != runs[1]["pid"]
    assert s.history_of(tid)[0].retry_count == 1  # the hang counted as a failed attempt
    assert not psutil.pid_exists(runs[0]["pid"]) or psutil.Process(runs[0]["pid"]).status() == psutil.STATUS_ZOMBIE
    assert os.getpid() not in {e["pid"] for e in runs}


def test_preemption_works_again_and_again(make_scheduler: Any, log: str) -> None:
    """After a preempted task's short rerun the scheduler must not think its type is fast and queue the next
    urgent task behind a long-running one."""
    s = make_scheduler([C.ctl], workers=1, start=True)
    h = s.domain(C.ctl)
    for i in range(3):
        h.submit(C.Spin(log=log, tag=f"low{i}"))
        started(log, f"low{i}")
        t0 = time.monotonic()
        h.submit(C.Quick(log=log, tag=f"urgent{i}"), priority=tm.Priority.REALTIME)
        started(log, f"urgent{i}")
        assert time.monotonic() - t0 < 1.0, f"trial {i}"
        assert s.wait_until_idle(20)


def test_a_cooperative_executor_that_returns_when_preempted_is_rerun(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, start=True)
    h = s.domain(C.ctl)
    tid = h.submit(C.Polite(log=log)).id
    started(log, "polite")
    h.submit(C.Quick(log=log, tag="urgent"), priority=tm.Priority.REALTIME)
    assert s.wait_until_idle(20)
    assert [e["attempt"] for e in entries(log, "start", "polite")] == [1, 2]  # the early return was not "done"
    assert [e["attempt"] for e in entries(log, "end", "polite")] == [2]
    assert history_status(s, tid) == "completed"


def test_the_scheduler_wide_time_limit_reaches_the_workers(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, timeout=0.5, max_retries=0, start=True)
    tid = s.domain(C.ctl).submit(C.Nap(log=log, seconds=10)).id
    t0 = time.monotonic()
    wait_for(lambda: history_status(s, tid) is not None, 10, what="the time limit")
    assert time.monotonic() - t0 < 2.0  # interrupted in the worker at 0.5 s, not killed after the grace
    assert "TaskTimeout" in (s.history_of(tid)[0].last_error or "")


def test_hang_detection_leaves_a_healthy_long_task_alone(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, hang_timeout=0.5, heartbeat_interval=0.1, start=True)
    tid = s.domain(C.ctl).submit(C.Nap(log=log, seconds=1.5)).id
    assert s.wait_until_idle(10)
    assert history_status(s, tid) == "completed"
    assert len(entries(log, "start", "nap")) == 1


def test_recycling_by_task_count_is_not_overshot_by_prefetch(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([C.ctl], workers=1, max_tasks_per_worker=5, start=True)
    s.domain(C.ctl).submit_batch([C.WhoAmI(log=log, n=i) for i in range(30)])
    assert s.wait_until_idle(30)
    per_pid: dict[int, int] = {}
    for e in entries(log, "end", "whoami"):
        per_pid[e["pid"]] = per_pid.get(e["pid"], 0) + 1
    assert sum(per_pid.values()) == 30
    assert max(per_pid.values()) <= 6  # the limit with its ±10% jitter

"""Workers SIGKILLed mid-task: the pool recovers, the attempt counts, poison tasks end dead-lettered."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil

import taskmill as tm
from tests.helpers import entries, wait_for
from tests.integration import domains as D


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _live_workers() -> list[psutil.Process]:
    """Worker processes of the supervisor embedded in this (the test) process."""
    out = []
    for p in psutil.Process().children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "taskmill.workers" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _drain(sub: tm.Subscription) -> list[tm.Event]:
    out = []
    while (ev := sub.get_nowait()) is not None:
        out.append(ev)
    return out


def test_a_worker_killed_mid_task_is_replaced_and_the_task_retried(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, retry=tm.RetryPolicy.constant(3, 0.0))
    sub = s.subscribe()
    h = s.domain(D.main)
    victim = h.submit(D.Hang(log=log, tag="victim", seconds=30))
    others = [h.submit(D.Note(log=log, tag=f"other{i}")) for i in range(3)]
    s.start()
    [first] = wait_for(lambda: entries(log, "start", "victim"), timeout=10)
    pid = first["pid"]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    assert s.wait_until_idle(20)
    wait_for(lambda: _gone(pid), timeout=5, what="the killed worker to be reaped")

    starts = entries(log, "start", "victim")
    assert len(starts) == 2
    assert starts[1]["pid"] != pid  # ran again, in the replacement worker
    assert starts[1]["retry_count"] == 1  # the killed attempt counted
    [rec] = s.history_of(victim.id)
    assert rec.status == "completed" and rec.retry_count == 1
    for o in others:  # the queue kept moving
        assert [r.status for r in s.history_of(o.id)] == ["completed"]

    time.sleep(0.05)  # events are published just after the commit wait_until_idle saw
    events = _drain(sub)
    failed = [e for e in events if isinstance(e, tm.Failed) and e.header and e.header.task_id == victim.id]
    assert len(failed) == 1 and failed[0].will_retry is True
    assert "worker died (signal 9" in failed[0].error
    died = [e for e in events if isinstance(e, tm.WorkerDied)]
    assert [e.pid for e in died] == [pid]
    sub.close()


def test_a_killed_task_without_retries_is_dead_lettered(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1)
    h = s.domain(D.main)
    victim = h.submit(D.Hang(log=log, tag="victim", seconds=30), max_retries=0)
    after = h.submit(D.Note(log=log, tag="after"))
    s.start()
    [first] = wait_for(lambda: entries(log, "start", "victim"), timeout=10)
    os.kill(first["pid"], signal.SIGKILL)
    assert s.wait_until_idle(20)
    assert len(entries(log, "start", "victim")) == 1
    [rec] = s.history_of(victim.id)
    assert rec.status == "dead_letter" and rec.retry_count == 1
    assert rec.last_error is not None and "worker died (signal 9" in rec.last_error
    assert [r.task_id for r in s.dead_letter_tasks()] == [victim.id]
    assert [r.status for r in s.history_of(after.id)] == ["completed"]
    assert entries(log, "start", "after")[0]["pid"] != first["pid"]


def test_a_task_that_kills_its_worker_every_time_ends_dead_lettered(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=2, retry=tm.RetryPolicy.constant(5, 0.0))
    h = s.domain(D.main)
    before = [h.submit(D.Note(log=log, tag=f"before{i}", sleep=0.05)) for i in range(3)]
    poison = h.submit(D.Flaky(log=log, tag="poison", mode="selfkill"), max_retries=2)
    after = [h.submit(D.Note(log=log, tag=f"after{i}", sleep=0.05)) for i in range(3)]
    s.start()
    assert s.wait_until_idle(30)
    runs = entries(log, "start", "poison")
    assert len(runs) == 3  # max_retries + 1 attempts, then it stops
    assert len({e["pid"] for e in runs}) == 3  # each attempt killed its worker
    [rec] = s.history_of(poison.id)
    assert rec.status == "dead_letter" and rec.retry_count == 3
    assert rec.last_error is not None and "worker died (signal 9" in rec.last_error
    for o in before + after:
        assert [r.status for r in s.history_of(o.id)] == ["completed"]
    # the pool is back to full strength, and both workers take work
    wait_for(lambda: len(_live_workers()) == 2, timeout=10, what="the pool to refill")
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    wait_for(lambda: sum(w.alive for w in sup.dispatcher.workers) == 2, timeout=10, what="the new worker to be ready")
    h.submit_batch([D.Note(log=log, tag=f"final{i}", sleep=0.3) for i in range(2)])
    assert s.wait_until_idle(15)
    final_pids = {e["pid"] for e in entries(log, "start") if e["tag"].startswith("final")}
    assert len(final_pids) == 2 and not any(_gone(p) for p in final_pids)

"""F5: preempting an executor that ignores every stop signal and has a grandchild, and one that cooperates.

Pass: the deaf one's worker process group is SIGKILLed at the grace period G (not before; within G + 0.5 s,
plus slack for a loaded machine); none of its processes survive; the urgent task starts within G + 1 s; the
preempted task goes back to the queue and completes later without using a retry. A cooperative executor
stops within 100 ms (plus slack) and its worker is not killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

import taskmill as tm
from tests.crash import faulty, ledger
from tests.crash.harness import Run, alive, publish, size
from tests.helpers import wait_for

SLACK = 1.0  # a loaded 2-core machine


def _group_members(pgid: int) -> list[int]:
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                out.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return out


def test_a_deaf_executor_is_killed_at_the_grace_period_and_a_polite_one_stops_at_once(
    make_scheduler: Any, tmp_path: Path
) -> None:
    grace, trials = size(0.5, 2.0), size(2, 100)
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=1, path=run.db, preempt_grace=grace, start=True)
    h = s.domain(faulty.fault)
    kill_after: list[float] = []
    urgent_after: list[float] = []
    acked: dict[int, int] = {}
    for t in range(trials):
        n = 10 * t + 1
        acked[n] = h.submit(faulty.Deaf(ledger=run.ledger, n=n), priority=tm.Priority.BACKGROUND).id
        [victim] = wait_for(lambda n=n: ledger.read(run.ledger).started(n), 10)
        children = [int(x) for x in Path(run.ledger + ".children").read_text().split()]
        time.sleep(0.05)  # it is spinning with SIGUSR1/SIGTERM/SIGINT ignored
        t0 = time.monotonic()
        acked[n + 1] = h.submit(faulty.Job(ledger=run.ledger, n=n + 1), priority=tm.Priority.REALTIME).id
        while alive(victim.pid):
            assert time.monotonic() - t0 < grace + 0.5 + SLACK, "the worker was not killed"
            time.sleep(0.002)
        kill_after.append(time.monotonic() - t0)
        # nothing of its process group survives (SIGKILL is delivered at once, but dying can take a moment)
        wait_for(lambda v=victim.pid, k=children: not _group_members(v) and not any(alive(c) for c in k), 2.0)
        [urgent] = wait_for(lambda n=n: ledger.read(run.ledger).started(n + 1), grace + 1 + SLACK)
        urgent_after.append(urgent.start / 1e9 - t0)
        assert s.wait_until_idle(20)
        runs = ledger.read(run.ledger).started(n)
        assert [e.attempt for e in runs] == [1, 2]  # preempted, back to the queue, ran again
        assert s.history_of(acked[n])[0].retry_count == 0  # preemption is not a failure
    # a cooperative executor
    acked[9999] = h.submit(faulty.Polite(ledger=run.ledger, n=9999), priority=tm.Priority.BACKGROUND).id
    [polite] = wait_for(lambda: ledger.read(run.ledger).started(9999), 10)
    t0 = time.monotonic()
    acked[10_000] = h.submit(faulty.Job(ledger=run.ledger, n=10_000), priority=tm.Priority.REALTIME).id
    wait_for(lambda: ledger.read(run.ledger).started(9999)[0].end, 0.1 + SLACK)
    stopped = ledger.read(run.ledger).started(9999)[0]
    assert stopped.how == "I" and alive(polite.pid)  # it raised; its worker lives on
    assert s.wait_until_idle(20)
    assert ledger.read(run.ledger).started(10_000)[0].pid == polite.pid  # the same worker ran the urgent task
    report = ledger.check("F5 preemption escalation", ledger.read(run.ledger), acked, run.db,
                          allowed=set(acked), ended_ok=())  # fmt: skip
    report.assert_ok()
    assert min(kill_after) >= grace - 0.05  # never before the grace period
    publish(report, grace_s=grace, trials=trials, kill_after_min_s=round(min(kill_after), 3),
            kill_after_max_s=round(max(kill_after), 3), urgent_start_max_s=round(max(urgent_after), 3),
            polite_stop_s=round(stopped.end / 1e9 - t0, 3))  # type: ignore[operator]  # fmt: skip


def test_a_standby_booted_for_a_kill_that_never_comes_is_stopped(make_scheduler: Any, tmp_path: Path) -> None:
    """A task that ignores the stop signal but ends by itself within the grace period: the replacement booted
    ahead of the expected kill is not needed. It is stopped; the original worker keeps its slot and runs the
    urgent task."""
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=1, path=run.db, preempt_grace=3.0, start=True)
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    sup.dispatcher.control.stopper.standby_lead = 5.0  # as after slow boots: ask for the standby at about 0.11 s
    h = s.domain(faulty.fault)
    h.submit(faulty.Deaf(ledger=run.ledger, n=1, seconds=1.0), priority=tm.Priority.BACKGROUND)
    [slow] = wait_for(lambda: ledger.read(run.ledger).started(1), 10)
    h.submit(faulty.Job(ledger=run.ledger, n=2), priority=tm.Priority.REALTIME)
    wait_for(lambda: len(_workers()) == 2, 1.0 + SLACK, what="the standby to boot")
    assert s.wait_until_idle(20)
    assert ledger.read(run.ledger).started(2)[0].pid == slow.pid  # no kill: the same worker ran the urgent task
    wait_for(lambda: len(_workers()) == 1 and not sup._standbys and not sup._standby_handles, 5,
             what="the unused standby to be stopped")  # fmt: skip
    assert _workers() == [slow.pid]


def _workers() -> list[int]:
    out = []
    for p in psutil.Process().children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "taskmill.workers" in " ".join(p.cmdline()):
                out.append(p.pid)
        except psutil.Error:
            continue
    return out

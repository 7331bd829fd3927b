"""Priority order, FIFO within a priority, and the concurrency caps, observed from the executors."""

from __future__ import annotations

import time
from typing import Any

import pytest

import taskmill as tm
import taskmill.policy.dispatch as dispatch_policy
from tests.helpers import all_workers_up, entries, intervals, max_overlap, wait_for
from tests.integration import domains as D

LEVELS = [
    tm.Priority.NORMAL,
    tm.Priority.IDLE,
    tm.Priority.HIGH,
    tm.Priority.BACKGROUND,
    tm.Priority.REALTIME,
    100,
]


def _submit_mixed(s: tm.Scheduler, log: str, n: int, sleep: float = 0.0) -> list[tuple[int, int, str]]:
    """Submit ``n`` tasks cycling through the levels; returns (priority, submit order, tag)."""
    h = s.domain(D.main)
    order = []
    for i in range(n):
        prio = LEVELS[i % len(LEVELS)]
        tag = f"t{i:03d}"
        assert h.submit(D.Note(log=log, tag=tag, sleep=sleep), priority=prio).kind == "inserted"
        order.append((int(prio), i, tag))
    return order


def test_priority_order_and_fifo_within_a_priority(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, max_concurrency=1)
    submitted = _submit_mixed(s, log, 18, sleep=0.01)
    s.start()
    assert s.wait_until_idle(20)
    ran = [e["tag"] for e in entries(log, "start")]
    assert ran == [tag for _, _, tag in sorted(submitted)]


def test_order_holds_for_very_short_prefetched_tasks(make_scheduler: Any, log: str) -> None:
    """No-op tasks get prefetched to the worker in batches; the batches must keep priority + FIFO order."""
    s = make_scheduler(workers=1, max_concurrency=1)
    submitted = _submit_mixed(s, log, 300)
    s.start()
    assert s.wait_until_idle(30)
    ran = [e["tag"] for e in entries(log, "start")]
    assert ran == [tag for _, _, tag in sorted(submitted)]
    starts = entries(log, "start")
    assert [e["priority"] for e in starts] == sorted(e["priority"] for e in starts)


def test_the_global_cap_bounds_concurrent_tasks(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=3, max_concurrency=2)
    s.domain(D.main).submit_batch([D.Note(log=log, tag=f"g{i}", sleep=0.2) for i in range(6)])
    s.start()
    assert s.wait_until_idle(20)
    spans = intervals(log)
    assert len(spans) == 6
    assert max_overlap(spans) == 2  # never more than the cap, and the cap is used


def test_the_global_cap_bounds_async_tasks_sharing_a_worker(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, max_concurrency=2, async_concurrency=8)
    s.domain(D.main).submit_batch([D.Nap(log=log, tag=f"a{i}", sleep=0.15) for i in range(5)])
    s.start()
    assert s.wait_until_idle(20)
    spans = intervals(log)
    assert len(spans) == 5
    assert max_overlap(spans) <= 2


def test_a_domain_cap_bounds_that_domain_only(make_scheduler: Any, log: str) -> None:
    assert D.capped.max_concurrency == 1
    s = make_scheduler([D.main, D.capped], workers=3, max_concurrency=3, start=True)
    all_workers_up(s)
    s.pause_all()  # queue everything first, as if submitted before start
    s.domain(D.capped).submit_batch([D.CappedNote(log=log, tag=f"c{i}", sleep=0.15) for i in range(4)])
    s.domain(D.main).submit_batch([D.Note(log=log, tag=f"m{i}", sleep=0.15) for i in range(4)])
    s.resume_all()
    assert s.wait_until_idle(20)
    capped = intervals(log, [f"c{i}" for i in range(4)])
    free = intervals(log, [f"m{i}" for i in range(4)])
    assert len(capped) == 4 and len(free) == 4
    assert max_overlap(capped) == 1
    assert max_overlap(free) == 2  # the other domain used the remaining slots alongside
    assert max_overlap(capped + free) == 3


def test_a_capped_domain_of_short_tasks_queues_them_on_one_worker_per_slot(make_scheduler: Any, log: str) -> None:
    """A cap limits what executes at once. A worker runs its queue one task after another, so short tasks of a
    capped domain are queued in batches behind the worker that holds the domain's slot (not handed out one
    per dispatch turn), and never on a second worker while the first still holds any."""
    s = make_scheduler([D.capped, D.main], workers=2, max_concurrency=2, start=True)
    all_workers_up(s)
    h = s.domain(D.capped)
    h.submit_batch([D.CappedNote(log=log, tag=f"w{i}") for i in range(20)])  # the type is learned to be fast
    assert s.wait_until_idle(20)
    h.submit_batch([D.CappedNote(log=log, tag=f"c{i}") for i in range(400)])
    s.domain(D.main).submit_batch([D.Note(log=log, tag=f"m{i}", sleep=0.01) for i in range(20)])
    assert s.wait_until_idle(30)
    spans = intervals(log, [f"c{i}" for i in range(400)])
    assert len(spans) == 400 and max_overlap(spans) == 1
    assert len(intervals(log, [f"m{i}" for i in range(20)])) == 20  # the other domain still got the other worker


def test_a_domain_cap_bounds_async_tasks(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([D.capped], workers=1, max_concurrency=8)
    s.domain(D.capped).submit_batch([D.CappedNap(log=log, tag=f"c{i}", sleep=0.1) for i in range(4)])
    s.start()
    assert s.wait_until_idle(20)
    spans = intervals(log)
    assert len(spans) == 4 and max_overlap(spans) == 1


def test_handle_set_max_concurrency_caps_a_running_scheduler(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=2, max_concurrency=2, start=True)
    h = s.domain(D.main)
    h.set_max_concurrency(1)
    assert h.max_concurrency == 1
    h.submit_batch([D.Note(log=log, tag=f"one{i}", sleep=0.15) for i in range(4)])
    assert s.wait_until_idle(20)
    assert max_overlap(intervals(log, [f"one{i}" for i in range(4)])) == 1
    h.set_max_concurrency(0)  # lifted again: both workers are used
    h.submit_batch([D.Note(log=log, tag=f"two{i}", sleep=0.15) for i in range(4)])
    assert s.wait_until_idle(20)
    assert max_overlap(intervals(log, [f"two{i}" for i in range(4)])) == 2


def test_scheduler_set_max_concurrency_applies_to_a_running_scheduler(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=2, max_concurrency=2, start=True)
    s.set_max_concurrency(1)
    s.domain(D.main).submit_batch([D.Note(log=log, tag=f"s{i}", sleep=0.15) for i in range(4)])
    wait_for(lambda: len(entries(log, "end")) == 4, timeout=20)
    assert max_overlap(intervals(log)) == 1


def test_an_upgraded_task_runs_ahead_of_older_ones(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, max_concurrency=1)
    h = s.domain(D.main)
    for i in range(4):
        h.submit(D.Note(log=log, tag=f"old{i}"))
    late = D.Note(log=log, tag="late")
    h.submit(late, priority=tm.Priority.BACKGROUND)
    assert h.submit(late, priority=tm.Priority.HIGH).kind == "upgraded"
    s.start()
    assert s.wait_until_idle(10)
    assert [e["tag"] for e in entries(log, "start")] == ["late", "old0", "old1", "old2", "old3"]


def _peak_running(s: tm.Scheduler, timeout: float) -> int:
    """The most tasks in status ``running`` at once until the queue is empty, sampled every ~2 ms."""
    peak, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = s.status_counts()
        peak = max(peak, counts["running"])
        if not counts["pending"] and not counts["running"]:
            return peak
        time.sleep(0.002)
    raise AssertionError(f"the queue did not drain in {timeout}s")


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_worker_gets_its_next_task_of_a_few_ms_as_the_one_it_runs_is_about_to_end(
    make_scheduler: Any, log: str, monkeypatch: pytest.MonkeyPatch, prefetch: bool
) -> None:
    """Tasks of a few milliseconds go to a worker one at a time (prefetch batches only shorter ones), so each
    would wait a dispatch round trip after the one before. The supervisor sends the next one once the running
    one is due to end within the prefetch budget (``policy.dispatch.ahead_at``): on a one-worker pool a second
    task is then ``running`` (queued on the worker) while the first still executes. The budget is widened to
    30 ms here so that no stall of the machine can hide that window. ``prefetch=False`` never queues."""
    monkeypatch.setattr(dispatch_policy, "PREFETCH_BUDGET_MS", 30.0)  # read at each call, in this process
    s = make_scheduler(workers=1, prefetch=prefetch)
    h = s.domain(D.main)
    s.start()
    h.submit_batch([D.Note(log=log, tag=f"w{i}", sleep=0.04) for i in range(4)])  # the type's duration, steady
    assert s.wait_until_idle(20)
    tags = [f"t{i}" for i in range(6)]
    h.submit_batch([D.Note(log=log, tag=t, sleep=0.04) for t in tags])
    assert _peak_running(s, 20) == (2 if prefetch else 1)
    assert [e["tag"] for e in entries(log, "start")][4:] == tags  # in order, and still one at a time:
    assert max_overlap(intervals(log)) == 1

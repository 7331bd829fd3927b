"""When the dispatch loop wakes to send a busy worker its next task ahead, and when it must not: a due worker
is marked only by a claim, so a turn that claims nothing (a global pause, an empty queue, a stop) would find
it due again at once and spin the loop."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from taskmill.policy.dispatch import PREFETCH_BUDGET_MS, DurationTracker
from taskmill.store.records import Claimed
from taskmill.supervisor.claiming import Claiming
from taskmill.supervisor.pool import WorkerHandle


def _claimed(task_id: int) -> Claimed:
    return Claimed(task_id, "d::t", "d", "k", "t", 128, b"", 0, None, 1, 0, None, None, None)


class Loop(Claiming):
    def __init__(self, worker: WorkerHandle, durations: DurationTracker) -> None:
        self.workers = [worker]
        self.durations = durations
        self.settings: Any = SimpleNamespace(prefetch=True)
        self.queue_maybe_nonempty = True
        self.claiming = True
        self.paused = False


@pytest.fixture
def loop() -> Loop:
    durations = DurationTracker()
    durations.observe_many([("d::t", 10_000)] * 5)  # a steady 10 ms type
    w = WorkerHandle(0, lambda *a: None, lambda *a: None)
    w.alive = True
    w.sync.append(_claimed(1))
    w.head_since = time.monotonic()
    return Loop(w, durations)


def test_the_loop_wakes_as_the_running_task_is_due_to_end_within_the_budget(loop: Loop) -> None:
    due = loop.next_ahead()
    assert due == pytest.approx(loop.workers[0].head_since + (10.0 - PREFETCH_BUDGET_MS) / 1000, abs=1e-4)


@pytest.mark.parametrize(
    "state",
    [{"paused": True}, {"queue_maybe_nonempty": False}, {"claiming": False}],
    ids=["global pause", "empty queue", "stopping"],
)
def test_no_wake_when_the_turn_would_claim_nothing(loop: Loop, state: dict[str, bool]) -> None:
    for name, value in state.items():
        setattr(loop, name, value)
    assert loop.next_ahead() is None


def test_a_head_is_sent_ahead_for_once(loop: Loop) -> None:
    w = loop.workers[0]
    w.head_since -= 1.0  # due long ago
    assert loop._ahead(loop.workers, depth=1) == [w]
    assert loop.next_ahead() is None  # tried: the claim placed a task or could not, either way not again
    assert loop._ahead(loop.workers, depth=1) == []
    w.sync.popleft()
    w.sync.append(_claimed(2))  # the next task is the head now
    assert loop.next_ahead() is not None


def test_no_wake_for_a_worker_with_two_tasks_or_with_prefetch_off(loop: Loop) -> None:
    loop.workers[0].sync.append(_claimed(2))
    assert loop.next_ahead() is None
    loop.workers[0].sync.pop()
    loop.settings.prefetch = False
    assert loop.next_ahead() is None
    assert loop._ahead(loop.workers, depth=1) == []

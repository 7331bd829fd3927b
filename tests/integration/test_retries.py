"""Retries, backoff, dead letters and the three kinds of executor failure."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import taskmill as tm
from tests.helpers import entries
from tests.integration import domains as D


def _gaps(log: str, tag: str) -> list[float]:
    times = [e["t"] for e in entries(log, "start", tag)]
    return [b - a for a, b in itertools.pairwise(times)]


def test_constant_backoff_waits_between_attempts(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(3, 0.3))
    out = s.domain(D.main).submit(D.Flaky(log=log, tag="c", fail_times=2))
    s.start()
    assert s.wait_until_idle(15)
    gaps = _gaps(log, "c")
    assert len(gaps) == 2
    assert all(0.3 <= g < 1.3 for g in gaps), gaps
    [rec] = s.history_of(out.id)
    assert rec.status == "completed" and rec.retry_count == 2
    assert [e["retry_count"] for e in entries(log, "start", "c")] == [0, 1, 2]


def test_exponential_backoff_grows(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.exponential(3, base=0.2, max=10.0))
    out = s.domain(D.main).submit(D.Flaky(log=log, tag="e", fail_times=3))
    s.start()
    assert s.wait_until_idle(20)
    gaps = _gaps(log, "e")
    assert len(gaps) == 3
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8], strict=True):
        assert delay <= gap < delay + 1.0, gaps
    assert [r.status for r in s.history_of(out.id)] == ["completed"]


def test_retry_after_from_the_executor_beats_a_long_policy_delay(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(2, 30.0))
    s.domain(D.main).submit(D.Flaky(log=log, tag="ra", fail_times=1, retry_after=0.2))
    s.start()
    assert s.wait_until_idle(10), "the policy's 30 s delay was used instead of retry_after"
    [gap] = _gaps(log, "ra")
    assert 0.2 <= gap < 1.2


def test_retry_after_from_the_executor_beats_an_immediate_policy(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(2, 0.0))
    s.domain(D.main).submit(D.Flaky(log=log, tag="rb", fail_times=1, retry_after=0.6))
    s.start()
    assert s.wait_until_idle(10)
    [gap] = _gaps(log, "rb")
    assert 0.6 <= gap < 1.6


def test_dead_letter_after_max_retries_then_retry_dead_letter(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(5, 0.0))
    h = s.domain(D.main)
    out = h.submit(D.Flaky(log=log, tag="dl", fail_times=3, message="still broken"), max_retries=2)
    s.start()
    assert s.wait_until_idle(15)
    assert len(entries(log, "start", "dl")) == 3  # max_retries=2 -> 3 attempts
    [rec] = s.history_of(out.id)
    assert rec.status == "dead_letter" and rec.retry_count == 3 and rec.last_error == "still broken"
    assert [r.task_id for r in s.dead_letter_tasks()] == [out.id]
    assert [r.task_id for r in h.dead_letter_tasks()] == [out.id]
    assert s.task(out.id) is None  # no longer active

    again = h.retry_dead_letter(out.id)  # the 4th execution succeeds
    assert again.is_inserted and again.id is not None
    assert s.wait_until_idle(15)
    assert len(entries(log, "start", "dl")) == 4
    assert [e["retry_count"] for e in entries(log, "start", "dl")][-1] == 0  # a fresh retry count
    assert [r.status for r in s.history_of(again.id)] == ["completed"]
    assert s.dead_letter_tasks() == []


def test_retry_dead_letter_of_an_unknown_or_live_task_is_refused(make_scheduler: Any, log: str) -> None:
    s = make_scheduler()
    with pytest.raises(tm.NotFound):
        s.retry_dead_letter(12345)
    out = s.domain(D.main).submit(D.Note(log=log, tag="n"))
    s.start()
    assert s.wait_until_idle(10)
    with pytest.raises(tm.InvalidState):
        s.retry_dead_letter(out.id)  # completed, not dead-lettered


def test_a_permanent_error_fails_at_once_with_its_message(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(5, 0.0))
    out = s.domain(D.main).submit(D.Flaky(log=log, tag="p", mode="permanent", message="bad input: x"))
    s.start()
    assert s.wait_until_idle(10)
    assert len(entries(log, "start", "p")) == 1
    [rec] = s.history_of(out.id)
    assert rec.status == "failed" and rec.last_error == "bad input: x"
    assert [r.task_id for r in s.failed_tasks()] == [out.id]
    assert s.dead_letter_tasks() == []


def test_any_other_exception_is_retryable_and_keeps_the_traceback(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(5, 0.0))
    out = s.domain(D.main).submit(D.Flaky(log=log, tag="x", mode="exception", message="boom-4711"), max_retries=1)
    s.start()
    assert s.wait_until_idle(10)
    assert len(entries(log, "start", "x")) == 2  # it was retried
    [rec] = s.history_of(out.id)
    assert rec.status == "dead_letter" and rec.retry_count == 2
    assert rec.last_error is not None
    assert "Traceback" in rec.last_error and "ValueError: boom-4711" in rec.last_error
    assert "run_flaky" in rec.last_error  # the executor's own frame is in it


def test_a_task_that_recovers_completes_after_retrying(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(3, 0.0))
    out = s.domain(D.main).submit(D.Flaky(log=log, tag="r", mode="exception", fail_times=2))
    s.start()
    assert s.wait_until_idle(10)
    assert len(entries(log, "start", "r")) == 3 and len(entries(log, "end", "r")) == 1
    [rec] = s.history_of(out.id)
    assert rec.status == "completed" and rec.retry_count == 2


def test_global_max_retries_and_the_per_submit_override(make_scheduler: Any, log: str) -> None:
    """Scheduler(max_retries=...) is the global default; the per-submit max_retries overrides it."""
    s = make_scheduler(max_retries=0)
    h = s.domain(D.main)
    a = h.submit(D.Flaky(log=log, tag="g0"))
    b = h.submit(D.Flaky(log=log, tag="g1"), max_retries=1)
    s.start()
    assert s.wait_until_idle(10)
    assert len(entries(log, "start", "g0")) == 1 and len(entries(log, "start", "g1")) == 2
    assert [r.status for r in s.history_of(a.id)] == ["dead_letter"]
    assert [r.status for r in s.history_of(b.id)] == ["dead_letter"]

"""Lifecycle events: what a subscriber sees, with headers, as JSON, sync and async."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

import taskmill as tm
from tests.helpers import entries
from tests.integration import domains as D


def _collect(sub: tm.Subscription, done: Any, timeout: float = 15.0) -> list[tm.Event]:
    """Read events until ``done(events)`` holds (events are published just after each commit)."""
    got: list[tm.Event] = []
    deadline = time.monotonic() + timeout
    while not done(got):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {[type(e).__name__ for e in got]}"
        ev = sub.get(timeout=remaining)
        if ev is not None:
            got.append(ev)
    return got


def entries_pid(log: str, tag: str) -> int:
    [e] = entries(log, "start", tag)
    return int(e["pid"])


def _of(events: list[tm.Event], task_id: int | None, kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and e.header is not None and e.header.task_id == task_id]


def test_subscribers_see_the_whole_lifecycle_with_headers(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(retry=tm.RetryPolicy.constant(1, 0.0))
    sub = s.subscribe()
    h = s.domain(D.main)
    ok = h.submit(D.Note(log=log, tag="ok"), tags={"user": "7"})
    flaky = h.submit(D.Flaky(log=log, tag="f", message="try again"))
    perm = h.submit(D.Flaky(log=log, tag="p", mode="permanent", message="never"))
    prog = h.submit(D.Report(log=log, tag="r"))
    s.start()

    def done(evs: list[tm.Event]) -> bool:
        return bool(
            _of(evs, ok.id, tm.Completed)
            and _of(evs, flaky.id, tm.DeadLettered)
            and _of(evs, perm.id, tm.Failed)
            and _of(evs, prog.id, tm.Completed)
        )

    events = _collect(sub, done)
    sub.close()

    # the completed task: Dispatched (with the worker's pid) then Completed, header filled in
    [disp] = _of(events, ok.id, tm.Dispatched)
    [comp] = _of(events, ok.id, tm.Completed)
    assert events.index(disp) < events.index(comp)
    assert disp.worker_pid == entries_pid(log, "ok") and disp.attempt == 1
    assert comp.duration >= 0
    hdr = comp.header
    assert hdr.task_type == "tm_main::note" and hdr.tags == {"user": "7"} and hdr.key
    assert hdr.base_priority == tm.Priority.NORMAL and hdr.label

    # retryable failure: Failed(will_retry=True), then DeadLettered once retries ran out
    failed = _of(events, flaky.id, tm.Failed)
    assert failed and failed[0].will_retry is True and failed[0].error == "try again"
    assert failed[0].retry_count == 1
    [dead] = _of(events, flaky.id, tm.DeadLettered)
    assert dead.error == "try again" and dead.retry_count == 2
    assert events.index(failed[0]) < events.index(dead)

    # permanent failure: Failed(will_retry=False), never dead-lettered
    [pf] = _of(events, perm.id, tm.Failed)
    assert pf.will_retry is False and pf.error == "never"
    assert not _of(events, perm.id, tm.DeadLettered)

    # progress reports arrive with the task's header, before it completes
    progress = _of(events, prog.id, tm.Progress)
    assert [(p.fraction, p.message) for p in progress] == [(0.5, "half way"), (1.0, "done")]
    assert events.index(progress[-1]) < events.index(_of(events, prog.id, tm.Completed)[0])
    assert progress[0].header.task_type == "tm_main::report"

    # every event encodes to JSON a UI can read, tagged with its kind
    for ev in events:
        decoded = msgspec.json.decode(msgspec.json.encode(ev))
        assert isinstance(decoded["event"], str)
        if ev.header is not None:
            assert decoded["header"]["task_id"] == ev.header.task_id
    as_json = msgspec.json.decode(msgspec.json.encode(comp))
    assert as_json["event"] == "completed" and as_json["header"]["tags"] == {"user": "7"}


def test_async_iteration_of_a_subscription(make_scheduler: Any, log: str) -> None:
    s = make_scheduler()
    sub = s.subscribe()
    out = s.domain(D.main).submit(D.Nap(log=log, tag="a", sleep=0.05))
    s.start()

    async def consume() -> list[tm.Event]:
        got: list[tm.Event] = []
        async for ev in sub:
            got.append(ev)
            if isinstance(ev, tm.Completed) and ev.header is not None and ev.header.task_id == out.id:
                break
        return got

    events = asyncio.run(asyncio.wait_for(consume(), timeout=15))
    kinds = [type(e).__name__ for e in events if e.header is not None and e.header.task_id == out.id]
    assert kinds == ["Dispatched", "Completed"]
    sub.close()


def test_closing_a_subscription_ends_iteration(make_scheduler: Any) -> None:
    s = make_scheduler()
    sub = s.subscribe()

    async def consume() -> int:
        n = 0
        async for _ in sub:
            n += 1
        return n

    async def main() -> int:
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)
        sub.close()
        return await asyncio.wait_for(task, timeout=5)

    assert asyncio.run(main()) == 0
    assert list(sub) == []  # sync iteration of a closed subscription ends too

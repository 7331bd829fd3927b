"""Events with real workers: the control events each caused by a real scenario, per-domain and typed streams,
and a slow subscriber that loses events without slowing dispatch."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import taskmill as tm

from ..helpers import entries, wait_for
from . import obs_domains as O
from . import workflow_domains as W

DOMAINS = (O.obs, O.obs2)


def started(log: str, tag: str, n: int = 1) -> list[dict[str, Any]]:
    return wait_for(lambda: len(entries(log, "start", tag)) >= n and entries(log, "start", tag), 15, what=f"{tag}")


class Collector:
    """Reads a stream into a list, so a test can wait for an event and then look at all of them."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.events: list[Any] = []

    def pump(self) -> list[Any]:
        while (e := self.stream.get_nowait()) is not None:
            self.events.append(e)
        return self.events

    def wait(self, what: str, pred: Any, timeout: float = 15.0) -> Any:
        def found() -> Any:
            return next((e for e in self.pump() if pred(e)), None)

        return wait_for(found, timeout, what=what)

    def of(self, kind: type, task_id: int | None = None) -> list[Any]:
        return [e for e in self.pump() if isinstance(e, kind) and (task_id is None or e.header.task_id == task_id)]


def is_(kind: type, task_id: int | None = None, **fields: Any) -> Any:
    def pred(e: Any) -> bool:
        if not isinstance(e, kind) or (task_id is not None and (e.header is None or e.header.task_id != task_id)):
            return False
        return all(getattr(e, k) == v for k, v in fields.items())

    return pred


def test_control_events_each_from_the_scenario_that_causes_it(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, start=True)
    c = Collector(s.subscribe())
    h = s.domain(O.obs)

    queued = h.submit(O.Timed(log=log, tag="queued"), run_after=60).id
    assert s.cancel(queued)
    cancelled = c.wait("Cancelled of a queued task", is_(tm.Cancelled, queued))
    assert cancelled.header.task_type == "tm_obs::timed" and cancelled.header.domain == "tm_obs"

    first = h.submit(O.Timed(log=log, tag="a1", k="A"), run_after=60).id
    out = h.submit(O.Timed(log=log, tag="a2", k="A"), run_after=60, on_duplicate="supersede")
    assert out.kind == "superseded" and out.id == first
    c.wait("Superseded in place", is_(tm.Superseded, first, new_task_id=first))
    assert s.cancel(first)

    old = h.submit(O.Timed(log=log, tag="r1", seconds=30, k="R")).id
    started(log, "r1")
    new = h.submit(O.Timed(log=log, tag="r2", k="R"), on_duplicate="supersede").id
    assert new is not None and new != old
    c.wait("Superseded of a running task", is_(tm.Superseded, old, new_task_id=new))
    c.wait("the replacement to complete", is_(tm.Completed, new))

    paused = h.submit(O.Timed(log=log, tag="p", seconds=30)).id
    started(log, "p")
    assert h.pause() == 1
    stopped = c.wait("TaskPaused of the running task", is_(tm.TaskPaused, paused))
    assert stopped.reasons == 2  # the domain's pause bit
    c.wait("Paused(domain)", is_(tm.Paused, scope="domain", name="tm_obs", count=1))
    assert h.resume() == 1
    c.wait("Resumed(domain)", is_(tm.Resumed, scope="domain", name="tm_obs", count=1))
    started(log, "p", 2)  # it runs again
    assert s.cancel(paused)
    c.wait("Cancelled of a running task", is_(tm.Cancelled, paused))

    s.pause_all()
    s.resume_all()
    c.wait("Paused(all)", is_(tm.Paused, scope="all"))
    c.wait("Resumed(all)", is_(tm.Resumed, scope="all"))

    h.submit(O.Timed(log=log, tag="g"), group="g", run_after=60)
    assert s.pause_group("g") == 1
    c.wait("GroupPaused", is_(tm.GroupPaused, group="g", pending_count=1, running_count=0))
    assert s.resume_group("g") == 1
    c.wait("GroupResumed", is_(tm.GroupResumed, group="g", resumed_count=1))
    s.pause_group_until("g", 0.3)
    c.wait("GroupResumed when the timed pause ran out", lambda e: isinstance(e, tm.GroupResumed)
           and len(c.of(tm.GroupResumed)) == 2, timeout=10)  # fmt: skip

    batch = h.submit_batch([O.Timed(log=log, tag="b1"), O.Timed(log=log, tag="b2")])
    c.wait("BatchSubmitted", is_(tm.BatchSubmitted, count=2, inserted_ids=batch.inserted(), domains=["tm_obs"]))
    mixed = s.submit_batch([tm.TaskSubmission(task_type="tm_obs::timed", payload={"log": log, "tag": "m1"}),
                            tm.TaskSubmission(task_type="tm_obs2::other", payload={"log": log, "tag": "m2"})])  # fmt: skip
    c.wait("BatchSubmitted across domains", is_(tm.BatchSubmitted, count=2, domains=["tm_obs", "tm_obs2"],
                                                inserted_ids=mixed.inserted()))  # fmt: skip


def test_domain_and_typed_streams_filter_and_typed_terminal_events_carry_records(make_scheduler: Any, log: str) -> None:
    s = make_scheduler((*DOMAINS, W.flow, W.side), workers=2)  # started once everything is queued: no races
    h, h2, hf = s.domain(O.obs), s.domain(O.obs2), s.domain(W.flow)
    mine, theirs, flows = Collector(h.events()), Collector(h2.events()), Collector(hf.events())
    timed = Collector(h.task_events(O.Timed))
    booms = Collector(h.task_events(O.Boom))

    t_task = O.Timed(log=log, tag="t", fraction=0.5)
    t = h.submit(t_task).id
    boom = h.submit(O.Boom(tag="b")).id
    dep = h.submit(O.Timed(log=log, tag="dep"), depends_on=[boom]).id
    ok = h.submit(O.Timed(log=log, tag="ok", seconds=0.2)).id
    after = h.submit(O.Timed(log=log, tag="after"), depends_on=[ok]).id
    other = h2.submit(O.Other(log=log, tag="o")).id
    up = hf.submit(W.Upload(log=log, name="u", parts=2)).id
    s.start()
    s.pause_all()
    s.resume_all()

    mine.wait("DependencyFailed", is_(tm.DependencyFailed, dep, failed_dependency=boom))
    mine.wait("TaskUnblocked", is_(tm.TaskUnblocked, after))
    mine.wait("the unblocked task to complete", is_(tm.Completed, after))
    theirs.wait("the other domain's task", is_(tm.Completed, other))
    flows.wait("Waiting", is_(tm.Waiting, up, children_count=2))
    flows.wait("the parent to complete", is_(tm.Completed, up))
    spawned = flows.wait("BatchSubmitted of the children", is_(tm.BatchSubmitted, count=2))
    assert spawned.domains == ["tm_flow"] and len(spawned.inserted_ids) == 2
    for stream in (mine, theirs):
        stream.wait("Paused(all)", is_(tm.Paused, scope="all"))
        stream.wait("Resumed(all)", is_(tm.Resumed, scope="all"))

    def types(c: Collector) -> set[str]:
        return {e.header.task_type for e in c.pump() if e.header is not None}

    assert types(mine) == {"tm_obs::timed", "tm_obs::boom"}
    assert types(theirs) == {"tm_obs2::other"}
    assert types(flows) == {"tm_flow::upload", "tm_flow::step"}
    assert not [e for e in theirs.pump() if isinstance(e, tm.BatchSubmitted)]  # the spawn was tm_flow's

    completed = timed.wait("Completed on the typed stream", is_(tm.Completed, t))
    assert completed.record is not None and completed.record.task_id == t and completed.record.status == "completed"
    assert timed.stream.task(completed.record) == t_task  # the payload, decoded as the task's own class
    assert [(p.fraction, p.message) for p in timed.of(tm.Progress, t)] == [(0.5, "t at 50%")]
    assert [type(e).__name__ for e in timed.pump() if e.header.task_id == t] == ["Dispatched", "Progress",
                                                                                 "Completed"]  # fmt: skip
    assert types(timed) == {"tm_obs::timed"}
    assert timed.of(tm.DependencyFailed, dep) and timed.of(tm.TaskUnblocked, after)
    assert all(e.record is not None and e.record.task_id == e.header.task_id for e in timed.of(tm.Completed))
    failed = booms.wait("Failed on the typed stream", is_(tm.Failed, boom, will_retry=False))
    assert failed.record is not None and failed.record.status == "failed"
    assert "failed on purpose" in (failed.record.last_error or "")
    assert types(booms) == {"tm_obs::boom"}

    async def first_completed() -> tm.Completed:
        async for e in h2.task_events(O.Other):
            if isinstance(e, tm.Completed):
                return e
        raise AssertionError("stream ended")

    async def run() -> tm.Completed:
        task = asyncio.ensure_future(first_completed())
        await asyncio.sleep(0.05)
        h2.submit(O.Other(log=log, tag="async"))
        return await asyncio.wait_for(task, 15)

    done = asyncio.run(run())
    assert done.record is not None and done.record.status == "completed"
    assert done.header is not None and done.header.task_type == "tm_obs2::other"


def test_a_slow_subscriber_loses_its_oldest_events_and_never_slows_dispatch(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS)
    slow = s.subscribe(maxsize=5)
    slow_domain = s.domain(O.obs).events(maxsize=3)
    full = s.subscribe()
    n = 300
    s.domain(O.obs).submit_batch([O.Timed(log=log, tag=f"n{i}") for i in range(n)])
    t0 = time.monotonic()
    s.start()
    assert s.wait_until_idle(60)
    took = time.monotonic() - t0
    c = Collector(full)
    wait_for(lambda: len(c.of(tm.Completed)) == n, 10, what="every completion")
    time.sleep(0.1)
    events = c.pump()
    assert len(events) >= 2 * n + 1
    kept = Collector(slow).pump()
    assert slow.dropped == len(events) - 5 and kept == events[-5:]  # the newest five, in order
    assert slow_domain.dropped == len(events) - 3 and Collector(slow_domain).pump() == events[-3:]
    assert took < 30  # (not a speed test: the suite's drain test measures speed; a block would hang here)

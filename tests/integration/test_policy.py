"""Scheduling policy with real workers: group caps, rate limits, aging, fair shares, IO gate, backpressure."""

from __future__ import annotations

import threading
import time
from typing import Any

import taskmill as tm
from tests.helpers import all_workers_up, entries, intervals, max_overlap, wait_for
from tests.integration import domains as D

P = tm.Priority


def test_a_group_cap_is_never_exceeded_and_holds_back_only_that_group(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=4, max_concurrency=4, group_concurrency={"uploads": 2}, start=True)
    all_workers_up(s)
    h = s.domain(D.main)
    s.pause_all()  # queue everything first, as if submitted before start
    for i in range(6):
        h.submit(D.Note(log=log, tag=f"g{i}", sleep=0.15), group="uploads")
    for i in range(4):
        h.submit(D.Note(log=log, tag=f"f{i}", sleep=0.15), priority=P.BACKGROUND)
    s.resume_all()
    assert s.wait_until_idle(30)
    grouped = intervals(log, [f"g{i}" for i in range(6)])
    assert len(grouped) == 6 and max_overlap(grouped) == 2
    free = intervals(log, [f"f{i}" for i in range(4)])
    # the less urgent ungrouped tasks used the slots the group could not: they ran beside the first group tasks
    assert min(a for a, _ in free) < sorted(a for a, _ in grouped)[2]


def test_group_limits_change_at_runtime(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=3, max_concurrency=3, default_group_concurrency=1, start=True)
    h = s.domain(D.main)
    for i in range(3):
        h.submit(D.Note(log=log, tag=f"a{i}", sleep=0.2), group="g")
    assert s.wait_until_idle(30)
    assert max_overlap(intervals(log, [f"a{i}" for i in range(3)])) == 1
    h.set_group_limit("g", 3)
    for i in range(3):
        h.submit(D.Note(log=log, tag=f"b{i}", sleep=0.3), group="g")
    assert s.wait_until_idle(30)
    assert max_overlap(intervals(log, [f"b{i}" for i in range(3)])) == 3


def test_a_rate_limit_holds_the_start_rate_and_does_not_block_other_types(make_scheduler: Any, log: str) -> None:
    rate = 10.0
    s = make_scheduler(workers=2, max_concurrency=2, rate_limits={D.Note: tm.RateLimit.per_second(10).with_burst(1)})
    h = s.domain(D.main)
    h.submit_batch([D.Note(log=log, tag=f"n{i}") for i in range(12)])
    h.submit_batch([D.Nap(log=log, tag=f"z{i}") for i in range(20)])
    s.start()
    assert s.wait_until_idle(30)
    starts = sorted(e["t"] for e in entries(log, "start") if e["tag"].startswith("n"))
    assert len(starts) == 12
    t0 = starts[0]
    for k, t in enumerate(starts):  # never ahead of the bucket: 1 token at start, then one per 100 ms
        assert k <= 1 + (t - t0) * rate + 0.05, (k, t - t0)
    span = starts[-1] - t0
    assert 11 / rate - 0.05 <= span <= 11 / rate + 1.0  # ... and not far behind it either
    naps = [e["t"] for e in entries(log, "start") if e["tag"].startswith("z")]
    assert len(naps) == 20 and max(naps) < t0 + 0.5  # the unlimited type never waited for the limited one
    limits = s.policy_view().rate_limits
    assert [(r.scope, r.permits, r.burst) for r in limits] == [("type:tm_main::note", 10, 1)]
    assert [r.scope for r in s.snapshot().rate_limits] == ["type:tm_main::note"]
    assert s.policy_view().gate_denials.get("rate_limited", 0) >= 1
    m = s.metrics_snapshot()
    assert m.rate_limit_throttles >= 1 and m.gate_denials_by_reason["rate_limited"] == m.rate_limit_throttles


def test_rate_limits_can_be_set_and_removed_at_runtime(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, max_concurrency=1, start=True)
    h = s.domain(D.main)
    h.set_rate_limit("note", tm.RateLimit.per_second(5).with_burst(1))
    h.submit_batch([D.Note(log=log, tag=f"n{i}") for i in range(4)])
    assert s.wait_until_idle(30)
    starts = sorted(e["t"] for e in entries(log, "start"))
    assert starts[-1] - starts[0] >= 3 / 5 - 0.05
    h.remove_rate_limit("note")
    h.submit_batch([D.Note(log=log, tag=f"m{i}") for i in range(20)])
    assert s.wait_until_idle(30)
    fast = sorted(e["t"] for e in entries(log, "start") if e["tag"].startswith("m"))
    assert fast[-1] - fast[0] < 0.5
    try:
        h.set_rate_limit("nope", tm.RateLimit.per_second(1))
    except tm.ConfigError as exc:
        assert "unknown task type 'tm_main::nope'" in str(exc)
    else:
        raise AssertionError("an unknown type must be refused")


def test_aging_lets_a_starved_task_run_under_a_stream_of_urgent_work(make_scheduler: Any, log: str) -> None:
    # BACKGROUND (192) reaches HIGH (64) 1 + 128 * 0.006 s = ~1.8 s after it was submitted
    aging = tm.AgingConfig(grace_period=1.0, aging_interval=0.006, max_effective_priority=int(P.HIGH))
    s = make_scheduler(workers=1, max_concurrency=1, priority_aging=aging)
    h = s.domain(D.main)
    low = h.submit(D.Note(log=log, tag="low"), priority=P.BACKGROUND).id
    events = s.subscribe()
    stop = threading.Event()

    def feed() -> None:  # keep HIGH work queued for as long as the test runs
        i = 0
        while not stop.is_set():
            h.submit_batch([D.Note(log=log, tag=f"h{i + k}", sleep=0.01) for k in range(5)], priority=P.HIGH)
            i += 5
            time.sleep(0.03)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        time.sleep(0.2)  # a backlog of HIGH work exists before dispatch starts
        s.start()
        wait_for(lambda: entries(log, "start", "low"), timeout=20, what="the aged task to start")
        assert s.snapshot().aging_config == aging
        highs_after = len(entries(log, "start"))
        assert highs_after > 5  # it waited behind HIGH work first ...
    finally:
        stop.set()
        feeder.join()
    pending_high = s.pending_count()
    assert pending_high > 0  # ... and ran while HIGH work was still queued
    seen = iter(events.get_nowait, None)
    dispatched = [e for e in seen if isinstance(e, tm.Dispatched) and e.header.task_id == low]
    assert dispatched and dispatched[0].header.base_priority == int(P.BACKGROUND)
    assert dispatched[0].header.effective_priority == int(P.HIGH)  # the event says at what priority it ran


def test_fair_shares_follow_the_weights_and_leftover_slots_are_used(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=4, max_concurrency=4, group_weights={"a": 3, "b": 1}, start=True)
    all_workers_up(s)
    h = s.domain(D.main)
    s.pause_all()  # queue everything first, as if submitted before start
    for i in range(30):
        h.submit(D.Note(log=log, tag=f"a{i}", sleep=0.1), group="a")
        h.submit(D.Note(log=log, tag=f"b{i}", sleep=0.1), group="b", priority=P.HIGH)  # b is more urgent
    s.resume_all()
    wait_for(lambda: len(entries(log, "start")) >= 24, timeout=30, what="24 starts")
    first = [e["tag"][0] for e in sorted(entries(log, "start"), key=lambda e: e["t"])][:24]
    ratio = first.count("a") / max(first.count("b"), 1)
    assert 2.7 <= ratio <= 3.3, first  # 3:1 within 10 %, although b's tasks are more urgent
    alloc = {g.group: g for g in s.policy_view().group_allocations}
    assert alloc["a"].weight == 3 and alloc["b"].weight == 1
    assert {g.group: g.weight for g in s.snapshot().group_allocations} == {"a": 3, "b": 1}
    assert s.wait_until_idle(60)
    b_spans = intervals(log, [f"b{i}" for i in range(30)])
    last_a = max(e for _, e in intervals(log, [f"a{i}" for i in range(30)]))
    tail = [(a, e) for a, e in b_spans if a >= last_a]  # once a ran out, b got every slot
    assert tail and max_overlap(tail) == 4


def test_set_group_weight_publishes_an_event(make_scheduler: Any) -> None:
    s = make_scheduler()
    sub = s.subscribe()
    s.set_group_weight("a", 5)
    e = sub.get(timeout=5)
    assert isinstance(e, tm.GroupWeightChanged) and (e.group, e.previous_weight, e.new_weight) == ("a", 1, 5)
    s.reset_group_weights()
    assert s.policy_view().group_allocations == []


class FakeSampler:
    """Reports whatever the test sets: a stand-in for psutil."""

    def __init__(self) -> None:
        self.snapshot = tm.ResourceSnapshot()

    def sample(self) -> tm.ResourceSnapshot:
        return self.snapshot


class Dial:
    name = "dial"

    def __init__(self) -> None:
        self.value = 0.0

    def pressure(self) -> float:
        return self.value


def test_pressure_throttles_by_tier(make_scheduler: Any, log: str) -> None:
    dial = Dial()
    dial.value = 0.8
    s = make_scheduler(workers=2, max_concurrency=2, pressure_sources=[dial],
                       sampler_config=tm.SamplerConfig(interval=0.05))  # fmt: skip
    h = s.domain(D.main)
    for p in (P.HIGH, P.NORMAL, P.BACKGROUND):
        h.submit(D.Note(log=log, tag=f"p{int(p)}"), priority=p)
    s.start()
    wait_for(lambda: entries(log, "end", f"p{int(P.HIGH)}"), what="HIGH to run under pressure")
    time.sleep(0.3)
    assert [e["tag"] for e in entries(log, "start")] == [f"p{int(P.HIGH)}"]
    view = s.policy_view()
    assert view.pressure == 0.8 and view.pressure_breakdown == [("dial", 0.8)]
    snap = s.snapshot()
    assert snap.pressure == 0.8 and snap.pressure_breakdown == [("dial", 0.8)]
    assert s.metrics_snapshot().pressure == 0.8
    dial.value = 0.6  # NORMAL may run now, BACKGROUND still waits
    wait_for(lambda: entries(log, "end", f"p{int(P.NORMAL)}"), what="NORMAL once pressure eased")
    time.sleep(0.3)
    assert not entries(log, "start", f"p{int(P.BACKGROUND)}")
    dial.value = 0.0
    assert s.wait_until_idle(10)


def test_the_io_gate_spreads_io_heavy_tasks_by_observed_throughput(make_scheduler: Any, log: str) -> None:
    sampler = FakeSampler()
    sampler.snapshot = tm.ResourceSnapshot(io_read_bytes_per_sec=1_000, io_write_bytes_per_sec=1_000)
    s = make_scheduler(workers=3, max_concurrency=3, resource_sampler=sampler,
                       sampler_config=tm.SamplerConfig(interval=0.05, ewma_alpha=1.0))  # fmt: skip
    h = s.domain(D.main)
    h.submit(D.Note(log=log, tag="first", sleep=1.5), expected_io=tm.IoBudget.disk(read=1_000, write=0))
    s.start()
    wait_for(lambda: entries(log, "start", "first"), what="the first IO task")
    h.submit(D.Note(log=log, tag="heavy"), expected_io=tm.IoBudget.disk(read=1_000_000, write=0))
    h.submit_batch([D.Note(log=log, tag=f"light{i}") for i in range(5)])
    wait_for(lambda: len(entries(log, "end")) >= 5, what="light tasks")
    time.sleep(0.2)
    assert not entries(log, "start", "heavy")  # 1 kB/s observed: no room beside the running one
    assert s.policy_view().gate_denials.get("io_budget", 0) >= 1
    sampler.snapshot = tm.ResourceSnapshot(io_read_bytes_per_sec=10_000_000, io_write_bytes_per_sec=1_000)
    wait_for(lambda: entries(log, "start", "heavy"), what="the heavy task once the disk shows room")
    assert not entries(log, "end", "first")  # it ran beside the first one, not after it
    assert s.wait_until_idle(10)


def test_why_not_running_names_what_holds_a_task_back(make_scheduler: Any, log: str, tmp_path: Any) -> None:
    s = make_scheduler(workers=2, max_concurrency=2, group_concurrency={"g": 1},
                       rate_limits={D.Nap: tm.RateLimit.per_minute(1)})  # fmt: skip
    h = s.domain(D.main)
    assert s.why_not_running(12345) == "no such task"
    first = h.submit(D.Keyed(log=log, k="a", gate=str(tmp_path / "open")), group="g").id
    second = h.submit(D.Keyed(log=log, k="b"), group="g").id
    assert s.why_not_running(second) == "the scheduler is not running"
    s.start()
    wait_for(lambda: entries(log, "start"), what="the first task")
    assert s.why_not_running(first) is None
    assert s.why_not_running(second) == "group 'g' is at its concurrency limit (1)"
    h.submit(D.Nap(log=log, tag="n1"))
    n2 = h.submit(D.Nap(log=log, tag="n2")).id
    wait_for(lambda: entries(log, "start", "n1"), what="the first nap")
    assert "rate-limited" in (s.why_not_running(n2) or "")
    later = h.submit(D.Note(log=log, tag="later"), run_after=3600).id
    assert (s.why_not_running(later) or "").startswith("delayed until ")
    blocked = h.submit(D.Note(log=log, tag="after"), depends_on=[first]).id
    assert s.why_not_running(blocked) == f"blocked until its dependencies complete: [{first}]"
    (tmp_path / "open").touch()
    wait_for(lambda: s.why_not_running(first) == "it has finished (completed)", what="the first task to end")

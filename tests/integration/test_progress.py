"""Progress with real workers: byte counts, throughput and ETA; estimates from history; snapshots."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

import taskmill as tm

from ..helpers import entries, events_until, wait_for
from . import obs_domains as O

DOMAINS = (O.obs, O.obs2)


def started(log: str, tag: str) -> dict[str, Any]:
    return wait_for(lambda: (entries(log, "start", tag) or [None])[0], 15, what=f"{tag} to start")


def test_byte_progress_throughput_and_eta_of_a_transfer(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, start=True)
    events = s.subscribe()
    ticks = s.subscribe_progress(interval=0.1)
    other_domain = s.domain(O.obs2).subscribe_progress(interval=0.1)
    total, chunk, step = 3_000_000, 30_000, 0.01  # 100 steps: about 3 MB/s for about a second
    tid = s.domain(O.obs).submit(O.Transfer(log=log, tag="t", total=total, chunk=chunk, step=step)).id
    start = started(log, "t")

    def midway() -> tm.TaskProgress | None:
        found = [p for p in s.byte_progress() if p.task_id == tid]
        return found[0] if found and total * 0.4 <= found[0].bytes_completed < total else None

    p = wait_for(midway, 15, interval=0.02, what="the transfer to pass 40%")
    seen_at = time.time()
    assert p.task_type == "tm_obs::transfer" and p.bytes_total == total and p.label
    assert p.elapsed == pytest.approx(seen_at - start["t"], abs=0.3)
    actual_rate = p.bytes_completed / p.elapsed
    assert 0.3 * actual_rate < p.throughput_bps < 2.0 * actual_rate, (p.throughput_bps, actual_rate)
    assert p.eta == pytest.approx((total - p.bytes_completed) / p.throughput_bps)
    snap = s.snapshot()
    [running] = [r for r in snap.running if r.record.id == tid]
    assert running.executing is True and running.worker_pid == start["pid"]
    assert [b.task_id for b in snap.byte_progress] == [tid]
    [est] = [e for e in s.estimated_progress() if e.header.task_id == tid]
    assert est.reported is not None and 0.3 <= est.reported <= 1.0 and est.percent == est.reported

    end = wait_for(lambda: (entries(log, "end", "t") or [None])[0], 15, what="the transfer to end")
    assert p.eta is not None and abs((end["t"] - seen_at) - p.eta) < max(1.0, p.eta), (end["t"] - seen_at, p.eta)
    wait_for(lambda: s.byte_progress() == [], 5, what="finished tasks to leave byte_progress")

    got: list[tm.TaskProgress] = []
    while (item := ticks.get_nowait()) is not None:
        got.append(item)
    mine = [g.bytes_completed for g in got if g.task_id == tid]
    assert len(mine) >= 3 and mine == sorted(mine)  # periodic, and counts only grow
    assert other_domain.get_nowait() is None  # another domain's progress stream saw none of it
    got_events = events_until(events, lambda evs: any(isinstance(e, tm.Completed) for e in evs))
    kinds = {type(e).__name__ for e in got_events}
    assert kinds == {"Dispatched", "Completed"}  # byte counts never enter the lifecycle stream


def test_estimated_progress_from_recent_runs_of_the_type(make_scheduler: Any, log: str, db: Path) -> None:
    s = make_scheduler(DOMAINS, start=True)
    h = s.domain(O.obs)
    first = h.submit(O.Timed(log=log, tag="first", seconds=0.4)).id
    started(log, "first")
    [est] = h.estimated_progress()
    looked = time.monotonic()
    assert (est.header.task_id, est.reported, est.extrapolated, est.percent) == (first, None, None, 0.0)  # no history
    wait_for(lambda: s.history_of(first), 10)
    avg = s.history_of(first)[0].duration
    assert avg is not None and avg >= 0.39

    second = h.submit(O.Timed(log=log, tag="second", seconds=30)).id
    begun = started(log, "second")["t"]
    time.sleep(max(avg / 2, looked + 1.05 - time.monotonic()))  # "no history" is remembered for a second
    [est] = [e for e in s.estimated_progress() if e.header.task_id == second]
    expected = min((time.time() - begun) / avg, 0.99)
    assert est.reported is None and est.extrapolated is not None
    assert est.extrapolated == pytest.approx(expected, abs=0.25) and est.percent == est.extrapolated

    with tm.connect(db) as client:  # another process's view: the database alone
        snap = client.snapshot()
        assert snap.live is False and snap.max_concurrency is None and snap.byte_progress == []
        [row] = snap.running
        assert row.record.id == second and row.executing is None and row.progress is None
        [guess] = snap.progress
        assert guess.extrapolated is not None and 0 < guess.extrapolated <= 0.99
        assert msgspec.json.decode(msgspec.json.encode(snap))["running"][0]["record"]["id"] == second

    wait_for(lambda: time.time() - begun > avg + 0.1, 5)
    [est] = [e for e in s.estimated_progress() if e.header.task_id == second]
    assert est.extrapolated == 0.99 and est.percent == 0.99  # overdue, but never "done" until it is
    assert s.cancel(second)

    third = h.submit(O.Timed(log=log, tag="third", seconds=30, fraction=0.25)).id
    started(log, "third")
    wait_for(lambda: [e for e in s.estimated_progress() if e.header.task_id == third and e.reported is not None], 5)
    [est] = [e for e in s.estimated_progress() if e.header.task_id == third]
    assert est.reported == 0.25 and est.percent == 0.25 and est.message == "third at 25%"
    assert est.extrapolated is not None and est.extrapolated >= 0.25  # moving on from the report
    [row] = [r for r in s.snapshot().running if r.record.id == third]
    assert (row.progress, row.message) == (0.25, "third at 25%")
    assert s.cancel(third)


def test_snapshot_fields(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, start=True, max_concurrency=3)
    h, h2 = s.domain(O.obs), s.domain(O.obs2)
    later = h.submit(O.Timed(log=log, tag="later"), run_after=60).id
    h.submit(O.Timed(log=log, tag="blocked"), depends_on=[later])
    h.submit(O.Timed(log=log, tag="grouped"), group="g", run_after=60)
    s.pause_group_until("g", 30)
    h2.pause()
    h2.submit(O.Other(log=log, tag="held"))
    h.submit(O.Timed(log=log, tag="tick"), recurring=tm.RecurringSchedule(60, initial_delay=60))

    snap = s.snapshot()
    assert snap.live is True and snap.max_concurrency == 3 and snap.is_paused is False
    assert (snap.pending_count, snap.paused_count, snap.blocked_count, snap.waiting_count) == (2, 2, 1, 0)
    assert snap.running == [] and snap.progress == [] and snap.byte_progress == []
    [group] = snap.paused_groups
    assert group.group == "g" and group.paused_task_count == 1 and group.resume_at is not None
    assert 25 < group.resume_at - time.time() <= 30 and group.paused_at <= time.time()
    [sched] = snap.recurring_schedules
    assert sched.interval == 60 and sched.task_type == "tm_obs::timed"
    assert (snap.pressure, snap.pressure_breakdown, snap.group_allocations, snap.rate_limits) == (0.0, [], [], [])
    assert snap.aging_config is None
    as_json = msgspec.json.decode(msgspec.json.encode(snap))
    assert set(as_json) == {
        "running", "pending_count", "paused_count", "blocked_count", "waiting_count", "progress", "byte_progress",
        "pressure", "pressure_breakdown", "max_concurrency", "is_paused", "aging_config", "group_allocations",
        "paused_groups", "rate_limits", "recurring_schedules", "live", "taken_at",
    }  # fmt: skip

    d2 = h2.snapshot()
    assert (d2.domain, d2.is_paused, d2.paused_count, d2.pending_count, d2.running) == ("tm_obs2", True, 1, 0, [])
    d1 = h.snapshot()
    assert (d1.is_paused, d1.paused_count, d1.pending_count, d1.blocked_count) == (False, 1, 2, 1)
    assert msgspec.json.decode(msgspec.json.encode(d1))["domain"] == "tm_obs"
    s.pause_all()
    assert s.snapshot().is_paused is True
    s.resume_all()
    assert s.snapshot().is_paused is False

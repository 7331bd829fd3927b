"""Workflows with real workers: children and finalize, fail_fast, siblings, dependencies across domains and
their failure policies, delayed and recurring tasks, TTL expiry and its cascades."""

from __future__ import annotations

import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

import taskmill as tm

from ..helpers import entries, events_until, wait_for
from . import workflow_domains as W

DOMAINS = (W.flow, W.side)


def final(s: tm.Client, task_id: int, timeout: float = 15.0) -> tm.HistoryRecord:
    """The newest terminal record of a task, once it has one."""
    return wait_for(lambda: (s.history_of(task_id) or [None])[0], timeout, what=f"task {task_id} to end")


def drain(sub: tm.Subscription) -> list[tm.Event]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def of(events: list[tm.Event], kind: type, task_id: int | None = None) -> list[Any]:
    return [e for e in events if isinstance(e, kind) and (task_id is None or e.header.task_id == task_id)]


# -- children, finalize, fail_fast ----------------------------------------------------------------------------


def test_a_multipart_upload_waits_for_its_parts_and_finalize_gets_the_memo(
    make_scheduler: Any, log: str, tmp_path: Path
) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    sub = s.subscribe()
    gate = tmp_path / "gate"
    up = s.domain(W.flow).submit(W.Upload(log=log, name="u", parts=4, gate=str(gate), cross_domain=True),
                                 priority=tm.Priority.HIGH, tags={"user": "7"}).id  # fmt: skip
    wait_for(lambda: [t.id for t in s.waiting_tasks()] == [up], 10, what="the parent to wait")
    kids = s.children(up)
    assert len(kids) == 5 and {k.task_type for k in kids} == {"tm_flow::step", "tm_side::side_step"}
    gate.touch()
    assert final(s, up).status == "completed"
    [fin] = entries(log, "finalize", "u")
    assert fin["memo_type"] == "UploadMemo" and fin["upload_id"] == "up-u" and fin["parts"] == 4
    assert fin["statuses"] == ["completed"] * 5 and fin["phase"] == "finalize"
    starts = [e for e in entries(log, "start") if e["tag"].startswith("u-part")]
    assert {e["parent"] for e in starts} == {up}
    assert {e["priority"] for e in starts} == {int(tm.Priority.HIGH)}  # the more urgent of child and parent
    assert all(e["tags"] == {"user": "7"} for e in starts)  # the parent's tags, under the child's own
    assert max(e["t"] for e in entries(log, "end") if e["tag"].startswith("u-")) <= fin["t"]
    [waiting] = of(drain(sub), tm.Waiting, up)
    assert 1 <= waiting.children_count <= 5


def test_an_async_parent_spawns_and_finalizes_with_awaitable_calls(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    up = s.domain(W.flow).submit(W.AsyncUpload(log=log, name="a", parts=3)).id
    assert final(s, up).status == "completed"
    [fin] = entries(log, "finalize", "a")
    assert fin["memo"] == {"spawned": 3} and fin["statuses"] == ["completed"] * 3


def test_fail_fast_cancels_the_siblings_and_fails_the_parent(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    sub = s.subscribe()
    up = s.domain(W.flow).submit(W.Upload(log=log, name="ff", parts=4, fail_part=0, gate=str(tmp_path / "never"))).id
    parent = final(s, up)
    assert parent.status == "failed" and "child task" in (parent.last_error or "")
    kids = wait_for(lambda: (k := s.children(up)) and all(c.finished for c in k) and k, 10)
    assert sorted(k.status for k in kids) == ["cancelled", "cancelled", "cancelled", "failed"]
    assert not entries(log, "finalize", "ff")
    assert of(events_until(sub, lambda evs: bool(of(evs, tm.Failed, up))), tm.Failed, up)


def test_without_fail_fast_every_child_finishes_and_finalize_decides(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    up = s.domain(W.flow).submit(W.Upload(log=log, name="nf", parts=3, fail_part=1), fail_fast=False).id
    assert final(s, up).status == "completed"
    [fin] = entries(log, "finalize", "nf")
    assert fin["statuses"] == ["completed", "completed", "failed"]


def test_siblings_from_a_child_and_a_clear_error_from_a_root(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    h = s.domain(W.flow)
    tree = h.submit(W.Family(log=log, mode="tree")).id
    root = h.submit(W.Family(log=log, mode="root_sibling")).id
    assert final(s, tree).status == "completed" and final(s, root).status == "completed"
    [fin] = entries(log, "finalize", "family")
    assert [status for _, status in fin["kids"]] == ["completed", "completed"]  # the sibling was waited for too
    assert {e["parent"] for e in entries(log, "end") if e["tag"] in ("first", "second")} == {tree}
    [err] = entries(log, "error", "family")
    assert err["kind"] == "InvalidState" and "no parent" in err["msg"]
    assert s.children(root) == []


# -- dependencies ----------------------------------------------------------------------------------------------


def test_fan_in_across_two_domains_unblocks_only_after_both(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    sub = s.subscribe()
    gate_a, gate_b = tmp_path / "a", tmp_path / "b"
    a = s.domain(W.flow).submit(W.Step(log=log, tag="A", gate=str(gate_a))).id
    b = s.domain(W.side).submit(W.SideStep(log=log, tag="B", gate=str(gate_b))).id
    wait_for(lambda: entries(log, "start", "A") and entries(log, "start", "B"), 10)
    with tm.connect(s.path) as other:  # another process's view: both dependencies are already running
        out = other.domain(W.flow).submit(W.Step(log=log, tag="C"), depends_on=[a, b])
    c = out.id
    assert out.blocked and s.task(c).status == "blocked"  # type: ignore[union-attr]
    assert s.blocked_count() == 1 and [t.id for t in s.blocked_tasks()] == [c]
    assert s.domain(W.flow).blocked_count() == 1 and s.domain(W.side).blocked_count() == 0
    assert s.task_dependencies(c) == [a, b] and s.task_dependents(a) == [c] and s.task_dependents(b) == [c]
    gate_a.touch()
    assert final(s, a).status == "completed"
    time.sleep(0.1)
    assert s.task(c).status == "blocked" and s.task_dependencies(c) == [b]  # type: ignore[union-attr]
    gate_b.touch()
    assert final(s, c).status == "completed"
    [c_start] = entries(log, "start", "C")
    assert c_start["t"] >= max(e["t"] for e in entries(log, "end") if e["tag"] in ("A", "B"))
    assert of(drain(sub), tm.TaskUnblocked, c) and s.blocked_count() == 0


def test_each_dependency_failure_policy(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    sub = s.subscribe()
    h = s.domain(W.flow)
    gate = tmp_path / "gate"
    a = h.submit(W.Step(log=log, tag="A", gate=str(gate), fail=True)).id
    cancel = h.submit(W.Step(log=log, tag="cancel"), depends_on=[a]).id  # default policy
    below_cancel = h.submit(W.Step(log=log, tag="below-cancel"), depends_on=[cancel],
                            on_dependency_failure="ignore").id  # fmt: skip
    fail = h.submit(W.Step(log=log, tag="fail"), depends_on=[a], on_dependency_failure="fail").id
    below_fail = h.submit(W.Step(log=log, tag="below-fail"), depends_on=[fail],
                          on_dependency_failure=tm.DependencyFailurePolicy.IGNORE).id  # fmt: skip
    ignore = h.submit(W.Step(log=log, tag="ignore"), depends_on=[a], on_dependency_failure="ignore").id
    gate.touch()
    assert final(s, a).status == "failed"
    assert final(s, ignore).status == "completed"  # ran anyway
    assert final(s, below_fail).status == "completed"  # "fail" does not force its dependents down
    for tid in (cancel, fail, below_cancel):  # "cancel" takes everything below it down, whatever its policy
        rec = final(s, tid)
        assert rec.status == "dependency_failed", (tid, rec.status)
    assert "dependency task" in (final(s, cancel).last_error or "")
    assert {e["tag"] for e in entries(log, "start")} == {"A", "ignore", "below-fail"}
    events = events_until(sub, lambda evs: len(of(evs, tm.DependencyFailed)) >= 3)
    failed = {e.header.task_id: e for e in of(events, tm.DependencyFailed)}
    assert set(failed) == {cancel, fail, below_cancel}
    assert failed[cancel].failed_dependency == a and failed[below_cancel].failed_dependency == cancel


def test_unknown_failed_and_cyclic_dependencies_are_rejected(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True)
    h = s.domain(W.flow)
    with pytest.raises(tm.InvalidDependency, match="does not exist"):
        h.submit(W.Step(log=log, tag="x"), depends_on=[999_999])
    bad = h.submit(W.Step(log=log, tag="bad", fail=True)).id
    good = h.submit(W.Step(log=log, tag="good")).id
    final(s, bad), final(s, good)
    with pytest.raises(tm.InvalidDependency, match="already ended as failed"):
        h.submit(W.Step(log=log, tag="y"), depends_on=[bad])
    assert not h.submit(W.Step(log=log, tag="z"), depends_on=[good]).blocked  # already done: nothing to wait for
    s.pause_all()
    first = h.submit(W.Step(log=log, tag="first"), key="first").id
    second = h.submit(W.Step(log=log, tag="second"), depends_on=[first]).id
    with pytest.raises(tm.CyclicDependency):  # replacing "first" so that it waits for its own dependent
        h.submit(W.Step(log=log, tag="first2"), key="first", on_duplicate="supersede", depends_on=[second])
    assert s.task_dependencies(second) == [first] and s.task_dependencies(first) == []
    s.resume_all()


# -- delayed ---------------------------------------------------------------------------------------------------


def test_delayed_tasks_fire_within_a_few_ms_of_their_time(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    h = s.domain(W.flow)
    time.sleep(0.2)  # an idle supervisor: it must wake for the due time, not poll for it
    base = time.time()
    due = {f"d{i}": base + 0.3 + 0.1 * i for i in range(5)}
    for tag, at in due.items():
        h.submit(W.Step(log=log, tag=tag), run_after=at - time.time())
    assert s.next_run_after() == pytest.approx(due["d0"], abs=0.01)
    wait_for(lambda: len(entries(log, "start")) == 5, 10)
    lags = [e["t"] - due[e["tag"]] for e in entries(log, "start")]
    assert min(lags) >= -0.002, lags  # never early (ms rounding aside)
    assert statistics.median(lags) < 0.015 and max(lags) < 0.05, lags
    assert s.next_run_after() is None


# -- recurring -------------------------------------------------------------------------------------------------


def test_recurring_runs_max_occurrences_under_one_id(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True)
    sub = s.subscribe()
    tid = s.domain(W.flow).submit(W.Tick(log=log, tag="r"), recurring=tm.RecurringSchedule(0.1, max_occurrences=3)).id
    [info] = s.recurring_schedules()
    assert info.task_id == tid and info.interval == 0.1 and info.max_occurrences == 3
    wait_for(lambda: len(s.history_of(tid)) == 3, 10, what="three occurrences")
    time.sleep(0.3)
    assert len(entries(log, "end", "r")) == 3 and s.recurring_schedules() == []
    assert [r.status for r in s.history_of(tid)] == ["completed"] * 3
    starts = [e["t"] for e in entries(log, "start", "r")]
    assert all(0.07 < b - a < 0.2 for a, b in itertools.pairwise(starts)), starts  # fixed rate
    done = of(
        events_until(sub, lambda evs: len(of(evs, tm.RecurringCompleted, tid)) >= 3), tm.RecurringCompleted, tid
    )  # one per completed occurrence; the last has no next run
    assert [e.occurrences for e in done] == [1, 2, 3]
    assert all(e.next_run is not None for e in done[:2]) and done[2].next_run is None
    assert done[1].next_run > done[0].next_run  # type: ignore[operator]


def test_recurring_skips_fire_times_instead_of_piling_up(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True)
    sub = s.subscribe()
    tid = s.domain(W.flow).submit(W.Tick(log=log, tag="slow", sleep=0.35),
                                  recurring=tm.RecurringSchedule(0.1, max_occurrences=3)).id  # fmt: skip
    wait_for(lambda: len(s.history_of(tid)) == 3, 10, what="three occurrences")
    skipped = of(drain(sub), tm.RecurringSkipped, tid)
    assert skipped and all(e.skipped >= 2 for e in skipped)  # ~3 fire times per run: one runs, the rest skip
    spans = list(zip(entries(log, "start", "slow"), entries(log, "end", "slow"), strict=True))
    assert all(b[0]["t"] >= a[1]["t"] for a, b in itertools.pairwise(spans))  # never overlapping


def test_pause_resume_and_cancel_a_recurring_schedule(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True)
    h = s.domain(W.flow)
    task = W.Tick(log=log, tag="p")
    tid = h.submit(task, recurring=0.1).id
    wait_for(lambda: len(entries(log, "end", "p")) >= 2, 10)
    assert h.pause_recurring(task)  # by the task itself (its key); the id works too
    time.sleep(0.15)  # a running occurrence finishes; its successor is queued paused
    n = len(entries(log, "start", "p"))
    time.sleep(0.4)
    assert len(entries(log, "start", "p")) == n and s.recurring_schedules()[0].paused
    assert s.resume_recurring(tid)
    wait_for(lambda: len(entries(log, "start", "p")) >= n + 2, 10)
    assert s.cancel_recurring(tid) and s.recurring_schedules() == []
    time.sleep(0.15)
    n = len(entries(log, "start", "p"))
    time.sleep(0.35)
    assert len(entries(log, "start", "p")) == n and not s.pause_recurring(tid)


def test_a_cron_schedule_with_a_time_zone_fires_on_its_seconds(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True)
    sched = tm.RecurringSchedule(cron="* * * * * *", timezone="Europe/Berlin", max_occurrences=2)  # every second
    tid = s.domain(W.flow).submit(W.Tick(log=log, tag="cron"), recurring=sched).id
    [info] = s.recurring_schedules()
    assert info.cron == "* * * * * *" and info.timezone == "Europe/Berlin" and info.next_run is not None
    assert info.next_run == int(info.next_run) and info.next_run > time.time() - 1.0  # due within the second
    wait_for(lambda: len(s.history_of(tid)) == 2, 10)
    assert all(e["t"] % 1.0 < 0.1 for e in entries(log, "start", "cron"))  # fired on whole seconds


# -- TTL -------------------------------------------------------------------------------------------------------


def test_ttl_from_submission_expires_at_dispatch_and_cascades_to_dependents(
    make_scheduler: Any, log: str, tmp_path: Path
) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True, expiry_sweep_interval=60)
    sub = s.subscribe()
    h = s.domain(W.flow)
    gate = tmp_path / "gate"
    h.submit(W.Step(log=log, tag="busy", gate=str(gate)))
    wait_for(lambda: entries(log, "start", "busy"), 10)
    stale = h.submit(W.Step(log=log, tag="stale"), ttl=0.2).id
    after = h.submit(W.Step(log=log, tag="after"), depends_on=[stale]).id
    time.sleep(0.3)
    gate.touch()  # the worker frees up: the claim finds the task past its TTL and expires it instead
    rec = final(s, stale)
    assert rec.status == "expired" and final(s, after).status == "dependency_failed"
    assert not entries(log, "start", "stale") and not entries(log, "start", "after")
    [expired] = of(events_until(sub, lambda evs: bool(of(evs, tm.TaskExpired, stale))), tm.TaskExpired, stale)
    assert expired.age >= 0.3


def test_ttl_from_first_attempt_and_the_periodic_sweep(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True, expiry_sweep_interval=0.1)
    h = s.domain(W.flow)
    gate = tmp_path / "gate"
    h.submit(W.Step(log=log, tag="busy", gate=str(gate)))
    wait_for(lambda: entries(log, "start", "busy"), 10)
    late = h.submit(W.Step(log=log, tag="late"), ttl=0.2, ttl_from="first_attempt").id
    retried = h.submit(W.Retrier(log=log, tag="retry", retry_after=2.0), ttl=0.3, ttl_from="first_attempt").id
    swept = h.submit(W.Step(log=log, tag="swept"), ttl=0.2, run_after=30).id  # delayed: only the sweep sees it
    time.sleep(0.4)  # longer than both first-attempt TTLs: their clocks have not started yet
    assert final(s, swept, 5).status == "expired"
    gate.touch()
    assert final(s, late).status == "completed"
    rec = final(s, retried)  # its first attempt failed; the retry (2 s later) came after its TTL
    assert rec.status == "expired" and len(entries(log, "start", "retry")) == 1


def test_children_inherit_the_remaining_ttl_and_expire_with_it(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(DOMAINS, workers=1, start=True, expiry_sweep_interval=0.1)
    parent = s.domain(W.flow).submit(W.Delayer(log=log, children=2, child_delay=30), ttl=0.5).id
    rec = final(s, parent)
    assert rec.status == "failed" and "expired" in (rec.last_error or "")  # fail_fast: an expired child fails it
    assert sorted(k.status for k in s.children(parent)) == ["cancelled", "expired"] or \
        [k.status for k in s.children(parent)] == ["expired", "expired"]  # fmt: skip
    assert not entries(log, "finalize", "delayer")


def test_cancelling_a_waiting_parent_cancels_its_children_and_skips_finalize(
    make_scheduler: Any, log: str, tmp_path: Path
) -> None:
    s = make_scheduler(DOMAINS, workers=2, start=True)
    up = s.domain(W.flow).submit(W.Upload(log=log, name="c", parts=3, gate=str(tmp_path / "never"))).id
    wait_for(lambda: [t.id for t in s.waiting_tasks()] == [up], 10, what="the parent to wait")
    wait_for(lambda: entries(log, "start"), 10)  # at least one part is running (held by its gate)
    assert s.cancel(up)
    assert final(s, up).status == "cancelled"
    kids = wait_for(lambda: (k := s.children(up)) and all(c.finished for c in k) and k, 10)
    assert {k.status for k in kids} == {"cancelled"}
    assert not entries(log, "finalize", "c")

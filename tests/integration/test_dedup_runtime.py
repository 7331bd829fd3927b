"""Dedup outcomes that need a running scheduler: requeue of a running task, a key freed by finishing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

import taskmill as tm
from tests.helpers import entries, wait_for
from tests.integration import domains as D


def test_resubmitting_a_running_task_requeues_it_to_run_once_more(
    make_scheduler: Any, log: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    s = make_scheduler(start=True)
    h = s.domain(D.main)
    task = D.Keyed(log=log, k="rq", gate=str(gate))
    first = h.submit(task)
    wait_for(lambda: entries(log, "start"), timeout=10, what="the task to start")
    again = h.submit(task)
    assert (again.kind, again.id) == ("requeued", first.id)
    assert h.submit(task).kind == "duplicate"  # already requeued at this priority
    gate.touch()
    assert s.wait_until_idle(10)
    starts, ends = entries(log, "start"), entries(log, "end")
    assert len(starts) == len(ends) == 2  # exactly once more
    assert {e["id"] for e in starts} == {first.id}
    assert starts[1]["t"] >= ends[0]["t"]  # after it finished, never alongside
    assert [r.status for r in s.history_of(first.id)] == ["completed", "completed"]


def test_a_less_urgent_resubmission_does_not_downgrade_a_requeue(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    s = make_scheduler(start=True)
    h = s.domain(D.main)
    task = D.Keyed(log=log, k="rq0", gate=str(gate))
    first = h.submit(task)
    wait_for(lambda: entries(log, "start"), timeout=10, what="the task to start")
    assert h.submit(task, priority=tm.Priority.REALTIME).kind == "requeued"
    try:
        assert h.submit(task, priority=tm.Priority.NORMAL).kind == "duplicate"
    finally:
        gate.touch()
    assert s.wait_until_idle(10)
    starts = entries(log, "start")
    assert [e["id"] for e in starts] == [first.id, first.id]
    assert starts[1]["priority"] == tm.Priority.REALTIME


def test_a_key_is_free_again_after_its_task_finishes(make_scheduler: Any, log: str) -> None:
    s = make_scheduler()
    h = s.domain(D.main)
    task = D.Keyed(log=log, k="free")
    first = h.submit(task)
    s.start()
    assert s.wait_until_idle(10)
    second = h.submit(task)
    assert second.kind == "inserted" and second.id != first.id
    assert s.wait_until_idle(10)
    assert [e["id"] for e in entries(log, "start")] == [first.id, second.id]
    assert [r.status for r in s.history_of(first.id)] == ["completed"]
    assert [r.status for r in s.history_of(second.id)] == ["completed"]


def test_a_superseded_task_runs_once_with_the_new_payload(make_scheduler: Any, log: str) -> None:
    s = make_scheduler()
    h = s.domain(D.main)
    first = h.submit(D.Keyed(log=log, k="sup", tag="old"))
    out = h.submit(D.Keyed(log=log, k="sup", tag="new"), on_duplicate="supersede")
    assert (out.kind, out.id, out.replaced_id) == ("superseded", first.id, first.id)
    s.start()
    assert s.wait_until_idle(10)
    assert [(e["tag"], e["id"]) for e in entries(log, "start")] == [("new", first.id)]
    hist = s.history_of(first.id)
    assert sorted(r.status for r in hist) == ["completed", "superseded"]
    done = next(r for r in hist if r.status == "completed")
    assert msgspec.msgpack.decode(done.payload)["tag"] == "new"  # type: ignore[arg-type]


def test_history_of_a_task_is_newest_first(make_scheduler: Any, log: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    s = make_scheduler()
    h = s.domain(D.main)
    sup = h.submit(D.Keyed(log=log, k="h-sup", tag="old"))
    h.submit(D.Keyed(log=log, k="h-sup", tag="new"), on_duplicate="supersede")
    s.start()
    assert s.wait_until_idle(10)
    rq_task = D.Keyed(log=log, k="h-rq", tag="rq", gate=str(gate))
    rq = h.submit(rq_task)
    wait_for(lambda: entries(log, "start", "rq"), timeout=10, what="the task to start")
    assert h.submit(rq_task).kind == "requeued"
    gate.touch()
    assert s.wait_until_idle(10)
    for tid in (sup.id, rq.id):
        done = [r.completed_at for r in s.history_of(tid)]
        assert len(done) == 2 and done == sorted(done, reverse=True), tid
    assert [r.status for r in s.history_of(sup.id)] == ["completed", "superseded"]


def test_lookup_finds_a_task_while_active_and_after_it_finished(make_scheduler: Any, log: str) -> None:
    s = make_scheduler()
    h = s.domain(D.main)
    task = D.Keyed(log=log, k="look")
    assert h.lookup(task).location == "not_found"
    out = h.submit(task)
    found = h.lookup(task)
    assert found.location == "active" and found.record is not None and found.record.id == out.id
    s.start()
    assert s.wait_until_idle(10)
    past = h.lookup(task)
    assert past.location == "history" and past.record is not None
    assert past.record.task_id == out.id and past.record.status == "completed"

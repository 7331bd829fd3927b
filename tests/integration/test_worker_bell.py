"""A worker whose executors are all sync reads its frames itself between tasks. While an executor runs, the
frames it must see still land: the supervisor rings the worker's bell after a reply or a cancel, and the
worker's reader thread reads up to it."""

from __future__ import annotations

from typing import Any

import taskmill as tm

from ..helpers import entries, wait_for
from . import bell_domains as B
from . import domains as D


def _workers(s: tm.Scheduler) -> list[Any]:
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    return list(sup.dispatcher.workers)


def test_replies_reach_a_sync_executor_that_waits_for_them(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([B.bell], workers=1, start=True)
    parent = s.domain(B.bell).submit(B.Parent(log=log, tag="p", kids=3)).id
    end = wait_for(lambda: (entries(log, "end", "p") or [None])[0], 20, what="the parent to end")
    [start] = entries(log, "start", "p")
    assert end["t"] - start["t"] < 5.0  # four replies, each read while the executor waited (the limit is 60 s)
    assert len(end["spawned"]) == 3 and end["seen"] == sorted(end["spawned"])
    wait_for(lambda: len(entries(log, "ran")) == 3, 20, what="the children to run")
    assert s.wait_until_idle(20)
    assert [r.status for r in s.history_of(parent)] == ["completed"]
    [w] = _workers(s)
    assert w.bell is not None  # this worker reads on its bell


def test_a_cancel_reaches_a_running_sync_executor_and_the_next_task_still_runs(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([B.bell], workers=1, start=True)
    h = s.domain(B.bell)
    loop = h.submit(B.Loop(log=log, tag="loop")).id
    [start] = wait_for(lambda: entries(log, "start", "loop"), 20, what="the loop to start")
    after = h.submit(B.Kid(log=log, tag="after")).id  # queued behind it: the worker is busy
    assert s.cancel(loop)
    [end] = wait_for(lambda: entries(log, "end", "loop"), 10, what="the loop to see the cancel")
    assert end["cancelled"] is True and end["pid"] == start["pid"]  # the flag, not a kill
    wait_for(lambda: entries(log, "ran", "after"), 10, what="the task behind it")
    assert s.wait_until_idle(20)
    assert s.history_of(loop)[0].status == "cancelled" and s.history_of(after)[0].status == "completed"


def test_a_worker_with_an_event_loop_has_no_bell(make_scheduler: Any) -> None:
    s = make_scheduler([D.main], workers=1, start=True)  # D.main has async executors
    wait_for(lambda: _workers(s) and all(w.alive for w in _workers(s)), 30, what="the worker to start")
    assert [w.bell for w in _workers(s)] == [None]

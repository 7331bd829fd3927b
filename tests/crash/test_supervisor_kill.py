"""The supervisor SIGKILLed mid-run and restarted: nothing lost, re-runs only of what was running."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

import taskmill as tm
from tests.conftest import kill_all
from tests.helpers import entries, max_overlap, start_supervisor, stop_process, wait_for
from tests.integration import domains as D


def _workers_of(pid: int) -> list[psutil.Process]:
    try:
        return [p for p in psutil.Process(pid).children(recursive=True) if "taskmill.workers" in " ".join(p.cmdline())]
    except psutil.Error:
        return []


def _kill_group(proc: Any) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _idle(db: Path) -> bool:
    with tm.connect(db) as c:
        counts = c.status_counts()
    return counts["pending"] == 0 and counts["running"] == 0


def test_supervisor_killed_mid_run_and_restarted_loses_nothing(db: Path, log: str, tmp_path: Path) -> None:
    n = 300
    with tm.connect(db) as c:
        out = c.domain(D.main).submit_batch([D.Note(log=log, tag=f"t{i}", sleep=0.01) for i in range(n)])
    ids = out.inserted()
    assert len(ids) == n

    first = start_supervisor(tmp_path, db, workers=2)
    second = None
    try:
        wait_for(lambda: len(entries(log, "end")) >= 60, timeout=30, what="60 completions")
        old_workers = _workers_of(first.pid)
        assert old_workers, "the supervisor had no worker processes"
        _kill_group(first)
        assert first.returncode == -signal.SIGKILL
        # the old workers must not outlive their supervisor (or they could run a task twice at once)
        _, alive = psutil.wait_procs(old_workers, timeout=5)
        assert not alive, f"workers outlived their supervisor: {[p.pid for p in alive]}"

        with tm.connect(db) as c:
            left_running = {t.id for t in c.running_tasks(limit=1000)}
            assert c.pending_count() > 0, "the kill came too late to interrupt anything"
            assert all(t.retry_count == 0 for t in c.running_tasks(limit=1000))
        executed_before_restart = Counter(e["id"] for e in entries(log, "start"))

        second = start_supervisor(tmp_path, db, workers=2)
        wait_for(lambda: _idle(db), timeout=60, interval=0.05, what="the restarted supervisor to drain the queue")
        assert stop_process(second) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                _kill_group(proc)

    with tm.connect(db) as c:
        history = c.history(limit=10 * n)
    completed = [r.task_id for r in history if r.status == "completed"]
    assert sorted(completed) == sorted(ids)  # every task completed, exactly one terminal row each
    assert {r.status for r in history} == {"completed"}
    assert all(r.retry_count == 0 for r in history)  # the crash did not use up a retry

    runs = Counter(e["id"] for e in entries(log, "start"))
    assert set(runs) == set(ids)  # none lost
    twice = {tid for tid, k in runs.items() if k > 1}
    assert len(twice) <= 128
    # a task ran again only if it was running (claimed, not yet recorded) when the supervisor died
    assert twice <= left_running, (twice - left_running, left_running)
    assert all(executed_before_restart[t] == 1 and runs[t] == 2 for t in twice)
    # and never two executions of one task at the same time
    per_task: dict[int, list[tuple[float, float]]] = {}
    starts: dict[tuple[int, int, int], float] = {}
    for e in entries(log):
        key = (e["id"], e["attempt"], e["pid"])
        if e["ev"] == "start":
            starts[key] = e["t"]
        elif key in starts:
            per_task.setdefault(e["id"], []).append((starts.pop(key), e["t"]))
    assert all(max_overlap(spans) == 1 for spans in per_task.values())


def test_workers_do_not_outlive_a_killed_supervisor(db: Path, log: str, tmp_path: Path) -> None:
    """A worker busy with a long task when its supervisor is SIGKILLed must die too: otherwise the restarted
    supervisor re-runs the task while the orphan is still running it (two live executions of one task)."""
    with tm.connect(db) as c:
        out = c.domain(D.main).submit(D.Hang(log=log, tag="long", seconds=6))
    first = start_supervisor(tmp_path, db, workers=1)
    second = None
    orphans: list[psutil.Process] = []
    try:
        [start] = wait_for(lambda: entries(log, "start", "long"), timeout=30)
        orphans = _workers_of(first.pid)
        _kill_group(first)
        second = start_supervisor(tmp_path, db, workers=1)
        wait_for(lambda: len(entries(log, "start", "long")) == 2, timeout=30, what="the re-run")
        # the re-run may only start once the first execution can no longer be running
        assert not psutil.pid_exists(start["pid"]) or psutil.Process(start["pid"]).status() == psutil.STATUS_ZOMBIE
        wait_for(lambda: _idle(db), timeout=30)
        with tm.connect(db) as c:
            assert [r.status for r in c.history_of(out.id)] == ["completed"]  # type: ignore[arg-type]
    finally:
        kill_all([p for p in orphans if p.is_running()])
        if second is not None:
            stop_process(second)
        if first.poll() is None:
            _kill_group(first)

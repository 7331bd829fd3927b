"""A long task's worker dies with its SIGKILLed supervisor (the random-kill scenarios, with the ledger and
its checker, are in test_random_supervisor_kills.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil

import taskmill as tm
from tests.conftest import kill_all
from tests.helpers import entries, start_supervisor, stop_process, wait_for
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

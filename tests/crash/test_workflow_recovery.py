"""Workflow state is in the database: blocked dependents and a waiting parent survive a supervisor SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import taskmill as tm
from tests.helpers import entries, env_for_subprocess, stop_process, wait_for
from tests.integration import workflow_domains as W

SCRIPT = """\
import sys

import taskmill as tm
from tests.integration import workflow_domains as W

tm.Scheduler(sys.argv[1], [W.flow, W.side], workers=2, shutdown=tm.ShutdownMode.graceful(5)).run()
"""


def start(tmp_path: Path, db: Path) -> subprocess.Popen[bytes]:
    script = tmp_path / "workflow_supervisor.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), str(db)], env=env_for_subprocess(), cwd=str(tmp_path),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_blocked_tasks_and_a_waiting_parent_survive_a_kill_and_finish_after_restart(
    db: Path, log: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with tm.connect(db) as c:
        first = c.domain(W.flow).submit(W.Step(log=log, tag="first", gate=str(gate))).id
        blocked = c.domain(W.side).submit(W.SideStep(log=log, tag="blocked"), depends_on=[first]).id
        parent = c.domain(W.flow).submit(W.Upload(log=log, name="up", parts=2, gate=str(gate))).id
    proc = start(tmp_path, db)
    again = None
    try:
        with tm.connect(db) as c:
            wait_for(lambda: [t.id for t in c.waiting_tasks()] == [parent], 30, what="the parent to wait")
            wait_for(lambda: entries(log, "start", "first"), 30)
        kill(proc)
        with tm.connect(db) as c:
            assert c.task(blocked).status == "blocked" and c.task_dependencies(blocked) == [first]  # type: ignore[union-attr]
            assert c.task(parent).status == "waiting" and len(c.children(parent)) == 2  # type: ignore[union-attr]
        gate.touch()
        again = start(tmp_path, db)
        with tm.connect(db) as c:
            done = wait_for(lambda: (c.history_of(parent) or [None])[0], 30, what="the parent to finish")
            assert done.status == "completed"
            assert wait_for(lambda: (c.history_of(blocked) or [None])[0], 30).status == "completed"
            assert c.blocked_count() == 0 and c.waiting_tasks() == []
        assert stop_process(again) == 0
    finally:
        for p in (proc, again):
            if p is not None and p.poll() is None:
                kill(p)
    [fin] = entries(log, "finalize", "up")
    assert fin["upload_id"] == "up-up" and fin["statuses"] == ["completed", "completed"]
    assert entries(log, "start", "blocked")[0]["t"] >= max(e["t"] for e in entries(log, "end", "first"))

"""F2: SIGKILL at each named fault point (``TASKMILL_FAULTPOINT=name:n``, taskmill/faults.py), then restart.

Pass: the F1 invariants at every point. At ``after_submit_commit_before_ack`` the submitter never hears back
(its tasks count as *recovered*), and submitting the same tasks again adds no row.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

import pytest

import taskmill as tm
from taskmill import faults
from tests.crash import faulty, ledger
from tests.crash.harness import Run, alive, publish, size
from tests.crash.ledger import read

SUPERVISOR_POINTS = ["after_claim_commit", "after_send_to_worker", "after_result_recv", "before_terminal_commit",
                     "mid_checkpoint"]  # fmt: skip


def _wait_exit(proc: subprocess.Popen[bytes], run: Run, timeout: float) -> int | None:
    """The fault's SIGKILL, or None if the run drained first (the point was passed fewer than n times)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if not run.unfinished():
            return None
        assert time.monotonic() < deadline, "neither killed nor drained"
        time.sleep(0.01)
    return proc.returncode


def test_the_points_are_known_and_validated() -> None:
    assert set(SUPERVISOR_POINTS) | {"after_submit_commit_before_ack", "after_preempt_signal"} == faults.POINTS
    assert faults._parse("after_claim_commit:3") == ("after_claim_commit", 3)
    for bad in ("nowhere:1", "after_claim_commit:0"):
        with pytest.raises(ValueError):
            faults._parse(bad)
    assert faults.FAULTS is False and faults.vfs_name() is None  # the suite itself runs without faults


def test_a_supervisor_killed_at_each_fault_point_loses_nothing(tmp_path: Path) -> None:
    """Each round: one queue, and a supervisor armed at each point in turn (random order, random pass),
    restarted after every kill; the last one runs unarmed and drains the queue."""
    rng = random.Random(2)
    rounds, tasks = size(1, 20), size(250, 2000)
    fired: dict[str, int] = dict.fromkeys(SUPERVISOR_POINTS, 0)
    totals = {"acked": 0, "executions": 0, "duplicated": 0, "lost": 0, "overlap": 0, "unexpected": 0}
    for i in range(rounds):
        run = Run(tmp_path, f"round{i}")
        try:
            run.submit_here(tasks, seed=i, batch_max=50, ms_max=3.0, async_share=0.3)
            for point in rng.sample(SUPERVISOR_POINTS, len(SUPERVISOR_POINTS)):
                sup = run.serve(workers=2, fault=f"{point}:{rng.randint(1, 3)}", fork=True)
                rc = _wait_exit(sup, run, 60)
                if rc is None:  # drained before the point was passed often enough
                    assert run.stop(sup) == 0
                    continue
                assert rc == -9, f"supervisor exited {rc}: {sup.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
                fired[point] += 1
                run.kills += 1
                run.running_at_kills |= run.running_ids()
                run.check_integrity()
            sup = run.serve(workers=2, fork=True)
            run.wait_drained(60, sup)
            assert run.stop(sup) == 0
            run.check_integrity()
            report = run.check("F2 supervisor fault points", ended_ok=())
            report.assert_ok()
            assert run.counts() == {"completed": tasks}
            for k in totals:
                totals[k] += getattr(report, k)
        finally:
            run.close()
    assert all(fired.values()), f"points never reached: {[p for p, n in fired.items() if not n]}"
    publish({"scenario": "F2 supervisor fault points", "rounds": rounds, "kills": fired, **totals})


def test_a_submitter_killed_between_commit_and_acknowledgement(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        tasks = size(200, 2000)
        first = run.submit(tasks, seed=7, batch_max=30, fault="after_submit_commit_before_ack:3", fork=True)
        first.wait(60)
        assert first.returncode == -9
        acked_before, unacked = run.acks()
        assert unacked, "the killed submit left nothing unacknowledged"
        rows_before = run._query("SELECT count(*) FROM tasks")[0][0]
        assert rows_before == len(acked_before) + len(unacked)  # the unanswered batch did commit
        # the submitter retries the whole range with the same tasks: the committed ones are duplicates
        run.next_n = 1
        again = run.submit(tasks, seed=7, batch_max=30, fork=True)
        assert again.wait(60) == 0
        rows = run._query("SELECT count(*) FROM tasks")[0][0]
        assert rows == tasks  # one row per task, whatever the submitter saw
        sup = run.serve(workers=2, fork=True)
        run.wait_drained(60, sup)
        assert run.stop(sup) == 0
        run.check_integrity()
        report = run.check("F2 after_submit_commit_before_ack", ended_ok=())
        report.assert_ok()
        assert report.recovered >= 1 and report.duplicated == 0
        publish(report, point="after_submit_commit_before_ack")
    finally:
        run.close()


def test_a_supervisor_killed_right_after_a_preemption_signal(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        with tm.connect(run.db) as c:
            h = c.domain(faulty.fault)
            low = [h.submit(faulty.Deaf(ledger=run.ledger, n=i, seconds=30), priority=tm.Priority.BACKGROUND)
                   for i in (1, 2)]  # fmt: skip
            sup = run.serve(workers=2, fault="after_preempt_signal:1", preempt_grace=5, fork=True)
            run.wait_ledger(2)
            urgent = h.submit(faulty.Job(ledger=run.ledger, n=3), priority=tm.Priority.REALTIME)
            assert sup.wait(10) == -9
            run.kills += 1
            run.running_at_kills |= run.running_ids()
            run.check_integrity()
            children = [int(x) for x in Path(run.ledger + ".children").read_text().split()]
            assert children and all(alive(p) for p in children)  # the old attempts' grandchildren live on
            sup = run.serve(workers=2, preempt_grace=5, fork=True)
            run.wait_ledger(4)
            # the restart killed what the old attempts had started before running them again
            assert not any(alive(p) for p in children)
            run.wait_drained(30, sup)
            assert run.stop(sup) == 0
            run.check_integrity()
            for out in [*low, urgent]:
                assert [r.status for r in c.history_of(out.id)] == ["completed"]  # type: ignore[arg-type]
        acked = {1: low[0].id, 2: low[1].id, 3: urgent.id}
        report = ledger.check("F2 after_preempt_signal", read(run.ledger), acked, run.db,  # type: ignore[arg-type]
                              allowed={1, 2}, ended_ok=())  # fmt: skip
        report.assert_ok()
        publish(report, point="after_preempt_signal")
    finally:
        run.close()

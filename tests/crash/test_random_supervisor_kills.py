"""F1: the supervisor SIGKILLed at random moments while submitters keep submitting, then restarted at once.

Pass: lost = 0, unexpected = 0, overlap = 0; a task runs twice only if it was running at a kill; the crash
never counts as a retry; integrity_check ok after every kill; the killed supervisor's workers are gone
within 2 s; a restarted supervisor dispatches within 3 s.

Both tiers run 10 runs of 5,000 tasks. The CI tier keeps that cheap: no-op tasks (the ledger's bookkeeping
only), one or two kills per run, one worker and two submitters, supervisors and submitters forked from
the test process (a restart costs the worker's boot, not a Python start-up and imports as well), and
``durability="normal"``: a process crash loses nothing under either setting (power cuts are F11), and it
spares each run some 500 fsyncs, one per dispatch turn. What is left is about 0.3 ms of CPU per task
(dispatch, execution, the ledger) and a third of a second per worker boot. The full tier has tasks of up to
10 ms, five kills per run, four workers, eight submitters and the default durability, each process started
afresh.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.crash.harness import Run, alive, publish, size, soak
from tests.crash.ledger import read


def _one_run(root: Path, index: int, tasks: int, kills: int, workers: int, submitters: int) -> dict[str, float]:
    rng = random.Random(1000 + index)
    run = Run(root, f"run{index}")
    worst_worker_exit = worst_first_dispatch = 0.0
    fork = not soak()
    durability = size("normal", "full")  # a process crash loses nothing under either (power cuts: F11)
    try:
        sup = run.serve(workers=workers, fork=fork, durability=durability)
        share = tasks // submitters
        for i in range(submitters):
            run.submit(share, seed=index * 100 + i, batch_max=40, ms_max=size(0.0, 10.0), async_share=size(0.05, 0.3),
                       pause_ms=size(1.0, 10.0), fork=fork, durability=durability)  # fmt: skip
        for _ in range(kills):
            before = len(read(run.ledger).executions)
            if rng.random() < 0.25:
                time.sleep(rng.uniform(0.0, size(0.3, 0.4)))  # during start-up, recovery or the first turns
            else:
                run.wait_ledger(before + 1)  # dispatching: now kill it somewhere in the middle
                time.sleep(rng.uniform(0.0, size(0.3, 1.5)))
            old_workers = run.kill(sup)
            run.check_integrity()
            t_kill = time.monotonic()
            sup = run.serve(
                workers=workers, fork=fork, durability=durability
            )  # at once: the old workers may not be gone yet
            while any(alive(p) for p in old_workers):
                assert time.monotonic() - t_kill < 2.0, f"workers {old_workers} outlived their supervisor by 2 s"
                time.sleep(0.005)
            worst_worker_exit = max(worst_worker_exit, time.monotonic() - t_kill)
            if run.unfinished():
                seen = len(read(run.ledger).executions)
                run.wait_ledger(seen + 1, timeout=3.0)
                worst_first_dispatch = max(worst_first_dispatch, time.monotonic() - t_kill)
        summaries = run.wait_submitters()
        assert all(not s["errors"] for s in summaries), summaries
        run.wait_drained(120, sup)
        assert run.stop(sup) == 0
        run.check_integrity()
        report = run.check("F1 supervisor SIGKILL at random moments", ended_ok=())
        report.assert_ok()
        # the crash is not the task's fault: no retry counted, every task completed exactly once in the db
        counts = run.counts()
        assert counts == {"completed": report.acked}, counts
        assert not run._query("SELECT id FROM tasks WHERE retry_count <> 0")
        return {"acked": report.acked, "executions": report.executions, "lost": report.lost,
                "unexpected": report.unexpected, "duplicated": report.duplicated, "overlap": report.overlap,
                "kills": run.kills, "running_at_kills": len(run.running_at_kills),
                "worker_exit_s": worst_worker_exit, "first_dispatch_s": worst_first_dispatch}  # fmt: skip
    finally:
        run.close()


@pytest.mark.timeout(240)  # about 20 s on two idle cores; much more when the machine is shared
def test_random_supervisor_kills_lose_nothing_and_never_run_a_task_twice_at_once(tmp_path: Path) -> None:
    runs, tasks = 10, 5000
    workers, submitters = size(1, 4), size(2, 8)
    totals: dict[str, float] = {}
    for i in range(runs):
        kills = size(1 + i % 2, 5)
        figures = _one_run(tmp_path, i, tasks, kills, workers, submitters)
        for k, v in figures.items():
            totals[k] = max(totals.get(k, 0), v) if k.endswith("_s") else totals.get(k, 0) + v
    publish({"scenario": "F1 supervisor SIGKILL at random moments", "runs": runs, **totals})

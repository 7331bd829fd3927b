"""F6: SIGTERM to a running supervisor (graceful), then a second SIGTERM during the grace (hard).

Pass: after SIGTERM no task starts; a graceful stop exits 0 within grace + 2 s, once its running tasks have
completed; a second SIGTERM stops within 1 s, and the interrupted tasks run again at the next start, without
using a retry (lost = 0; re-runs only of what was running).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import taskmill as tm
from tests.crash import faulty, ledger
from tests.crash.harness import Run, publish
from tests.helpers import wait_for

SLACK = 1.5  # a loaded 2-core machine


def _started_after(run: Run, t: float) -> list[ledger.Execution]:
    return [e for e in ledger.read(run.ledger).executions if e.start / 1e9 > t]


def test_graceful_then_forced_shutdown(tmp_path: Path) -> None:
    run = Run(tmp_path)
    job = faulty.Job
    try:
        run.add([job(ledger=run.ledger, n=n, first_ms=800) for n in (1, 2)])
        run.add([job(ledger=run.ledger, n=n, ms=1) for n in range(3, 23)])
        sup = run.serve(workers=2, grace=5, fork=True)
        wait_for(lambda: len(ledger.read(run.ledger).executions) >= 2, 30)
        t_term = time.monotonic()
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(5 + 2 + SLACK) == 0
        graceful_s = time.monotonic() - t_term
        assert not _started_after(run, t_term)  # nothing started after SIGTERM
        ran = ledger.read(run.ledger).executions
        assert {e.n for e in ran} == {1, 2} and all(e.how == "E" for e in ran)  # both finished, in time
        assert run.counts() == {"completed": 2, "pending": 20}

        # forced: a second SIGTERM while long tasks run
        run.add([job(ledger=run.ledger, n=n, first_ms=30_000) for n in (23, 24)], priority=tm.Priority.HIGH)
        sup = run.serve(workers=2, grace=30, fork=True)
        wait_for(lambda: {23, 24} <= {e.n for e in ledger.read(run.ledger).executions}, 30)
        running = run.running_ids()
        sup.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        t_second = time.monotonic()
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(1 + SLACK) == 0
        forced_s = time.monotonic() - t_second
        assert not run.running_ids()  # the interrupted tasks are back in the queue
        run.running_at_kills |= running
        sup = run.serve(workers=2, fork=True)
        run.wait_drained(60, sup)
        assert run.stop(sup) == 0
        run.check_integrity()
        report = run.check("F6 graceful and forced shutdown", ended_ok=())
        report.assert_ok()
        assert not run._query("SELECT id FROM tasks WHERE retry_count <> 0")  # a shutdown is not a failure
        publish(report, graceful_exit_s=round(graceful_s, 3), forced_exit_s=round(forced_s, 3))
    finally:
        run.close()

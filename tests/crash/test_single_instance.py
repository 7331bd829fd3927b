"""F12: one supervisor per database, and no database handles in worker processes.

Pass: a second supervisor on a database that is being dispatched fails within 2 s naming the first one's
pid (as a process: non-zero exit; embedded: ``SupervisorRunning``), and no task is claimed twice; workers
hold no file descriptor on the database, its WAL or its shared-memory file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import taskmill as tm
from tests.crash import faulty
from tests.crash.harness import Run, publish, worker_pids
from tests.helpers import wait_for


def _db_fds(pid: int, db: str) -> list[str]:
    names = (db, db + "-wal", db + "-shm")
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target in names:
            out.append(target)
    return out


def test_a_second_supervisor_is_refused_and_workers_hold_no_database_handle(tmp_path: Path) -> None:
    run = Run(tmp_path)
    try:
        run.submit_here(400, ms_max=4.0, async_share=0.3)
        first = run.serve(workers=2)
        run.wait_ledger(20)
        t0 = time.monotonic()
        second = run.serve(workers=2)
        rc = second.wait(2 + 3)  # 2 s, plus slack for a loaded machine
        refused_after = time.monotonic() - t0
        err = second.stderr.read().decode()  # type: ignore[union-attr]
        assert rc != 0 and "already running" in err and str(first.pid) in err, (rc, err[-1000:])
        embedded = tm.Scheduler(run.db, [faulty.fault], workers=1)
        try:
            with pytest.raises(tm.SupervisorRunning) as caught:  # embedded: the typed error, at once
                embedded.start(timeout=10)
            assert caught.value.pid == first.pid
        finally:
            embedded.close()

        workers = wait_for(lambda: worker_pids(first.pid) if len(worker_pids(first.pid)) == 2 else None, 10)
        held = {pid: _db_fds(pid, os.path.realpath(run.db)) for pid in workers}
        assert not any(held.values()), held  # workers never open the database
        assert _db_fds(first.pid, os.path.realpath(run.db))  # (the check does see the supervisor's)

        run.wait_drained(60, first)
        assert run.stop(first) == 0
        report = run.check("F12 single instance", ended_ok=())
        report.assert_ok()
        assert report.duplicated == 0  # no task claimed twice
        publish(report, second_refused_after_s=round(refused_after, 3), worker_db_fds=0)
    finally:
        run.close()


def test_looking_up_the_running_supervisor_never_makes_one_that_is_starting_fail(tmp_path: Path) -> None:
    """``taskmill status`` and health checks find the holder by taking the lock for an instant; a supervisor
    starting in that instant must not take the probe for another supervisor."""
    import threading

    from taskmill.supervisor.lock import SupervisorLock

    db = str(tmp_path / "tasks.db")
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            SupervisorLock(db).holder()

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        for _ in range(200):
            lock = SupervisorLock(db)
            lock.acquire()  # raised SupervisorRunning(None) when it met a probe
            assert SupervisorLock(db).holder() == os.getpid()
            lock.release()
    finally:
        stop.set()
        prober.join()

"""The long tier, for your own machine (``pytest tests/crash --soak`` or ``TASKMILL_SOAK=1``; skipped otherwise).

F13, soak at reduced length (``TASKMILL_SOAK_MINUTES``, default 10): a steady stream at about half capacity
with faults mixed in (workers killing themselves, time limits, SIGSTOPped workers caught by hang detection,
a leaky task, recycling by task count and memory). Pass: lost = 0, unexpected = 0, overlap = 0, re-runs only
of interrupted executions and of the task a frozen worker ran last; supervisor RSS, fds and threads flat; a dead
worker replaced within 2 s (1 s samples); the WAL under 64 MiB.

F14, wall-clock steps of +1 h and -1 h mid-run (a clock shim on every process's ``time.time``; stepping the
machine's clock would disturb everyone on it). Pass: no spurious hang kill or time-limit failure.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

import taskmill as tm
from tests.crash import faulty, ledger
from tests.crash.harness import Run, alive, publish, worker_pids
from tests.helpers import ROOT

pytestmark = pytest.mark.soak


def _stream(run: Run, until: float, rate: float, seed: int, stop: threading.Event) -> None:
    """Submit about ``rate`` tasks a second until ``until``, with the fault mix, as acknowledged tasks."""
    rng = random.Random(seed)
    acks = str(run.dir / "acks.stream")
    run.submitters.append((None, acks))
    n = 1
    with tm.connect(run.db) as c:
        h = c.domain(faulty.fault)
        while time.monotonic() < until and not stop.is_set():
            batch = []
            for _ in range(max(1, int(rate / 10))):
                r = rng.random()
                batch.append(faulty.Job(
                    ledger=run.ledger, n=n, ms=rng.uniform(1, 5), die_attempt1=r < 0.002,
                    attempt1_ms=10_000 if 0.002 <= r < 0.0025 else 0.0, leak_kb=1024 if 0.0025 <= r < 0.0125 else 0,
                ))  # fmt: skip
                n += 1
            ledger.append(acks, "T " + " ".join(str(t.n) for t in batch) + "\n")
            ids = h.submit_batch(batch).inserted()
            ledger.append(acks, "".join(f"A {t.n} {i}\n" for t, i in zip(batch, ids, strict=True)))
            time.sleep(0.1)


def _last_tasks(book: ledger.Ledger, pids: set[int]) -> set[int]:
    """The task each of ``pids`` started last. A worker is frozen while its ledger shows a task running, but the
    task may return between that read and the SIGSTOP: its ``E`` is then written while its result is not yet sent.
    The supervisor never hears of the completion, kills the worker as hung, and the task runs again, as an
    at-least-once queue must run it."""
    last: dict[int, ledger.Execution] = {}
    for e in book.executions:
        if e.pid in pids and (e.pid not in last or e.start > last[e.pid].start):
            last[e.pid] = e
    return {e.n for e in last.values()}


def _slope_mib_per_h(samples: list[tuple[float, int]]) -> float:
    n = len(samples)
    if n < 3:
        return 0.0
    mx = sum(t for t, _ in samples) / n
    my = sum(v for _, v in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    cov = sum((t - mx) * (v - my) for t, v in samples)
    return (cov / var) * 3600 / (1 << 20) if var else 0.0


def test_soak(tmp_path: Path) -> None:
    minutes = float(os.environ.get("TASKMILL_SOAK_MINUTES", "10"))
    run = Run(tmp_path)
    stop = threading.Event()
    sup = run.serve(workers=2, timeout=3, hang_timeout=5, heartbeat=1, max_tasks_per_worker=500,
                    max_worker_memory=256 << 20, max_retries=5)  # fmt: skip
    proc = psutil.Process(sup.pid)
    until = time.monotonic() + minutes * 60
    feeder = threading.Thread(target=_stream, args=(run, until, 150.0, 1, stop), daemon=True)
    rss: list[tuple[float, int]] = []
    fds: list[int] = []
    threads: list[int] = []
    pool_full = samples = short = longest_short = 0
    wal_max = stopped = 0
    frozen: set[int] = set()  # the worker pids SIGSTOPped
    rng = random.Random(2)
    try:
        time.sleep(2)
        feeder.start()
        t0 = time.monotonic()
        next_stop = t0 + 20
        while time.monotonic() < until:
            time.sleep(1.0)
            now = time.monotonic() - t0
            with proc.oneshot():
                if now > min(900.0, minutes * 60 / 4):  # after the warm-up (15 min in a long soak)
                    rss.append((now, proc.memory_info().rss))
                fds.append(proc.num_fds())
                threads.append(proc.num_threads())
            samples += 1
            full = len(worker_pids(sup.pid)) == 2
            pool_full += full
            short = 0 if full else short + 1
            longest_short = max(longest_short, short)
            wal = run.db + "-wal"
            wal_max = max(wal_max, os.path.getsize(wal) if os.path.exists(wal) else 0)
            if time.monotonic() >= next_stop:  # a hung worker: frozen, heartbeat and all
                busy = [e.pid for e in ledger.read(run.ledger).executions[-50:] if e.end is None and alive(e.pid)]
                if busy:
                    pid = rng.choice(busy)
                    os.kill(pid, signal.SIGSTOP)
                    frozen.add(pid)
                    stopped += 1
                next_stop = time.monotonic() + 20
        feeder.join(30)
        run.wait_drained(300, sup)
        assert run.stop(sup) == 0
        run.check_integrity()
        book = ledger.read(run.ledger)
        interrupted = {n for n, ex in book.by_task().items() if any(e.how != "E" for e in ex)}
        report = run.check("F13 soak", extra_allowed=interrupted | _last_tasks(book, frozen), ended_ok=())
        report.assert_ok()
        slope = _slope_mib_per_h(rss)
        growth = (rss[-1][1] - rss[0][1]) / (1 << 20)
        publish(report, minutes=minutes, hung_workers=stopped, supervisor_rss_slope_mib_per_h=round(slope, 2),
                supervisor_rss_growth_mib=round(growth, 2),
                fds=[min(fds), max(fds)], threads=[min(threads), max(threads)], pool_full_share=round(pool_full / samples, 4),
                pool_short_longest_s=longest_short,
                wal_max_bytes=wal_max)  # fmt: skip
        first, last = sorted(fds[5:15]), sorted(fds[-10:])  # (a respawn in flight holds a few more for a moment)
        assert last[len(last) // 2] - first[len(first) // 2] <= 5 and max(threads[5:]) - min(threads[5:]) <= 5
        assert longest_short <= 2  # a worker that died (and some do, on purpose) is back within 2 s
        assert wal_max < 64 << 20
        if minutes >= 60:
            assert slope < 1.0  # MiB/h, after a 15 min warm-up
        else:  # too short for a slope: SQLite's page cache alone (16 MiB) is still filling up
            assert growth < 24
    finally:
        stop.set()
        run.close()


def test_wall_clock_steps_do_not_trigger_hang_kills_or_timeouts(tmp_path: Path) -> None:
    run = Run(tmp_path)
    offset = tmp_path / "clock-offset"
    offset.write_text("0")
    env = {"TASKMILL_TEST_CLOCK_OFFSET": str(offset),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "crash" / "clockshim"), str(ROOT)])}  # fmt: skip
    try:
        acked = run.add([faulty.Job(ledger=run.ledger, n=n, ms=random.Random(n).uniform(300, 1000))
                         for n in range(1, 61)])  # fmt: skip
        sup = run.serve(workers=2, timeout=5, hang_timeout=2, heartbeat=0.5, env=env)
        run.wait_ledger(4)
        for step in ("3600", "-3600", "0"):
            time.sleep(3)
            offset.write_text(step)
        run.wait_drained(120, sup)
        assert run.stop(sup) == 0
        report = run.check("F14 wall-clock step", ended_ok=())
        report.assert_ok()
        stepped = run._query("SELECT max(started_at) FROM tasks")[0][0]
        assert stepped > time.time() * 1000 + 1800_000  # the shim did move the supervisor's wall clock
        pids = {e.pid for e in ledger.read(run.ledger).executions}
        failed = run._query("SELECT count(*) FROM tasks WHERE retry_count <> 0 OR status <> 'completed'")[0][0]
        assert len(pids) == 2 and failed == 0 and report.duplicated == 0  # no worker killed, no retry
        publish(report, steps_s=[3600, -3600, 0], tasks=len(acked), worker_kills=0, failures=0)
    finally:
        run.close()

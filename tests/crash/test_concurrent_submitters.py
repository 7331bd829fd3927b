"""F8: eight submitting processes (batches of 1-50) and a reader hammer one database while the supervisor
dispatches; two more processes submit the same idempotency keys at the same moment.

Pass: no "database is locked" (or any other error) reaches a caller; acknowledged ids == ids in the
database; one row per key; every acknowledged task runs (lost = 0, no duplicates, no overlap); the WAL stays
under 64 MiB.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import apsw
import pytest

import taskmill as tm
from taskmill.store import connection
from tests.crash import faulty
from tests.crash.harness import Forked, Run, publish, size
from tests.crash.procs import read_loop
from tests.helpers import wait_for


def test_eight_submitters_a_reader_and_racing_keys_during_dispatch(tmp_path: Path) -> None:
    run = Run(tmp_path)
    per, keys = size(250, 2500), size(100, 1000)
    stop = tmp_path / "stop-reading"
    try:
        sup = run.serve(workers=2)
        wait_for(lambda: os.path.exists(run.db + ".supervisor.lock"), 30, what="the supervisor")
        reader = Forked(read_loop, run.db, str(stop))
        run.procs.append(reader)
        for i in range(8):  # forked from this process: all submitting at once, from the first moment
            run.submit(per, seed=i, batch_max=50, ms_max=1.0, async_share=0.2, fork=True)
        run.next_n = 1_000_000
        run.submit(keys, seed=100, batch_max=10, keys=keys, fork=True)
        run.next_n = 2_000_000
        run.submit(keys, seed=200, batch_max=10, keys=keys, fork=True)
        wal, biggest = run.db + "-wal", 0
        while any(p is not None and p.poll() is None for p, _ in run.submitters):
            biggest = max(biggest, os.path.getsize(wal) if os.path.exists(wal) else 0)
            time.sleep(0.02)
        summaries = run.wait_submitters()
        stop.touch()
        out, _ = reader.communicate(timeout=30)
        read_summary = json.loads(out.decode().strip().splitlines()[-1])
        errors = [e for s in summaries for e in s["errors"]] + read_summary["errors"]
        assert not errors, errors[:5]  # no "database is locked", nothing untyped, nothing at all

        acked, _ = run.acks()
        plain = {n: tid for n, tid in acked.items() if n < 1_000_000}
        keyed = {n: tid for n, tid in acked.items() if n >= 1_000_000}
        in_db = {int(r[0]) for r in run._query("SELECT id FROM tasks WHERE domain = 'tm_fault'")}
        assert set(plain.values()) == in_db and len(plain) == 8 * per  # acked ids == ids in the database
        rows_per_key = run._query("SELECT key, count(*) FROM tasks WHERE domain = 'tm_fault_keys' GROUP BY key")
        assert len(rows_per_key) == keys and {n for _, n in rows_per_key} == {1}
        assert len(keyed) == keys  # each key acknowledged to exactly one of the two racing processes

        with tm.connect(run.db) as c:
            assert len(c.domain(faulty.keys).cancel_all()) == keys  # they were delayed an hour
        run.wait_drained(120, sup)
        assert run.stop(sup) == 0
        run.check_integrity()
        report = run.check("F8 concurrent submitters", ended_ok=("cancelled",))
        report.assert_ok()
        assert report.duplicated == 0
        latencies = sorted(x for s in summaries for x in s["latencies"])
        p99, worst = latencies[int(0.99 * len(latencies))], latencies[-1]
        publish(report, submits=sum(s["submits"] for s in summaries), submit_p99_s=round(p99, 4),
                submit_max_s=round(worst, 4), reader_loops=read_summary["loops"], wal_max_bytes=biggest)  # fmt: skip
        assert worst < 5.0  # 1 s on an idle 2-core box; generous for a loaded one
        assert biggest < 64 << 20
    finally:
        stop.touch()
        run.close()


def test_a_write_lock_held_past_the_busy_budget_gives_store_busy_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "BUSY_BUDGET_S", 0.5)
    run = Run(tmp_path)
    with tm.connect(run.db) as c:
        h = c.domain(faulty.fault)
        h.submit(faulty.Job(ledger=run.ledger, n=0))
        holder = apsw.Connection(run.db)
        holder.execute("BEGIN IMMEDIATE")  # another process's long write transaction
        try:
            t0 = time.monotonic()
            with pytest.raises(tm.StoreBusy):
                h.submit(faulty.Job(ledger=run.ledger, n=1))
            waited = time.monotonic() - t0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert 0.45 <= waited < 3.0
        assert h.submit(faulty.Job(ledger=run.ledger, n=1)).kind == "inserted"  # the lock is free again

"""F7: the disk fills up during submit and dispatch, then space comes back.

Two simulations (mounting a small filesystem needs root): a VFS over SQLite's own that fails every write
growing a file (tests/crash/diskfull.py), for every connection of this process, the embedded supervisor's
included; and ``PRAGMA max_page_count`` on one client connection, which fails inside a statement rather than
at COMMIT.

Pass: submitters get the typed ``StorageFull``; rows == acknowledged submits; the supervisor keeps running,
reports ``degraded``, and resumes within 5 s of space returning, without a restart; nothing acknowledged is
lost; integrity_check ok.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apsw
import pytest

import taskmill as tm
from taskmill.supervisor.observe import Observer
from tests.crash import faulty, ledger
from tests.crash.diskfull import DiskFullVFS
from tests.crash.harness import Run, integrity, publish, size
from tests.helpers import wait_for


@pytest.fixture
def disk() -> Iterator[DiskFullVFS]:
    vfs = DiskFullVFS()
    try:
        yield vfs
    finally:
        vfs.unregister()


def _submit_until_full(
    client: tm.Client, run: Run, first: int, limit: int, acked: dict[int, int], enough: int = 50
) -> int:
    """Submit batches until the disk has refused ``enough`` of them (a WAL with room left absorbs the first
    ones); every refusal must be StorageFull. Returns how many refused."""
    h = client.domain(faulty.fault)
    refused = 0
    for n in range(first, first + limit, 10):
        if refused >= enough:
            break
        try:
            ids = h.submit_batch([faulty.Job(ledger=run.ledger, n=i) for i in range(n, n + 10)]).inserted()
        except tm.StorageFull:
            refused += 1
            continue
        acked.update(zip(range(n, n + 10), ids, strict=True))
    return refused


def test_disk_full_during_submit_and_dispatch_then_space_returns(
    make_scheduler: Any, tmp_path: Path, disk: DiskFullVFS
) -> None:
    run = Run(tmp_path)
    tasks = size(300, 5000)
    s = make_scheduler([faulty.fault], workers=2, path=run.db)
    h = s.domain(faulty.fault)
    acked = {i: h.submit(faulty.Job(ledger=run.ledger, n=i, ms=3)).id for i in range(1, tasks + 1)}
    s.start()
    run.wait_ledger(20)
    observer = Observer(s._supervisor)  # type: ignore[arg-type]
    with tm.connect(run.db) as client:
        disk.full = True
        refused = _submit_until_full(client, run, 100_000, size(30_000, 40_000), acked)
        assert refused > 0  # the typed error reached us (any other exception would have failed the test)
        wait_for(lambda: observer.health().status == "degraded", 10, what="the supervisor to report degraded")
        time.sleep(0.5)  # dispatch keeps failing for a while: the supervisor must ride it out
        assert s.is_running and observer.health().store_error
        rows = client.status_counts()
        assert sum(rows.values()) + len(client.history(limit=100_000)) == len(acked)  # rows == acknowledged
        disk.full = False
        t0 = time.monotonic()
        wait_for(lambda: observer.health().status == "ok", 5, what="the supervisor to recover")
        recovered = time.monotonic() - t0
        assert s.wait_until_idle(60)
        drained = time.monotonic() - t0
        more = _submit_until_full(client, run, 200_000, 50, acked)  # and submitting works again
        assert more == 0 and s.wait_until_idle(30)
    s.stop()
    assert integrity(run.db) == "ok"
    report = ledger.check("F7 disk full (VFS)", ledger.read(run.ledger), acked, run.db, ended_ok=())
    report.assert_ok()
    assert report.duplicated == 0
    publish(report, refused_batches=refused, refused_writes=disk.refused, resumed_after_s=round(recovered, 3),
            drained_after_s=round(drained, 3))  # fmt: skip


def test_max_page_count_full_inside_a_statement_is_storage_full_and_writes_nothing(tmp_path: Path) -> None:
    run = Run(tmp_path)
    acked: dict[int, int] = {}
    with tm.connect(run.db) as client:
        conn: apsw.Connection = client._store().conn
        pages = int(next(iter(conn.execute("PRAGMA page_count")))[0])
        conn.execute(f"PRAGMA max_page_count = {pages + 8}")
        refused = _submit_until_full(client, run, 1, 3000, acked)
        assert refused > 0
        assert client.pending_count() == len(acked)  # a refused batch wrote nothing
        conn.execute("PRAGMA max_page_count = 1000000")  # space is back
        assert _submit_until_full(client, run, 10_000, 100, acked) == 0
        assert client.pending_count() == len(acked)
    assert integrity(run.db) == "ok"


def test_a_checkpoint_that_fails_on_a_full_disk_does_not_fail_the_commit_before_it(
    tmp_path: Path, disk: DiskFullVFS
) -> None:
    """SQLite's automatic checkpoint runs inside COMMIT and, when it cannot grow the database file, makes
    the COMMIT report SQLITE_FULL although the transaction committed. taskmill checkpoints after the commit
    instead, so an error always means "not written"."""
    run = Run(tmp_path)
    with tm.connect(run.db) as client:
        h = client.domain(faulty.fault)
        h.submit_batch([faulty.Job(ledger=run.ledger, n=i) for i in range(500)])
        conn = client._store().conn
        conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_RESTART)  # the next commits overwrite the WAL in place
        conn.checkpoint_pages = 1  # type: ignore[attr-defined]  # and each is followed by a checkpoint
        disk.full = True
        out = h.submit_batch([faulty.Job(ledger=run.ledger, n=i) for i in range(1000, 1100)])  # no error
        deadline = time.monotonic() + 10.0  # the checkpoint runs on the store's background thread
        while disk.refused == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert disk.refused > 0  # the checkpoint after it was refused
        disk.full = False
        assert client.pending_count() == 600 and len(out.inserted()) == 100
    assert integrity(run.db) == "ok"

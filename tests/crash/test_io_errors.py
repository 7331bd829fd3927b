"""F7, the deterministic I/O-error sweep: a VFS (tests/crash/ioerr.py) fails the N-th ``xWrite`` or ``xSync``
with SQLITE_FULL or SQLITE_IOERR, once, for every N of a submit → claim → complete → checkpoint cycle run
through the store layer in this process (the public submit API, and the supervisor's transactions).

Pass, for every N: each step ends in success or a typed taskmill error (never a raw apsw error, never a hang
of more than 5 s), and done again it succeeds (a supervisor retries its turn, a submitter resubmits with the
same key); afterwards the file passes ``integrity_check``, every acknowledged task is there and completed, and
no task is left claimed by a transaction that reported failure.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import apsw
import pytest

import taskmill as tm
from taskmill.store import Store, dispatch
from tests.crash import faulty
from tests.crash.harness import integrity, publish
from tests.crash.ioerr import IoErrorVFS

HANG_S = 5.0
NOW = 2_000_000


def _step(name: str, fn: Callable[[], Any], log: dict[str, Any]) -> Any:
    """Run ``fn``; on a failure check it is typed and quick, then run it again (the fault was transient)."""
    for attempt in (1, 2):
        t0 = time.monotonic()
        try:
            return fn()
        except Exception as exc:
            took = time.monotonic() - t0
            log["errors"].append((name, attempt, type(exc).__name__, str(exc)[:200]))
            assert took < HANG_S, f"{name}: failed after {took:.1f}s"
            assert isinstance(exc, tm.TaskmillError), (
                f"{name}: untyped {type(exc).__module__}.{type(exc).__name__}: {exc}"
            )
            if attempt == 2:
                raise AssertionError(f"{name}: failed again once the fault had passed: {exc!r}") from exc
        finally:
            log["slowest"] = max(log["slowest"], time.monotonic() - t0)
    return None


def _cycle(db: str, ledger: str, log: dict[str, Any]) -> None:
    client = _step("open client", lambda: tm.connect(db), log)
    sup = _step("open supervisor store", lambda: Store(db), log)
    try:
        h = client.domain(faulty.keys)
        batch = [faulty.Keyed(ledger=ledger, n=i, k=f"k{i}") for i in range(1, 4)]
        out = _step("submit batch", lambda: h.submit_batch(batch), log)
        log["acked"] += [o.id for o in out if o.id is not None]
        one = _step("submit", lambda: h.submit(faulty.Keyed(ledger=ledger, n=4, k="k4")), log)
        log["acked"].append(one.id)

        def claim() -> list[Any]:
            with sup.write():
                return dispatch.claim_next(sup.conn, 10, NOW)

        claimed = _step("claim", claim, log)

        def complete() -> None:
            with sup.write():
                dispatch.finish(sup.conn, [("completed", NOW + 5, NOW, 5, 0, 0, 0, 0, 0, None, c.id, c.attempt)
                                           for c in claimed])  # fmt: skip

        _step("complete", complete, log)
        _step("checkpoint", sup.checkpoint, log)
    finally:
        _step("close supervisor store", sup.close, log)
        _step("close client", client.close, log)


def _base(tmp_path: Path) -> Path:
    """A database with its schema, made without faults."""
    db = tmp_path / "base.db"
    with tm.connect(db) as c:
        c.domain(faulty.keys)
    return db


@pytest.mark.parametrize(("op", "error"), [("write", "full"), ("write", "ioerr"), ("sync", "ioerr"), ("sync", "full")])
def test_every_failed_write_or_sync_of_a_cycle_ends_in_a_typed_error_and_loses_nothing(
    tmp_path: Path, op: str, error: str
) -> None:
    base = _base(tmp_path)
    vfs = IoErrorVFS(op)  # counting only: how many operations the cycle makes
    try:
        ref = tmp_path / "ref.db"
        shutil.copy(base, ref)
        _cycle(str(ref), str(tmp_path / "ledger"), {"errors": [], "acked": [], "slowest": 0.0})
    finally:
        vfs.unregister()
    total = vfs.counts[op]
    assert total > 5
    failed_steps: dict[str, int] = {}
    slowest = 0.0
    for n in range(1, total + 1):
        db = tmp_path / f"{op}-{error}-{n}.db"
        shutil.copy(base, db)
        log: dict[str, Any] = {"errors": [], "acked": [], "slowest": 0.0}
        vfs = IoErrorVFS(op, n, error)
        try:
            _cycle(str(db), str(tmp_path / "ledger"), log)
        finally:
            vfs.unregister()
        assert vfs.fired, f"operation {n} of {total} never happened"
        slowest = max(slowest, log["slowest"])
        for name, *_ in log["errors"]:
            failed_steps[name] = failed_steps.get(name, 0) + 1
        assert integrity(db) == "ok", n
        conn = apsw.Connection(str(db))
        try:
            rows = dict(conn.execute("SELECT id, status FROM tasks"))
        finally:
            conn.close()
        assert len(rows) == 4, (n, rows, log["errors"])  # one row per key: a resubmit after an error adds none
        assert {rows.get(t) for t in log["acked"]} == {"completed"}, (n, rows, log)  # acked, and all the way done
    publish({"scenario": f"F7 I/O-error sweep, {error} at {op}", "operations": total, "all_ok": total,
             "failed_steps": failed_steps, "slowest_step_s": round(slowest, 3)})  # fmt: skip


def test_a_supervisor_whose_commits_fail_with_io_errors_rides_them_out(make_scheduler: Any, tmp_path: Path) -> None:
    """A dispatch turn whose write or fsync fails (EIO) is a typed store error: the supervisor keeps what it has
    not recorded in memory, retries, and drains the queue; it does not crash."""
    vfs = IoErrorVFS("sync", error="ioerr")
    try:
        ledger_path = str(tmp_path / "ledger")
        s = make_scheduler([faulty.fault], workers=1, path=tmp_path / "tasks.db")
        h = s.domain(faulty.fault)
        ids = h.submit_batch([faulty.Job(ledger=ledger_path, n=i, ms=2) for i in range(200)]).inserted()
        s.start()
        for op in ("sync", "write", "sync", "write"):  # a few turns fail, each in its own way
            vfs.op, vfs.fired = op, False
            vfs.fail_at = vfs.counts[op] + 2
            deadline = time.monotonic() + 10
            while not vfs.fired:
                assert time.monotonic() < deadline, "the supervisor stopped writing"
                time.sleep(0.005)
        vfs.fail_at = None
        assert s.wait_until_idle(30) and s.is_running
        assert all(s.history_of(t)[0].status == "completed" for t in ids)
        s.stop()
    finally:
        vfs.unregister()
    assert integrity(tmp_path / "tasks.db") == "ok"

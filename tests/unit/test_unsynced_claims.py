"""Under ``durability="full"``, a dispatch turn that only claims commits without waiting for the disk (a power
cut that undoes a claim leaves the task pending, as recovery would anyway); outcomes still wait for it.

The syncs are counted by a VFS that every connection of this process goes through while it exists. What a
power cut may and may not undo is checked in tests/crash/test_power_loss.py.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from pathlib import Path

import apsw
import pytest

from taskmill.store import Store, dispatch
from tests.helpers import entries, wait_for
from tests.integration import domains as D


class _File(apsw.VFSFile):
    def __init__(self, vfs: SyncCounter, name: apsw.URIFilename | str | None, flags: list[int]) -> None:
        self.vfs = vfs
        self.path = name.filename() if isinstance(name, apsw.URIFilename) else str(name)
        super().__init__("unix", name, flags)  # type: ignore[arg-type]

    def xSync(self, flags: int) -> None:
        if self.path.endswith("-wal"):
            with self.vfs.lock:
                self.vfs.by_db[(threading.current_thread().name, self.path.removesuffix("-wal"))] += 1
        super().xSync(flags)


class SyncCounter(apsw.VFS):
    """Counts the syncs of each database's WAL, per thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_db: collections.Counter[tuple[str, str]] = collections.Counter()
        super().__init__("taskmill-test-syncs", "unix", makedefault=True)

    def xOpen(self, name: apsw.URIFilename | str | None, flags: list[int]) -> _File:  # type: ignore[override]
        return _File(self, name, flags)

    def of(self, thread: str, db: Path) -> int:
        """The syncs of ``db``'s WAL by ``thread`` (another test's supervisor may still be stopping)."""
        with self.lock:
            return self.by_db[(thread, str(db))]

    def total(self) -> int:
        with self.lock:
            return sum(self.by_db.values())


@pytest.fixture
def syncs() -> Iterator[SyncCounter]:
    vfs = SyncCounter()
    try:
        yield vfs
    finally:
        vfs.unregister()


def test_a_write_marked_not_durable_commits_without_a_sync_and_the_next_one_syncs_again(
    db: Path, syncs: SyncCounter
) -> None:
    store = Store(db, "full")
    try:
        with store.write():
            dispatch.announce(store.conn)
        before = syncs.total()
        with store.write(durable=False):
            dispatch.announce(store.conn)
        assert syncs.total() == before
        assert next(iter(store.conn.execute("PRAGMA synchronous")))[0] == 2  # FULL again
        with pytest.raises(ZeroDivisionError), store.write(durable=False):
            dispatch.announce(store.conn)
            1 / 0  # noqa: B018
        assert next(iter(store.conn.execute("PRAGMA synchronous")))[0] == 2
        with store.write():
            dispatch.announce(store.conn)
        assert syncs.total() == before + 1
        dispatch.sync(store.conn)  # what a turn runs after an unsynced commit that recorded an outcome
        assert syncs.total() == before + 2
    finally:
        store.close()


def test_with_normal_durability_not_durable_changes_nothing(db: Path, syncs: SyncCounter) -> None:
    store = Store(db, "normal")
    try:
        before = syncs.total()
        with store.write(durable=False):
            dispatch.announce(store.conn)
        with store.write():
            dispatch.announce(store.conn)
        assert syncs.total() == before
        assert next(iter(store.conn.execute("PRAGMA synchronous")))[0] == 1
    finally:
        store.close()


def test_a_supervisor_under_full_syncs_once_per_task_run_one_at_a_time_not_at_its_claim(
    make_scheduler: object, db: Path, log: str, syncs: SyncCounter
) -> None:
    # No poll of the file meanwhile: a turn it starts looks for control changes, and such a turn is synced.
    s = make_scheduler(workers=1, start=True, durability="full", poll_interval=60.0)  # type: ignore[operator]
    h = s.domain(D.main)
    n = 5
    h.submit(D.Note(log=log, tag="warm-up"))  # after the turns of the start (the first looks at everything)
    wait_for(lambda: entries(log, "end", "warm-up"), timeout=10, what="the warm-up task")
    assert s.wait_until_idle(10)
    started = syncs.of("taskmill-supervisor", db)
    for i in range(n):
        h.submit(D.Note(log=log, tag=f"t{i}"))
        wait_for(lambda i=i: entries(log, "end", f"t{i}"), timeout=10, what=f"task t{i}")  # type: ignore[misc]
        assert s.wait_until_idle(10)
    supervisor = syncs.of("taskmill-supervisor", db) - started
    # One synced commit per completion; the turns that claimed were not synced (they were: 2 n in all).
    assert supervisor == n, dict(syncs.by_db)
    assert [t.status for t in s.history(limit=n)] == ["completed"] * n


def test_a_claim_that_expires_a_task_past_its_ttl_is_synced_as_any_outcome(
    make_scheduler: object, db: Path, log: str, syncs: SyncCounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskmill.store import core
    from taskmill.supervisor import dispatcher

    # Every turn's clock runs two minutes ahead (set before the start: no turn still holds the real time), so a
    # claim finds a one-minute TTL over; no sweep finds it first.
    monkeypatch.setattr(dispatcher, "now_ms", lambda: core.now_ms() + 120_000)
    s = make_scheduler(workers=1, start=True, durability="full", expiry_sweep_interval=None)  # type: ignore[operator]
    s.domain(D.main).submit(D.Note(log=log, tag="warm-up"))  # after the turns of the start
    wait_for(lambda: entries(log, "end", "warm-up"), timeout=10, what="the warm-up task")
    assert s.wait_until_idle(10)
    started = syncs.of("taskmill-supervisor", db)
    out = s.domain(D.main).submit(D.Note(log=log, tag="late"), ttl=60)
    wait_for(lambda: s.task(out.id) is None, timeout=10, what="the task to leave the queue")  # type: ignore[attr-defined]
    assert [t.status for t in s.history(limit=1)] == ["expired"]  # type: ignore[attr-defined]
    assert not entries(log, "start", "late")
    assert syncs.of("taskmill-supervisor", db) - started == 1, dict(syncs.by_db)


def test_a_failed_sync_after_an_expiry_keeps_the_committed_turn_and_its_other_claims_run(
    make_scheduler: object, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskmill.errors import StoreError
    from taskmill.store import core
    from taskmill.supervisor import dispatcher

    def fail(conn: object) -> None:
        raise StoreError("disk I/O error: simulated")

    monkeypatch.setattr(dispatcher, "now_ms", lambda: core.now_ms() + 120_000)  # as in the test above
    monkeypatch.setattr(dispatch, "sync", fail)
    s = make_scheduler(  # type: ignore[operator]
        workers=1, start=True, durability="full", expiry_sweep_interval=None, poll_interval=60.0
    )  # no poll meanwhile: the turn it starts would look for control changes, and be synced from the start
    h = s.domain(D.main)
    h.submit(D.Note(log=log, tag="warm-up"))  # after the turns of the start (the first looks at everything)
    wait_for(lambda: entries(log, "end", "warm-up"), timeout=10, what="the warm-up task")
    assert s.wait_until_idle(10)
    s.settings.max_concurrency = 0  # hold both tasks back, so that one turn claims the two of them
    late = h.submit(D.Note(log=log, tag="late"), ttl=60)
    h.submit(D.Note(log=log, tag="plain"))
    s.settings.max_concurrency = 1
    s._supervisor.wake_threadsafe(True)  # type: ignore[attr-defined]  # a turn woken by submissions only
    wait_for(lambda: entries(log, "end", "plain"), timeout=10, what="the task claimed with the expired one")
    assert s.task(late.id) is None  # type: ignore[attr-defined]
    assert not entries(log, "start", "late")

"""The SQLite store on real files: migrations, durability pragmas, history retention."""

from __future__ import annotations

import time
from pathlib import Path

import apsw
import msgspec
import pytest

import taskmill as tm
from taskmill.errors import SchemaError
from taskmill.store import Store, schema
from taskmill.store.schema import SCHEMA_VERSION
from tests.integration import domains as D


def raw_pragma(path: Path, name: str) -> object:
    conn = apsw.Connection(str(path))
    try:
        return next(iter(conn.execute(f"PRAGMA {name}")))[0]
    finally:
        conn.close()


def test_opening_a_new_file_migrates_it_and_sets_user_version(db: Path) -> None:
    store = Store(db)
    try:
        assert SCHEMA_VERSION >= 1
        assert next(iter(store.conn.execute("PRAGMA user_version")))[0] == SCHEMA_VERSION
        assert store.status_counts()["pending"] == 0
    finally:
        store.close()
    # on disk, as another connection sees it
    assert raw_pragma(db, "user_version") == SCHEMA_VERSION
    assert str(raw_pragma(db, "journal_mode")).lower() == "wal"


def test_opening_twice_is_idempotent_and_keeps_data(db: Path, log: str) -> None:
    with tm.connect(db) as first:
        out = first.domain(D.main).submit(D.Note(log=log, tag="kept"))
        assert out.kind == "inserted"
        with tm.connect(db) as second:  # while the first is still open
            assert second.pending_count() == 1
    again = Store(db)  # and after both closed
    try:
        assert next(iter(again.conn.execute("PRAGMA user_version")))[0] == SCHEMA_VERSION
        assert again.count("pending") == 1
        assert again.task(out.id) is not None  # type: ignore[arg-type]
    finally:
        again.close()


def test_a_database_from_a_newer_taskmill_is_refused(db: Path) -> None:
    Store(db).close()
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError) as err:
        Store(db)
    assert str(SCHEMA_VERSION + 1) in str(err.value)
    with pytest.raises(tm.TaskmillError):  # the public entry points refuse it too
        tm.connect(db)
    assert raw_pragma(db, "user_version") == SCHEMA_VERSION + 1  # and nothing was "migrated" down


@pytest.mark.parametrize(("durability", "expected"), [("full", 2), ("normal", 1)])
def test_durability_really_sets_synchronous(db: Path, durability: str, expected: int) -> None:
    store = Store(db, durability)  # type: ignore[arg-type]
    try:
        assert next(iter(store.conn.execute("PRAGMA synchronous")))[0] == expected
        assert str(next(iter(store.conn.execute("PRAGMA journal_mode")))[0]).lower() == "wal"
    finally:
        store.close()


@pytest.mark.parametrize(("durability", "expected"), [("full", 2), ("normal", 1)])
def test_client_connections_use_the_requested_durability(db: Path, durability: str, expected: int) -> None:
    with tm.connect(db, durability=durability) as client:
        assert next(iter(client._store().conn.execute("PRAGMA synchronous")))[0] == expected


def test_the_default_durability_is_full(db: Path) -> None:
    with tm.connect(db) as client:
        assert next(iter(client._store().conn.execute("PRAGMA synchronous")))[0] == 2


def test_an_unknown_durability_is_refused(db: Path) -> None:
    with pytest.raises(tm.StoreError):
        Store(db, "sometimes")  # type: ignore[arg-type]


def _make_history(client: tm.Client, log: str, n: int) -> int:
    """n 'superseded' history rows for one task, without running anything."""
    h = client.domain(D.main)
    first = h.submit(D.Keyed(log=log, k="same", tag="v0"))
    for i in range(1, n + 1):
        out = h.submit(D.Keyed(log=log, k="same", tag=f"v{i}"), on_duplicate="supersede")
        assert (out.kind, out.id) == ("superseded", first.id)
    return first.id  # type: ignore[return-value]


def test_history_prune_by_count_keeps_the_newest_rows(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        tid = _make_history(client, log, 6)
        assert len(client.history_of(tid)) == 6
        assert client.prune_history_by_count(2) == 4
        kept = client.history(limit=100)
        assert len(kept) == 2
        tags = {msgspec.msgpack.decode(r.payload)["tag"] for r in kept}  # type: ignore[arg-type]
        assert tags == {"v4", "v5"}  # the last two replaced versions
        assert client.prune_history_by_count(2) == 0
        assert client.task(tid) is not None  # pruning history never touches the active task


def test_history_prune_by_age_removes_only_old_rows(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        _make_history(client, log, 3)
        assert client.prune_history_by_age(1.0) == 0  # all are seconds old
        assert len(client.history()) == 3


def test_retention_policy_constructors_validate() -> None:
    assert tm.RetentionPolicy.max_count(10).keep_count == 10
    assert tm.RetentionPolicy.max_age_days(1.5).keep_days == 1.5
    assert tm.RetentionPolicy.keep_all() == tm.RetentionPolicy()
    with pytest.raises(ValueError):
        tm.RetentionPolicy.max_count(-1)
    with pytest.raises(ValueError):
        tm.RetentionPolicy.max_age_days(0)


def test_queries_see_exactly_the_active_tasks(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        h = client.domain(D.main)
        a = h.submit(D.Note(log=log, tag="a"))
        b = h.submit(D.Note(log=log, tag="b"), run_after=60)  # delayed: still pending
        c = h.submit(D.Keyed(log=log, k="c", tag="v0"))
        h.submit(D.Keyed(log=log, k="c", tag="v1"), on_duplicate="supersede")  # one history row
        other = client.domain(D.other).submit(D.OtherKeyed(log=log, k="x"))
        active = {a.id, b.id, c.id, other.id}
        assert client.pending_count() == 4 and client.running_count() == 0
        assert client.status_counts()["pending"] == 4
        assert {t.id for t in client.pending_tasks()} == active
        assert client.running_tasks() == []
        assert client.pending_by_type() == {"tm_main::note": 2, "tm_main::keyed": 1, "tm_other::keyed": 1}
        assert client.domain(D.main).pending_count() == 3 and client.domain(D.other).pending_count() == 1
        assert [r.status for r in client.history()] == ["superseded"]
        assert client.task(c.id) is not None and client.task(c.id).status == "pending"  # type: ignore[arg-type,union-attr]


def test_pruning_all_history_never_touches_active_tasks(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        tid = _make_history(client, log, 3)
        queued = client.domain(D.main).submit(D.Note(log=log, tag="queued"))
        assert client.prune_history_by_count(0) == 3
        assert client.history() == []
        assert client.pending_count() == 2
        assert client.task(tid) is not None and client.task(queued.id) is not None  # type: ignore[arg-type]
        assert client.prune_history_by_age(0.000001) == 0
        assert client.pending_count() == 2


def test_ids_are_never_handed_out_twice_once_the_newest_rows_are_pruned(db: Path, log: str) -> None:
    """New ids are the largest plus one (no AUTOINCREMENT): pruning keeps the row holding the largest id, even
    when that row is history, so a task submitted after pruning everything never gets a pruned row's id."""
    with tm.connect(db) as client:
        tid = _make_history(client, log, 3)  # the newest id is the last copy of a replaced version: history
        rows = sorted(r.hid for r in client.history_of(tid))
        assert len(rows) == 3 and rows[-1] > tid
        assert client.prune_history_by_count(0) == 2
        assert [r.hid for r in client.history()] == [rows[-1]]
        assert client.prune_history_by_count(0) == 0
        after = client.domain(D.main).submit(D.Note(log=log, tag="after"))
        assert after.id is not None and after.id > rows[-1]
        client.domain(D.main).submit(D.Keyed(log=log, k="same", tag="v9"), on_duplicate="supersede")
        copy = max(r.hid for r in client.history())  # a copy of the replaced version: the newest id, history
        assert copy > after.id
        time.sleep(0.05)
        assert client.prune_history_by_age(0.0000001) == 1  # by age, the same guard: the copy stays
        assert [r.hid for r in client.history()] == [copy]
        assert client.domain(D.main).submit(D.Note(log=log, tag="last")).id > copy  # type: ignore[operator]


def test_new_databases_write_no_sqlite_sequence_and_old_ones_keep_working(
    db: Path, tmp_path: Path, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database created before ids dropped AUTOINCREMENT has the same table layout: it still works, with
    the ``sqlite_sequence`` write the new schema saves."""

    def tables(path: Path) -> set[str]:
        conn = apsw.Connection(str(path))
        try:
            return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()

    with tm.connect(db) as client:
        client.domain(D.main).submit(D.Note(log=log, tag="new"))
    assert "sqlite_sequence" not in tables(db)
    old = tmp_path / "old.db"
    v1 = list(schema._V1)
    v1[0] = v1[0].replace("id INTEGER PRIMARY KEY,", "id INTEGER PRIMARY KEY AUTOINCREMENT,")
    assert v1[0] != schema._V1[0]
    with monkeypatch.context() as patched:
        patched.setattr(schema, "MIGRATIONS", [v1, *schema.MIGRATIONS[1:]])
        Store(old).close()
    assert "sqlite_sequence" in tables(old)
    with tm.connect(old) as client:
        tid = _make_history(client, log, 2)
        assert client.prune_history_by_count(0) == 1
        assert client.domain(D.main).submit(D.Note(log=log, tag="after")).id > tid + 2  # type: ignore[operator]


def test_history_is_listed_newest_first(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        tid = _make_history(client, log, 3)
        tags = [msgspec.msgpack.decode(r.payload)["tag"] for r in client.history()]  # type: ignore[arg-type]
        assert tags == ["v2", "v1", "v0"]
        tags_of = [msgspec.msgpack.decode(r.payload)["tag"] for r in client.history_of(tid)]  # type: ignore[arg-type]
        assert tags_of == ["v2", "v1", "v0"]


def test_new_rows_are_scanned_a_bounded_slice_at_a_time(db: Path, log: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor's per-turn scans of new rows (urgent ones, submissions for the metric) take at most
    ``NEW_ROWS_PER_SCAN`` rows each, so a large batch is looked at over several turns instead of in one stall."""
    from taskmill.store import control, stats

    monkeypatch.setattr(stats, "NEW_ROWS_PER_SCAN", 4)
    with tm.connect(db) as c:
        h = c.domain(D.main)
        ids = [h.submit(D.Note(log=log, tag=f"n{i}")).id for i in range(9)]
        urgent = h.submit(D.Note(log=log, tag="urgent"), priority=tm.Priority.REALTIME).id
    store = Store(db)
    try:
        first = control.new_urgent(store.conn, 0, int(tm.Priority.REALTIME))
        assert first == (None, ids[3], True)
        second = control.new_urgent(store.conn, first[1], int(tm.Priority.REALTIME))
        assert second == (None, ids[7], True)
        assert control.new_urgent(store.conn, second[1], int(tm.Priority.REALTIME)) == (
            int(tm.Priority.REALTIME), urgent, False)  # fmt: skip
        counted, top, more = stats.new_rows(store.conn, 0)
        assert (sum(n for _, _, n in counted), top, more) == (4, ids[3], True)
        assert stats.new_rows(store.conn, ids[7])[1:] == (urgent, False)
    finally:
        store.close()


def test_busy_means_pending_due_or_delayed_or_running(db: Path, log: str) -> None:
    """``wait_until_idle`` polls this: paused and finished tasks do not count, delayed ones do."""
    from taskmill.store import dispatch
    from taskmill.store.connection import write_tx

    store = Store(db)
    try:
        assert not store.busy()
        with tm.connect(db) as client:
            h = client.domain(D.main)
            delayed = h.submit(D.Note(log=log, tag="later"), run_after=60)
            assert store.busy()
            client.cancel(delayed.id)  # type: ignore[arg-type]
            assert not store.busy()
            h.submit(D.Note(log=log, tag="due"))
            assert store.busy()
            with write_tx(store.conn):
                (claimed,) = dispatch.claim_next(store.conn, 10, 0)
            assert store.busy() and client.pending_count() == 0 and client.running_count() == 1
            with write_tx(store.conn):
                dispatch.complete(store.conn, [(claimed.id, 2, 1, 0, 0, 0, 0, claimed.attempt)])
            assert not store.busy() and client.running_count() == 0
            h.pause()
            h.submit(D.Note(log=log, tag="paused"))
            assert not store.busy() and client.status_counts()["paused"] == 1
    finally:
        store.close()


def test_a_scan_of_new_rows_never_moves_its_watermark_back() -> None:
    """The newest committed id bounds a scan; when the newest rows were deleted (pruned) it is below the
    watermark, which then stays where it was."""
    from taskmill.store.stats import scanned_to

    assert scanned_to(10, 4, None) == (10, False)  # an empty table
    assert scanned_to(10, 4, 8) == (10, False)  # the newest rows were deleted since the last scan
    assert scanned_to(10, 4, 12) == (12, False)  # caught up
    assert scanned_to(10, 4, 20) == (14, True)  # more to scan next turn

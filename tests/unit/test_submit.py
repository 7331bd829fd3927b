"""Submitting without running anything: dedup outcomes, batches, validation and size limits.

Real SQLite files, no processes: a Client (or a Scheduler that is never started) only writes rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import taskmill as tm
from tests.integration import domains as D


@pytest.fixture
def client(db: Path) -> Any:
    with tm.connect(db) as c:
        yield c


def nothing_written(client: tm.Client) -> bool:
    return not any(client.status_counts().values()) and client.history() == []


def stored_priority(client: tm.Client, tid: int | None) -> int:
    assert tid is not None
    rec = client.task(tid)
    assert rec is not None
    return rec.priority


# -- dedup outcomes -----------------------------------------------------------------------------------------


def test_first_submit_is_inserted_and_an_identical_one_is_a_duplicate(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    first = h.submit(D.Note(log=log, tag="a"))
    assert first.kind == "inserted" and first.id is not None and first.is_inserted
    again = h.submit(D.Note(log=log, tag="a"))
    assert again.kind == "duplicate" and again.is_duplicate and not again.is_inserted
    other = h.submit(D.Note(log=log, tag="b"))  # a different payload is a different default key
    assert other.kind == "inserted" and other.id != first.id
    assert client.pending_count() == 2
    assert stored_priority(client, first.id) == tm.Priority.NORMAL


def test_an_explicit_key_dedups_different_payloads(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    assert h.submit(D.Note(log=log, tag="a"), key="K").kind == "inserted"
    assert h.submit(D.Note(log=log, tag="b"), key="K").kind == "duplicate"
    assert h.submit(D.Keyed(log=log, k="K2", tag="a")).kind == "inserted"  # Task.key()
    assert h.submit(D.Keyed(log=log, k="K2", tag="b")).kind == "duplicate"
    assert client.pending_count() == 2


def test_a_strictly_more_urgent_resubmission_upgrades_the_pending_task(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    task = D.Note(log=log, tag="u")
    first = h.submit(task)
    up = h.submit(task, priority=tm.Priority.HIGH)
    assert (up.kind, up.id) == ("upgraded", first.id)
    assert stored_priority(client, first.id) == tm.Priority.HIGH
    # same priority again, or less urgent: nothing changes
    assert h.submit(task, priority=tm.Priority.HIGH).kind == "duplicate"
    assert h.submit(task, priority=tm.Priority.BACKGROUND).kind == "duplicate"
    assert stored_priority(client, first.id) == tm.Priority.HIGH
    assert client.pending_count() == 1


def test_supersede_replaces_a_pending_task_in_place(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    first = h.submit(D.Keyed(log=log, k="doc-1", tag="old"), tags={"v": "1"})
    out = h.submit(
        D.Keyed(log=log, k="doc-1", tag="new"),
        on_duplicate="supersede",
        priority=tm.Priority.HIGH,
        tags={"v": "2"},
    )
    assert out.kind == "superseded" and out.is_inserted
    assert out.id == first.id and out.replaced_id == first.id
    rec = client.task(first.id)  # type: ignore[arg-type]
    assert rec is not None
    assert msgspec.msgpack.decode(rec.payload)["tag"] == "new"  # type: ignore[arg-type]
    assert rec.priority == tm.Priority.HIGH and rec.tags == {"v": "2"} and rec.status == "pending"
    hist = client.history_of(first.id)  # type: ignore[arg-type]
    assert [r.status for r in hist] == ["superseded"]
    assert msgspec.msgpack.decode(hist[0].payload)["tag"] == "old"  # type: ignore[arg-type]
    assert client.pending_count() == 1


def test_reject_leaves_the_existing_task_alone(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    first = h.submit(D.Keyed(log=log, k="r", tag="old"))
    out = h.submit(D.Keyed(log=log, k="r", tag="new"), on_duplicate="reject", priority=tm.Priority.HIGH)
    assert out.kind == "rejected" and not out.is_inserted
    rec = client.task(first.id)  # type: ignore[arg-type]
    assert rec is not None and rec.priority == tm.Priority.NORMAL
    assert msgspec.msgpack.decode(rec.payload)["tag"] == "old"  # type: ignore[arg-type]
    assert client.history() == []


@contextlib.contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another connection holds the database's write lock, as a supervisor's turn does."""
    other = apsw.Connection(str(db))
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


def resubmit_until_probing(h: Any, task: tm.Task) -> None:
    """A producer that keeps resubmitting what is queued already: its client now probes before writing."""
    for _ in range(10):
        assert h.submit(task).kind == "duplicate"


def submit_in_thread(submit: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(submit()), daemon=True)
    thread.start()
    return thread, out


def test_repeated_duplicates_are_answered_without_waiting_for_the_write_lock(
    client: tm.Client, db: Path, log: str
) -> None:
    h = client.domain(D.main)
    task, keyed = D.Note(log=log, tag="again"), D.Keyed(log=log, k="kept", tag="old")
    first = h.submit(task)
    assert h.submit(keyed).kind == "inserted"
    resubmit_until_probing(h, task)
    with write_lock_held(db):
        dup, dup_out = submit_in_thread(lambda: h.submit(task))
        dup.join(5.0)
        rej, rej_out = submit_in_thread(lambda: h.submit(D.Keyed(log=log, k="kept", tag="new"), on_duplicate="reject"))
        rej.join(5.0)
        assert not dup.is_alive() and dup_out[0].kind == "duplicate" and dup_out[0].id is None
        assert not rej.is_alive() and rej_out[0].kind == "rejected"
        # A new key still goes through the write transaction, so it waits for the lock.
        new, new_out = submit_in_thread(lambda: h.submit(D.Note(log=log, tag="fresh")))
        new.join(0.3)
        assert new.is_alive() and not new_out
    new.join(10.0)
    assert new_out[0].kind == "inserted"
    assert client.pending_count() == 3 and stored_priority(client, first.id) == tm.Priority.NORMAL


def test_a_probe_that_cannot_read_falls_back_to_the_write_path(
    client: tm.Client, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskmill.store import core

    h = client.domain(D.main)
    task = D.Note(log=log, tag="busy-read")
    h.submit(task)
    resubmit_until_probing(h, task)
    calls: list[str] = []

    def busy(conn: Any, t: Any) -> None:
        calls.append(t.key)
        raise apsw.BusyError("database is locked")

    monkeypatch.setattr(core, "probe_submit", busy)
    assert h.submit(task).kind == "duplicate" and len(calls) == 1  # answered by the write transaction
    assert client.pending_count() == 1


def test_while_probing_a_resubmission_that_writes_still_writes(client: tm.Client, db: Path, log: str) -> None:
    h = client.domain(D.main)
    task = D.Note(log=log, tag="busy")
    first = h.submit(task)
    resubmit_until_probing(h, task)
    up = h.submit(task, priority=tm.Priority.HIGH)
    assert (up.kind, up.id) == ("upgraded", first.id) and stored_priority(client, first.id) == tm.Priority.HIGH
    conn = apsw.Connection(str(db))  # as if a supervisor had started it
    conn.execute("UPDATE tasks SET status = 'running', attempt = 1, started_at = 1 WHERE id = ?", (first.id,))
    conn.close()
    assert h.submit(task, priority=tm.Priority.HIGH).kind == "requeued"
    assert h.submit(task, priority=tm.Priority.HIGH).kind == "duplicate"  # the requeue is set already
    out = h.submit(task, on_duplicate="supersede")
    assert out.kind == "superseded" and out.replaced_id == first.id


def test_an_unknown_duplicate_strategy_is_refused(client: tm.Client, log: str) -> None:
    with pytest.raises(tm.SubmitError):
        client.domain(D.main).submit(D.Note(log=log, tag="x"), on_duplicate="merge")
    assert nothing_written(client)


def test_the_same_explicit_key_in_two_domains_does_not_collide(client: tm.Client, log: str) -> None:
    a = client.domain(D.main).submit(D.Keyed(log=log, k="shared"))
    b = client.domain(D.other).submit(D.OtherKeyed(log=log, k="shared"))
    assert a.kind == b.kind == "inserted" and a.id != b.id
    ra, rb = client.task(a.id), client.task(b.id)  # type: ignore[arg-type]
    assert ra is not None and rb is not None and ra.key != rb.key
    assert (ra.task_type, rb.task_type) == ("tm_main::keyed", "tm_other::keyed")


# -- batches --------------------------------------------------------------------------------------------


def test_batch_intra_dedup_last_wins(client: tm.Client, log: str) -> None:
    subs = [
        tm.TaskSubmission(
            task_type="tm_main::note", payload={"log": log, "tag": "b"}, key="k", priority=tm.Priority.NORMAL
        ),
        tm.TaskSubmission(
            task_type="tm_main::note", payload={"log": log, "tag": "b"}, key="k", priority=tm.Priority.HIGH
        ),
    ]
    out = client.submit_batch(subs)
    assert [o.kind for o in out] == ["duplicate", "inserted"]
    assert out.inserted() == [out[1].id] and out.duplicated_count == 1 and len(out) == 2
    assert stored_priority(client, out[1].id) == tm.Priority.HIGH
    assert client.pending_count() == 1


def test_typed_batch_dedups_within_the_batch_and_against_the_queue(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    existing = h.submit(D.Note(log=log, tag="old"))
    out = h.submit_batch(
        [
            D.Note(log=log, tag="x"),
            D.Note(log=log, tag="y"),
            D.Note(log=log, tag="x"),
            D.Note(log=log, tag="old"),
        ]
    )
    assert [o.kind for o in out] == ["duplicate", "inserted", "inserted", "duplicate"]
    ids = out.inserted()
    assert len(set(ids)) == 2 and existing.id not in ids
    for tid in ids:
        assert client.task(tid) is not None
    assert client.pending_count() == 3


def test_batch_upgrades_an_existing_task(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    existing = h.submit(D.Note(log=log, tag="old"))
    out = h.submit_batch([D.Note(log=log, tag="old"), D.Note(log=log, tag="new")], priority=tm.Priority.HIGH)
    assert [o.kind for o in out] == ["upgraded", "inserted"]
    assert out.upgraded() == [existing.id]
    assert stored_priority(client, existing.id) == tm.Priority.HIGH


def test_a_batch_with_one_invalid_item_writes_nothing(client: tm.Client, log: str) -> None:
    good = D.Strict(log=log, value=1)
    bad = D.Strict(log=log, value="not an int")  # type: ignore[arg-type]
    with pytest.raises(tm.InvalidPayload):
        client.domain(D.payloads).submit_batch([good, bad])
    assert nothing_written(client)


# -- validation and limits -----------------------------------------------------------------------------


def test_an_invalid_typed_payload_raises_and_writes_nothing(client: tm.Client, log: str) -> None:
    with pytest.raises(tm.InvalidPayload) as err:
        client.domain(D.payloads).submit(D.Strict(log=log, value="abc"))  # type: ignore[arg-type]
    assert "value" in str(err.value)
    assert isinstance(err.value, tm.SubmitError) and isinstance(err.value, tm.TaskmillError)
    assert nothing_written(client)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"log": "x", "value": "abc"}, id="wrong-type"),
        pytest.param({"log": "x"}, id="missing-field"),
        pytest.param({"log": "x", "value": 1, "extra": 2}, id="unknown-field"),
        pytest.param(msgspec.msgpack.encode([1, 2, 3]), id="msgpack-array-bytes"),
        pytest.param(msgspec.msgpack.encode({"log": "x", "value": "abc"}), id="wrong-type-bytes"),
        pytest.param(b"\xc1not msgpack", id="undecodable-bytes"),
        pytest.param({"log": "x", "value": object()}, id="unencodable-dict"),
    ],
)
def test_an_invalid_untyped_payload_raises_invalid_payload(client: tm.Client, payload: Any) -> None:
    with pytest.raises(tm.InvalidPayload):
        client.submit(tm.TaskSubmission(task_type="tm_payloads::strict", payload=payload))
    assert nothing_written(client)


def test_a_valid_untyped_submission_is_stored_like_a_typed_one(client: tm.Client, log: str) -> None:
    a = client.submit(tm.TaskSubmission(task_type="tm_payloads::strict", payload={"log": log, "value": 7}))
    assert a.kind == "inserted"
    b = client.domain(D.payloads).submit(D.Strict(log=log, value=7))
    assert b.kind == "duplicate"  # same qualified type + same payload = same default key
    raw = msgspec.msgpack.encode(D.Strict(log=log, value=8))
    assert client.submit(tm.TaskSubmission(task_type="tm_payloads::strict", payload=raw)).kind == "inserted"


def test_an_oversize_payload_is_refused_and_writes_nothing(client: tm.Client) -> None:
    with pytest.raises(tm.PayloadTooLarge) as err:
        client.domain(D.payloads).submit(D.Blob(data="x" * (1024 * 1024 + 1)))
    assert "1048576" in str(err.value)
    assert isinstance(err.value, tm.SubmitError)
    assert nothing_written(client)


def test_an_oversize_untyped_payload_is_refused_and_writes_nothing(client: tm.Client) -> None:
    with pytest.raises(tm.PayloadTooLarge):
        client.submit(tm.TaskSubmission(task_type="tm_payloads::blob", payload={"data": "x" * (2 * 1024 * 1024)}))
    assert nothing_written(client)


def _blob_of_encoded_size(size: int) -> D.Blob:
    for n in range(size + 1):
        blob = D.Blob(data="x" * n)
        if len(msgspec.msgpack.encode(blob)) == size:
            return blob
    raise AssertionError(f"no Blob encodes to exactly {size} bytes")


def test_a_payload_exactly_at_the_limit_is_accepted_one_byte_more_is_not(db: Path) -> None:
    limit = 200
    with tm.connect(db, max_payload_bytes=limit) as client:
        h = client.domain(D.payloads)
        at_limit = _blob_of_encoded_size(limit)
        assert h.submit(at_limit).kind == "inserted"
        with pytest.raises(tm.PayloadTooLarge):
            h.submit(_blob_of_encoded_size(limit + 1))
        assert client.pending_count() == 1


def test_the_scheduler_applies_max_payload_bytes_too(make_scheduler: Any) -> None:
    s = make_scheduler([D.payloads], max_payload_bytes=64)
    with pytest.raises(tm.PayloadTooLarge):
        s.domain(D.payloads).submit(_blob_of_encoded_size(65))
    assert s.domain(D.payloads).submit(_blob_of_encoded_size(64)).kind == "inserted"


def test_a_task_type_without_an_executor_is_unknown(client: tm.Client, log: str) -> None:
    with pytest.raises(tm.UnknownTaskType):
        client.domain(D.payloads).submit(D.Orphan(x=1))
    with pytest.raises(tm.UnknownTaskType):  # a type registered in another domain
        client.domain(D.main).submit(D.OtherKeyed(log=log, k="x"))  # type: ignore[arg-type]
    assert nothing_written(client)


@pytest.mark.parametrize("task_type", ["tm_main::nope", "note", "nosuch::note", ""])
def test_an_untyped_unknown_task_type_is_refused(client: tm.Client, log: str, task_type: str) -> None:
    with pytest.raises(tm.UnknownTaskType):
        client.submit(tm.TaskSubmission(task_type=task_type, payload={"log": log, "tag": "t"}))
    assert nothing_written(client)


def test_an_unregistered_domain_is_refused(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([D.main])
    with pytest.raises(tm.UnknownDomain) as err:
        s.domain(D.other)
    assert "tm_other" in str(err.value)
    assert isinstance(err.value, tm.SubmitError)
    assert s.domain(D.main).submit(D.Note(log=log, tag="ok")).kind == "inserted"


@pytest.mark.parametrize("priority", [-1, 256])
def test_an_out_of_range_priority_is_refused(client: tm.Client, log: str, priority: int) -> None:
    with pytest.raises(ValueError):
        client.domain(D.main).submit(D.Note(log=log, tag="p"), priority=priority)
    assert nothing_written(client)


def test_priority_levels_order_lower_first() -> None:
    levels = [
        tm.Priority.IDLE,
        tm.Priority.NORMAL,
        tm.Priority.REALTIME,
        tm.Priority.BACKGROUND,
        tm.Priority.HIGH,
    ]
    assert sorted(levels) == [
        tm.Priority.REALTIME,
        tm.Priority.HIGH,
        tm.Priority.NORMAL,
        tm.Priority.BACKGROUND,
        tm.Priority.IDLE,
    ]
    assert tm.Priority.HIGH.is_more_urgent_than(tm.Priority.NORMAL)


def test_batch_last_wins_across_a_large_batch(client: tm.Client, log: str) -> None:
    def sub(tag: str, **kw: Any) -> tm.TaskSubmission:
        return tm.TaskSubmission(task_type="tm_main::note", payload={"log": log, "tag": tag}, **kw)

    subs = [sub("k", key="k", priority=tm.Priority.NORMAL)]
    subs += [sub(f"filler{i}") for i in range(10_000)]
    subs.append(sub("k", key="k", priority=tm.Priority.HIGH))
    out = client.submit_batch(subs)
    assert (out[0].kind, out[-1].kind) == ("duplicate", "inserted")
    assert stored_priority(client, out[-1].id) == tm.Priority.HIGH


def test_an_empty_batch_is_a_no_op(client: tm.Client) -> None:
    assert len(client.submit_batch([])) == 0
    assert len(client.domain(D.main).submit_batch([])) == 0
    assert nothing_written(client)


def test_delay_arguments_are_validated(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    with pytest.raises(tm.SubmitError):
        h.submit(D.Note(log=log, tag="neg"), run_after=-1)
    with pytest.raises(tm.SubmitError):  # a naive datetime is ambiguous
        h.submit(D.Note(log=log, tag="naive"), run_at=datetime.now())
    with pytest.raises(tm.SubmitError):
        h.submit(D.Note(log=log, tag="both"), run_after=1, run_at=datetime.now(UTC))
    assert nothing_written(client)
    out = h.submit(D.Note(log=log, tag="at"), run_at=datetime.now(UTC) + timedelta(seconds=60))
    rec = client.task(out.id)  # type: ignore[arg-type]
    assert rec is not None and rec.run_after is not None and rec.run_after > time.time() + 55


def test_a_mixed_batch_keeps_its_order_and_stores_every_row_as_submitted(client: tm.Client, log: str) -> None:
    """Runs of one task type go in one statement, short runs row by row: ids still follow the batch's order,
    and each row keeps its own key, label, payload and tags."""

    def note(i: int, **kw: Any) -> tm.TaskSubmission:
        return tm.TaskSubmission(task_type="tm_main::note", payload={"log": log, "tag": f"n{i}"}, **kw)

    subs = [note(i, tags={"u": f"v{i}", "é": "ü" * i}) for i in range(12)]
    subs += [
        tm.TaskSubmission(task_type="tm_main::keyed", payload={"log": log, "k": "k"}, key=f"k{i}") for i in range(2)
    ]
    subs += [note(100 + i, label=f"label {i}", priority=tm.Priority.HIGH) for i in range(12)]
    out = client.submit_batch(subs)
    ids = [o.id for o in out]
    assert [o.kind for o in out] == ["inserted"] * len(subs) and ids == sorted(ids) and len(set(ids)) == len(ids)
    for i, tid in enumerate(ids):
        rec = client.task(tid)
        assert rec is not None and rec.status == "pending" and rec.payload is not None
        payload = msgspec.msgpack.decode(rec.payload)
        if i < 12:
            assert payload["tag"] == f"n{i}" and rec.tags == {"u": f"v{i}", "é": "ü" * i}
            assert client.task_ids_by_tags({"u": f"v{i}"}) == [tid]
            hashed = b"tm_main::note:" + rec.payload
        elif i < 14:
            assert payload["k"] == "k" and rec.label == f"k{i - 12}" and rec.tags == {}
            hashed = f"tm_main::keyed:k{i - 12}".encode()
        else:
            assert rec.label == f"label {i - 14}" and rec.priority == tm.Priority.HIGH and rec.tags == {}
            assert payload["tag"] == f"n{100 + i - 14}"
            hashed = b"tm_main::note:" + rec.payload
        assert rec.key == hashlib.sha256(hashed).hexdigest() and client.task_by_key(rec.key) == rec
    again = client.submit_batch(subs[:3] + subs[12:13])
    assert [o.kind for o in again] == ["duplicate"] * 4


def test_a_batch_sharing_one_label_and_tags_stores_them_on_every_row(client: tm.Client, log: str) -> None:
    """The common run (one label, one set of tags) goes in one statement that binds them once."""
    tags = {"team": "é-ü", "run": "7"}
    subs = [
        tm.TaskSubmission(task_type="tm_main::note", payload={"log": log, "tag": f"s{i}"}, label="same ☃", tags=tags)
        for i in range(20)
    ]
    out = client.submit_batch(subs)
    ids = [o.id for o in out]
    assert [o.kind for o in out] == ["inserted"] * 20 and ids == sorted(ids)
    assert sorted(client.task_ids_by_tags({"team": "é-ü"})) == ids
    for i, tid in enumerate(ids):
        rec = client.task(tid)
        assert rec is not None and rec.label == "same ☃" and rec.tags == tags and rec.payload is not None
        assert msgspec.msgpack.decode(rec.payload)["tag"] == f"s{i}"
        assert rec.key == hashlib.sha256(b"tm_main::note:" + rec.payload).hexdigest()


def test_batches_of_rows_alike_go_in_one_statement_typed_or_not(
    client: tm.Client, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed batches mark their rows with their template's stamp; untyped ones (each row resolved on its own)
    are compared field by field. Either way a run of rows alike is one insert statement."""
    from taskmill.store import submit as store_submit

    runs: list[int] = []
    real = store_submit._insert_run

    def spy(conn: Any, run: list[Any], reasons: int, now_ms: int) -> Any:
        runs.append(len(run))
        return real(conn, run, reasons, now_ms)

    monkeypatch.setattr(store_submit, "_insert_run", spy)
    untyped = [tm.TaskSubmission(task_type="tm_main::note", payload={"log": log, "tag": f"u{i}"}) for i in range(30)]
    assert len(client.submit_batch(untyped).inserted()) == 30
    assert runs == [30]
    typed = [D.Note(log=log, tag=f"t{i}") for i in range(30)] + [D.Keyed(log=log, k=f"k{i}") for i in range(10)]
    assert len(client.domain(D.main).submit_batch(typed).inserted()) == 40
    assert runs == [30, 30, 10]


def test_a_batch_into_a_paused_domain_is_stored_paused(client: tm.Client, log: str) -> None:
    h = client.domain(D.main)
    h.pause()
    out = h.submit_batch([D.Note(log=log, tag=f"p{i}") for i in range(20)])
    assert all(o.kind == "inserted" and o.paused for o in out)
    assert h.paused_count() == 20 and h.pending_count() == 0
    assert h.submit(D.Note(log=log, tag="single")).paused
    h.resume()
    out = h.submit_batch([D.Note(log=log, tag=f"r{i}") for i in range(20)])
    assert not any(o.paused for o in out) and h.pending_count() == 41


def test_a_changed_domain_default_applies_to_the_next_submit(client: tm.Client, log: str) -> None:
    """Plain submits reuse one template per type; it is made again when the domain's defaults change."""
    h = client.domain(D.main)
    first = h.submit(D.Note(log=log, tag="before"))
    old = D.main.default_priority
    D.main.default_priority = tm.Priority.HIGH
    try:
        second = h.submit(D.Note(log=log, tag="after"))
    finally:
        D.main.default_priority = old
    assert stored_priority(client, first.id) == tm.Priority.NORMAL
    assert stored_priority(client, second.id) == tm.Priority.HIGH
    assert stored_priority(client, h.submit(D.Note(log=log, tag="restored")).id) == tm.Priority.NORMAL


def test_a_batch_of_large_payloads_is_stored_intact_and_in_order(client: tm.Client) -> None:
    """Several statements share such a batch (a statement carries at most ~1 MiB of payloads)."""
    blobs = [D.Blob(data=f"{i:04d}" + "x" * 60_000) for i in range(40)]
    out = client.domain(D.payloads).submit_batch(blobs)
    ids = out.inserted()
    assert len(ids) == 40 and ids == sorted(ids)
    for tid, blob in zip(ids, blobs, strict=True):
        rec = client.task(tid)
        assert rec is not None and rec.payload == msgspec.msgpack.encode(blob)


# -- the one-statement path ---------------------------------------------------------------------------------


@contextlib.contextmanager
def statements(client: tm.Client) -> Iterator[list[str]]:
    """The SQL the client's connection runs meanwhile, first word upper-cased and whitespace folded."""
    conn = client._store().conn
    seen: list[str] = []

    def trace(cursor: Any, sql: str, bindings: Any) -> bool:
        seen.append(" ".join(sql.split()))
        return True

    conn.exec_trace = trace
    try:
        yield seen
    finally:
        conn.exec_trace = None


def test_a_plain_submit_commits_in_one_statement_and_anything_else_in_a_transaction(
    client: tm.Client, log: str
) -> None:
    """A new row with no tags, dependencies or schedule, while nothing is paused, is one autocommit INSERT: no
    BEGIN, key lookup and COMMIT round trips (~10% of a submit)."""
    h = client.domain(D.main)
    h.submit(D.Note(log=log, tag="warm"))  # the first one also reads the supervisor epoch
    with statements(client) as seen:
        out = h.submit(D.Note(log=log, tag="plain"), ttl=60)
    assert out.kind == "inserted" and len(seen) == 1 and seen[0].startswith("INSERT INTO tasks")
    assert client.task(out.id).expires_at is not None  # type: ignore[arg-type, union-attr]  # a TTL row qualifies
    with statements(client) as seen:
        tagged = h.submit(D.Note(log=log, tag="tagged"), tags={"k": "v"})
    assert tagged.kind == "inserted" and seen[0] == "BEGIN IMMEDIATE" and seen[-1] == "COMMIT"
    assert client.task(tagged.id).tags == {"k": "v"}  # type: ignore[arg-type, union-attr]
    with statements(client) as seen:  # the key is taken: nothing written, and the transaction decides
        again = h.submit(D.Note(log=log, tag="plain"))
    assert again.kind == "duplicate" and "BEGIN IMMEDIATE" in seen
    assert client.pending_count() == 3


def test_while_any_scope_is_paused_a_submit_is_stored_as_its_own_scope_says(client: tm.Client, log: str) -> None:
    """The one-statement insert stands aside while anything is paused; the transaction then pauses only the
    rows of a paused domain or group."""
    h = client.domain(D.main)
    h.pause_group("held")
    free = h.submit(D.Note(log=log, tag="free"))
    held = h.submit(D.Note(log=log, tag="held"), group="held")
    assert free.kind == held.kind == "inserted"
    assert not free.paused and held.paused and held.group_paused
    assert h.pending_count() == 1 and h.paused_count() == 1


def test_a_refused_one_statement_insert_leaves_nothing_behind(db: Path, log: str) -> None:
    """A full disk fails the INSERT: SQLite rolls its transaction back, the caller gets StorageFull, and the
    connection is fit for the next submit."""
    with tm.connect(db, durability="normal") as client:
        h = client.domain(D.main)
        h.submit(D.Note(log=log, tag="first"))
        conn = client._store().conn
        pages = int(next(iter(conn.execute("PRAGMA page_count")))[0])
        conn.execute(f"PRAGMA max_page_count = {pages}")
        big = "x" * 20_000  # needs new pages, which the limit refuses
        with pytest.raises(tm.StorageFull):
            for i in range(50):
                h.submit(D.Note(log=big, tag=f"big{i}"))
        refused_at = client.pending_count()
        assert not conn.in_transaction
        conn.execute("PRAGMA max_page_count = 1000000")
        assert h.submit(D.Note(log=log, tag="after")).kind == "inserted"
        assert client.pending_count() == refused_at + 1

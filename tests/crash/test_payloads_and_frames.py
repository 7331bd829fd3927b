"""F10: malformed, schema-drifted and oversized payloads, and corrupt frames on a worker's pipe.

Pass: a payload that cannot be a task (undecodable, wrong fields or types, unknown type, over the size cap)
is refused at submit with a typed error and writes no row; whatever arrives on a pipe is a message or a
``ProtocolError``, never anything else; a worker that sends a corrupt frame is killed and replaced, its task
runs again, and the other worker carries on. Nothing is ever unpickled. (A payload that decodes at submit
but not in the worker, schema drift between versions, is tests/integration/test_payloads.py.)
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import taskmill as tm
from taskmill.protocol import HEADER, MAX_FRAME, ProtocolError, Result, Results, TaskSpec, body_length, frame
from taskmill.protocol import decode_for_supervisor as for_supervisor
from taskmill.protocol import decode_for_worker as for_worker
from tests.crash import faulty, ledger
from tests.crash.harness import Run, publish, size

EXAMPLES = size(300, 10_000)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                    st.binary(max_size=20))  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                      inner, max_size=4), max_leaves=10)  # fmt: skip
field_names = st.sampled_from(["ledger", "n", "value", "extra", "N", ""]) | st.text(max_size=6)
shapes = st.dictionaries(field_names, values, max_size=5)
near_valid = st.fixed_dictionaries(
    {"ledger": st.text(max_size=10) | values, "n": st.integers() | values, "value": st.integers() | values},
    optional={"extra": values},
)


@pytest.fixture
def no_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


def _valid(payload: Any) -> bool:
    try:
        if isinstance(payload, bytes):
            msgspec.msgpack.decode(payload, type=faulty.Strict)
        else:
            msgspec.msgpack.encode(msgspec.convert(payload, faulty.Strict, strict=True))  # msgpack ints are 64-bit
        return True
    except (msgspec.DecodeError, msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return False


def test_submitted_payloads_are_stored_only_if_they_are_valid_tasks(tmp_path: Path, no_pickle: None) -> None:
    run = Run(tmp_path)
    seen = {"inserted": 0, "refused": 0}
    with tm.connect(run.db, max_payload_bytes=4096) as client:

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        @example(payload=b"\x81\xa3\x00\x00\x80", task_type="tm_fault::strict")  # invalid UTF-8 in a key
        @example(payload={"ledger": "", "n": -(2**63) - 1, "value": 0}, task_type="tm_fault::strict")
        @given(payload=st.one_of(st.binary(max_size=300), shapes, near_valid, st.binary(min_size=4097,
               max_size=5000)), task_type=st.sampled_from(["tm_fault::strict"] * 8 + ["tm_fault::nope",
               "nope::strict", "strict", ""]))  # fmt: skip
        def check(payload: Any, task_type: str) -> None:
            before = client.pending_count()
            sub = tm.TaskSubmission(task_type=task_type, payload=payload, key=f"k{seen['inserted']}")
            try:
                out = client.submit(sub)
            except tm.SubmitError as exc:
                assert client.pending_count() == before  # refused: nothing written
                too_big = isinstance(payload, bytes) and len(payload) > 4096
                if task_type != "tm_fault::strict":
                    assert isinstance(exc, tm.UnknownTaskType)
                elif too_big:
                    assert isinstance(exc, tm.PayloadTooLarge)
                else:
                    assert isinstance(exc, tm.InvalidPayload) and not _valid(payload)
                seen["refused"] += 1
                return
            assert task_type == "tm_fault::strict" and _valid(payload), payload
            assert out.kind == "inserted" and client.pending_count() == before + 1
            seen["inserted"] += 1

        check()
    assert seen["inserted"] and seen["refused"]
    publish({"scenario": "F10 payloads at submit", "examples": EXAMPLES, **seen, "rows_for_refused": 0})


@settings(max_examples=EXAMPLES, deadline=None)
@given(body=st.binary(max_size=200))
def test_any_bytes_on_a_pipe_decode_to_a_message_or_a_protocol_error(body: bytes) -> None:
    for decode in (for_supervisor, for_worker):
        try:
            decode(body)
        except ProtocolError:
            pass


def test_frames_over_the_cap_are_refused_on_both_sides() -> None:
    with pytest.raises(ProtocolError):
        body_length(HEADER.pack(MAX_FRAME + 1))
    assert body_length(HEADER.pack(MAX_FRAME)) == MAX_FRAME
    with pytest.raises(ProtocolError):
        frame(Results([Result(1, 1, "ok", 0, 0, memo=b"x" * (MAX_FRAME + 1))]))


CORRUPT = {  # data, seconds the task runs on afterwards
    "undecodable body": (HEADER.pack(5) + b"hello", 30.0),
    "announced length over the cap": (HEADER.pack(MAX_FRAME + 1), 30.0),
    "truncated frame": (HEADER.pack(8) + b"\x82\xa1", 0.0),  # its result frame completes it: garbage
}


def test_a_worker_sending_a_corrupt_frame_is_replaced_and_its_task_runs_again(
    make_scheduler: Any, tmp_path: Path, no_pickle: None
) -> None:
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=2, path=run.db, retry=tm.RetryPolicy.constant(3, 0.0), start=True)
    h = s.domain(faulty.fault)
    bystander = h.submit(faulty.Job(ledger=run.ledger, n=1, ms=300 * len(CORRUPT) + 1500))
    run.wait_ledger(1)
    [steady] = ledger.read(run.ledger).started(1)
    acked = {1: bystander.id}
    requeued: list[float] = []
    for i, (data, then) in enumerate(CORRUPT.values(), start=2):
        acked[i] = h.submit(faulty.Garbage(ledger=run.ledger, n=i, data=data, then=then)).id
        run.wait_ledger(len(ledger.read(run.ledger).executions) + 1)
        first = ledger.read(run.ledger).started(i)[0]
        t0 = time.monotonic()
        deadline = t0 + 5
        while len(ledger.read(run.ledger).started(i)) < 2:
            assert time.monotonic() < deadline, "the task did not run again"
            time.sleep(0.005)
        requeued.append(time.monotonic() - t0)
        assert ledger.read(run.ledger).started(i)[1].pid != first.pid  # in the replacement worker
    assert s.wait_until_idle(30)
    [ran] = ledger.read(run.ledger).started(1)
    assert ran.pid == steady.pid and ran.how == "E"  # the other worker was never disturbed
    for i in range(2, 2 + len(CORRUPT)):
        [rec] = s.history_of(acked[i])
        assert (rec.status, rec.retry_count) == ("completed", 1)  # the corrupt attempt counted as a failure
    report = ledger.check("F10 corrupt frames", ledger.read(run.ledger), acked, run.db,
                          allowed=set(range(2, 2 + len(CORRUPT))), ended_ok=())  # fmt: skip
    report.assert_ok()
    publish(report, corrupt_frames=len(CORRUPT), rerun_after_max_s=round(max(requeued), 3))


def test_oversized_results_and_progress_never_reach_a_pipe() -> None:
    """A memo over the limit fails the attempt (permanently, with a readable error) instead of making the
    worker's result frame too big to send; a huge progress message is cut."""
    from taskmill.workers import attempt
    from taskmill.workers.progress import MAX_MESSAGE, ProgressReporter

    spec = TaskSpec(1, "t", "d", "k", "l", 128, b"", 0, None, 1, 0, None, None, None)
    ctx = type("Ctx", (), {"cancelled": False, "read_bytes": 0, "write_bytes": 0, "net_rx_bytes": 0,
                           "net_tx_bytes": 0})()  # fmt: skip
    big = attempt.outcome(spec, ctx, 0, 0.0, b"x" * (attempt.MAX_MEMO + 1), None)  # type: ignore[arg-type]
    assert (big.status, big.retryable, big.memo) == ("error", False, None) and "limit" in (big.error or "")
    ok = attempt.outcome(spec, ctx, 0, 0.0, b"x" * 1000, None)  # type: ignore[arg-type]
    assert ok.status == "ok" and ok.memo is not None
    sent: list[Any] = []
    reporter = ProgressReporter(1, 1, sent.append)
    reporter.report(1.0, "m" * (10 * MAX_MESSAGE))
    assert len(frame(sent[-1])) < 2 * MAX_MESSAGE


def test_a_stored_payload_the_worker_cannot_decode_fails_alone(make_scheduler: Any, tmp_path: Path) -> None:
    """A payload damaged on disk (here: invalid UTF-8) fails its task permanently, with PayloadDecodeError;
    the worker lives on and runs the next task."""
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=1, path=run.db)
    h = s.domain(faulty.fault)
    bad = h.submit(faulty.Strict(ledger=run.ledger, n=1, value=1)).id
    good = h.submit(faulty.Strict(ledger=run.ledger, n=2, value=2)).id
    conn = apsw.Connection(run.db)
    conn.execute("UPDATE tasks SET payload = ? WHERE id = ?", (b"\x81\xa3\x00\x00\x80", bad))
    conn.close()
    s.start()
    assert s.wait_until_idle(20)
    [rec] = s.history_of(bad)
    assert rec.status == "failed" and "PayloadDecodeError" in (rec.last_error or "")
    assert [r.status for r in s.history_of(good)] == ["completed"]
    [ran] = ledger.read(run.ledger).executions
    assert ran.n == 2 and ran.how == "E"

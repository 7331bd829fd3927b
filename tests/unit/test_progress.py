"""Progress arithmetic (throughput, ETA, extrapolation), the worker's coalescing of reports, event filters and
the JSON form of every event. No processes."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest

import taskmill as tm
from taskmill import events as ev
from taskmill.policy.progress import Throughput, eta, extrapolate
from taskmill.protocol import ByteProgress, Progress
from taskmill.task_events import domain_filter, type_filter
from taskmill.workers import progress as wp


def test_throughput_is_an_ewma_whose_first_sample_gives_zero() -> None:
    t = Throughput()
    t.sample(0, 10.0)
    assert t.bps == 0.0
    t.sample(1000, 11.0)  # 1000 B/s
    assert t.bps == pytest.approx(300.0)
    t.sample(1000, 11.005)  # 5 ms later: ignored, not an infinite or zero rate
    assert t.bps == pytest.approx(300.0)
    t.sample(3000, 12.0)  # 2000 B/s over the last second (from the last accepted sample)
    assert t.bps == pytest.approx(0.3 * 2000 + 0.7 * 300)
    t.sample(3000, 13.0)  # a stall: the rate falls
    assert t.bps == pytest.approx(0.7 * (0.3 * 2000 + 0.7 * 300))


def test_eta_needs_a_total_a_rate_and_work_left() -> None:
    assert eta(250, 1000, 50.0) == pytest.approx(15.0)
    assert eta(250, None, 50.0) is None and eta(250, 1000, 0.0) is None and eta(1000, 1000, 50.0) is None


def test_extrapolation_from_history_alone_and_blended_with_a_report() -> None:
    assert extrapolate(None, 0.0, 5.0) is None and extrapolate(10.0, None, 5.0) is None
    assert extrapolate(10.0, 100.0, 102.5) == pytest.approx(0.25)
    assert extrapolate(10.0, 100.0, 130.0) == 0.99  # never claims to be done
    # reported 0.5 at t=104 (4 s in: 0.125/s) vs history 0.1/s: moves on at 0.1125/s from the report
    assert extrapolate(10.0, 100.0, 106.0, 0.5, 104.0) == pytest.approx(0.5 + 0.1125 * 2)
    assert extrapolate(10.0, 100.0, 200.0, 0.5, 104.0) == 0.99


class Frames:
    def __init__(self) -> None:
        self.items: list[msgspec.Struct] = []
        self.lock = threading.Lock()

    def __call__(self, msg: msgspec.Struct) -> None:
        with self.lock:
            self.items.append(msg)

    def of(self, kind: type) -> list[object]:
        with self.lock:
            return [m for m in self.items if isinstance(m, kind)]


def test_a_tight_add_bytes_loop_sends_a_few_frames_and_the_exact_final_count() -> None:
    frames = Frames()
    r = wp.ProgressReporter(7, 1, frames)
    r.set_bytes_total(10**9)
    calls = 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.4:
        for _ in range(1000):
            r.add_bytes(3)
        calls += 1000
    elapsed = time.monotonic() - t0
    sent = frames.of(ByteProgress)
    assert 1 <= len(sent) <= elapsed / wp.MIN_INTERVAL + 3, len(sent)  # at most one per 50 ms, not per call
    r.close()
    final = frames.of(ByteProgress)[-1]
    assert isinstance(final, ByteProgress)
    assert (final.task_id, final.attempt, final.done, final.total) == (7, 1, 3 * calls, 10**9)
    dones = [m.done for m in frames.of(ByteProgress)]  # type: ignore[attr-defined]
    assert dones == sorted(dones)
    n = len(frames.items)
    r.add_bytes(5)
    r.report(0.9)
    time.sleep(2 * wp.MIN_INTERVAL)
    assert len(frames.items) == n  # nothing about an attempt after it closed (its result follows)


def test_fraction_reports_are_coalesced_and_the_last_one_is_never_lost() -> None:
    frames = Frames()
    r = wp.ProgressReporter(1, 2, frames)
    for i in range(20_000):
        r.report(i / 20_000, f"item {i}")
    sent = frames.of(Progress)
    assert 1 <= len(sent) <= 5
    time.sleep(3 * wp.MIN_INTERVAL)  # the flusher sends the held-back newest value
    last = frames.of(Progress)[-1]
    assert isinstance(last, Progress) and last.message == "item 19999"
    r.report_fraction(0, 0, "nothing to do")  # total 0: complete
    r.close()
    last = frames.of(Progress)[-1]
    assert isinstance(last, Progress) and (last.fraction, last.message) == (1.0, "nothing to do")
    r2 = wp.ProgressReporter(1, 3, frames)
    r2.report(-3)
    r2.report(float("nan"))
    r2.close()
    assert [m.fraction for m in frames.of(Progress)[-2:]] == [0.0, 0.0]  # type: ignore[attr-defined]


def test_a_stalled_transfer_is_re_reported_about_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wp, "BYTES_KEEPALIVE", 0.2)  # a second in production
    frames = Frames()
    r = wp.ProgressReporter(3, 1, frames)
    r.add_bytes(100)
    time.sleep(0.2 + 0.3)
    sent = frames.of(ByteProgress)
    assert len(sent) >= 2 and {m.done for m in sent} == {100}  # type: ignore[attr-defined]
    r.close()


def _header(task_type: str) -> ev.EventHeader:
    return ev.EventHeader(1, task_type, "k", "l", 128, 128, {}, task_type.partition("::")[0])


def test_domain_and_type_filters() -> None:
    accept = domain_filter("media")
    assert accept(ev.Completed(_header("media::resize")))
    assert not accept(ev.Completed(_header("mediax::resize")))  # a prefix, not a substring
    assert accept(ev.Waiting(_header("media::resize"), 2)) and accept(ev.TaskUnblocked(_header("media::a")))
    assert accept(ev.DependencyFailed(_header("media::a"), 3))
    assert accept(ev.Paused(None, "all")) and accept(ev.Resumed(None, "domain", "media"))
    assert not accept(ev.Paused(None, "domain", "other"))
    assert accept(ev.GroupPaused(None, "g")) and accept(ev.GroupWeightChanged(None, "g", 1, 2))
    assert accept(ev.BatchSubmitted(None, 2, [1, 2], ["media", "other"]))
    assert not accept(ev.BatchSubmitted(None, 1, [3], ["other"])) and not accept(ev.WorkerDied(None, 1, "x"))
    typed = type_filter("media::resize")
    assert typed(ev.Dispatched(_header("media::resize"))) and not typed(ev.Dispatched(_header("media::crop")))
    assert not typed(ev.Paused(None, "all"))


def test_every_event_kind_round_trips_through_json() -> None:
    h = _header("media::resize")
    samples = [
        ev.Dispatched(h, 10, 1), ev.Completed(h, 0.5), ev.Failed(h, "x", True, 2.0, 1), ev.DeadLettered(h, "x", 3),
        ev.Progress(h, 0.5, "m"), ev.Cancelled(h), ev.Preempted(h), ev.TaskPaused(h, 2), ev.Superseded(h, 9),
        ev.Paused(None, "all", None, 1), ev.Resumed(None, "domain", "media", 1), ev.GroupPaused(None, "g", 1, 2),
        ev.GroupResumed(None, "g", 3), ev.GroupWeightChanged(None, "g", 1, 3), ev.WorkerDied(None, 1, "oom"),
        ev.Waiting(h, 2), ev.TaskUnblocked(h), ev.DependencyFailed(h, 4, "failed", "cancel"), ev.TaskExpired(h, 3.0),
        ev.RecurringSkipped(h, 2, 100.0, "busy"), ev.RecurringCompleted(h, 3, None),
        ev.BatchSubmitted(None, 2, [1, 2], ["media"]),
    ]  # fmt: skip
    kinds = {type(e) for e in samples}
    assert kinds == set(ev.AnyEvent.__args__)  # type: ignore[attr-defined]
    decoder = msgspec.json.Decoder(ev.AnyEvent)
    for e in samples:
        raw = msgspec.json.encode(e)
        assert decoder.decode(raw) == e
        assert msgspec.json.decode(raw)["event"] == type(e).__struct_config__.tag
    weight = msgspec.json.decode(msgspec.json.encode(ev.GroupWeightChanged(None, "g", 1, 2)))
    assert (weight["group"], weight["previous_weight"], weight["new_weight"]) == ("g", 1, 2)
    assert tm.GroupWeightChanged is ev.GroupWeightChanged and tm.BatchSubmitted is ev.BatchSubmitted


def test_top_shows_the_reported_or_estimated_fraction_and_byte_progress() -> None:
    from taskmill.cli_top import progress_cell

    assert progress_cell({}) == "-"
    assert progress_cell({"estimated": 0.5}).startswith("~") and "50%" in progress_cell({"estimated": 0.5})
    cell = progress_cell({"progress": 0.25, "estimated": 0.9, "bytes_completed": 1_500_000, "bytes_total": 3_000_000,
                          "throughput_bps": 500_000.0, "eta": 3.0, "message": "copying"})  # fmt: skip
    assert " 25%" in cell and "~" not in cell and "1.5 MB/3.0 MB" in cell and "500.0 kB/s" in cell
    assert "eta 3s" in cell and cell.endswith("copying")

"""Metrics, history IO and the tag index with a real supervisor and worker processes."""

from __future__ import annotations

import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import apsw
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

import taskmill as tm
from tests.helpers import entries, run_python, wait_for
from tests.integration import query_domains as O

OTHER_PROCESS = """
import sys

import taskmill as tm
from tests.integration import query_domains as O

db, log = sys.argv[1], sys.argv[2]
with tm.connect(db) as client:
    h = client.domain(O.obs)
    h.submit_batch([O.Io(log=log, tag=f"remote{i}") for i in range(3)])
    later = h.submit(O.Io(log=log, tag="remote-later"), run_after=600)
    assert client.cancel(later.id)
"""


def started(log: str, tag: str, n: int = 1) -> bool:
    return len(entries(log, "start", tag)) >= n


def families(text: bytes) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def samples(fam: Any, suffix: str = "", **labels: str) -> list[Any]:
    return [
        s for s in fam.samples if s.name == fam.name + suffix and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def indexed_tag_ids(db: Path) -> set[int]:
    conn = apsw.Connection(str(db))
    try:
        return {int(r[0]) for r in conn.execute("SELECT task_id FROM task_tags")}
    finally:
        conn.close()


def test_metrics_count_what_went_through_each_path(make_scheduler: Any, db: Path, tmp_path: Path, log: str) -> None:
    s = make_scheduler([O.obs], workers=2, expiry_sweep_interval=0.2, preempt_grace=1.0, start=True)
    h = s.domain(O.obs)
    io = lambda tag, **kw: O.Io(log=log, tag=tag, **kw)  # noqa: E731
    gate = str(tmp_path / "gate")
    expect: Counter[str] = Counter()
    assert s.metrics_snapshot() == tm.MetricsSnapshot(max_concurrency=s.max_concurrency)

    h.submit_batch([io(f"ok{i}", read=100) for i in range(5)])  # complete
    expect.update(submitted=5, batches_submitted=1, completed=5)
    for tag in ("r1", "r2"):  # fail, retried at once, complete
        h.submit(io(tag, fail="retry_once"))
    expect.update(submitted=2, failed=2, failed_retryable=2, retried=2, completed=2)
    h.submit(io("perm", fail="permanent"))
    expect.update(submitted=1, failed=1)
    h.submit(io("dead", fail="always"), max_retries=1)  # two attempts, then the dead letters
    expect.update(submitted=1, failed=2, failed_retryable=2, retried=1, dead_lettered=1)
    queued = h.submit(io("queued"), run_after=600)
    assert s.cancel(queued.id)  # type: ignore[arg-type]
    expect.update(submitted=1, cancelled=1)
    h.submit(io("sq", k="sq"), run_after=600)
    assert h.submit(io("sq-new", k="sq"), on_duplicate="supersede").kind == "superseded"  # in place, then runs
    expect.update(submitted=2, superseded=1, completed=1)
    h.submit(io("exp"), run_after=600, ttl=0.3)  # the sweep expires it
    expect.update(submitted=1, expired=1)
    upstream = h.submit(io("up"), run_after=600)
    h.submit(io("down"), depends_on=[upstream.id])  # type: ignore[list-item]
    assert s.cancel(upstream.id)  # type: ignore[arg-type]
    expect.update(submitted=2, cancelled=1, dependency_failures=1)
    stopped = h.submit(io("stop-me", gate=gate), tags={"stop.me": "yes"})
    wait_for(lambda: started(log, "stop-me"), what="stop-me started")
    assert s.cancel_by_tag_key_prefix("stop.") == [stopped.id]  # running: stopped through the cancel path
    expect.update(submitted=1, cancelled=1)
    h.submit(io("sr", k="sr", gate=gate))
    wait_for(lambda: started(log, "sr"), what="sr started")
    assert h.submit(io("sr-new", k="sr"), on_duplicate="supersede").kind == "superseded"  # stops the running one
    expect.update(submitted=2, superseded=1, completed=1)
    script = tmp_path / "other_process.py"
    script.write_text(textwrap.dedent(OTHER_PROCESS))
    proc = run_python(script, str(db), log)
    assert proc.returncode == 0, proc.stderr
    expect.update(submitted=4, batches_submitted=1, completed=3, cancelled=1)
    s.pause_group("g")
    s.resume_group("g")
    expect.update(group_pauses=1, group_resumes=1)
    wait_for(lambda: s.status_counts()["running"] == 0 and s.pending_count() == 0, what="all ran")
    h.submit(io("victim", gate=gate))
    wait_for(lambda: started(log, "victim"), what="victim started")
    h.submit(io("urgent"), priority=tm.Priority.REALTIME)  # preempts the victim, which reruns afterwards
    wait_for(lambda: s.paused_count() == 1 or started(log, "urgent"), what="victim preempted")
    Path(gate).touch()
    expect.update(submitted=2, preempted=1, completed=2)
    keep = h.submit(io("keep"), run_after=600, tags={"x": "1"})
    expect.update(submitted=1)

    def settled() -> tm.MetricsSnapshot | None:
        snap = s.metrics_snapshot()
        got = {k: getattr(snap, k) for k in expect}
        return snap if got == dict(expect) and snap.pending == 1 and snap.running == 0 else None

    try:
        snap = wait_for(settled, timeout=20, what="metrics to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: expected {dict(expect)}, got {s.metrics_snapshot()}") from None
    starts = len(entries(log, "start"))
    assert snap.dispatched == starts - snap.retried  # immediate retries run on the same dispatch
    zero = set(tm.MetricsSnapshot.__struct_fields__) - set(expect) - {
        "dispatched", "pending", "max_concurrency", "gate_denials_by_reason"}  # fmt: skip
    assert {k: getattr(snap, k) for k in zero} == dict.fromkeys(zero, 0)
    assert (snap.pending, snap.max_concurrency) == (1, s.max_concurrency)
    # the tag index holds active tasks only (counters move on results, the index with the turn's commit)
    wait_for(lambda: indexed_tag_ids(db) == {keep.id}, what="the tag index to hold only the active task")

    fams = families(s.metrics_text())
    typed = {"type": "tm_q::io", "module": "tm_q", "group": ""}
    assert sum(x.value for x in samples(fams["taskmill_tasks_submitted"], "_total", **typed)) == snap.submitted
    assert sum(x.value for x in samples(fams["taskmill_tasks_completed"], "_total", **typed)) == snap.completed
    assert sum(x.value for x in samples(fams["taskmill_tasks_dispatched"], "_total", **typed)) == snap.dispatched
    failed = fams["taskmill_tasks_failed"]
    assert samples(failed, "_total", retryable="true", **typed)[0].value == snap.failed_retryable
    assert samples(failed, "_total", retryable="false", **typed)[0].value == snap.failed - snap.failed_retryable
    for name, field in (
        ("tasks_retried", "retried"),
        ("tasks_dead_lettered", "dead_lettered"),
        ("tasks_superseded", "superseded"),
        ("tasks_cancelled", "cancelled"),
        ("tasks_expired", "expired"),
        ("tasks_preempted", "preempted"),
        ("batches_submitted", "batches_submitted"),
        ("dependency_failures", "dependency_failures"),
    ):
        assert samples(fams[f"taskmill_{name}"], "_total")[0].value == getattr(snap, field), name  # fmt: skip
    assert samples(fams["taskmill_group_pauses"], "_total", group="g")[0].value == 1
    durations = fams["taskmill_task_duration_seconds"]
    assert samples(durations, "_count", type="tm_q::io", status="completed")[0].value == snap.completed
    assert samples(durations, "_count", type="tm_q::io", status="failed")[0].value == snap.failed
    waits = samples(fams["taskmill_task_queue_wait_seconds"], "_count", type="tm_q::io", module="tm_q")
    assert 0 < waits[0].value <= snap.dispatched
    batch = fams["taskmill_batch_size"]
    assert samples(batch, "_count")[0].value == 2 and samples(batch, "_sum")[0].value == 8
    assert samples(batch, "_bucket", le="5.0")[0].value == 2 and samples(batch, "_bucket", le="1.0")[0].value == 0
    assert samples(fams["taskmill_tasks_pending"])[0].value == 1


def test_history_records_the_executors_io_and_tags(make_scheduler: Any, tmp_path: Path, log: str) -> None:
    s = make_scheduler([O.obs], workers=1, start=True)
    h = s.domain(O.obs)
    out = h.submit(O.Io(log=log, tag="io", read=5000, write=700, rx=30, tx=4, sleep=0.05), tags={"user": "7"})
    gate = str(tmp_path / "gate")
    again = h.submit(O.Io(log=log, tag="twice", k="twice", read=10, write=20, gate=gate))
    wait_for(lambda: started(log, "twice"), what="first run started")
    assert h.submit(O.Io(log=log, tag="twice", k="twice")).kind == "requeued"  # it runs once more after
    Path(gate).touch()
    wait_for(lambda: len(s.history_of(again.id)) == 2, what="both runs recorded")  # type: ignore[arg-type]
    rec = s.history_of(out.id)[0]  # type: ignore[arg-type]
    assert rec.status == "completed" and rec.tags == {"team": "core", "user": "7"}
    assert (rec.actual_read_bytes, rec.actual_write_bytes, rec.actual_net_rx_bytes, rec.actual_net_tx_bytes) == (
        5000, 700, 30, 4)  # fmt: skip
    runs = s.history_of(again.id)  # type: ignore[arg-type]
    assert [(r.status, r.actual_read_bytes, r.actual_write_bytes) for r in runs] == [("completed", 10, 20)] * 2
    stats = h.history_stats(O.Io)
    assert (stats.count, stats.completed, stats.failed, stats.avg_read_bytes) == (3, 3, 0, (5000 + 10 + 10) / 3)
    assert rec.duration is not None and rec.duration >= 0.05
    timed = [r for r in s.history_by_type("tm_q::io") if r.duration]  # runs of 0 ms have no rate
    rates = [(r.actual_read_bytes / r.duration, r.actual_write_bytes / r.duration) for r in timed]  # type: ignore[operator]
    assert rec in timed
    assert s.avg_throughput("tm_q::io") == pytest.approx(tuple(sum(x) / len(rates) for x in zip(*rates, strict=True)))
    assert s.avg_throughput("tm_q::io", n=1) == pytest.approx(rates[0])


def test_a_recurring_task_is_tag_indexed_while_it_has_a_next_occurrence(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([O.obs], workers=1, start=True)
    out = s.domain(O.obs).submit(O.Io(log=log, tag="tick"), recurring=tm.RecurringSchedule(0.3, max_occurrences=2),
                                 tags={"kind": "tick"})  # fmt: skip
    wait_for(lambda: len(s.history_of(out.id)) == 1, what="the first occurrence")  # type: ignore[arg-type]
    assert s.task_ids_by_tags({"kind": "tick"}) == [out.id]  # the next occurrence is queued, tags indexed
    wait_for(lambda: s.task(out.id) is None, what="the schedule to end")  # type: ignore[arg-type]
    assert s.task_ids_by_tags({"kind": "tick"}) == [] and s.count_by_tag("kind") == []
    assert [r.tags for r in s.history_of(out.id)] == [{"team": "core", "kind": "tick"}] * 2  # type: ignore[arg-type]


def test_exposition_options_and_private_registries(make_scheduler: Any, tmp_path: Path) -> None:
    a = make_scheduler([O.obs], metrics_prefix="app", metrics_labels={"env": "prod", "region": "eu"},
                       metrics_disabled=["task_duration_seconds", "taskmill_tasks_pending"])  # fmt: skip
    b = make_scheduler([O.obs], path=tmp_path / "b.db")
    fa, fb = families(a.metrics_text()), families(b.metrics_text())
    assert all(name.startswith("app_taskmill_") for name in fa) and all(name.startswith("taskmill_") for name in fb)
    assert "app_taskmill_tasks_completed" in fa and "taskmill_tasks_completed" in fb
    assert "app_taskmill_task_duration_seconds" not in fa and "app_taskmill_tasks_pending" not in fa
    assert "app_taskmill_tasks_running" in fa and "taskmill_task_duration_seconds" in fb
    assert a.metrics.durations is None and b.metrics.durations is not None  # disabled: not even observed
    for fam in fa.values():
        for sample in fam.samples:
            assert sample.labels["env"] == "prod" and sample.labels["region"] == "eu", sample
    assert a.metrics_registry is not b.metrics_registry
    a.metrics.inc_gate_denial("group_cap")  # what the dispatch gate calls (supervisor.metrics)
    a.metrics.inc_gate_denial("group_cap")
    a.metrics.inc_rate_limit_throttle()
    snap = a.metrics_snapshot()
    assert (snap.gate_denials, snap.rate_limit_throttles) == (3, 1)
    assert snap.gate_denials_by_reason == {"group_cap": 2, "rate_limited": 1}
    denials = families(a.metrics_text())["app_taskmill_gate_denials"]
    assert {x.labels["reason"]: x.value for x in samples(denials, "_total")} == {"group_cap": 2, "rate_limited": 1}
    assert b.metrics_snapshot().gate_denials == 0
    assert not any(n.startswith(("taskmill_", "app_taskmill_")) for n in families(prometheus_client.generate_latest()))
    for bad, match in (({"metrics_prefix": "9x"}, "metrics_prefix"), ({"metrics_labels": {"type": "x"}}, "taskmill's own"),
                       ({"metrics_disabled": ["nope"]}, "unknown metric 'nope'")):  # fmt: skip
        try:
            make_scheduler([O.obs], path=tmp_path / "c.db", **bad)
        except tm.ConfigError as exc:
            assert match in str(exc)
        else:
            raise AssertionError(f"{bad} accepted")


def test_a_large_batch_is_counted_in_slices_without_other_activity(
    make_scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor counts new rows for ``submitted`` a bounded slice per turn (a million-task batch must not
    stall dispatch for seconds), and keeps taking turns until it has counted them all, even with nothing to run."""
    from taskmill.store import stats

    monkeypatch.setattr(stats, "NEW_ROWS_PER_SCAN", 50)
    scans: list[int] = []
    real = stats.new_rows

    def counting(conn: Any, after_id: int, limit: int | None = None) -> Any:
        found = real(conn, after_id, limit)
        scans.append(sum(n for _, _, n in found[0]))
        return found

    monkeypatch.setattr(stats, "new_rows", counting)
    s = make_scheduler([O.obs], start=True)
    s.pause_all()  # nothing runs: no result or claim wakes the loop again after the batch's own wake-up
    s.domain(O.obs).submit_batch([O.Io(log="unused", tag=f"d{i}") for i in range(420)])
    deadline = time.monotonic() + 10
    while s.metrics_snapshot().submitted < 420:
        assert time.monotonic() < deadline, (s.metrics_snapshot().submitted, scans)
        time.sleep(0.01)
    assert s.metrics_snapshot().submitted == 420 and max(scans) <= 50

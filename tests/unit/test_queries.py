"""Query APIs on a real database, without processes: runs are claimed and finished with the store functions the
supervisor uses, so durations, IO and outcomes are exact."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import apsw
import msgspec
import pytest

import taskmill as tm
from taskmill.store import Store, dispatch, sql
from taskmill.store import schema as store_schema
from tests.integration import query_domains as O


@pytest.fixture
def client(db: Path) -> Any:
    with tm.connect(db) as c:
        yield c


def io(log: str, tag: str, **kw: Any) -> O.Io:
    return O.Io(log=log, tag=tag, **kw)


def claim(client: tm.Client, n: int) -> list[Any]:
    store = client._store()
    with store.write():
        return dispatch.claim_next(store.conn, n, int(time.time() * 1000))


def finish(client: tm.Client, claimed: list[Any], status: str = "completed", *, ms: int = 100, read: int = 0,
           write: int = 0, rx: int = 0, tx: int = 0, error: str | None = None) -> None:  # fmt: skip
    """Record how the claimed runs ended, as the dispatcher does (one row per run)."""
    store = client._store()
    now = int(time.time() * 1000)
    rows = [(status, now, now - ms, ms, read, write, rx, tx, 0 if status == "completed" else 1, error, c.id, c.attempt)
            for c in claimed]  # fmt: skip
    with store.write():
        dispatch.finish(store.conn, rows)
        dispatch.drop_finished_tags(store.conn, [c.id for c in claimed])


def run_one(client: tm.Client, task: tm.Task, status: str = "completed", **kw: Any) -> int:
    out = client.domain(O.obs).submit(task)
    assert out.id is not None
    got = claim(client, 1)
    assert [c.id for c in got] == [out.id]
    finish(client, got, status, **kw)
    return out.id


def indexed_tag_ids(db: Path) -> set[int]:
    conn = apsw.Connection(str(db))
    try:
        return {int(r[0]) for r in conn.execute("SELECT task_id FROM task_tags")}
    finally:
        conn.close()


# -- active tasks -------------------------------------------------------------------------------------------


def test_lists_and_counts_per_status_and_domain(client: tm.Client, log: str) -> None:
    h, other = client.domain(O.obs), client.domain(O.obs_other)
    first = h.submit(io(log, "run"))
    ping = other.submit(O.Ping(n=1))
    delayed = h.submit(io(log, "later"), run_after=60)
    running = claim(client, 1)
    assert [c.id for c in running] == [first.id]
    blocked = h.submit(io(log, "blocked"), depends_on=[delayed.id])
    client.pause_group("g")
    paused = h.submit(io(log, "paused"), group="g")
    assert paused.paused and blocked.blocked
    assert (client.pending_count(), client.running_count(), client.paused_count(), client.blocked_count(),
            client.waiting_count()) == (2, 1, 1, 1, 0)  # fmt: skip
    assert [t.id for t in client.pending_tasks()] == [ping.id, delayed.id]
    assert [t.id for t in client.running_tasks()] == [first.id]
    assert [t.id for t in client.paused_tasks()] == [paused.id]
    assert [t.id for t in client.blocked_tasks()] == [blocked.id] and client.waiting_tasks() == []
    assert client.pending_by_type() == {"tm_q::io": 1, "tm_q_other::ping": 1}
    # a domain handle sees only its own tasks
    assert [t.id for t in h.pending_tasks()] == [delayed.id] and [t.id for t in other.pending_tasks()] == [ping.id]
    assert [t.id for t in h.running_tasks()] == [first.id] and other.running_tasks() == []
    assert [t.id for t in h.paused_tasks()] == [paused.id] and other.paused_count() == 0
    assert (h.pending_count(), h.running_count(), h.paused_count(), h.waiting_count()) == (1, 1, 1, 0)
    assert h.pending_by_type() == {"tm_q::io": 1} and other.pending_by_type() == {"tm_q_other::ping": 1}
    assert h.waiting_tasks() == [] and other.task(first.id) is None and h.task(first.id) is not None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status must be one of"):
        client._store().tasks_by_status("completed")


def test_running_io_totals_sum_the_expected_io_of_running_tasks(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)
    assert client.running_io_totals() == tm.IoBudget()
    for i in range(3):
        h.submit(io(log, f"t{i}"))
    client.domain(O.obs_other).submit(O.Ping(n=1))  # no expected IO
    claim(client, 2)
    assert client.running_io_totals() == tm.IoBudget(read=2000, write=200, net_rx=20, net_tx=2)
    claim(client, 2)
    assert client.running_io_totals() == tm.IoBudget(read=3000, write=300, net_rx=30, net_tx=3)
    assert h.running_io_totals() == client.running_io_totals()
    assert client.domain(O.obs_other).running_io_totals() == tm.IoBudget()


def test_task_by_key_and_lookup(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)
    out = h.submit(io(log, "a", k="doc-1"))
    rec = client.task(out.id)  # type: ignore[arg-type]
    assert rec is not None and client.task_by_key(rec.key) == rec and h.task_by_key(rec.key) == rec
    assert client.domain(O.obs_other).task_by_key(rec.key) is None
    found = client.task_lookup("tm_q::io", key="doc-1")
    assert found.location == "active" and found.record == rec
    assert h.lookup(io(log, "anything", k="doc-1")).record == rec
    claim(client, 1)
    finish(client, [client.task(out.id)], "completed")  # type: ignore[list-item,arg-type]
    after = client.task_lookup("tm_q::io", key="doc-1")
    assert after.location == "history" and after.record.task_id == out.id  # type: ignore[union-attr]
    assert client.task_lookup("tm_q::io", key="nope").location == "not_found"
    assert client.task_by_key(rec.key) is None


# -- history ------------------------------------------------------------------------------------------------


def test_history_records_carry_tags_and_recorded_io(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)
    out = h.submit(io(log, "a", k="k1"), tags={"user": "7"})
    finish(client, claim(client, 1), "completed", ms=250, read=4096, write=1024, rx=10, tx=20)
    failed = run_one(client, io(log, "b"), "failed", error="boom")
    dead = run_one(client, io(log, "c"), "dead_letter", error="out of retries")
    ping = client.domain(O.obs_other).submit(O.Ping(n=1)).id
    finish(client, claim(client, 1), "completed")
    rec = client.history_by_key(client.history()[-1].key)[0]
    assert rec.task_id == out.id and rec.tags == {"team": "core", "user": "7"}  # domain default + per call
    assert (rec.actual_read_bytes, rec.actual_write_bytes, rec.actual_net_rx_bytes, rec.actual_net_tx_bytes,
            rec.duration) == (4096, 1024, 10, 20, 0.25)  # fmt: skip
    assert [r.task_id for r in client.history()] == [ping, dead, failed, out.id]
    assert all(r.tags.get("team") == "core" for r in client.history() if r.domain == "tm_q")
    assert [r.task_id for r in client.history(limit=2, offset=1)] == [dead, failed]
    assert [r.task_id for r in client.history_by_type("tm_q::io")] == [dead, failed, out.id]
    assert [r.task_id for r in client.failed_tasks()] == [failed] and client.failed_tasks()[0].last_error == "boom"
    assert [r.task_id for r in client.dead_letter_tasks()] == [dead]
    assert [r.task_id for r in h.history()] == [dead, failed, out.id]
    assert [r.task_id for r in client.domain(O.obs_other).history()] == [ping]
    assert [r.task_id for r in h.history_by_type(O.Io)] == [r.task_id for r in h.history_by_type("io")]
    assert [r.task_id for r in h.failed_tasks()] == [failed] and client.domain(O.obs_other).failed_tasks() == []
    assert [r.task_id for r in h.dead_letter_tasks()] == [dead]
    assert h.history_by_key(rec.key)[0].task_id == out.id and client.domain(O.obs_other).history_by_key(rec.key) == []


def test_history_stats_and_throughput(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)
    assert client.history_stats("tm_q::io") == tm.TypeStats(task_type="tm_q::io")
    assert client.avg_throughput("tm_q::io") == (0.0, 0.0)
    for i, ms in enumerate((100, 200, 300)):
        run_one(client, io(log, f"ok{i}"), "completed", ms=ms, read=1000 * (i + 1), write=10 * (i + 1), rx=i, tx=2 * i)
    run_one(client, io(log, "f"), "failed", ms=50)
    run_one(client, io(log, "d"), "dead_letter", ms=50)
    cancelled = h.submit(io(log, "x")).id
    client.cancel(cancelled)  # type: ignore[arg-type]
    stats = h.history_stats(O.Io)
    assert stats == client.history_stats("tm_q::io")
    assert (stats.count, stats.completed, stats.failed) == (6, 3, 2)
    assert stats.failure_rate == pytest.approx(2 / 5)
    assert (stats.avg_duration_ms, stats.avg_read_bytes, stats.avg_write_bytes) == (200.0, 2000.0, 20.0)
    assert (stats.avg_net_rx_bytes, stats.avg_net_tx_bytes) == (1.0, 2.0)
    # 1000 B in 0.1 s, 2000 B in 0.2 s, 3000 B in 0.3 s: 10,000 B/s each; writes 100 B/s
    assert client.avg_throughput("tm_q::io") == pytest.approx((10_000.0, 100.0))
    run_one(client, io(log, "fast"), "completed", ms=500, read=1000, write=0)  # 2,000 B/s
    run_one(client, io(log, "instant"), "completed", ms=0, read=10**9)  # no measurable duration: left out
    assert client.avg_throughput("tm_q::io", n=1) == pytest.approx((2000.0, 0.0))
    assert client.avg_throughput("tm_q::io", n=2) == pytest.approx((6000.0, 50.0))
    assert h.avg_throughput("io", n=4) == pytest.approx(((2000 + 3 * 10_000) / 4, 3 * 100 / 4))
    assert client.history_stats("tm_q::nope").count == 0
    with pytest.raises(ValueError):
        client.avg_throughput("tm_q::io", n=0)


def test_pruning_by_count_and_age(client: tm.Client, log: str) -> None:
    ids = [run_one(client, io(log, f"t{i}")) for i in range(5)]
    queued = client.domain(O.obs).submit(io(log, "q")).id
    assert client.prune_history_by_count(2) == 3
    assert [r.task_id for r in client.history()] == ids[:-3:-1]
    assert client.prune_history_by_age(1.0) == 0  # seconds old, not a day
    assert client.prune_history_by_age(1e-9) == 2 and client.history() == []
    assert client.task(queued) is not None  # type: ignore[arg-type]


# -- tags -----------------------------------------------------------------------------------------------------


def test_tag_queries_and_semantics_and_scopes(client: tm.Client, log: str) -> None:
    h, other = client.domain(O.obs), client.domain(O.obs_other)
    a = h.submit(io(log, "a"), tags={"tenant": "acme", "tier": "gold", "job.kind": "x"}).id
    b = h.submit(io(log, "b"), tags={"tenant": "acme", "tier": "free"}).id
    c = h.submit(io(log, "c"), tags={"tenant": "initech", "job.id": "9"}).id
    d = other.submit(O.Ping(n=1), tags={"tenant": "acme", "Job.upper": "1"}).id
    assert claim(client, 1)[0].id == a  # a runs
    assert client.task_ids_by_tags({"tenant": "acme"}) == [a, b, d]
    assert client.task_ids_by_tags({"tenant": "acme", "tier": "gold"}) == [a]  # AND
    assert client.task_ids_by_tags({"tier": "gold", "tenant": "acme", "team": "core"}) == [a]
    assert client.task_ids_by_tags({"tenant": "acme", "tier": "none"}) == []
    assert client.task_ids_by_tags({}) == [] and client.count_by_tags({}) == 0
    assert client.task_ids_by_tags({"tenant": "acme"}, status="running") == [a]
    assert client.task_ids_by_tags({"tenant": "acme"}, status="pending") == [b, d]
    assert client.count_by_tags({"tenant": "acme"}) == 3 and client.count_by_tags({"team": "core"}, "pending") == 2
    assert client.count_by_tag("tenant") == [("acme", 3), ("initech", 1)]
    assert client.count_by_tag("tenant", status="pending") == [("acme", 2), ("initech", 1)]
    assert client.tag_values("tier") == [("free", 1), ("gold", 1)]  # ties by value
    assert client.tag_keys_by_prefix("job.") == ["job.id", "job.kind"]  # case-sensitive: not Job.upper
    assert client.tag_keys_by_prefix("Job") == ["Job.upper"] and client.tag_keys_by_prefix("t") == [
        "team",
        "tenant",
        "tier",
    ]
    assert client.tag_keys_by_prefix("") == ["Job.upper", "job.id", "job.kind", "team", "tenant", "tier"]
    assert client.task_ids_by_tag_key_prefix("job.") == [a, c] and client.count_by_tag_key_prefix("job.") == 2
    assert client.task_ids_by_tag_key_prefix("t") == [a, b, c, d] and client.count_by_tag_key_prefix("t") == 4
    assert client.task_ids_by_tag_key_prefix("job.", status="pending") == [c]
    assert client.count_by_tag_key_prefix("job.", status="running") == 1
    # domain handles: only their own tasks
    assert h.task_ids_by_tags({"tenant": "acme"}) == [a, b] and other.task_ids_by_tags({"tenant": "acme"}) == [d]
    assert h.count_by_tags({"tenant": "acme"}, "pending") == 1 and other.count_by_tag("tenant") == [("acme", 1)]
    assert h.tag_values("tenant") == [("acme", 2), ("initech", 1)]
    assert h.tag_keys_by_prefix("") == ["job.id", "job.kind", "team", "tenant", "tier"]
    assert other.tag_keys_by_prefix("") == ["Job.upper", "tenant"]
    assert h.task_ids_by_tag_key_prefix("job") == [a, c] and other.task_ids_by_tag_key_prefix("job") == []
    assert h.count_by_tag_key_prefix("t", status="running") == 1
    with pytest.raises(ValueError, match="active tasks"):
        client.task_ids_by_tags({"tenant": "acme"}, status="completed")
    with pytest.raises(ValueError, match="at most 4"):
        client.task_ids_by_tags({f"k{i}": "v" for i in range(5)})


def test_prefix_matching_is_exact_and_case_sensitive(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)
    keys = ["a%b", "a_b", "aXb", "a\\b", "A%b", "ab", "a", "b", "a\U0010ffff", "a\U0010ffffz", "\U0010ffff",
            "\ud7ff!", "\ue000"]  # fmt: skip
    ids = {k: h.submit(io(log, k), tags={k: "1"}).id for k in keys}
    assert client.tag_keys_by_prefix("a%") == ["a%b"]
    assert client.tag_keys_by_prefix("a_") == ["a_b"]
    assert client.tag_keys_by_prefix("a\\") == ["a\\b"]
    assert client.tag_keys_by_prefix("A") == ["A%b"]
    assert client.tag_keys_by_prefix("a") == sorted(k for k in keys if k.startswith("a"))
    assert client.tag_keys_by_prefix("a\U0010ffff") == ["a\U0010ffff", "a\U0010ffffz"]
    assert client.tag_keys_by_prefix("\U0010ffff") == ["\U0010ffff"]
    assert client.tag_keys_by_prefix("\ud7ff") == ["\ud7ff!"]
    assert client.task_ids_by_tag_key_prefix("a_") == [ids["a_b"]]
    assert client.count_by_tag_key_prefix("a") == 8


def test_finished_tasks_leave_the_tag_index_but_keep_their_tags(client: tm.Client, db: Path, log: str) -> None:
    h = client.domain(O.obs)
    done = run_one(client, io(log, "done"))
    queued = h.submit(io(log, "queued"), run_after=60).id
    gone = h.submit(io(log, "cancelled"), run_after=60).id
    client.cancel(gone)  # type: ignore[arg-type]
    assert indexed_tag_ids(db) == {queued}
    assert client.task_ids_by_tags({"team": "core"}) == [queued]
    assert {r.task_id: r.tags for r in client.history()} == {done: {"team": "core"}, gone: {"team": "core"}}


def test_cancel_by_tag_key_prefix(client: tm.Client, log: str) -> None:
    h, other = client.domain(O.obs), client.domain(O.obs_other)
    a = h.submit(io(log, "a"), tags={"batch.7": "x"}).id
    b = other.submit(O.Ping(n=1), tags={"batch.8": "y"}).id
    keep = h.submit(io(log, "keep"), tags={"Batch.7": "x"}).id
    running = claim(client, 1)[0].id
    assert running == a
    assert h.cancel_by_tag_key_prefix("batch.") == [a]  # this domain only; running: asked to stop
    assert client.task(a).status == "running"  # type: ignore[arg-type,union-attr]  (the supervisor stops it)
    assert client.cancel_by_tag_key_prefix("batch.") == [a, b]  # a cancel request is idempotent
    assert client.task(b) is None and client.task(keep) is not None  # type: ignore[arg-type]
    assert client.history()[0].task_id == b and client.history()[0].status == "cancelled"


# -- tag limits -------------------------------------------------------------------------------------------------


def test_tag_limits_give_clear_errors(client: tm.Client, log: str) -> None:
    h = client.domain(O.obs)  # its default tag {"team": "core"} counts towards the 32
    h.submit(io(log, "max"), tags={f"k{i}": "v" for i in range(31)})
    with pytest.raises(tm.SubmitError, match=r"at most 32 tags per task, got 33 \(default"):
        h.submit(io(log, "over"), tags={f"k{i}": "v" for i in range(32)})
    with pytest.raises(tm.SubmitError, match="tag keys must not be empty"):
        h.submit(io(log, "empty"), tags={"": "v"})
    h.submit(io(log, "key64"), tags={"k" * 64: "v"})
    with pytest.raises(tm.SubmitError, match="is 65 bytes, over the 64-byte limit"):
        h.submit(io(log, "key65"), tags={"é" * 32 + "k": "v"})  # 65 bytes of UTF-8 in 33 characters
    h.submit(io(log, "value256"), tags={"k": "v" * 256})
    with pytest.raises(tm.SubmitError, match="tag 'k': value is 257 bytes, over the 256-byte limit"):
        h.submit(io(log, "value257"), tags={"k": "v" * 257})
    with pytest.raises(tm.SubmitError, match="must be strings"):
        h.submit(io(log, "int"), tags={"k": 1})  # type: ignore[dict-item]
    with pytest.raises(tm.SubmitError, match="must not be empty"):
        client.submit(tm.TaskSubmission(task_type="tm_q::io", payload={"log": log, "tag": "u"}, tags={"": "x"}))
    with pytest.raises(tm.ConfigError, match="default_tags: tag keys must not be empty"):
        tm.Domain("tm_obs_bad", default_tags={"": "x"})
    assert client.pending_count() == 3  # the refused submissions wrote nothing


# -- schema -------------------------------------------------------------------------------------------------------


def test_migration_moves_dedup_to_the_key_prefix_index(db: Path, log: str) -> None:
    with tm.connect(db) as client:
        h = client.domain(O.obs)
        queued = h.submit(O.Io(log=log, tag="queued")).id
        done = h.submit(O.Io(log=log, tag="done")).id
    store = Store(db)
    try:
        key_of = {t.id: t.key for t in (store.task(queued), store.task(done)) if t is not None}
        with store.write():
            store.conn.execute("UPDATE tasks SET status = 'completed', finished_at = 5 WHERE id = ?", (done,))
            # back to the previous schema: the full-key index
            store.conn.execute("DROP INDEX idx_key_prefix")
            store.conn.execute("CREATE INDEX idx_key ON tasks(key)")
            store.conn.execute("PRAGMA user_version=5")
    finally:
        store.close()
    store = Store(db)
    try:
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "idx_key_prefix" in names and "idx_key" not in names
        found = store.task_by_key(key_of[queued])
        assert found is not None and found.id == queued
        assert [r.task_id for r in store.history_by_key(key_of[done], 5)] == [done]
    finally:
        store.close()
    with tm.connect(db) as client:  # the migrated index still finds the queued task's key: a duplicate
        assert client.domain(O.obs).submit(O.Io(log=log, tag="queued")).kind == "duplicate"


def test_key_lookups_keep_their_parameters_away_from_the_planner() -> None:
    """A bare parameter compared with the indexed key prefix makes SQLite plan the statement again on every run
    (``SUBMIT_CONTEXT`` went from 7.7 to 62.5 µs): every lookup through ``idx_key_prefix`` takes ``+?N``."""
    from taskmill.store import sql_control, sql_flow, sql_obs, sql_policy, sql_queries

    texts = [
        v
        for m in (sql, sql_control, sql_flow, sql_obs, sql_policy, sql_queries)
        for v in vars(m).values()
        if isinstance(v, str)
    ]
    lookups = [t for t in texts if "INDEXED BY idx_key_prefix" in t]
    assert len(lookups) >= 6
    for text in lookups:
        assert "unhex(substr(key, 1, 8)) = " in text  # the index's own expression, or the index cannot be used
        assert not re.search(r"substr\(\?\d", text), text


def test_keys_sharing_their_indexed_prefix_are_told_apart(db: Path) -> None:
    store = Store(db)
    first, second = "deadbeef" + "0" * 56, "deadbeef" + "1" * 56
    try:
        with store.write():
            for key in (first, second, first.upper()):
                store.conn.execute(
                    "INSERT INTO tasks (task_type, domain, key, label, priority, created_at) "
                    "VALUES ('tm_q::io', 'tm_q', ?, 'l', 128, 1)",
                    (key,),
                )
        ids = {key: t.id for key in (first, second) if (t := store.task_by_key(key)) is not None}
        assert sorted(ids.values()) == [1, 2] and ids[first] == 1
        assert store.task_by_key(first.upper()).id == 3  # type: ignore[union-attr]
        assert store.task_by_key("deadbeef" + "2" * 56) is None
        assert store.task_by_key("not a hex digest") is None  # no stored key is one; nothing to find, no error
        existing = store.conn.execute(sql.EXISTING_BY_KEYS, (msgspec.json.encode([second, first]).decode(),))
        assert sorted((r[0], r[1]) for r in existing) == [(first, 1), (second, 2)]
    finally:
        store.close()


def test_migration_unindexes_tags_of_finished_tasks(db: Path) -> None:
    conn = apsw.Connection(str(db))
    for statements in store_schema.MIGRATIONS[:3]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("PRAGMA user_version=3")
    for tid, finished in ((1, None), (2, 5)):
        conn.execute(
            "INSERT INTO tasks (id, task_type, domain, key, label, priority, created_at, finished_at, status, tags) "
            "VALUES (?, 'tm_q::io', 'tm_q', ?, 'l', 128, 1, ?, ?, '{\"a\":\"1\"}')",
            (tid, f"key{tid}", finished, "pending" if finished is None else "completed"),
        )
        conn.execute("INSERT INTO task_tags (task_id, key, value) VALUES (?, 'a', '1')", (tid,))
    conn.close()
    store = Store(db)
    try:
        assert store.task_ids_by_tags({"a": "1"}) == [1]
        assert indexed_tag_ids(db) == {1}
        assert store.history()[0].tags == {"a": "1"}
    finally:
        store.close()

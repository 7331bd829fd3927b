"""A tiny run of each Redis peer's adapter (enqueue, batch, queue depth, reset, its own worker CLI) against a
real server. Opt-in: runs only when ``REDIS_URL`` is set and answers PING, because it flushes dbs 1-3 of that
server and sets its ``appendfsync`` for the duration (put back afterwards); skipped otherwise, as in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("redis")

from benchmarks.peers import run as peers_run
from benchmarks.peers.adapter import PeerUnavailable, pids_with_marker
from benchmarks.peers.redisbase import require_server
from benchmarks.peers.workloads import Context, Counts, run_selected

PEERS = {"rq": "rq", "dramatiq": "dramatiq", "celery": "celery"}


@pytest.fixture(scope="module")
def redis_url() -> str:
    if not os.environ.get("REDIS_URL"):
        pytest.skip("set REDIS_URL to a Redis server whose dbs 1-3 may be flushed")
    try:
        return require_server(0)
    except PeerUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_redis_peer_adapter_runs_the_enqueue_and_drain_workloads(peer: str, redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip(PEERS[peer])
    adapter = peers_run.REGISTRY[peer]()
    adapter.setup(tmp_path / "state", "full")
    try:
        assert adapter.settings()["appendfsync"] == "always"
        ctx = Context(adapter, tmp_path / "state", tmp_path / "logs", f"{peer}-test")
        results = run_selected(ctx, ["W1", "W3", "W2"], Counts(enqueue=10, latency=5, warmup=2, cpu=2))
    finally:
        adapter.close()
    assert {w: r["problems"] for w, r in results.items()} == {"W1": [], "W3": [], "W2": []}
    assert results["W3"]["pids"] >= 1
    assert (results["W2"]["tasks_per_s"] is None) == (peer != "rq")  # only RQ has a true batch call
    assert not pids_with_marker()

"""The benchmark's peer registry skips the Redis-based peers (RQ, Dramatiq, Celery) with one line each, and
without failing, when no Redis server answers, so ``python -m benchmarks compare`` runs anywhere."""

from __future__ import annotations

import importlib.util
import socket

import pytest

from benchmarks.peers import run as peers_run

REDIS_PEERS = {"rq": "rq", "dramatiq": "dramatiq", "celery": "celery"}  # peer -> library it needs


def _closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _installed(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


def test_redis_peers_are_skipped_with_a_reason_when_no_server_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"redis://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("REDIS_URL", url)
    adapters = peers_run.load_adapters([*REDIS_PEERS, "taskmill"])
    assert list(adapters) == ["taskmill"]
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(REDIS_PEERS)
    for line, (peer, library) in zip(lines, REDIS_PEERS.items(), strict=True):
        assert line.startswith(f"skipping peer {peer}: ")
        if _installed(library, "redis"):  # Library present: the reason is the server, named by its URL.
            assert "no Redis server answers PING" in line and url in line
        else:
            assert "not importable" in line


def test_each_redis_peer_uses_its_own_db_of_the_configured_server(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    from benchmarks.peers.adapter import PeerUnavailable
    from benchmarks.peers.redisbase import require_server, url_for_db

    monkeypatch.setenv("REDIS_URL", "redis://:secret@db.example:6380/9?health_check_interval=2")
    assert url_for_db(2) == "redis://:secret@db.example:6380/2?health_check_interval=2"
    monkeypatch.delenv("REDIS_URL")
    assert url_for_db(1) == "redis://127.0.0.1:6379/1"
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{_closed_port()}")
    with pytest.raises(PeerUnavailable, match="no Redis server answers PING"):
        require_server(3)

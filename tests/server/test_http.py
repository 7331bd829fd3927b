"""The daemon's read-only HTTP endpoints, via urllib against a real daemon."""

from __future__ import annotations

import json
import re
import socket
import urllib.request

from .daemon import Daemon, wait_lines

SECRET = "payload-secret-7f3a"
SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def raw_request(d: Daemon, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_health_and_readiness(live: Daemon) -> None:
    for path in ("/healthz", "/readyz"):
        status, headers, body = live.get(path)
        assert status == 200 and headers["Content-Type"] == "application/json"
        doc = json.loads(body)
        assert doc["status"] == "ok" and doc["workers_alive"] == doc["workers"] == 2 and doc["dispatching"]


def test_metrics_are_prometheus_text_without_payloads(live: Daemon) -> None:
    live.submit_many(("srv::mark", {"i": 1, "ledger": str(live.root / f"{SECRET}.txt")}))
    wait_lines(str(live.root / f"{SECRET}.txt"), 1)
    status, headers, body = live.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert SECRET not in text
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("gauge", "counter")
            typed.add(name)
        elif not line.startswith("# HELP "):
            assert SAMPLE.match(line), line
            assert re.split(r"[{ ]", line)[0] in typed  # every sample follows its TYPE line
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert values["taskmill_up"] == "1" and values["taskmill_workers_alive"] == "2"
    assert int(values["taskmill_tasks_completed_total"]) >= 1
    assert 'taskmill_tasks{status="pending"}' in values


def test_snapshot_lists_counts_workers_and_running_tasks(live: Daemon) -> None:
    snap = live.snapshot()
    assert snap["pid"] == live.pid and snap["store"] == str(live.db)
    assert snap["health"]["status"] == "ok" and len(snap["workers"]) == 2
    assert set(snap["counts"]) >= {"pending", "running"} and set(snap["domains"]) == {"srv", "slow"}
    assert all(w["alive"] and w["pid"] > 0 for w in snap["workers"])
    live.submit_many(("slow::nap", {"i": 9, "seconds": 1.0, "ledger": str(live.root / "snap.txt")}))
    wait_lines(str(live.root / "snap.txt"), 1, prefix="start")
    running = live.snapshot()["running"]
    assert [(r["task_type"], r["executing"]) for r in running] == [("slow::nap", True)]
    assert set(running[0]) == {"id", "task_type", "domain", "priority", "attempt", "worker_pid", "executing",
                               "progress", "message", "estimated", "bytes_completed", "bytes_total",
                               "throughput_bps", "eta"}  # fmt: skip
    assert SECRET not in json.dumps(live.snapshot())


def test_events_stream_as_server_sent_events(live: Daemon) -> None:
    with urllib.request.urlopen(live.url("/events"), timeout=10) as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        assert resp.readline().startswith(b": taskmill events")
        live.submit_many(("srv::mark", {"i": 2, "ledger": str(live.root / "sse.txt")}))
        seen: dict[str, dict] = {}
        event = None
        while "completed" not in seen:
            line = resp.readline().decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: ") and event:
                doc = json.loads(line[len("data: ") :])
                if (doc.get("header") or {}).get("task_type") == "srv::mark":  # not another test's task
                    seen[event] = doc
        assert {"dispatched", "completed"} <= set(seen)
        assert seen["completed"]["event"] == "completed" and seen["completed"]["header"]["task_type"] == "srv::mark"


def test_only_get_and_head_on_known_paths(live: Daemon) -> None:
    assert live.get("/nope")[0] == 404
    assert raw_request(live, b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").startswith(
        b"HTTP/1.1 405 "
    )
    head = raw_request(live, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")  # headers only
    assert raw_request(live, b"garbage\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert live.get("/healthz")[0] == 200  # still serving after bad requests

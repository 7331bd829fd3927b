"""The daemon's read-only HTTP endpoints, via urllib against a real daemon."""

from __future__ import annotations

import json
import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import wait_for

from .daemon import Daemon, wait_lines

SECRET = "payload-secret-7f3a"


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


def metric_values(d: Daemon) -> tuple[dict[str, str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    status, headers, body = d.get("/metrics")
    assert status == 200
    values = {}
    for fam in text_string_to_metric_families(body.decode()):
        for sample in fam.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return headers, values


def test_metrics_are_prometheus_text_without_payloads(live: Daemon) -> None:
    mark = (("group", ""), ("module", "srv"), ("type", "srv::mark"))
    _, before = metric_values(live)
    # submitted by another process (a connect() client): counted by the daemon all the same
    live.submit_many(("srv::mark", {"i": 1, "ledger": str(live.root / f"{SECRET}.txt")}), ("srv::boom", {"i": 1}))
    wait_lines(str(live.root / f"{SECRET}.txt"), 1)
    boom = (("group", ""), ("module", "srv"), ("retryable", "true"), ("type", "srv::boom"))

    def after() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        _, values = metric_values(live)
        return values if values.get(("taskmill_tasks_failed_total", boom), 0) > before.get(
            ("taskmill_tasks_failed_total", boom), 0) else None  # fmt: skip

    values = wait_for(after, what="the failure to be counted")
    headers, _ = metric_values(live)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert SECRET not in live.get("/metrics")[2].decode()

    def delta(name: str, labels: tuple[tuple[str, str], ...] = ()) -> float:
        return values.get((name, labels), 0) - before.get((name, labels), 0)

    assert delta("taskmill_tasks_submitted_total", mark) == 1
    assert delta("taskmill_tasks_completed_total", mark) == 1
    assert delta("taskmill_tasks_dispatched_total", mark) == 1
    assert delta("taskmill_tasks_dead_lettered_total") == 1  # Boom allows no retry: out of retries at once
    assert delta("taskmill_task_duration_seconds_count", (("module", "srv"), ("status", "completed"),
                                                          ("type", "srv::mark"))) == 1  # fmt: skip
    assert values[("taskmill_up", ())] == 1 and values[("taskmill_workers_alive", ())] == 2
    assert ("taskmill_tasks_pending", ()) in values and ("taskmill_max_concurrency", ()) in values
    assert ("taskmill_history_tasks", (("status", "completed"),)) in values
    snap = live.snapshot()
    assert snap["metrics"]["completed"] >= 1 and snap["totals"]["completed"] == snap["metrics"]["completed"]


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

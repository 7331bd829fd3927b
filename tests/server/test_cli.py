"""The operator CLI against a live daemon: every command, tables and --json output."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from taskmill.cli import app

from .daemon import Daemon, wait_lines

runner = CliRunner()


def cli(d: Daemon, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--db", str(d.db)])
    assert result.exit_code == code, result.output
    return result.output


def cli_json(d: Daemon, *args: str) -> Any:
    return json.loads(cli(d, *args, "--json"))


@pytest.fixture(scope="module")
def seeded(live: Daemon) -> dict[str, int]:
    """A completed mark, a dead-lettered boom and a delayed nap, submitted with ``taskmill submit``."""
    mark = live.submit("srv::mark", {"i": 1, "ledger": live.ledger})
    [boom_id] = live.submit_many(("srv::boom", {"i": 7}))
    later = live.submit("slow::nap", {"i": 3, "seconds": 0.1, "ledger": live.ledger}, "--run-after", "3600",
                        "--priority", "10")  # fmt: skip
    wait_lines(live.ledger, 1)
    deadline = time.monotonic() + 10
    while live.counts()[1].get("dead_letter", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"mark": mark["id"], "boom": boom_id, "later": later["id"]}


def test_submit_rejects_bad_input(live: Daemon) -> None:
    out = live.cli("submit", "srv::mark", "--payload", '{"i": "one", "ledger": "x"}', "-m", "srvtasks",
                   "--db", str(live.db))  # fmt: skip
    assert out.returncode == 1 and "Expected `int`, got `str`" in out.stderr
    out = live.cli("submit", "srv::nope", "--payload", "{}", "-m", "srvtasks", "--db", str(live.db))
    assert out.returncode == 1 and "srv::nope" in out.stderr
    result = runner.invoke(app, ["submit", "srv::mark", "--payload", "[1]", "-m", "srvtasks", "--db", str(live.db)])
    assert result.exit_code == 2 and "JSON object" in result.output  # refused before importing anything


def test_status(live: Daemon, seeded: dict[str, int]) -> None:
    doc = cli_json(live, "status")
    assert doc["supervisor_pid"] == live.pid and doc["counts"]["pending"] >= 1
    assert doc["history"]["completed"] >= 1 and doc["history"]["dead_letter"] >= 1
    assert doc["pending_by_type"]["slow::nap"] >= 1
    assert f"supervisor pid {live.pid}" in cli(live, "status")


def test_tasks_filters(live: Daemon, seeded: dict[str, int]) -> None:
    rows = cli_json(live, "tasks", "--status", "pending", "--domain", "slow", "--type", "slow::nap")
    assert [r["id"] for r in rows] == [seeded["later"]] and rows[0]["priority"] == 10
    assert "payload" not in rows[0]
    assert cli_json(live, "tasks", "--domain", "srv") == []
    assert "slow::nap" in cli(live, "tasks")
    cli(live, "tasks", "--status", "done", code=2)


def test_show_active_and_finished(live: Daemon, seeded: dict[str, int]) -> None:
    doc = cli_json(live, "show", str(seeded["later"]))
    assert doc["location"] == "active" and doc["active"]["payload"]["seconds"] == 0.1
    doc = cli_json(live, "show", str(seeded["boom"]))
    assert doc["location"] == "history" and doc["runs"][0]["status"] == "dead_letter"
    assert "boom 7" in doc["runs"][0]["last_error"]
    text = cli(live, "show", str(seeded["boom"]))
    assert "dead_letter" in text and "last error: " in text
    cli(live, "show", "987654", code=1)


def test_history_filters(live: Daemon, seeded: dict[str, int]) -> None:
    rows = cli_json(live, "history", "--status", "completed", "--type", "srv::mark")
    assert seeded["mark"] in [r["task_id"] for r in rows] and {r["status"] for r in rows} == {"completed"}
    assert [r["task_id"] for r in cli_json(live, "history", "--status", "dead_letter", "--domain", "srv")] == [
        seeded["boom"]]  # fmt: skip
    assert len(cli_json(live, "history", "--limit", "1")) == 1
    assert "srv::mark" in cli(live, "history")


def test_dead_letter_list_and_retry(live: Daemon, seeded: dict[str, int]) -> None:
    rows = cli_json(live, "dead-letter", "list")
    assert [r["task_id"] for r in rows] == [seeded["boom"]]
    out = cli_json(live, "dead-letter", "retry", str(seeded["boom"]))
    assert out["kind"] == "inserted" and out["id"] != seeded["boom"]
    cli(live, "dead-letter", "retry", str(seeded["mark"]), code=1)  # completed, not dead-lettered
    deadline = time.monotonic() + 10
    while out["id"] not in [r["task_id"] for r in cli_json(live, "dead-letter", "list")]:
        assert time.monotonic() < deadline  # it fails again and is dead-lettered again
        time.sleep(0.05)


def test_db_check_and_prune(live: Daemon, seeded: dict[str, int]) -> None:
    assert cli_json(live, "db", "check") == {"ok": True, "problems": []}
    assert cli(live, "db", "check").strip() == "ok"
    cli(live, "db", "prune", code=2)
    cli(live, "db", "prune", "--keep", "1", "--days", "1", code=2)
    assert cli_json(live, "db", "prune", "--days", "30") == {"deleted": 0}
    assert cli_json(live, "db", "prune", "--keep", "1")["deleted"] >= 1
    assert sum(cli_json(live, "status")["history"].values()) == 1


def test_top_renders_one_frame(live: Daemon, seeded: dict[str, int]) -> None:
    text = cli(live, "top", "--once")
    assert "taskmill top" in text and f"supervisor pid {live.pid}" in text
    assert "pending by domain" in text and "recent history" in text and "slow" in text


def test_top_shows_queue_depth_and_live_progress_from_the_daemon(live: Daemon) -> None:
    ledger = str(live.root / "progress.txt")
    live.submit_many(("slow::nap", {"i": 1, "seconds": 3.0, "ledger": ledger}))
    wait_lines(ledger, 1, prefix="start")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        running = [r for r in live.snapshot()["running"] if r["task_type"] == "slow::nap"]
        if running and running[0]["progress"] == 0.5:
            break
        time.sleep(0.05)
    assert running and running[0]["progress"] == 0.5 and running[0]["message"] == "halfway"
    text = cli(live, "top", "--once", "--http", f"http://127.0.0.1:{live.port}")
    assert "pending by priority" in text
    assert "50%" in text and "halfway" in text and "workers busy" in text


def test_missing_database_and_config_option(live: Daemon, tmp_path: Any) -> None:
    result = runner.invoke(app, ["status", "--db", str(tmp_path / "nope.db")])
    assert result.exit_code == 2 and "no database" in result.output
    result = runner.invoke(app, ["status", "--config", str(live.config), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["database"] == str(live.db)


def _history_status(d: Daemon, task_id: int, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = cli_json(d, "show", str(task_id))
        if doc["location"] == "history":
            return str(doc["runs"][0]["status"])
        time.sleep(0.05)
    raise AssertionError(f"task {task_id} still active after {timeout}s")


def _ran(d: Daemon, ledger: str) -> bool:
    return os.path.exists(ledger) and os.path.getsize(ledger) > 0


def test_cancel_a_running_task(live: Daemon) -> None:
    ledger = str(live.root / "cancel.txt")
    [tid] = live.submit_many(("slow::nap", {"i": 50, "seconds": 30, "ledger": ledger}))
    wait_lines(ledger, 1, prefix="start")
    assert cli_json(live, "cancel", str(tid), "987654") == {"cancelled": [tid], "not_active": [987654]}
    assert _history_status(live, tid) == "cancelled"
    cli(live, "cancel", "987654", code=1)


def test_pause_and_resume_all_domain_and_group(live: Daemon) -> None:
    try:
        assert cli_json(live, "pause")["paused"] == "all" and cli_json(live, "status")["paused"]
        first = str(live.root / "p1.txt")
        live.submit_many(("srv::mark", {"i": 1, "ledger": first}))
        time.sleep(0.3)
        assert not _ran(live, first)
        assert cli_json(live, "resume")["resumed"] == "all"
        wait_lines(first, 1)

        assert "paused domain srv" in cli(live, "pause", "--domain", "srv")
        second = str(live.root / "p2.txt")
        live.submit_many(("srv::mark", {"i": 2, "ledger": second}))
        time.sleep(0.3)
        assert not _ran(live, second)
        cli(live, "resume", "--domain", "srv")
        wait_lines(second, 1)

        cli(live, "pause", "--group", "batch", "--for", "4")  # long enough for three CLI runs on a busy machine
        assert cli_json(live, "status")["paused_groups"] == ["batch"]
        third = str(live.root / "p3.txt")
        tid = live.submit("srv::mark", {"i": 3, "ledger": third}, "--group", "batch", "--tag", "k=v")["id"]
        assert [r["id"] for r in cli_json(live, "tasks", "--tag", "k=v")] == [tid]
        assert not _ran(live, third)
        wait_lines(third, 1, timeout=15)  # the timed group pause lifts itself
        cli(live, "pause", "--domain", "srv", "--group", "x", code=2)
        cli(live, "pause", "--for", "1", code=2)
    finally:
        cli(live, "resume")
        cli(live, "resume", "--domain", "srv")

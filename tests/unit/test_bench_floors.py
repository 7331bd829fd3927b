"""The benchmark's machine floors: what they measure is what a single submit pays, and a missed target says
when the machine itself cannot reach it."""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from benchmarks import floor_bench
from benchmarks.report import Target, verdict_table, verdicts
from benchmarks.suite import CEILING


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
def test_the_bare_connection_commits_as_the_durability_says_and_never_checkpoints(
    tmp_path: Path, durability: floor_bench.Durability, level: int
) -> None:
    conn = floor_bench._bare(tmp_path / "x.db", durability)
    try:
        assert next(iter(conn.execute("PRAGMA synchronous")))[0] == level
        assert next(iter(conn.execute("PRAGMA journal_mode")))[0] == "wal"
        assert next(iter(conn.execute("PRAGMA wal_autocheckpoint")))[0] == 0
    finally:
        conn.close()


def test_the_task_row_floor_inserts_distinct_task_rows_one_commit_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    per_commit = floor_bench._per_commit_us

    def spy(
        conn: apsw.Connection, statement: str, warm: list[tuple[object, ...]], rows: list[tuple[object, ...]]
    ) -> float:
        us = per_commit(conn, statement, warm, rows)
        seen.append(statement)
        ((count, keys, types),) = conn.execute(
            "SELECT count(*), count(DISTINCT key), count(DISTINCT task_type) FROM tasks"
        )
        assert (count, keys, types) == (2 * len(rows) + 1, 2 * len(rows) + 1, 1)  # the submitted row, 2n copies
        ((_, log, _),) = conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        assert 0 < log < 6 * len(rows)  # ~4 frames a commit: the timed pass alone, written over the restarted WAL
        return us

    monkeypatch.setattr(floor_bench, "_per_commit_us", spy)
    assert floor_bench.commit_task_us(tmp_path, "normal", 20) > 0
    assert seen == [floor_bench.sql.INSERT_TASK]


def test_floors_report_a_ceiling_and_fsync_only_where_commits_wait_for_it(tmp_path: Path) -> None:
    normal = floor_bench.floors(tmp_path, "normal", commits=20, fsyncs=5)
    full = floor_bench.floors(tmp_path, "full", commits=20, fsyncs=5)
    assert "fsync_us" not in normal and full["fsync_us"] > 0
    for out in (normal, full):
        assert out["problems"] == []
        assert out["ceiling_per_s"] == pytest.approx(1e6 / out["commit_task_us"])


def test_a_miss_names_the_machines_ceiling_and_whether_the_target_is_above_it() -> None:
    targets = [Target("submit", "tasks_per_s", None, ">=", 25_000, "submit", CEILING)]
    values = {
        ("submit", "tasks_per_s", "normal"): [6_000.0, 7_000.0, 8_000.0],
        ("submit", "tasks_per_s", "full"): [1_000.0],
        ("floors", "ceiling_per_s", "normal"): [14_000.0, 15_000.0, 16_000.0],
        ("floors", "ceiling_per_s", "full"): [30_000.0],
    }
    rows = {r["durability"]: r for r in verdicts(values, targets)}
    assert rows["normal"]["ceiling"] == 15_000.0 and not rows["normal"]["pass"]
    text = "\n".join(verdict_table([rows["normal"], rows["full"]]))
    assert "MISS (this machine's ceiling: 15,000, below the target)" in text
    assert "MISS (this machine's ceiling: 30,000)" in text


def test_a_target_without_a_measured_ceiling_reads_as_before() -> None:
    targets = [Target("submit", "tasks_per_s", None, ">=", 25_000, "submit", CEILING)]
    rows = verdicts({("submit", "tasks_per_s", "normal"): [30_000.0, 1_000.0, 5_000.0]}, targets)
    assert rows[0]["ceiling"] is None
    assert verdict_table(rows)[-1].endswith("MISS")
    rows = verdicts({("submit", "tasks_per_s", "normal"): [30_000.0]}, targets)
    assert verdict_table(rows)[-1].endswith("pass")

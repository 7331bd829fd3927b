"""The sweep's short-task panel: which points it runs, and how it splits each task's time on a worker into the
executor's own and the wait for the next one."""

from __future__ import annotations

import math

import pytest

from benchmarks import sweep
from benchmarks.scratch import Line


def test_the_short_panel_runs_sync_sleeps_per_worker_count_with_tasks_in_proportion() -> None:
    args = sweep.parse_args(["--panels", "short", "--short-workers", "1,4", "--short-ms", "3", "--short-tasks", "10"])
    points = sweep.grid(args)
    assert [(p.panel, p.kind, p.workers, p.n, p.ms) for p in points] == [
        ("short", "doze", 1, 10, 3.0),
        ("short", "doze", 4, 40, 3.0),
    ]
    assert [p.x() for p in points] == [1, 4]
    assert points[0].series() == "3 ms sync sleeps, normal"


def test_the_short_panel_refuses_a_sleep_that_is_not_positive() -> None:
    with pytest.raises(SystemExit):
        sweep.parse_args(["--panels", "short", "--short-ms", "0"])


def test_handoff_measures_the_gap_on_each_worker_not_between_workers() -> None:
    # Worker 1 runs tasks 0 and 2 with a 1 ms gap; worker 2 runs 1 and 3 with a 3 ms gap. The two workers overlap,
    # so gaps taken across workers (task 0's end to task 1's start) would be negative.
    lines = [
        Line("n", 0, 0.0, 0.000, 0.002, 1),
        Line("n", 2, 0.0, 0.003, 0.005, 1),
        Line("n", 1, 0.0, 0.001, 0.003, 2),
        Line("n", 3, 0.0, 0.006, 0.008, 2),
    ]
    got = sweep.handoff(lines)
    assert math.isclose(got["gap_ms"], 2.0, abs_tol=1e-9)  # the median of 1 and 3
    assert math.isclose(got["body_ms"], 2.0, abs_tol=1e-9)


def test_the_short_panel_reports_gaps_beside_its_table() -> None:
    point = sweep.Point("short", "doze", 10, workers=2, ms=2.0)
    result = {"busy_tasks_per_s": 700.0, "gap_ms": 0.8, "body_ms": 2.1, "ok": True}
    panels = sweep.summarise([point], {point: [result]})
    assert panels["short"]["gap_ms"] == [0.8]
    text = "\n".join(sweep.tables(panels))
    assert "workers=2: 0.80 ms between tasks, 2.10 ms in each" in text

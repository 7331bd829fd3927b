"""Tag queries stay fast at 100,000 tagged tasks (figures: ``python -m benchmarks run tag_queries``).

The bounds are generous for a loaded 2-core machine (selective queries take about a millisecond here, aggregates
over every task up to ~0.2 s), yet a query that scanned the tasks table or decoded JSON per task would miss them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import taskmill as tm
from taskmill.store import NewTask, Store

N = 100_000
TENANTS = 100
SELECTIVE_S = 0.2
AGGREGATE_S = 3.0


def build(path: Path) -> float:
    store = Store(path, "normal")
    try:
        now = int(time.time() * 1000)
        rows = [
            NewTask(task_type="tm_obs::io", domain="tm_obs", key=str(i), label="t", priority=128, payload=b"\x80",
                    created_at=now, tags={"tenant": f"t{i % TENANTS}", f"job.{i % 7}": "x"})
            for i in range(N)
        ]  # fmt: skip
        t0 = time.perf_counter()
        for start in range(0, N, 25_000):
            store.submit_batch(rows[start : start + 25_000])
        return time.perf_counter() - t0
    finally:
        store.close()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def test_tag_queries_at_100k_tasks(db: Path) -> None:
    build(db)
    with tm.connect(db, durability="normal") as c:
        selective: dict[str, Callable[[], Any]] = {
            "ids_by_tags": lambda: c.task_ids_by_tags({"tenant": "t7"}),
            "ids_by_tags_and": lambda: c.task_ids_by_tags({"job.0": "x", "tenant": "t7"}),
            "count_by_tags": lambda: c.count_by_tags({"tenant": "t7"}),
            "keys_by_prefix": lambda: c.tag_keys_by_prefix("job."),
        }
        aggregate: dict[str, Callable[[], Any]] = {
            "count_by_tag": lambda: c.count_by_tag("tenant"),
            "count_by_tag_pending": lambda: c.count_by_tag("tenant", status="pending"),
            "ids_by_key_prefix": lambda: c.task_ids_by_tag_key_prefix("job.3"),
            "count_by_key_prefix": lambda: c.count_by_tag_key_prefix("job."),
        }
        results = {name: timed(fn) for name, fn in {**selective, **aggregate}.items()}
    assert results["ids_by_tags"][0] == list(range(8, N + 1, TENANTS))  # ids start at 1: task i is id i+1
    assert len(results["ids_by_tags_and"][0]) == len([i for i in range(N) if i % 100 == 7 and i % 7 == 0])
    assert results["count_by_tags"][0] == N // TENANTS
    assert results["keys_by_prefix"][0] == [f"job.{i}" for i in range(7)]
    assert results["count_by_tag"][0] == sorted((f"t{i}", N // TENANTS) for i in range(TENANTS))
    assert results["count_by_tag_pending"][0] == results["count_by_tag"][0]
    assert len(results["ids_by_key_prefix"][0]) == len(range(3, N, 7))
    assert results["count_by_key_prefix"][0] == N
    slow = {name: round(s, 3) for name, (_, s) in results.items()
            if s > (SELECTIVE_S if name in selective else AGGREGATE_S)}  # fmt: skip
    assert not slow, f"tag queries too slow at {N:,} tasks: {slow}"

"""Tag and statistics queries: N active tagged tasks plus N finished ones (history keeps its tags, which are not
indexed), queried through a ``connect()`` client, for each N of ``sizes`` (the original's 100 / 1,000 / 5,000
and 100,000).

Each task has a ``tenant`` tag (100 values) and one of 7 ``job.<n>`` keys. Figures are the median ms of ``samples``
calls, named ``n<N>_<query>_ms``; ``n<N>_build_s`` is the time to write all 2N rows with ``Store.submit_batch``
(and finish half of them). ``count_by_tag`` is the original's ``tag_values`` (the same call).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import taskmill as tm
from taskmill.store import NewTask, Store, dispatch

from .harness import Result
from .scratch import scratch_dir

TENANTS = 100
CHUNK = 25_000


def _rows(start: int, n: int, now: int) -> list[NewTask]:
    return [
        NewTask(task_type=f"bench::t{i % 5}", domain="bench", key=str(i), label="t", priority=128, payload=b"\x80",
                created_at=now, tags={"tenant": f"t{i % TENANTS}", f"job.{i % 7}": "x"})
        for i in range(start, start + n)
    ]  # fmt: skip


def _build(path: Path, n: int) -> None:
    """n finished tasks (written first), then n active ones."""
    store = Store(path, "normal")
    try:
        now = int(time.time() * 1000)
        for start in range(0, 2 * n, CHUNK):
            store.submit_batch(_rows(start, min(CHUNK, 2 * n - start), now))
        with store.write():
            claimed = dispatch.claim_ids(store.conn, list(range(1, n + 1)), now)
            dispatch.finish(store.conn, [("completed", now + 5, now, 5, 4096, 512, 0, 0, 0, None, c.id, c.attempt)
                                         for c in claimed])  # fmt: skip
            dispatch.drop_finished_tags(store.conn, [c.id for c in claimed])
        store.checkpoint()
    finally:
        store.close()


def _median_ms(fn: Callable[[], Any], samples: int) -> float:
    fn()
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def tag_queries(root: Path, sizes: tuple[int, ...], samples: int) -> Result:
    out: Result = {"problems": []}
    for n in sizes:
        _at_size(root, n, samples, out)
    return out


def _at_size(root: Path, n: int, samples: int, out: Result) -> None:
    with scratch_dir(root, "tag-queries") as d:
        t0 = time.perf_counter()
        _build(d / "tasks.db", n)
        out[f"n{n}_build_s"] = time.perf_counter() - t0
        with tm.connect(d / "tasks.db", durability="normal") as c:
            want = sum(1 for i in range(n, 2 * n) if i % TENANTS == 7)  # the active half
            if c.count_by_tags({"tenant": "t7"}) != want:
                out["problems"].append(f"{n}: count_by_tags gave {c.count_by_tags({'tenant': 't7'})}, not {want}")
            queries: dict[str, Callable[[], Any]] = {
                "ids_by_tags": lambda: c.task_ids_by_tags({"tenant": "t7"}),
                "ids_by_2_tags": lambda: c.task_ids_by_tags({"tenant": "t7", "job.0": "x"}),
                "count_by_tags": lambda: c.count_by_tags({"tenant": "t7"}),
                "count_by_tag": lambda: c.count_by_tag("tenant"),
                "count_by_tag_pending": lambda: c.count_by_tag("tenant", status="pending"),
                "tag_keys_by_prefix": lambda: c.tag_keys_by_prefix("job."),
                "ids_by_key_prefix": lambda: c.task_ids_by_tag_key_prefix("job.3"),
                "count_by_key_prefix": lambda: c.count_by_tag_key_prefix("job."),
                "history_stats": lambda: c.history_stats("bench::t2"),
                "avg_throughput": lambda: c.avg_throughput("bench::t2"),
            }
            for name, fn in queries.items():
                out[f"n{n}_{name}_ms"] = _median_ms(fn, samples)

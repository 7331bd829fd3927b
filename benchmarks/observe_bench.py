"""Observation workloads: what a dashboard's snapshot costs, and what byte-progress reporting costs an executor.

* ``snapshot``: N async tasks (100, the original's ``byte_progress_snapshot/100_tasks``) each streaming 64 KiB
  every 10 ms, all running at once on 2 workers; then median ms of ``scheduler.snapshot()``,
  ``handle.snapshot()``, ``scheduler.byte_progress()``, ``handle.byte_progress()`` and, from a ``connect()``
  client in the same process, the database-only ``snapshot()`` (no supervisor memory). The tasks are cancelled
  afterwards.
* ``byte_progress``: ``benchmarks.progress_bench``: ns per ``ctx.add_bytes`` call and the frames it sends, in
  one process and in a real worker.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import taskmill as tm

from . import progress_bench
from .harness import Result, warm_scheduler
from .scratch import scratch_dir
from .workload_tasks import Stream, naps

STREAM_S = 60.0  # longer than any measurement: the tasks are cancelled once it is done


def _wait_streaming(sched: tm.Scheduler, n: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(sched.byte_progress()) >= n:
            return True
        time.sleep(0.02)
    return False


def snapshot(root: Path, n: int, samples: int) -> Result:
    out: Result = {"problems": []}
    per_worker = max(50, -(-n // 2))
    with warm_scheduler(
        root, "snapshot", domains=[naps], workers=2, async_concurrency=per_worker, max_concurrency=max(100, n)
    ) as run:
        handle = run.handle(naps)
        ids = handle.submit_batch([Stream(i=i, seconds=STREAM_S) for i in range(n)]).inserted()
        try:
            if not _wait_streaming(run.sched, n, 30.0):
                out["problems"].append(f"only {len(run.sched.byte_progress())} of {n} tasks reported bytes")
                return out
            with tm.connect(run.db, durability="normal") as client:
                calls: dict[str, Callable[[], Any]] = {
                    "scheduler_snapshot": run.sched.snapshot,
                    "domain_snapshot": handle.snapshot,
                    "byte_progress": run.sched.byte_progress,
                    "domain_byte_progress": handle.byte_progress,
                    "client_snapshot": client.snapshot,
                }
                times: dict[str, list[float]] = {name: [] for name in calls}
                for _ in range(samples):  # interleaved, so load drifts hit every call alike
                    for name, fn in calls.items():
                        t0 = time.perf_counter()
                        fn()
                        times[name].append((time.perf_counter() - t0) * 1000)
                for name, ms in times.items():
                    out[f"{name}_ms"] = statistics.median(ms)
                snap = run.sched.snapshot()
                out["snapshot_json_kib"] = len(msgspec.json.encode(snap)) / 1024
                live = sum(1 for r in snap.running if r.executing)
                if live != n or len(snap.byte_progress) != n or len(client.snapshot().running) != n:
                    out["problems"].append(
                        f"snapshot shows {live} executing and {len(snap.byte_progress)} with bytes, expected {n}"
                    )
        finally:
            run.sched.cancel_many(ids)
            if not run.sched.wait_until_idle(timeout=30.0, poll=0.01):
                out["problems"].append("streaming tasks still running 30 s after cancel_many")
    return out


def byte_progress(root: Path, calls: int) -> Result:
    """``progress_bench.in_process`` and one end-to-end pair (a worker with and without ``add_bytes``)."""
    out: Result = dict(progress_bench.in_process(calls))
    with scratch_dir(root, "progress") as d:
        out.update(progress_bench.end_to_end(calls, 1, d))
    out["problems"] = []
    if out["add_bytes_frames"] > max(50.0, 40.0 * out["add_bytes_ns"] * calls / 1e9):
        out["problems"].append(f"ctx.add_bytes sent {out['add_bytes_frames']:.0f} frames: not coalesced")
    return out

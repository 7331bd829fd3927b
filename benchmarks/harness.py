"""A running, warmed-up scheduler for workloads that measure dispatch rather than start-up.

``warm_scheduler`` starts an embedded ``Scheduler`` on a fresh on-disk database, runs a few warm-up tasks
(so the workers are booted and the dispatcher has seen the task types: an unknown type is never prefetched)
and yields it with its completion log. ``prefetch_cap`` forces the prefetch depth, the dispatcher's
"claim batch size" per worker, for the sweep.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import taskmill as tm
import taskmill.policy.dispatch as dispatch_policy

from .scratch import DoneLog, Durability, Line, done_env, scratch_dir
from .workload_tasks import Nap, Noop, bench, naps

Result = dict[str, Any]


@dataclass
class Running:
    sched: tm.Scheduler
    done: DoneLog
    db: str

    def handle(self, domain: tm.Domain = bench) -> tm.DomainHandle:
        return self.sched.domain(domain)


@contextlib.contextmanager
def warm_scheduler(
    root: Path,
    tag: str,
    *,
    durability: Durability = "normal",
    domains: Sequence[tm.Domain] = (bench,),
    warmup: int = 50,
    **options: Any,
) -> Iterator[Running]:
    """Yield a started scheduler whose workers have run ``warmup`` tasks of each domain's warm-up type."""
    with scratch_dir(root, tag) as d:
        db = str(d / "tasks.db")
        done = DoneLog(d / "done.txt")
        with done_env(done.path), tm.Scheduler(db, list(domains), durability=durability, **options) as sched:
            expected = 0
            if bench in domains:
                sched.domain(bench).submit_batch([Noop(i=i, kind="w") for i in range(warmup)])
                expected += warmup
            if naps in domains:
                sched.domain(naps).submit_batch([Nap(i=i, ms=1.0, kind="w") for i in range(warmup)])
                expected += warmup
            done.wait(expected, 60.0)
            sched.wait_until_idle(timeout=30.0, poll=0.002)
            time.sleep(0.05)
            yield Running(sched, done, db)


@contextlib.contextmanager
def prefetch_cap(depth: int | None) -> Iterator[None]:
    """Force the dispatcher's prefetch depth to exactly ``depth`` (None: leave the adaptive sizing alone).

    There is no public knob for it: this overrides the two module constants ``prefetch_depth()`` reads, in
    this process only (an embedded scheduler's dispatcher runs here), and restores them afterwards.
    """
    if depth is None:
        yield
        return
    saved = dispatch_policy.MAX_PREFETCH, dispatch_policy.PREFETCH_BUDGET_MS
    dispatch_policy.MAX_PREFETCH = depth
    dispatch_policy.PREFETCH_BUDGET_MS = 1e9  # the cap, not the time budget, decides
    try:
        yield
    finally:
        dispatch_policy.MAX_PREFETCH, dispatch_policy.PREFETCH_BUDGET_MS = saved


def rates(lines: list[Line], t0: float) -> Result:
    """End-to-end rate from ``t0`` (just before the submit call) and the busy rate (first start to last end)."""
    n = len(lines)
    first_start = min(ln.t_start for ln in lines)
    last_end = max(ln.t_end for ln in lines)
    return {
        "tasks_per_s": n / (last_end - t0),
        "busy_tasks_per_s": n / (last_end - first_start) if last_end > first_start else 0.0,
        "first_start_ms": (first_start - t0) * 1000,
    }

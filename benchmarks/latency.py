"""Submit → executor-start latency, in-process and from another process (DESIGN.md §4, peer protocol W4).

The scheduler runs embedded in the benchmark process with 2 workers. In-process submissions come from the
main thread (``Scheduler.domain(...).submit``), first sleeping between submissions, then running Python
between them as a CPU-bound application thread would (``inproc_busy``: the embedded supervisor's thread then
waits for the GIL); cross-process ones from a child that runs this module as a script and submits through
``taskmill.connect(path)``. Both use a fixed 10 ms grid (a late call does not
shift later ones), take ``t_submit`` immediately before the call, and read ``t_start`` from the executor.

    python -m benchmarks.latency DB --count 300 --durability normal --start-at T   (the child side)
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import taskmill as tm

from .peers.workloads import percentile
from .scratch import BENCH_DIR, DoneLog, Durability, Line, check_distinct, done_env, scratch_dir
from .workload_tasks import Noop, bench

GRID_S = 0.010
CHILD_WARMUP = 5
CHILD_LEAD_S = 1.5  # the child's interpreter start and connect happen before its first due time


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _spin_until(t: float) -> None:
    """Wait by running Python, as a CPU-bound application thread would: the GIL is held but for the forced
    switches (``sys.getswitchinterval()``)."""
    while time.time() < t:
        pass


def submit_on_grid(handle: tm.DomainHandle, count: int, kind: str, t0: float, busy: bool = False) -> float:
    """Submission ``k`` is due at ``t0 + k * 10 ms``; returns the largest gap between two submissions.
    ``busy``: the submitting thread keeps running Python between submissions instead of sleeping."""
    submits = []
    wait = _spin_until if busy else _sleep_until
    for k in range(count):
        wait(t0 + k * GRID_S)
        t_submit = time.time()
        handle.submit(Noop(i=k, t_submit=t_submit, kind=kind))
        submits.append(t_submit)
    return max((b - a for a, b in itertools.pairwise(submits)), default=0.0)


def _stats(lines: list[Line], prefix: str) -> dict[str, Any]:
    """Percentiles, plus every sample (``*_samples_ms``, sorted) for the latency CDF plot."""
    lat = sorted((ln.t_start - ln.t_submit) * 1000 for ln in lines)
    return {
        f"{prefix}_samples_ms": [round(x, 4) for x in lat],
        f"{prefix}_p50_ms": percentile(lat, 0.50),
        f"{prefix}_p99_ms": percentile(lat, 0.99),
        f"{prefix}_max_ms": lat[-1],
        f"{prefix}_mean_ms": statistics.fmean(lat),
    }


def latency(
    root: Path, durability: Durability, count: int, idle_s: float, warmup: int = 10, lead_s: float = CHILD_LEAD_S
) -> dict[str, Any]:
    """Both latency runs against one embedded scheduler; the workers idle ``idle_s`` before each."""
    problems: list[str] = []
    with scratch_dir(root, "latency") as d:
        db = str(d / "tasks.db")
        done = DoneLog(d / "done.txt")
        with done_env(done.path), tm.Scheduler(db, [bench], workers=2, durability=durability) as sched:
            handle = sched.domain(bench)
            for i in range(warmup):
                handle.submit(Noop(i=i, kind="w"))
            done.wait(warmup, 60.0)
            time.sleep(idle_s)
            gap = submit_on_grid(handle, count, "n", time.time())
            done.wait(warmup + count, 60.0)
            time.sleep(idle_s)
            submit_on_grid(handle, count, "b", time.time(), busy=True)
            done.wait(warmup + 2 * count, 60.0)
            time.sleep(idle_s)
            start_at = time.time() + lead_s
            cmd = [sys.executable, "-m", "benchmarks.latency", db, "--count", str(count),
                   "--durability", durability, "--start-at", repr(start_at)]  # fmt: skip
            child = subprocess.run(cmd, cwd=BENCH_DIR.parent, capture_output=True, text=True, timeout=120)
            if child.returncode != 0:
                problems.append(f"latency client failed ({child.returncode}): {child.stderr.strip()[-500:]}")
            else:
                done.wait(warmup + CHILD_WARMUP + 3 * count, 60.0)
        inproc, busy, cross = done.lines("n"), done.lines("b"), done.lines("x")
    problems += check_distinct(inproc, count, "in-process latency")
    problems += check_distinct(busy, count, "in-process latency, busy submitter")
    out: dict[str, Any] = {"max_submit_gap_ms": gap * 1000}
    if inproc:
        out.update(_stats(inproc, "inproc"))
    if busy:
        out.update(_stats(busy, "inproc_busy"))
    if child.returncode == 0:
        problems += check_distinct(cross, count, "cross-process latency")
        if cross:
            out.update(_stats(cross, "xproc"))
            out["xproc_max_submit_gap_ms"] = float(child.stdout.strip() or 0.0)
    out["problems"] = problems
    return out


def _child(argv: list[str] | None = None) -> int:
    """The other process: connect first, warm up, then submit kind ``x`` on the grid from ``--start-at``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency")
    p.add_argument("db")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--durability", choices=("normal", "full"), default="full")
    p.add_argument("--start-at", type=float, required=True)
    args = p.parse_args(argv)
    with tm.connect(args.db, durability=args.durability) as client:
        handle = client.domain(bench)
        for i in range(CHILD_WARMUP):
            handle.submit(Noop(i=10_000 + i, kind="w"))
        gap = submit_on_grid(handle, args.count, "x", max(args.start_at, time.time() + 0.5))
    print(f"{gap * 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(_child())

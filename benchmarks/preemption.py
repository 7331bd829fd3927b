"""Preemption latency: REALTIME submit → a lower-priority CPU-bound executor (that never checks
``ctx.cancelled``) stopped, and → the urgent task started. ``python -m benchmarks.preemption [--trials N]``

Each trial runs a busy loop on the only worker, submits a REALTIME task, and reads the executors' own
timestamps from a log file: "stopped" is when the interrupt reached the loop (the cooperative-signal path).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import taskmill as tm

from .preempt_tasks import Busy, Urgent, preempt


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile, as the peer protocol defines it."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _events(log: Path) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            kind, trial, t = line.split()
            out.setdefault((kind, int(trial)), float(t))
    return out


def _wait(log: Path, key: tuple[str, int], timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _events(log).get(key)
        if found is not None:
            return found
        time.sleep(0.002)
    raise TimeoutError(f"no {key[0]} for trial {key[1]}")


def measure(trials: int, workdir: Path) -> dict[str, float]:
    log = workdir / "preempt.log"
    stop_ms: list[float] = []
    start_ms: list[float] = []
    with tm.Scheduler(workdir / "preempt.db", [preempt], workers=1, durability="normal") as s:
        h = s.domain(preempt)
        for i in range(trials):
            h.submit(Busy(trial=i, log=str(log)))
            _wait(log, ("busy-start", i))
            time.sleep(0.01)
            t_submit = time.time()
            h.submit(Urgent(trial=i, log=str(log)), priority=tm.Priority.REALTIME)
            stopped = _wait(log, ("busy-stop", i))
            started = _wait(log, ("urgent-start", i))
            stop_ms.append((stopped - t_submit) * 1000)
            start_ms.append((started - t_submit) * 1000)
            s.wait_until_idle(20, poll=0.002)
        kills = sum(1 for r in s.history(trials * 2) if "killed" in (r.last_error or ""))
    return {
        "trials": trials,
        "stopped_p50_ms": pct(stop_ms, 0.5), "stopped_p99_ms": pct(stop_ms, 0.99), "stopped_max_ms": max(stop_ms),
        "urgent_start_p50_ms": pct(start_ms, 0.5), "urgent_start_p99_ms": pct(start_ms, 0.99),
        "worker_kills": kills,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preemption", description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tm-preempt-", dir=os.environ.get("TMPDIR")) as d:
        figures = measure(args.trials, Path(d))
    figures["load_1min"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    target = figures["stopped_p99_ms"] <= 50
    print(f"target: stopped p99 <= 50 ms: {'ok' if target else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

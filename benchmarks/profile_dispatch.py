"""Where the time goes when the supervisor drains queued no-ops: a quick diagnostic, not a benchmark.

    python -m benchmarks.profile_dispatch [--durability normal] [--tasks 10000] [--workers 2] [--top 25]
                                          [--no-profile]

Runs ``Scheduler.run()`` in the main thread under cProfile (so only the supervisor's event loop is
profiled), with a stopper thread that calls ``stop()`` once the executors have logged every completion.
Besides the profile it prints, from the executors' own timestamps, how busy each worker process was and
how long it sat between consecutive tasks: long gaps mean the workers wait for the supervisor.
cProfile slows the supervisor down, so compare the rate printed here with ``benchmarks.run``'s.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import pstats
import statistics
import sys
import threading
import time
from pathlib import Path

import taskmill as tm

from .scratch import DoneLog, Line, by_worker, done_env, scratch_dir, scratch_root
from .workload_tasks import Noop, bench


def worker_report(lines: list[Line]) -> list[str]:
    """Per worker pid: busy share of its active span, and the gaps between one task's end and the next."""
    out = []
    for pid, mine in sorted(by_worker(lines).items()):
        if len(mine) < 2:
            out.append(f"worker {pid}: {len(mine)} task(s)")
            continue
        span = mine[-1].t_end - mine[0].t_start
        busy = sum(ln.t_end - ln.t_start for ln in mine)
        gaps = sorted((b.t_start - a.t_end) * 1e6 for a, b in itertools.pairwise(mine))
        long_gaps = [g for g in gaps if g > 500]
        p99 = gaps[int(len(gaps) * 0.99)]
        out.append(
            f"worker {pid}: {len(mine)} tasks in {span * 1000:.0f} ms; body time {busy / span:.1%} of span; "
            f"gap between tasks median {statistics.median(gaps):.0f} us, p99 {p99:.0f} us; "
            f"{len(long_gaps)} gaps > 0.5 ms totalling {sum(long_gaps) / 1000:.0f} ms "
            f"({sum(long_gaps) / 1e6 / span:.0%} of span)"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_dispatch")
    p.add_argument("--durability", choices=("normal", "full"), default="normal")
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ...)")
    p.add_argument("--out", type=Path, help="also dump the raw profile here (pstats format)")
    p.add_argument("--no-profile", action="store_true", help="only the worker report, at full speed")
    args = p.parse_args(argv)
    with scratch_dir(scratch_root(), "profile") as d:
        done = DoneLog(d / "done.txt")
        sched = tm.Scheduler(str(d / "tasks.db"), [bench], workers=args.workers, durability=args.durability)
        sched.domain(bench).submit_batch([Noop(i=i) for i in range(args.tasks)])
        stamps: dict[str, float] = {}

        def stopper() -> None:
            stamps["done"] = done.wait(args.tasks, 300.0)
            sched.stop()

        prof = cProfile.Profile()
        with done_env(done.path):
            threading.Thread(target=stopper, name="stopper", daemon=True).start()
            t0 = time.time()
            if not args.no_profile:
                prof.enable()
            sched.run()
            prof.disable()
        sched.close()
        lines = done.lines("n")
    first = min(ln.t_start for ln in lines)
    last = max(ln.t_end for ln in lines)
    how = "without profiling" if args.no_profile else "under cProfile"
    print(f"{args.tasks} no-ops, {args.workers} workers, durability={args.durability}, {how}:")
    print(f"  first task started {first - t0:.3f} s after run(); last ended {last - t0:.3f} s after run()")
    print(f"  steady rate (first start to last end) {len(lines) / (last - first):,.0f} tasks/s")
    for line in worker_report(lines):
        print("  " + line)
    if args.no_profile:
        return 0
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(buf.getvalue())
    if args.out:
        stats.dump_stats(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A CPU-bound batch job on the worker process pool: the same batch with 1 worker, then with 2.

    python examples/cpu_batch.py [--tasks N] [--size N] [--workers N]

Each task counts the primes below `size` in pure Python: the kind of work threads cannot speed up, because of
the GIL. A sync executor has a worker process to itself, so with two workers on a machine with two free cores
the batch takes about half as long. The speedup printed depends on how busy the machine is.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import ClassVar

import taskmill as tm

batch = tm.Domain("batch")


class CountPrimes(tm.Task, frozen=True):
    task_type: ClassVar[str] = "count_primes"
    start: int
    stop: int
    out: str


def count_primes(start: int, stop: int) -> int:
    found = 0
    for n in range(max(start, 2), stop):
        if all(n % d for d in range(2, int(n**0.5) + 1)):
            found += 1
    return found


@batch.executor(CountPrimes)
def run(task: CountPrimes, ctx: tm.TaskContext) -> None:
    found = count_primes(task.start, task.stop)
    Path(task.out).write_text(str(found))  # a real job would write its result somewhere; returns are discarded


def run_batch(db: Path, workers: int, tasks: int, size: int) -> tuple[float, int]:
    """Run the whole batch on a fresh database; returns (seconds, primes found)."""
    out = db.parent / f"results-{workers}"
    out.mkdir(exist_ok=True)
    with tm.Scheduler(db, domains=[batch], workers=workers, durability="normal") as scheduler:
        step = size // tasks
        jobs = [CountPrimes(start=i * step, stop=(i + 1) * step, out=str(out / f"{i}.txt")) for i in range(tasks)]
        t0 = time.perf_counter()  # the workers are up: time the batch, not the start-up
        scheduler.domain(batch).submit_batch(jobs)
        scheduler.wait_until_idle()
        elapsed = time.perf_counter() - t0
        done = [r for r in scheduler.history(limit=tasks) if r.status == "completed"]
        assert len(done) == tasks, f"{len(done)} of {tasks} tasks completed"
    return elapsed, sum(int(p.read_text()) for p in out.iterdir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16, help="tasks in the batch")
    parser.add_argument("--size", type=int, default=400_000, help="count primes below this number")
    parser.add_argument("--workers", type=int, default=2, help="workers of the second run")
    parser.add_argument("--dir", default="cpu_batch", help="working directory (created)")
    args = parser.parse_args(argv)
    work = Path(args.dir).resolve()
    work.mkdir(parents=True, exist_ok=True)

    results = {}
    for workers in (1, args.workers):
        seconds, primes = run_batch(work / f"tasks-{workers}.db", workers, args.tasks, args.size)
        results[workers] = seconds
        print(f"workers={workers}: {args.tasks} tasks in {seconds:.2f} s ({primes} primes below {args.size:,})")
    print(f"speedup with {args.workers} workers: {results[1] / results[args.workers]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

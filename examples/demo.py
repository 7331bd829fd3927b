"""taskmill demo: a few hundred tasks of three kinds and three priorities, run by a pool of worker processes.

    python examples/demo.py [--crunch-seconds S]

Everything at module level (the domain, the task classes, the executors) is also loaded by every worker
process; the ``if __name__ == "__main__":`` block runs only in the process you started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import ClassVar

import taskmill as tm

demo = tm.Domain("demo")


class Touch(tm.Task, frozen=True):
    """A tiny IO-ish task: writes a few bytes to /dev/null."""

    task_type: ClassVar[str] = "touch"
    n: int


class Crunch(tm.Task, frozen=True):
    """A CPU-bound task: a pure-Python loop of about 0.2 s by default (the GIL is held the whole time)."""

    task_type: ClassVar[str] = "crunch"
    n: int
    iterations: int


class Fetch(tm.Task, frozen=True):
    """An async task that waits, like a network call. Many run at once on one worker."""

    task_type: ClassVar[str] = "fetch"
    n: int
    delay: float


def spin(iterations: int) -> int:
    x = 0
    for i in range(iterations):
        x = (x * 31 + i) % 1_000_003
    return x


@demo.executor(Touch)
def touch(task: Touch, ctx: tm.TaskContext) -> None:
    data = f"touch {task.n}\n".encode() * 64
    with open(os.devnull, "wb") as f:
        f.write(data)
    ctx.record_write_bytes(len(data))


@demo.executor(Crunch)
def crunch(task: Crunch, ctx: tm.TaskContext) -> None:
    spin(task.iterations)


@demo.executor(Fetch)
async def fetch(task: Fetch, ctx: tm.TaskContext) -> None:
    ctx.progress.report(0.0, "connecting")
    await asyncio.sleep(task.delay)
    ctx.record_net_rx_bytes(1024)
    ctx.progress.report(1.0, "done")


# -- the program ---------------------------------------------------------------------------------------------
PRIORITIES = [tm.Priority.HIGH, tm.Priority.NORMAL, tm.Priority.BACKGROUND]


def prio_name(p: int) -> str:
    return repr(tm.Priority(p)).removeprefix("Priority.")


def calibrate(target_s: float = 0.2) -> int:
    """Loop iterations that take about ``target_s`` seconds on this machine."""
    n = 200_000
    t0 = time.perf_counter()
    spin(n)
    return max(1, int(n * target_s / (time.perf_counter() - t0)))


def table(title: str, headers: list[str], rows: list[list[object]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        cells = [[str(c) for c in r] for r in [headers, *rows]]
        widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
        print(f"\n{title}")
        for j, r in enumerate(cells):
            padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
            print("  " + "  ".join(padded))
            if j == 0:
                print("  " + "  ".join("-" * w for w in widths))
        return
    t = Table(title=title, title_justify="left")
    for i, h in enumerate(headers):
        t.add_column(h, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*(str(c) for c in r))
    Console().print(t)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crunch-seconds", type=float, default=0.2, help="CPU time of each CPU-bound task")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.gettempdir()) / "taskmill-demo"
    shutil.rmtree(workdir, ignore_errors=True)  # fresh database on every run
    workdir.mkdir(parents=True)
    db = workdir / "tasks.db"

    workers = max(2, min(4, os.cpu_count() or 2))
    iterations = calibrate(args.crunch_seconds)
    scheduler = tm.Scheduler(
        db,
        domains=[demo],
        workers=workers,  # worker processes
        max_concurrency=workers + 16,  # sync tasks take a whole worker; async ones share one
        durability="normal",  # survives any process crash; "full" (the default) also survives power loss
    )
    h = scheduler.domain(demo)

    # Batches: one transaction each.
    batches: list[tuple[tm.Priority, list[tm.Task]]] = []
    for i, prio in enumerate(PRIORITIES):
        batches.append((prio, [Touch(n=i * 1000 + k) for k in range(80)]))
        batches.append((prio, [Crunch(n=i * 1000 + k, iterations=iterations) for k in range(26)]))
        batches.append((prio, [Fetch(n=i * 1000 + k, delay=0.1 + 0.05 * (k % 5)) for k in range(20)]))
    expected = 0
    for prio, tasks in batches:
        expected += len(h.submit_batch(tasks, priority=prio).inserted())

    # Single submits, showing what dedup keys do.
    print(f"database: {db}   workers: {workers}   crunch loop: {iterations:,} iterations (~{args.crunch_seconds} s)")
    print("single submits:")
    once = Crunch(n=-1, iterations=iterations)
    shown = [
        ("Crunch(n=-1) at HIGH", h.submit(once, priority=tm.Priority.HIGH)),
        ("same payload again", h.submit(once)),
        ("Touch(n=-2) at BACKGROUND", h.submit(Touch(n=-2), priority=tm.Priority.BACKGROUND)),
        ("same payload at HIGH", h.submit(Touch(n=-2), priority=tm.Priority.HIGH)),
        ("Touch key='nightly', run_after=1 s", h.submit(Touch(n=-3), key="nightly", run_after=1.0)),
        ("other payload, key='nightly'", h.submit(Touch(n=-4), key="nightly")),
    ]
    for what, out in shown:
        print(f"  {what:<36} -> {out.kind}" + (f" (task {out.id})" if out.id else ""))
        expected += out.kind == "inserted"
    print(f"{expected} tasks queued: {scheduler.status_counts()['pending']} pending\n")

    events = scheduler.subscribe()
    t0 = time.monotonic()
    scheduler.start()
    boot_s = time.monotonic() - t0

    pid_of: dict[int, int] = {}  # task id -> worker pid, from Dispatched events
    by_pid: dict[int, Counter[str]] = defaultdict(Counter)
    cpu_by_pid: Counter[int] = Counter()
    by_prio: dict[int, Counter[str]] = defaultdict(Counter)
    finish_rank: dict[int, list[int]] = defaultdict(list)
    kinds: Counter[str] = Counter()
    finished = 0

    def record(e: tm.Event) -> None:
        nonlocal finished
        kinds[type(e).__name__] += 1
        hd = e.header
        if hd is None:
            return
        if isinstance(e, tm.Dispatched):
            pid_of[hd.task_id] = e.worker_pid
        elif isinstance(e, tm.Completed | tm.DeadLettered) or (isinstance(e, tm.Failed) and not e.will_retry):
            short = hd.task_type.split("::")[1]
            pid = pid_of.get(hd.task_id, 0)
            by_pid[pid][short] += 1
            if short == "crunch" and isinstance(e, tm.Completed):
                cpu_by_pid[pid] += e.duration
            by_prio[hd.base_priority][short] += 1
            finish_rank[hd.base_priority].append(finished)
            finished += 1

    next_print = time.monotonic()
    deadline = time.monotonic() + 120
    try:
        while finished < expected and time.monotonic() < deadline:
            e = events.get(timeout=0.05)
            while e is not None:
                record(e)
                e = events.get_nowait()
            if time.monotonic() >= next_print or finished >= expected:
                counts = scheduler.status_counts()
                elapsed = time.monotonic() - t0
                print(
                    f"  {elapsed:5.1f}s  finished {finished:4d}/{expected}"
                    f"  running {counts['running']:2d}  pending {counts['pending']:4d}",
                    flush=True,
                )
                next_print += 0.5
    finally:
        wall = time.monotonic() - t0
        events.close()
        scheduler.stop()

    # -- the report ----------------------------------------------------------------------------------------
    table(
        "Tasks per priority (finish rank: 0 = first to finish)",
        ["priority", "touch", "crunch", "fetch", "median finish rank"],
        [[prio_name(p), c["touch"], c["crunch"], c["fetch"], int(statistics.median(finish_rank[p]))]
         for p, c in sorted(by_prio.items())],
    )  # fmt: skip
    crunch_hist = scheduler.history_by_type("demo::crunch", limit=10_000)
    table(
        "Tasks per worker process",
        ["worker pid", "tasks", "touch", "crunch", "fetch", "crunch CPU s"],
        [[pid, c.total(), c["touch"], c["crunch"], c["fetch"], f"{cpu_by_pid[pid]:.1f}"]
         for pid, c in sorted(by_pid.items())],
    )  # fmt: skip
    serial = sum(r.duration or 0.0 for r in crunch_hist)
    span = max(r.completed_at for r in crunch_hist) - min(r.started_at or r.completed_at for r in crunch_hist)
    table(
        "Time",
        ["measure", "seconds"],
        [
            ["worker start-up", f"{boot_s:.2f}"],
            ["wall time, start to last task", f"{wall - boot_s:.2f}"],
            [f"CPU-bound tasks ({len(crunch_hist)}), serial executor time", f"{serial:.2f}"],
            ["CPU-bound tasks, first start to last finish", f"{span:.2f}"],
            ["parallel speed-up on CPU-bound tasks", f"{serial / span:.2f}x"],
        ],
    )
    singles = [out.id for _, out in shown if out.kind == "inserted" and out.id is not None]
    rows = [r for tid in singles for r in scheduler.history_of(tid)] + scheduler.history(limit=2)
    table(
        "History rows: the single submits, then the two latest",
        ["task", "type", "priority", "status", "retries", "waited ms", "ran ms"],
        [[r.task_id, r.task_type, prio_name(r.priority), r.status, r.retry_count,
          f"{((r.started_at or r.created_at) - r.created_at) * 1000:.0f}", f"{(r.duration or 0) * 1000:.0f}"]
         for r in rows],
    )  # fmt: skip
    print("events seen: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    counts = scheduler.status_counts()
    scheduler.close()
    ok = finished == expected and counts["pending"] == 0 and counts["running"] == 0
    if not ok:
        print(f"incomplete: {finished}/{expected} finished, {counts}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

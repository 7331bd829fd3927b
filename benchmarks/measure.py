"""Throughput workloads of the project benchmark (DESIGN.md §4): submit, dedup hits, batch submit, drain, CPU.

Each function runs one repetition on a fresh on-disk database and returns a flat dict of figures (units in
the names) plus ``problems``: anything that means the run is broken (lost or duplicated tasks, wrong queue
depth). A missed performance target is never a problem here; ``run.py`` only reports it.
"""

from __future__ import annotations

import shutil
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import psutil

import taskmill as tm

from .peers.taskbody import CPU_LOOPS, spin
from .scratch import DoneLog, Durability, check_distinct, done_env, scratch_dir
from .workload_tasks import Noop, Spin, bench

Result = dict[str, Any]
DRAIN_TIMEOUT_S = 300.0


def _db(path: Path) -> str:
    return str(path / "tasks.db")


PAUSE_S = 0.1  # between the two passes of ``single_submit``


def single_submit(root: Path, durability: Durability, n: int) -> Result:
    """``n`` sequential ``handle.submit(Noop(i=i))`` calls through a connected client, twice; no supervisor runs.

    ``cold_tasks_per_s`` is the first ``n``, into the fresh database; ``tasks_per_s`` the next ``n``, once
    checkpoints have run and the WAL is written over, as in a database that has been in use (with "normal" the
    checkpoint waits for a lull in the commits: hence the pause between the two). With ``full`` the
    difference is large (~800 against ~435 µs a call here): appending to a new WAL makes each commit sync the
    file's size too, and the first checkpoints grow the database file."""
    with scratch_dir(root, "submit") as d, tm.connect(_db(d), durability=durability) as client:
        handle = client.domain(bench)
        t_a = time.perf_counter()
        for i in range(n):
            handle.submit(Noop(i=i))
        t_b = time.perf_counter()
        time.sleep(PAUSE_S)  # the checkpoint the first pass left waits for a lull (store/checkpoint.py)
        t_resume = time.perf_counter()
        for i in range(n, 2 * n):
            handle.submit(Noop(i=i))
        t_c = time.perf_counter()
        depth = client.pending_count()
    problems = [] if depth == 2 * n else [f"queue depth {depth}, expected {2 * n}"]
    return {"tasks_per_s": n / (t_c - t_resume), "cold_tasks_per_s": n / (t_b - t_a), "seconds": t_c - t_resume,
            "problems": problems}  # fmt: skip


def tags_submit(root: Path, n: int, tag_counts: tuple[int, ...] = (0, 5, 10, 20)) -> Result:
    """``n`` single submits with K tags each (``submit(..., tags=...)``), for each K; durability normal."""
    out: Result = {"problems": []}
    with scratch_dir(root, "tags") as d, tm.connect(_db(d), durability="normal") as client:
        handle = client.domain(bench)
        for k in tag_counts:
            tags = {f"key{j}": f"value{j}" for j in range(k)}
            base = k * n
            t_a = time.perf_counter()
            for i in range(n):
                handle.submit(Noop(i=base + i), tags=tags)
            out[f"tags{k}_tasks_per_s"] = n / (time.perf_counter() - t_a)
        depth = client.pending_count()
    if depth != n * len(tag_counts):
        out["problems"].append(f"queue depth {depth}, expected {n * len(tag_counts)}")
    return out


def dedup_submit(root: Path, durability: Durability, n: int) -> Result:
    """One insert, then ``n - 1`` submits of the same payload: the duplicate ("skip") path of ``submit``."""
    with scratch_dir(root, "dedup") as d, tm.connect(_db(d), durability=durability) as client:
        handle = client.domain(bench)
        task = Noop(i=0)
        t_a = time.perf_counter()
        kinds = [handle.submit(task).kind]
        t_b = time.perf_counter()
        for _ in range(n - 1):
            kinds.append(handle.submit(task).kind)
        seconds = time.perf_counter() - t_a
        depth = client.pending_count()
    problems = [] if depth == 1 else [f"queue depth {depth}, expected 1"]
    if kinds[0] != "inserted" or kinds.count("duplicate") != n - 1:
        problems.append(f"outcomes: first {kinds[0]}, {kinds.count('duplicate')} duplicates of {n - 1}")
    dup_s = seconds - (t_b - t_a)
    return {"calls_per_s": n / seconds, "duplicates_per_s": (n - 1) / dup_s, "seconds": seconds,
            "problems": problems}  # fmt: skip


def batch_submit(root: Path, durability: Durability, n: int, samples: int = 5, history: int = 0) -> Result:
    """One ``submit_batch`` of ``n`` tasks built beforehand (encoding and hashing are part of the call), into a
    fresh database through a fresh client, ``samples`` times; the median call. One call takes ~10 ms, so a
    single sample per repetition mostly measured whichever hiccup of a shared machine it met.

    ``history``: each database starts as a copy of one holding that many finished rows, as a scheduler's does
    once its history reaches the retention limit. Their keys are spread over the dedup index as real ones are,
    so the batch's keys land on leaves all over it and its commit writes them all."""
    times: list[float] = []
    problems: list[str] = []
    with scratch_dir(root, "batch-template") as template:
        if history:
            fill_history(_db(template), history)
        for _ in range(samples):
            with scratch_dir(root, "batch") as d:
                if history:
                    shutil.copyfile(_db(template), _db(d))
                with tm.connect(_db(d), durability=durability) as client:
                    handle = client.domain(bench)
                    tasks = [Noop(i=i) for i in range(n)]
                    t_a = time.perf_counter()
                    outcome = handle.submit_batch(tasks)
                    times.append(time.perf_counter() - t_a)
                    depth = client.pending_count()
            if not depth == n == len(outcome.inserted()):
                problems.append(f"queue depth {depth}, expected {n}")
    seconds = statistics.median(times)
    return {"tasks_per_s": n / seconds, "seconds": seconds, "best_tasks_per_s": n / min(times), "problems": problems}


def fill_history(db: str, n: int) -> None:
    """``n`` finished rows, as a long-running scheduler's history holds them (benchmark set-up only: one SQL
    statement through the store's connection instead of running ``n`` tasks). Keys are random 64-digit hex, as
    SHA-256 keys are: sequential ones would make every dedup index insert and delete land on one leaf. The WAL
    is checkpointed into the file, so a copy of the file alone is the whole database."""
    from taskmill.store import Store

    store = Store(db, "normal")
    try:
        with store.write():
            store.conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) "
                "INSERT INTO tasks (task_type, domain, key, label, priority, payload, status, created_at, started_at, "
                "finished_at, duration_ms, attempt) "
                "SELECT 'bench::noop', 'bench', lower(hex(randomblob(32))), 'noop', 2, x'91cd0001', 'completed', i, i, "
                "i, 0, 1 FROM n",
                (n,),
            )
        store.checkpoint()
    finally:
        store.close()


def drain(root: Path, durability: Durability, n: int, workers: int = 2, history: int = 0) -> Result:
    """Queue ``n`` no-ops, then start ``Scheduler(workers=2)`` and time the drain.

    ``wall`` runs from just before ``start()`` (worker spawn and boot included) to the last executor's end
    timestamp; ``steady`` is first to last completion as recorded by the executors; ``committed`` is when
    ``wait_until_idle`` (called only once the log shows every completion) saw an empty queue. ``history``:
    finished rows already in the database (at the default retention of 100,000, every finished task then
    also costs its share of pruning, as in a scheduler that has run for a while).

    The CPU figures say where a no-op's cost goes, up to the last completion: the supervisor thread's CPU
    time per task and as a share of the wall time (near 100%: it is the limit), and the worker processes'
    CPU time per task (their interpreter start and imports included).
    """
    with scratch_dir(root, "drain") as d:
        done = DoneLog(d / "done.txt")
        if history:
            fill_history(_db(d), history)
        sched = tm.Scheduler(_db(d), [bench], workers=workers, durability=durability)
        try:
            sched.domain(bench).submit_batch([Noop(i=i) for i in range(n)])
            time.sleep(0.2)  # let the batch's writes settle before the clock starts
            with done_env(done.path):
                t0 = time.time()
                sched.start()
                t_ready = time.time()
                done.wait(n, DRAIN_TIMEOUT_S)
                cpu = _drain_cpu()
                idle = sched.wait_until_idle(timeout=60.0)
                t_idle = time.time()
            counts = sched.status_counts()
        finally:
            sched.stop()
            sched.close()
        lines = done.lines("n")
    first_end, last_end = min(ln.t_end for ln in lines), max(ln.t_end for ln in lines)
    problems = check_distinct(lines, n, "drain")
    if not idle or counts["pending"] or counts["running"]:
        problems.append(f"queue not empty after the drain: {counts}")
    return {
        "tasks_per_s": n / (last_end - t0),
        "steady_tasks_per_s": (n - 1) / (last_end - first_end) if last_end > first_end else 0.0,
        "committed_tasks_per_s": n / (t_idle - t0),
        "startup_s": min(ln.t_start for ln in lines) - t0,
        "start_call_s": t_ready - t0,
        "wall_s": last_end - t0,
        "pids": len({ln.pid for ln in lines}),
        "supervisor_cpu_us_per_task": cpu["supervisor"] / n * 1e6,
        "supervisor_busy_pct": cpu["supervisor"] / (last_end - t0) * 100,
        "workers_cpu_us_per_task": cpu["workers"] / n * 1e6,
        "problems": problems,
    }


def _drain_cpu() -> dict[str, float]:
    """CPU seconds so far of this process's supervisor thread (an embedded scheduler's) and of its children."""
    me = psutil.Process()
    ids = {t.native_id for t in threading.enumerate() if t.name == "taskmill-supervisor"}
    supervisor = sum(t.user_time + t.system_time for t in me.threads() if t.id in ids)
    workers = 0.0
    for child in me.children():
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        workers += times.user + times.system
    return {"supervisor": supervisor, "workers": workers}


def _cpu_run(root: Path, workers: int, n: int, warmup: int) -> tuple[float, float, list[str]]:
    """Start ``workers`` workers, warm them up, then time ``n`` Spin tasks submitted one by one.

    Submissions go through a ``taskmill.connect()`` client, as a separate producer's would (the peer
    protocol's W5 does the same); the in-process submit path is what the latency workload measures.
    """
    with scratch_dir(root, f"cpu{workers}") as d:
        done = DoneLog(d / "done.txt")
        sched = tm.Scheduler(_db(d), [bench], workers=workers, durability="normal")
        with done_env(done.path), sched, tm.connect(_db(d), durability="normal") as client:
            handle = client.domain(bench)
            for i in range(warmup):
                handle.submit(Noop(i=i, kind="w"))
            done.wait(warmup, 60.0)
            time.sleep(0.2)
            t0 = time.time()
            for i in range(n):
                handle.submit(Spin(i=i, t_submit=time.time()))
            done.wait(warmup + n, 120.0)
        lines = done.lines("c")
    wall = max(ln.t_end for ln in lines) - t0
    body_ms = statistics.fmean((ln.t_end - ln.t_start) * 1000 for ln in lines)
    return wall, body_ms, check_distinct(lines, n, f"cpu workers={workers}")


def cpu_scaling(root: Path, n: int, warmup: int = 10) -> Result:
    """``n`` tasks of ``spin(1_600_000)`` on 1 and on 2 workers, against a serial in-process reference."""
    t_a = time.perf_counter()
    for _ in range(n):
        spin(CPU_LOOPS)
    out: Result = {"ref_serial_inproc_s": time.perf_counter() - t_a, "problems": []}
    for p in (1, 2):
        wall, body_ms, problems = _cpu_run(root, p, n, warmup)
        out[f"wall{p}_s"] = wall
        out[f"body{p}_mean_ms"] = body_ms
        out["problems"] += problems
    out["speedup"] = out["wall1_s"] / out["wall2_s"]
    return out

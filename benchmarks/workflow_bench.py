"""Workloads for features that landed while the suite was written: dependencies, cancel, pause, preemption.

* ``dependencies``: a linear chain submitted link by link (``depends_on=[previous]``), the same chain run on a
  warm scheduler until its last link ran (every hop is complete -> unblock -> dispatch), and fan-in: W upstream
  tasks plus one aggregator that depends on all of them (original: ``dep_chain_submit``, ``dep_chain_dispatch``,
  ``dep_fan_in_dispatch``).
* ``cancel``: ``cancel_many`` of N queued tasks in one call, and ``cancel`` one at a time.
* ``pause``: ``pause_group``/``resume_group`` and ``pause_all``/``resume_all`` with N tasks queued.
* ``preemption``: ``benchmarks.preemption`` (REALTIME submit -> a CPU-bound lower-priority executor stopped).
"""

from __future__ import annotations

import time
from pathlib import Path

import taskmill as tm

from . import preemption as preemption_bench
from .harness import Result, warm_scheduler
from .scratch import Durability, scratch_dir
from .workload_tasks import Noop, bench

TIMEOUT_S = 120.0


def _chain(handle: tm.DomainHandle, n: int, base: int, kind: str) -> list[int]:
    ids: list[int] = []
    for k in range(n):
        out = handle.submit(Noop(i=base + k, kind=kind), depends_on=ids[-1:] or None)
        assert out.id is not None
        ids.append(out.id)
    return ids


def dependencies(
    root: Path,
    durability: Durability,
    submit_sizes: tuple[int, ...] = (10, 50, 200),
    chain_sizes: tuple[int, ...] = (10, 25, 50),
    fan_sizes: tuple[int, ...] = (10, 50, 100),
) -> Result:
    out: Result = {"problems": []}
    with scratch_dir(root, "deps") as d, tm.connect(d / "tasks.db", durability=durability) as client:
        handle = client.domain(bench)
        for n in submit_sizes:
            t_a = time.perf_counter()
            ids = _chain(handle, n, 1_000_000 * n, "s")
            out[f"chain{n}_submit_per_s"] = n / (time.perf_counter() - t_a)
            if client.blocked_count() < n - 1:
                out["problems"].append(f"chain {n}: {client.blocked_count()} blocked, expected {n - 1}")
            client.cancel_many(ids)
    with warm_scheduler(root, "deps-run", durability=durability, workers=2) as run:
        handle = run.handle()
        for n in chain_sizes:
            kind = f"c{n}"
            t0 = time.time()
            _chain(handle, n, 0, kind)
            run.done.wait(run.done.count + n, TIMEOUT_S)
            lines = run.done.lines(kind)
            if [ln.i for ln in sorted(lines, key=lambda ln: ln.t_start)] != list(range(n)):
                out["problems"].append(f"chain {n} ran out of order")
            out[f"chain{n}_run_ms"] = (max(ln.t_end for ln in lines) - t0) * 1000
            out[f"chain{n}_hop_ms"] = out[f"chain{n}_run_ms"] / n
        for w in fan_sizes:
            up, agg = f"u{w}", f"g{w}"
            t0 = time.time()
            ids = handle.submit_batch([Noop(i=k, kind=up) for k in range(w)]).inserted()
            handle.submit(Noop(i=0, kind=agg), depends_on=ids)
            run.done.wait(run.done.count + w + 1, TIMEOUT_S)
            last_up = max(ln.t_end for ln in run.done.lines(up))
            agg_start = run.done.lines(agg)[0].t_start
            if agg_start < last_up:
                out["problems"].append(f"fan-in {w}: the aggregator started before its last upstream ended")
            out[f"fan{w}_run_ms"] = (run.done.lines(agg)[0].t_end - t0) * 1000
            out[f"fan{w}_unblock_ms"] = (agg_start - last_up) * 1000
    return out


def cancel(root: Path, durability: Durability, n: int) -> Result:
    """``cancel_many`` of ``n`` queued tasks, then ``n // 5`` single ``cancel`` calls; no supervisor runs."""
    out: Result = {"problems": []}
    with scratch_dir(root, "cancel") as d, tm.connect(d / "tasks.db", durability=durability) as client:
        handle = client.domain(bench)
        ids = handle.submit_batch([Noop(i=i) for i in range(n)]).inserted()
        t_a = time.perf_counter()
        done = client.cancel_many(ids)
        out["cancel_many_per_s"] = n / (time.perf_counter() - t_a)
        singles = handle.submit_batch([Noop(i=n + i) for i in range(n // 5)]).inserted()
        t_a = time.perf_counter()
        ok = sum(client.cancel(tid) for tid in singles)
        out["cancel_single_per_s"] = len(singles) / (time.perf_counter() - t_a)
        left = client.pending_count()
    if len(done) != n or ok != len(singles) or left:
        out["problems"].append(f"cancelled {len(done)}/{n} and {ok}/{len(singles)}; {left} still pending")
    return out


def pause(root: Path, durability: Durability, n: int) -> Result:
    """Milliseconds per pause/resume call with ``n`` tasks queued (in one group); no supervisor runs."""
    out: Result = {"problems": []}
    subs = [tm.TaskSubmission(task_type="bench::noop", payload={"i": i}, group="g") for i in range(n)]
    with scratch_dir(root, "pause") as d, tm.connect(d / "tasks.db", durability=durability) as client:
        client.submit_batch(subs)
        for name, pause_fn, resume_fn in (
            ("group", lambda: client.pause_group("g"), lambda: client.resume_group("g")),
            ("all", client.pause_all, client.resume_all),
        ):
            t_a = time.perf_counter()
            paused = pause_fn()
            t_b = time.perf_counter()
            resumed = resume_fn()
            t_c = time.perf_counter()
            out[f"pause_{name}_ms"] = (t_b - t_a) * 1000
            out[f"resume_{name}_ms"] = (t_c - t_b) * 1000
            if name == "group" and (paused != n or resumed != n):
                out["problems"].append(f"group pause affected {paused}, resume {resumed}, expected {n}")
        if client.pending_count() != n:
            out["problems"].append(f"{client.pending_count()} pending after resume, expected {n}")
    return out


def preemption(root: Path, trials: int) -> Result:
    """``benchmarks.preemption.measure``: 1 worker busy with a CPU loop, then a REALTIME submit."""
    with scratch_dir(root, "preempt") as d:
        out: Result = dict(preemption_bench.measure(trials, d))
    out["problems"] = []
    return out

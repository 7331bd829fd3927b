"""Workloads W1-W5 of the peer protocol (§3), written once against ``PeerAdapter``.

Every figure comes from the timestamps in the completion file (§2.2), never from
the poll, so the 10 ms poll interval does not show in any number. Each workload
returns a plain dict: numeric figures (names carry their unit), ``ok`` and a list
of ``problems`` (distinct-``i`` check, queue depth, stray processes, errors).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import statistics
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .adapter import PeerAdapter
from .taskbody import CPU_LOOPS, spin

POLL_S = 0.010
ORDER = ("W1", "W3", "W2", "W4", "W5")  # W3 drains W1's queue, so it runs straight after W1.


@dataclass(frozen=True)
class Counts:
    """Task counts of §3; ``scaled()`` shrinks them for smoke runs (sleeps and loop size stay fixed)."""

    enqueue: int = 5000  # W1, W2, W3
    latency: int = 300  # W4 measured submissions
    warmup: int = 10  # W4, W5 warm-up no-ops
    cpu: int = 40  # W5 CPU tasks per run

    @classmethod
    def scaled(cls, scale: float) -> Counts:
        base = cls()
        return cls(
            enqueue=max(10, round(base.enqueue * scale)),
            latency=max(5, round(base.latency * scale)),
            warmup=base.warmup,
            cpu=max(2, round(base.cpu * scale)),
        )


class Line(NamedTuple):
    kind: str
    i: int
    t_submit: float
    t_start: float
    t_end: float
    pid: int


class WorkloadError(Exception):
    """A workload could not finish (timeout, wrong queue depth); reported, not raised further."""


class DoneFile:
    """Completion file written by ``taskbody.mark()``; read incrementally by offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        self._offset = 0
        self._partial = b""
        self.lines: list[Line] = []

    def poll(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        *complete, self._partial = (self._partial + data).split(b"\n")
        for raw in complete:
            k, i, ts, t0, t1, pid = raw.decode().split()
            self.lines.append(Line(k, int(i), float(ts), float(t0), float(t1), int(pid)))

    def wait(self, kind: str, count: int, timeout: float) -> list[Line]:
        """Poll every 10 ms until ``count`` lines of ``kind`` exist; return those lines."""
        deadline = time.monotonic() + timeout
        while True:
            self.poll()
            got = [ln for ln in self.lines if ln.kind == kind]
            if len(got) >= count:
                return got
            if time.monotonic() > deadline:
                raise WorkloadError(f"timeout after {timeout:.0f} s: {len(got)}/{count} '{kind}' lines")
            time.sleep(POLL_S)


@dataclass
class Context:
    """What a workload needs besides the adapter: where files go and what went wrong."""

    adapter: PeerAdapter
    state_dir: Path
    log_dir: Path
    label: str  # e.g. "huey-normal-r0", used in file names
    strays: list[int] = field(default_factory=list)

    def done_file(self, tag: str) -> DoneFile:
        return DoneFile(self.state_dir / f"done-{tag}.txt")

    @contextlib.contextmanager
    def workers(self, n: int, done: DoneFile, tag: str) -> Iterator[float]:
        """Start ``n`` worker processes; yields the time taken just before the spawn; always stops them."""
        log = self.log_dir / f"{self.label}-{tag}.log"
        t0 = time.time()
        proc = self.adapter.start_workers(n, {"PEERS_DONE_FILE": str(done.path)}, log=log)
        try:
            yield t0
        finally:
            self.strays.extend(self.adapter.stop_workers(proc))


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank (§2.4): ``sorted[ceil(q*n) - 1]``."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def check_distinct(lines: list[Line], expected: int, what: str) -> list[str]:
    """Distinct-``i`` check over ``0..expected-1``: duplicates and missing tasks are problems."""
    seen = [ln.i for ln in lines]
    distinct = set(seen)
    problems = []
    if len(seen) != len(distinct):
        problems.append(f"{what}: {len(seen) - len(distinct)} duplicate completions")
    missing = expected - len(distinct & set(range(expected)))
    if missing:
        problems.append(f"{what}: {missing} tasks missing")
    return problems


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _warm_up(ctx: Context, done: DoneFile, n: int, idle_s: float) -> None:
    """Enqueue ``n`` warm-up no-ops, wait for them, then idle ``idle_s`` counted from the last ``t_end``."""
    for i in range(n):
        ctx.adapter.enqueue("noop", (i, time.time(), "w"))
    lines = done.wait("w", n, 60)
    _sleep_until(max(ln.t_end for ln in lines) + idle_s)


def w1_enqueue_single(ctx: Context, c: Counts) -> dict:
    """W1: ``c.enqueue`` single enqueue calls, no worker running; leaves the tasks queued for W3."""
    a = ctx.adapter
    a.reset()
    enqueue = a.enqueue
    t_a = time.time()
    for i in range(c.enqueue):
        enqueue("noop", (i, time.time(), "n"))
    t_b = time.time()
    depth = a.queue_depth()
    problems = [] if depth == c.enqueue else [f"queue depth {depth}, expected {c.enqueue}"]
    return {"tasks_per_s": c.enqueue / (t_b - t_a), "seconds": t_b - t_a, "problems": problems}


def w2_enqueue_bulk(ctx: Context, c: Counts) -> dict:
    """W2: one call of the peer's true batch API; n/a when it has none."""
    a = ctx.adapter
    a.reset()
    items = [("noop", (i, 0.0, "n")) for i in range(c.enqueue)]
    t_a = time.time()
    try:
        a.enqueue_batch(items)
    except NotImplementedError as exc:
        return {"tasks_per_s": None, "na": str(exc), "problems": []}
    t_b = time.time()
    depth = a.queue_depth()
    a.reset()
    problems = [] if depth == c.enqueue else [f"queue depth {depth}, expected {c.enqueue}"]
    return {"tasks_per_s": c.enqueue / (t_b - t_a), "seconds": t_b - t_a, "problems": problems}


def w3_drain_noop(ctx: Context, c: Counts) -> dict:
    """W3: 2 worker processes drain W1's queued no-ops; end-to-end from the spawn."""
    depth = ctx.adapter.queue_depth()
    if depth != c.enqueue:
        raise WorkloadError(f"W3 needs W1's {c.enqueue} queued tasks, found {depth}")
    time.sleep(1.0)
    done = ctx.done_file("W3")
    with ctx.workers(2, done, "W3") as t0:
        lines = done.wait("n", c.enqueue, 300)
    last_end = max(ln.t_end for ln in lines)
    first_end = min(ln.t_end for ln in lines)
    return {
        "tasks_per_s": c.enqueue / (last_end - t0),
        "startup_s": min(ln.t_start for ln in lines) - t0,
        "steady_tasks_per_s": (c.enqueue - 1) / (last_end - first_end),
        "pids": len({ln.pid for ln in lines}),
        "problems": check_distinct(lines, c.enqueue, "W3"),
    }


def w4_latency(ctx: Context, c: Counts) -> dict:
    """W4: submissions on a fixed 10 ms grid after a 2.0 s idle; latency = t_start - t_submit."""
    a = ctx.adapter
    a.reset()
    done = ctx.done_file("W4")
    submits: list[float] = []
    with ctx.workers(2, done, "W4"):
        _warm_up(ctx, done, c.warmup, idle_s=2.0)
        enqueue = a.enqueue
        t0 = time.time()
        for k in range(c.latency):
            _sleep_until(t0 + k * 0.010)  # Late calls do not shift later ones.
            t_submit = time.time()
            enqueue("noop", (k, t_submit, "n"))
            submits.append(t_submit)
        lines = done.wait("n", c.latency, 60)
    first: dict[int, Line] = {}
    for ln in lines:
        first.setdefault(ln.i, ln)
    lat = sorted((ln.t_start - ln.t_submit) * 1000 for ln in first.values())
    gaps = [b - a_ for a_, b in itertools.pairwise(submits)]
    return {
        "samples_ms": [round(x, 4) for x in lat],  # for the latency CDF; summaries skip lists
        "p50_ms": percentile(lat, 0.50),
        "p99_ms": percentile(lat, 0.99),
        "max_ms": lat[-1],
        "mean_ms": statistics.fmean(lat),
        "min_ms": lat[0],
        "max_submit_gap_ms": max(gaps, default=0.0) * 1000,
        "problems": check_distinct(lines, c.latency, "W4"),
    }


def w5_cpu_scaling(ctx: Context, c: Counts) -> dict:
    """W5: serial in-process reference, then ``c.cpu`` CPU tasks on 1 and on 2 worker processes."""
    t_a = time.time()
    for _ in range(c.cpu):
        spin(CPU_LOOPS)
    out: dict = {"ref_serial_inproc_s": time.time() - t_a}
    problems: list[str] = []
    for p in (1, 2):
        ctx.adapter.reset()
        done = ctx.done_file(f"W5-P{p}")
        with ctx.workers(p, done, f"W5-P{p}"):
            _warm_up(ctx, done, c.warmup, idle_s=1.0)
            t0 = time.time()
            for i in range(c.cpu):
                ctx.adapter.enqueue("cpu", (i, time.time()))
            lines = done.wait("c", c.cpu, 120)
        out[f"wall{p}_s"] = max(ln.t_end for ln in lines) - t0
        out[f"body{p}_mean_ms"] = statistics.fmean((ln.t_end - ln.t_start) * 1000 for ln in lines)
        problems += check_distinct(lines, c.cpu, f"W5 P={p}")
    out["speedup"] = out["wall1_s"] / out["wall2_s"]
    out["problems"] = problems
    return out


WORKLOADS: dict[str, Callable[[Context, Counts], dict]] = {
    "W1": w1_enqueue_single,
    "W2": w2_enqueue_bulk,
    "W3": w3_drain_noop,
    "W4": w4_latency,
    "W5": w5_cpu_scaling,
}


def run_selected(ctx: Context, names: list[str], counts: Counts) -> dict[str, dict]:
    """Run the named workloads in protocol order; W1 runs (unreported) when only W3 asks for it.

    A failing workload is recorded with ``ok=False`` and the run goes on.
    """
    wanted = set(names)
    todo = [w for w in ORDER if w in wanted or (w == "W1" and "W3" in wanted)]
    results: dict[str, dict] = {}
    for name in todo:
        if name == "W3" and not results.get("W1", {}).get("ok", False):
            results["W3"] = {"ok": False, "problems": ["skipped: W1 did not leave its queue"]}
            continue
        strays_before = len(ctx.strays)
        load_start = os.getloadavg()[0]
        t_a = time.time()
        try:
            res = WORKLOADS[name](ctx, counts)
        except Exception as exc:  # Reported per workload; the other workloads still run.
            res = {"problems": [f"{type(exc).__name__}: {exc}"], "traceback": traceback.format_exc()}
        strays = ctx.strays[strays_before:]
        if strays:
            res["problems"].append(f"killed {len(strays)} stray worker processes: {strays}")
        res.update(load_start=load_start, load_end=os.getloadavg()[0], elapsed_s=time.time() - t_a)
        res["ok"] = not res["problems"]
        results[name] = res
    if "W1" not in wanted:
        results.pop("W1", None)
    return results

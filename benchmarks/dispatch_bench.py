"""Dispatch workloads on a running, warmed-up scheduler (the original's criterion set, taskmill-features §4).

dispatch-and-complete, concurrency scaling with async executors, mixed-priority dispatch, and permanent
failures / retries to dead letter. Each submits its tasks in one transaction to a scheduler whose workers
are already up and times from just before that call to the last executor's end timestamp, so worker
start-up (the ``drain`` workload's business) is not part of any figure here.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import taskmill as tm

from .harness import Result, Running, rates, warm_scheduler
from .scratch import Durability, check_distinct
from .workload_tasks import Flaky, Nap, Noop, bench, flaky, naps

LEVELS = (tm.Priority.IDLE, tm.Priority.BACKGROUND, tm.Priority.NORMAL, tm.Priority.HIGH, tm.Priority.REALTIME)
LEVEL_NAMES = {0: "realtime", 64: "high", 128: "normal", 192: "background", 255: "idle"}
TIMEOUT_S = 120.0


def _batch_until_done(run: Running, n: int, base: int) -> tuple[Result, list[str]]:
    t0 = time.time()
    run.handle().submit_batch([Noop(i=base + i) for i in range(n)])
    run.done.wait(run.done.count + n, TIMEOUT_S)
    idle = run.sched.wait_until_idle(timeout=60.0, poll=0.001)
    t_idle = time.time()
    lines = [ln for ln in run.done.lines("n") if ln.i >= base]
    out = rates(lines, t0)
    out["committed_tasks_per_s"] = n / (t_idle - t0)
    return out, ([] if idle else ["not idle after the run"])


def dispatch_complete(root: Path, durability: Durability, n: int, max_concurrency: int = 8) -> Result:
    """``submit_batch`` of ``n`` no-ops to a warm scheduler (2 workers, max_concurrency 8) until all ran;
    then the same again with a domain concurrency cap of 8 (``capped_*``), which takes the gated claim path
    (peek, select within caps, claim by id) instead of the plain ``claim_next``.
    """
    with warm_scheduler(root, "dispatch", durability=durability, workers=2, max_concurrency=max_concurrency) as run:
        out, problems = _batch_until_done(run, n, 0)
        out["problems"] = problems + check_distinct(run.done.lines("n"), n, "dispatch")
        handle = run.handle()
        handle.set_max_concurrency(max_concurrency)  # the Domain object is shared: always undo
        try:
            capped, problems = _batch_until_done(run, n, n)
        finally:
            handle.set_max_concurrency(0)
        out.update({f"capped_{k}": v for k, v in capped.items()})
        lines = [ln._replace(i=ln.i - n) for ln in run.done.lines("n") if ln.i >= n]
        out["problems"] += problems + check_distinct(lines, n, "capped dispatch")
    return out


def concurrency_scaling(root: Path, n: int, nap_ms: float = 5.0, levels: tuple[int, ...] = (1, 2, 4, 8)) -> Result:
    """``n`` async tasks that each sleep ``nap_ms``, on 2 workers, at each ``max_concurrency`` in ``levels``.

    The ideal rate is ``max_concurrency / nap_ms``; ``efficiency`` is the measured share of it. One scheduler
    serves every level (``set_max_concurrency``), with ``async_concurrency`` large enough never to bind.
    """
    out: Result = {"problems": []}
    with warm_scheduler(
        root, "concurrency", domains=[naps], workers=2, async_concurrency=max(levels), max_concurrency=max(levels)
    ) as run:
        handle = run.handle(naps)
        for level in levels:
            run.sched.set_max_concurrency(level)
            kind = f"c{level}"
            t0 = time.time()
            handle.submit_batch([Nap(i=i, ms=nap_ms, kind=kind) for i in range(n)])
            run.done.wait(run.done.count + n, TIMEOUT_S)
            lines = run.done.lines(kind)
            rate = rates(lines, t0)["tasks_per_s"]
            out[f"mc{level}_tasks_per_s"] = rate
            out[f"mc{level}_efficiency"] = rate / (level * 1000.0 / nap_ms)
            out["problems"] += check_distinct(lines, n, f"concurrency {level}")
            run.sched.wait_until_idle(timeout=30.0, poll=0.002)
    out[f"mc{levels[-1]}_speedup"] = out[f"mc{levels[-1]}_tasks_per_s"] / out[f"mc{levels[0]}_tasks_per_s"]
    return out


def mixed_priority(root: Path, n: int, max_concurrency: int = 4) -> Result:
    """``n`` no-ops cycling IDLE → REALTIME, submitted in one transaction (untyped ``Client.submit_batch``,
    the only batch call with a priority per task) to a warm scheduler with max_concurrency 4.

    Besides the rate: the mean start delay per level (REALTIME should start first), and ``inversions``: tasks
    that started after a strictly less urgent task had already finished, with the longest such wait. Claims
    are in strict priority order; inversions come from prefetch (each worker runs its own short queue, so
    one worker can reach its less urgent tail while the other is still behind), bounded by the 2 ms budget.
    """
    subs = [tm.TaskSubmission(task_type="bench::noop", payload={"i": i}, priority=int(LEVELS[i % 5])) for i in range(n)]
    with warm_scheduler(root, "mixed", workers=2, max_concurrency=max_concurrency) as run:
        t0 = time.time()
        run.sched.submit_batch(subs)
        run.done.wait(run.done.count + n, TIMEOUT_S)
        lines = run.done.lines("n")
    out = rates(lines, t0)
    prio = {ln.i: int(LEVELS[ln.i % 5]) for ln in lines}
    for level in LEVELS:
        starts = [ln.t_start - t0 for ln in lines if prio[ln.i] == level]
        out[f"{LEVEL_NAMES[int(level)]}_start_ms"] = statistics.fmean(starts) * 1000
    earliest_end_below = {}  # per level: the earliest end of any strictly less urgent task
    for level in LEVELS:
        ends = [ln.t_end for ln in lines if prio[ln.i] > level]
        earliest_end_below[int(level)] = min(ends, default=float("inf"))
    waits = [ln.t_start - earliest_end_below[prio[ln.i]] for ln in lines]
    out["inversions"] = sum(1 for w in waits if w > 0)
    out["inversion_max_ms"] = max([w * 1000 for w in waits if w > 0], default=0.0)
    out["problems"] = check_distinct(lines, n, "mixed priority")
    return out


def retries(root: Path, durability: Durability, n_permanent: int, n_retry: int) -> Result:
    """``n_permanent`` tasks failing permanently (straight to history), then ``n_retry`` tasks failing all 3
    attempts (2 inline retries, then dead letter). Rates count attempts, from the submit to the last body's end.
    """
    out: Result = {"problems": []}
    with warm_scheduler(root, "retries", durability=durability, domains=[bench, flaky], workers=2) as run:
        handle = run.handle(flaky)
        for kind, n, attempts, permanent in (("p", n_permanent, 1, True), ("f", n_retry, 3, False)):
            t0 = time.time()
            handle.submit_batch([Flaky(i=i, permanent=permanent) for i in range(n)])
            run.done.wait(run.done.count + n * attempts, TIMEOUT_S)
            idle = run.sched.wait_until_idle(timeout=60.0, poll=0.001)
            t_idle = time.time()
            lines = run.done.lines(kind)
            name = "permanent" if permanent else "dead_letter"
            out[f"{name}_attempts_per_s"] = len(lines) / (max(ln.t_end for ln in lines) - t0)
            out[f"{name}_committed_tasks_per_s"] = n / (t_idle - t0)
            if len(lines) != n * attempts or not idle:
                out["problems"].append(f"{name}: {len(lines)} attempts, expected {n * attempts}; idle={idle}")
        failed = len(run.sched.failed_tasks(limit=n_permanent + 10))
        dead = len(run.sched.dead_letter_tasks(limit=n_retry + 10))
    if failed != n_permanent or dead != n_retry:
        out["problems"].append(f"history: {failed} failed (want {n_permanent}), {dead} dead letters (want {n_retry})")
    return out


GROUPS = ("g0", "g1", "g2", "g3")


def policy_overhead(root: Path, durability: Durability, n: int, max_concurrency: int = 8, rounds: int = 2) -> Result:
    """The cost of scheduling policy: ``n`` no-ops in 4 groups to a warm scheduler, alternately with no policy
    and with group caps, a type rate limit, group rate limits, priority aging and weighted fair shares all on —
    set loose enough never to bind, so the difference is the price of checking them. ``rounds`` of each,
    interleaved so drift on a shared machine hits both; ``policy_ratio`` is the median rate with policy over
    the median without (target >= 0.5)."""
    out: Result = {"problems": []}
    loose = tm.RateLimit.per_second(10_000_000).with_burst(1_000_000)
    with warm_scheduler(root, "policy", durability=durability, workers=2, max_concurrency=max_concurrency) as run:
        h, s = run.handle(), run.sched
        samples: dict[str, list[Result]] = {"plain": [], "policy": []}

        def once(base: int, tag: str) -> None:
            t0 = time.time()
            for g, name in enumerate(GROUPS):
                h.submit_batch([Noop(i=base + i) for i in range(g, n, len(GROUPS))], group=name)
            run.done.wait(run.done.count + n, TIMEOUT_S)
            idle = s.wait_until_idle(timeout=60.0, poll=0.001)
            lines = [ln._replace(i=ln.i - base) for ln in run.done.lines("n") if base <= ln.i < base + n]
            samples[tag].append(rates(lines, t0))
            out["problems"] += check_distinct(lines, n, f"{tag} dispatch") + ([] if idle else [f"{tag}: not idle"])

        def policy(on: bool) -> None:
            s.set_default_group_limit(1000 if on else 0)
            if on:
                s.set_rate_limit(Noop, loose)
                s.set_priority_aging(tm.AgingConfig(grace_period=0.0, aging_interval=0.001))
            else:
                s.remove_rate_limit(Noop)
                s.set_priority_aging(None)
                s.reset_group_weights()
            for g, name in enumerate(GROUPS):
                if on:
                    s.set_group_rate_limit(name, loose)
                    s.set_group_weight(name, g + 1)
                else:
                    s.remove_group_rate_limit(name)

        base = 0
        for _ in range(rounds):
            for tag in ("plain", "policy"):
                policy(tag == "policy")
                once(base, tag)
                base += n
        policy(False)
    for tag, results in samples.items():
        for key in results[0]:
            out[f"{tag}_{key}"] = statistics.median(r[key] for r in results)
    out["policy_ratio"] = out["policy_tasks_per_s"] / out["plain_tasks_per_s"]
    return out

"""Group concurrency limits and rate limits on a warm scheduler (the original's ``dispatch_no_groups``,
``dispatch_one_group`` and ``dispatch_group_scaling/{1,10,50,100}``, taskmill-features §4).

Every variant submits ``n`` no-ops in one transaction (untyped ``Client.submit_batch``, so each task can carry
its own group) to the same warm scheduler (2 workers, max_concurrency 8) and times from just before that call to
the last executor's end:

* ``no_groups``: no group at all (the plain ``claim_next`` path);
* ``labelled``: every task in one group that has no limit (a group name alone);
* ``groupsN``: the tasks spread round-robin over N groups, each with a limit of ``n``, as the original's 500 for
  500 tasks: it never binds, so the difference from ``no_groups`` is the price of the gated path (``groups1`` is
  the original's ``dispatch_one_group``).

The variants take turns, ``rounds`` times in a rotating order, so drift on a shared machine hits all of them;
each figure is the median over the rounds. Then a rate limit on the no-op type, ``rate_configured_per_s``, with a
bucket of 1 token (``rate_burst1_*``: every start waits for its own token) and of 10 ms worth of tokens
(``rate_burst10ms_*``): the executors' start rate after the initial burst, and its ratio to the configured rate.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import taskmill as tm

from .harness import Result, Running, rates, warm_scheduler
from .scratch import check_distinct
from .workload_tasks import Noop

TIMEOUT_S = 120.0
SCALING = (1, 10, 50, 100)


def _groups(variant: str) -> list[str | None]:
    if variant == "no_groups":
        return [None]
    if variant == "labelled":
        return ["free"]
    n = int(variant.removeprefix("groups"))
    return [f"{variant}_{k}" for k in range(n)]


def _once(run: Running, variant: str, n: int, base: int) -> tuple[Result, list[str]]:
    names = _groups(variant)
    subs = [
        tm.TaskSubmission(task_type="bench::noop", payload={"i": base + i}, group=names[i % len(names)])
        for i in range(n)
    ]
    t0 = time.time()
    run.sched.submit_batch(subs)
    run.done.wait(run.done.count + n, TIMEOUT_S)
    idle = run.sched.wait_until_idle(timeout=60.0, poll=0.001)
    lines = [ln._replace(i=ln.i - base) for ln in run.done.lines("n") if base <= ln.i < base + n]
    problems = check_distinct(lines, n, variant) + ([] if idle else [f"{variant}: not idle after the run"])
    return rates(lines, t0), problems


def _rate_limited(run: Running, n: int, per_s: int, burst: int, base: int) -> tuple[Result, list[str]]:
    """``n`` no-ops under a rate limit of ``per_s`` starts per second with a bucket of ``burst`` tokens. The
    achieved rate counts the starts after the first ``burst`` (those take the full bucket at once)."""
    run.sched.set_rate_limit(Noop, tm.RateLimit.per_second(per_s).with_burst(burst))
    try:
        time.sleep(burst / per_s + 0.05)  # a full bucket, whatever the previous measurement left in it
        run.handle().submit_batch([Noop(i=base + i, kind="r") for i in range(n)])
        run.done.wait(run.done.count + n, TIMEOUT_S + n / per_s)
        run.sched.wait_until_idle(timeout=60.0, poll=0.001)
    finally:
        run.sched.remove_rate_limit(Noop)
    lines = [ln._replace(i=ln.i - base) for ln in run.done.lines("r") if base <= ln.i < base + n]
    problems = check_distinct(lines, n, f"rate limited, burst {burst}")
    starts = sorted(ln.t_start for ln in lines)
    # A token bucket admits at most burst + rate * T claims in any T seconds; starts trail claims by a little
    # and can bunch by what sits claimed on the workers (max_concurrency), hence the slack.
    if n > burst + per_s * (starts[-1] - starts[0] + 0.05) + 10:
        problems.append(f"rate limit {per_s}/s (burst {burst}): {n} starts in {starts[-1] - starts[0]:.3f} s")
    starts = starts[burst:]
    if len(starts) < 2 or starts[-1] <= starts[0]:
        return {}, [*problems, f"burst {burst}: too few tasks ({n}) to measure a rate"]
    achieved = (len(starts) - 1) / (starts[-1] - starts[0])
    return {"achieved_per_s": achieved, "ratio": achieved / per_s}, problems


def groups(
    root: Path, n: int, rounds: int, rate_tasks: int, rate_per_s: int, scaling: tuple[int, ...] = SCALING
) -> Result:
    variants = ["no_groups", "labelled", *[f"groups{k}" for k in scaling]]
    out: Result = {"problems": []}
    samples: dict[str, list[Result]] = {v: [] for v in variants}
    with warm_scheduler(root, "groups", workers=2, max_concurrency=8) as run:
        base = 0
        for r in range(rounds):
            shift = r % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                limited = [g for g in _groups(variant) if variant.startswith("groups") and g is not None]
                for g in limited:
                    run.sched.set_group_limit(g, n)
                try:
                    res, problems = _once(run, variant, n, base)
                finally:
                    for g in limited:
                        run.sched.remove_group_limit(g)
                samples[variant].append(res)
                out["problems"] += problems
                base += n
        out["rate_configured_per_s"] = float(rate_per_s)
        for name, burst in (("burst1", 1), ("burst10ms", max(1, rate_per_s // 100))):
            rate, problems = _rate_limited(run, rate_tasks, rate_per_s, burst, base)
            out.update({f"rate_{name}_{k}": v for k, v in rate.items()})
            out["problems"] += problems
            base += rate_tasks
    for variant, results in samples.items():
        out[f"{variant}_tasks_per_s"] = statistics.median(r["tasks_per_s"] for r in results)
    for k in scaling:
        out[f"groups{k}_vs_none"] = out[f"groups{k}_tasks_per_s"] / out["no_groups_tasks_per_s"]
    return out

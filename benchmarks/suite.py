"""The workloads of ``python -m benchmarks run``: names, counts, and the DESIGN.md §4 targets they check.

Workloads marked ``per_durability`` run once per durability (``normal``, ``full``); the others measure
something durability does not change (or that ``full``'s fsync would only drown in disk noise) and run once,
on ``normal``, shown in the ``(any)`` column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import (
    dispatch_bench,
    floor_bench,
    group_bench,
    measure,
    observe_bench,
    query_bench,
    rss_bench,
    store_bench,
    workflow_bench,
)
from .harness import Result
from .latency import latency
from .report import Target
from .scratch import Durability


@dataclass(frozen=True)
class Counts:
    submit: int = 1000
    dedup: int = 1000
    batch: int = 1000
    batch_samples: int = 5
    tags: int = 500
    drain: int = 10_000
    drain_aged: int = 30_000
    aged_history: int = 100_000
    dispatch: int = 1000
    policy: int = 4000
    latency: int = 300
    idle_s: float = 2.0
    latency_lead_s: float = 1.5  # the other process's start-up, before its first due time
    cpu: int = 40
    cpu_warmup: int = 10
    depths: tuple[int, ...] = (100, 1000, 5000, 1_000_000)
    claim_samples: int = 300
    concurrency: int = 400
    nap_ms: float = 5.0
    mixed: int = 500
    permanent: int = 500
    dead_letter: int = 100
    history_sizes: tuple[int, ...] = (100, 1000, 5000)
    history_samples: int = 200
    cancel: int = 1000
    pause: int = 1000
    preempt_trials: int = 30
    chain_submit: tuple[int, ...] = (10, 50, 200)
    chains: tuple[int, ...] = (10, 25, 50)
    fan_in: tuple[int, ...] = (10, 50, 100)
    tag_sizes: tuple[int, ...] = (100, 1000, 5000, 100_000)
    tag_samples: int = 20
    groups: int = 1000
    group_scaling: tuple[int, ...] = (1, 10, 50, 100)
    group_rounds: int = 2
    rate_per_s: int = 1000
    rate_tasks: int = 1000
    snapshot_tasks: int = 100
    snapshot_samples: int = 50
    progress_calls: int = 1_000_000
    rss_tasks: int = 200_000
    rss_warmup: int = 20_000
    rss_round: int = 10_000
    floor_commits: int = 2000
    floor_fsyncs: int = 200


SMOKE = Counts(
    submit=100,
    tags=30,
    dedup=100,
    batch=200,
    batch_samples=1,
    drain=500,
    drain_aged=1000,
    aged_history=2000,
    dispatch=200,
    policy=200,
    latency=20,
    idle_s=0.1,
    latency_lead_s=0.5,
    cpu=2,
    cpu_warmup=1,
    depths=(100, 1000),
    claim_samples=30,
    concurrency=16,
    mixed=50,
    permanent=20,
    dead_letter=10,
    history_sizes=(100, 1000),
    history_samples=20,
    cancel=50,
    pause=50,
    preempt_trials=3,
    chain_submit=(5,),
    chains=(5,),
    fan_in=(5,),
    tag_sizes=(100, 2000),
    tag_samples=3,
    groups=50,
    group_scaling=(1, 10),
    group_rounds=1,
    rate_tasks=40,
    snapshot_tasks=10,
    snapshot_samples=3,
    progress_calls=20_000,
    rss_tasks=2000,
    rss_warmup=1000,
    rss_round=1000,
    floor_commits=50,
    floor_fsyncs=10,
)

Fn = Callable[[Path, Durability, Counts], Result]


@dataclass(frozen=True)
class Workload:
    name: str
    per_durability: bool
    fn: Fn
    about: str


WORKLOADS = [
    Workload(
        "floors",
        True,
        lambda r, d, c: floor_bench.floors(r, d, c.floor_commits, c.floor_fsyncs),
        "the machine's floor under a single submit: fsync, a bare one-page commit, a bare task-row commit",
    ),
    Workload(
        "submit",
        True,
        lambda r, d, c: measure.single_submit(r, d, c.submit),
        "sequential single submit() calls through a connect() client",
    ),
    Workload(
        "dedup",
        True,
        lambda r, d, c: measure.dedup_submit(r, d, c.dedup),
        "1 insert + N-1 submits of the same payload (duplicate path)",
    ),
    Workload(
        "batch",
        True,
        lambda r, d, c: measure.batch_submit(r, d, c.batch, c.batch_samples),
        "one submit_batch() call into a fresh database, the median of several",
    ),
    Workload(
        "batch_aged",
        True,
        lambda r, d, c: measure.batch_submit(r, d, c.batch, c.batch_samples, history=c.aged_history),
        "batch into a database already holding the default retention's history (100k finished rows)",
    ),
    Workload(
        "drain",
        True,
        lambda r, d, c: measure.drain(r, d, c.drain),
        "N queued no-ops, Scheduler(workers=2) started, until all ran (spawn included)",
    ),
    Workload(
        "drain_aged",
        False,
        lambda r, d, c: measure.drain(r, d, c.drain_aged, history=c.aged_history),
        "drain with the history already at the default retention (100k rows): pruning as in a long run",
    ),
    Workload(
        "dispatch",
        True,
        lambda r, d, c: dispatch_bench.dispatch_complete(r, d, c.dispatch),
        "submit_batch to a warm scheduler (max_concurrency 8) until all ran",
    ),
    Workload(
        "policy",
        True,
        lambda r, d, c: dispatch_bench.policy_overhead(r, d, c.policy),
        "the same no-ops with group caps, rate limits, aging and fair shares all on (not binding)",
    ),
    Workload(
        "latency",
        True,
        lambda r, d, c: latency(r, d, c.latency, c.idle_s, lead_s=c.latency_lead_s),
        "submit -> executor start on a 10 ms grid, in-process and from another process",
    ),
    Workload(
        "retries",
        True,
        lambda r, d, c: dispatch_bench.retries(r, d, c.permanent, c.dead_letter),
        "permanent failures to history; 3 failing attempts (2 inline retries) to dead letter",
    ),
    Workload(
        "tags",
        False,
        lambda r, d, c: measure.tags_submit(r, c.tags),
        "single submits with 0/5/10/20 tags each (durability normal)",
    ),
    Workload(
        "dependencies",
        True,
        lambda r, d, c: workflow_bench.dependencies(r, d, c.chain_submit, c.chains, c.fan_in),
        "chains submitted link by link and run to the end; fan-in of W upstream + 1 aggregator",
    ),
    Workload(
        "cancel",
        True,
        lambda r, d, c: workflow_bench.cancel(r, d, c.cancel),
        "cancel_many of N queued tasks; single cancel() calls",
    ),
    Workload(
        "pause",
        True,
        lambda r, d, c: workflow_bench.pause(r, d, c.pause),
        "pause/resume of a group and of everything with N queued",
    ),
    Workload(
        "preemption",
        False,
        lambda r, d, c: workflow_bench.preemption(r, c.preempt_trials),
        "REALTIME submit -> CPU-bound lower-priority executor stopped / urgent task started (1 worker)",
    ),
    Workload(
        "next_task",
        False,
        lambda r, d, c: store_bench.next_task(r, c.depths, c.claim_samples),
        "claim_next in a write transaction at queue depths (1M-row db cached)",
    ),
    Workload(
        "concurrency",
        False,
        lambda r, d, c: dispatch_bench.concurrency_scaling(r, c.concurrency, c.nap_ms),
        "async 5 ms tasks on 2 workers at max_concurrency 1/2/4/8",
    ),
    Workload(
        "mixed_priority",
        False,
        lambda r, d, c: dispatch_bench.mixed_priority(r, c.mixed),
        "tasks cycling IDLE..REALTIME in one transaction, max_concurrency 4",
    ),
    Workload(
        "history",
        False,
        lambda r, d, c: store_bench.history(r, c.history_sizes, c.history_samples),
        "history(50, 0) and history_by_type(t, 100) over N finished rows",
    ),
    Workload(
        "tag_queries",
        False,
        lambda r, d, c: query_bench.tag_queries(r, c.tag_sizes, c.tag_samples),
        "tag queries and history stats over N active tagged tasks and N finished ones",
    ),
    Workload(
        "groups",
        False,
        lambda r, d, c: group_bench.groups(r, c.groups, c.group_rounds, c.rate_tasks, c.rate_per_s, c.group_scaling),
        "no groups vs N groups with non-binding limits (warm scheduler); a rate-limited type",
    ),
    Workload(
        "snapshot",
        False,
        lambda r, d, c: observe_bench.snapshot(r, c.snapshot_tasks, c.snapshot_samples),
        "snapshot() / byte_progress() with N async tasks running and streaming bytes",
    ),
    Workload(
        "byte_progress",
        False,
        lambda r, d, c: observe_bench.byte_progress(r, c.progress_calls),
        "ns per ctx.add_bytes call and frames sent, in one process and in a worker",
    ),
    Workload(
        "rss",
        False,
        lambda r, d, c: rss_bench.supervisor_rss(r, c.rss_tasks, c.rss_warmup, c.rss_round),
        "supervisor process RSS while it drains N no-ops in rounds (start, after warm-up, end)",
    ),
    Workload(
        "cpu",
        False,
        lambda r, d, c: measure.cpu_scaling(r, c.cpu, c.cpu_warmup),
        "spin(1.6M) tasks on 1 and 2 workers vs a serial in-process reference",
    ),
]
BY_NAME = {w.name: w for w in WORKLOADS}
ORDER = [w.name for w in WORKLOADS]

CEILING = ("floors", "ceiling_per_s")  # the machine's best for the same durability (floor_bench)
TARGETS = [
    Target("submit", "tasks_per_s", "normal", ">=", 25_000, "single submit >= 25,000/s (normal)", CEILING),
    Target("submit", "tasks_per_s", "full", ">=", 4_000, "single submit >= 4,000/s (full)", CEILING),
    Target("batch", "tasks_per_s", None, ">=", 150_000, "submit_batch >= 150,000 tasks/s"),
    Target("drain", "tasks_per_s", "normal", ">=", 35_000, "no-op drain >= 35,000/s end to end (normal)"),
    Target("drain", "tasks_per_s", "full", ">=", 20_000, "no-op drain >= 20,000/s end to end (full)"),
    Target("drain", "steady_tasks_per_s", "normal", ">=", 35_000, "no-op drain, steady part (normal)"),
    Target("drain", "steady_tasks_per_s", "full", ">=", 20_000, "no-op drain, steady part (full)"),
    Target("policy", "policy_ratio", None, ">=", 0.5, "dispatch with every policy on >= 0.5x the plain path"),
    Target("latency", "inproc_p50_ms", None, "<=", 1.0, "submit->start p50 <= 1 ms in-process"),
    Target("latency", "xproc_p50_ms", None, "<=", 3.0, "submit->start p50 <= 3 ms cross-process"),
    Target("latency", "inproc_p99_ms", None, "<=", 10.0, "submit->start p99 <= 10 ms in-process"),
    Target("latency", "xproc_p99_ms", None, "<=", 10.0, "submit->start p99 <= 10 ms cross-process"),
    Target("cpu", "speedup", None, ">=", 1.8, "CPU-bound: 2 workers >= 1.8x one worker"),
    Target("preemption", "stopped_p99_ms", None, "<=", 50.0, "REALTIME preemption: stopped p99 <= 50 ms"),
    Target("next_task", "ratio_1m_1k_tx", None, "<=", 1.5, "next-task cost at 1M pending <= 1.5x at 1k"),
    Target("rss", "growth_per_100k_mib", None, "<=", 1.0, "supervisor RSS flat: <= 1 MiB per 100k tasks after warm-up"),
]

"""What the daemon's HTTP endpoints report: health, a JSON snapshot and Prometheus metrics.

Runs on the supervisor's event loop, so the in-memory view of workers and their tasks is read between
dispatch turns, never mid-change. Database counts come from this module's own read connection. Only ids,
task types, priorities and counts leave the process here: never payloads, labels or error text.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import msgspec

from ..metrics import MetricsSnapshot, read_gauges
from ..scheduling import PolicyView
from ..snapshot import Builder, Durations, policy_view
from ..store import Store
from .progress import capture
from .runtime import Supervisor


class Health(msgspec.Struct, frozen=True):
    status: str
    dispatching: bool
    stopping: bool
    workers_alive: int
    workers: int
    store_error: str | None = None  # set while dispatch turns fail (disk full): status "degraded"


class RunningTask(msgspec.Struct, frozen=True):
    id: int
    task_type: str
    domain: str
    priority: int
    attempt: int
    worker_pid: int
    executing: bool  # False: prefetched onto the worker, queued behind the task it is running
    progress: float | None = None  # the executor's last ctx.progress.report(), if any
    message: str | None = None
    estimated: float | None = None  # reported, else extrapolated from the type's recent durations
    bytes_completed: int | None = None  # byte-level progress, for tasks that report it
    bytes_total: int | None = None
    throughput_bps: float | None = None
    eta: float | None = None


class WorkerView(msgspec.Struct, frozen=True):
    index: int
    pid: int
    alive: bool
    running: int
    queued: int


class DomainView(msgspec.Struct, frozen=True):
    max_concurrency: int
    running: int
    pending: int


class Snapshot(msgspec.Struct, frozen=True):
    pid: int
    store: str
    started_at: float
    uptime_s: float
    health: Health
    max_concurrency: int
    async_concurrency: int
    counts: dict[str, int]
    history: dict[str, int]
    totals: dict[str, int]
    domains: dict[str, DomainView]
    workers: list[WorkerView]
    running: list[RunningTask]
    metrics: MetricsSnapshot
    policy: PolicyView = PolicyView()  # pressure and its sources, resource rates, allocations, rate limits


class Observer:
    """Builds the endpoints' answers from the live supervisor and a read connection of its own."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.started_at = time.time()
        self._store: Store | None = None
        self._durations = Durations()

    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.sup.settings.store_path, self.sup.settings.durability)  # type: ignore[arg-type]
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- views --------------------------------------------------------------------------------------------
    def health(self) -> Health:
        sup, d = self.sup, self.sup.dispatcher
        alive = sum(1 for w in d.workers if w.alive) if d is not None else 0
        configured = sup.settings.workers
        dispatching = d is not None and sup.started.is_set() and sup.error is None and not sup.stopping
        ok = dispatching and alive == configured
        status = ("degraded" if sup.store_error else "ok") if ok else "unavailable"
        return Health(status, dispatching, sup.stopping, alive, configured, sup.store_error)

    def running(self, estimate: bool = False) -> list[RunningTask]:
        """Tasks held by workers, from the same live view and estimates as ``scheduler.snapshot()``."""
        view = capture(self.sup)
        estimated: dict[int, float] = {}
        if estimate:
            b = Builder(self.store(), self._durations, view)
            estimated = {e.header.task_id: e.percent for e in b.estimated(b.running_records())
                         if e.reported is not None or e.extrapolated is not None}  # fmt: skip
        out: list[RunningTask] = []
        for f in view.inflight:
            c = f.claimed
            r = RunningTask(c.id, c.task_type, c.domain, c.priority, c.attempt, f.worker_pid, f.executing, f.fraction,
                            f.message, estimated.get(c.id) if f.executing else None)  # fmt: skip
            if f.executing and f.has_bytes:
                p = f.task_progress(view.taken_at)
                r = msgspec.structs.replace(r, bytes_completed=p.bytes_completed, bytes_total=p.bytes_total,
                                            throughput_bps=round(p.throughput_bps, 1), eta=p.eta)  # fmt: skip
            out.append(r)
        return out

    def totals(self, m: MetricsSnapshot) -> dict[str, int]:
        return {"completed": m.completed, "retried": m.retried, "failed": m.failed, "dead_lettered": m.dead_lettered}

    def snapshot(self) -> Snapshot:
        store = self.store()
        sup, d = self.sup, self.sup.dispatcher
        running = self.running(estimate=True)
        metrics = sup.metrics_snapshot(store)
        by_domain = Counter(r.domain for r in running if r.executing)
        domains = {
            name: DomainView(dom.max_concurrency, by_domain.get(name, 0), store.count("pending", name))
            for name, dom in sup.registry.domains.items()
        }
        workers = [
            WorkerView(w.index, w.pid, w.alive, (1 if w.sync else 0) + len(w.asyncs), max(len(w.sync) - 1, 0))
            for w in (d.workers if d is not None else [])
        ]
        return Snapshot(
            pid=os.getpid(), store=sup.settings.store_path, started_at=self.started_at,
            uptime_s=round(time.time() - self.started_at, 3), health=self.health(),
            max_concurrency=sup.settings.max_concurrency, async_concurrency=sup.settings.async_concurrency,
            counts=store.status_counts(), history=store.history_status_counts(), totals=self.totals(metrics),
            domains=domains, workers=workers, running=running, metrics=metrics, policy=policy_view(sup),
        )  # fmt: skip

    def metrics(self) -> bytes:
        """Prometheus text exposition (format 0.0.4): the scheduler's metrics plus the daemon's own gauges."""
        from ..exposition import Inputs

        store = self.store()
        sup = self.sup
        health = self.health()
        running = self.running()
        executing = Counter(r.task_type for r in running if r.executing)
        gauges = read_gauges(store, sum(executing.values()), sup.settings.max_concurrency, sup.metrics.pressure)
        extra = [
            ("up", "1 while the supervisor is dispatching.", [({}, int(health.dispatching))]),
            ("workers", "Configured worker processes.", [({}, health.workers)]),
            ("workers_alive", "Worker processes alive.", [({}, health.workers_alive)]),
            ("start_time_seconds", "Supervisor start time, Unix epoch seconds.", [({}, round(self.started_at, 3))]),
            ("pending_tasks", "Pending tasks, by task type.",
             [({"type": t}, n) for t, n in sorted(store.pending_by_type().items())]),
            ("running_tasks", "Tasks executing on a worker, by task type.",
             [({"type": t}, n) for t, n in sorted(executing.items())]),
            ("history_tasks", "Finished tasks kept in history, by outcome (subject to retention).",
             [({"status": s}, n) for s, n in sorted(store.history_status_counts().items())]),
        ]  # fmt: skip
        assert sup.exporter is not None
        return bytes(sup.exporter().text(Inputs(store.counters(), gauges), extra))

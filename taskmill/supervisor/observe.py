"""What the daemon's HTTP endpoints report: health, a JSON snapshot and Prometheus metrics.

Runs on the supervisor's event loop, so the in-memory view of workers and their tasks is read between
dispatch turns, never mid-change. Database counts come from this module's own read connection. Only ids,
task types, priorities and counts leave the process here: never payloads, labels or error text.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import msgspec

from ..store import Store
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


class Observer:
    """Builds the endpoints' answers from the live supervisor and a read connection of its own."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.started_at = time.time()
        self._store: Store | None = None

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

    def running(self) -> list[RunningTask]:
        d = self.sup.dispatcher
        out: list[RunningTask] = []
        progress = self.sup.progress
        for w in d.workers if d is not None else []:
            for i, c in enumerate(w.sync):
                p, m = progress.get(c.id, (None, None))
                out.append(RunningTask(c.id, c.task_type, c.domain, c.priority, c.attempt, w.pid, i == 0, p, m))
            for c in w.asyncs.values():
                p, m = progress.get(c.id, (None, None))
                out.append(RunningTask(c.id, c.task_type, c.domain, c.priority, c.attempt, w.pid, True, p, m))
        if len(progress) > 2 * len(out) + 64:  # forget finished tasks' reports
            live = {r.id for r in out}
            for tid in [t for t in progress if t not in live]:
                del progress[tid]
        return out

    def totals(self) -> dict[str, int]:
        d = self.sup.dispatcher
        stats: Counter[str] = d.stats if d is not None else Counter()
        return {"completed": self.sup.completed, "retried": stats["retry"], "failed": stats["fail"],
                "dead_lettered": stats["dead_letter"]}  # fmt: skip

    def snapshot(self) -> Snapshot:
        store = self.store()
        sup, d = self.sup, self.sup.dispatcher
        running = self.running()
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
            counts=store.status_counts(), history=store.history_status_counts(), totals=self.totals(),
            domains=domains, workers=workers, running=running,
        )  # fmt: skip

    def metrics(self) -> str:
        """Prometheus text exposition (format 0.0.4)."""
        store = self.store()
        health = self.health()
        running = self.running()
        m = _Metrics()
        m.gauge("taskmill_up", "1 while the supervisor is dispatching.", [({}, int(health.dispatching))])
        m.gauge("taskmill_tasks", "Tasks in the active queue, by status.",
                [({"status": s}, n) for s, n in store.status_counts().items()])  # fmt: skip
        m.gauge("taskmill_pending_tasks", "Pending tasks, by task type.",
                [({"task_type": t}, n) for t, n in sorted(store.pending_by_type().items())])  # fmt: skip
        executing = Counter(r.task_type for r in running if r.executing)
        m.gauge("taskmill_running_tasks", "Tasks executing on a worker, by task type.",
                [({"task_type": t}, n) for t, n in sorted(executing.items())])  # fmt: skip
        m.gauge("taskmill_history_tasks", "Finished tasks kept in history, by outcome (subject to retention).",
                [({"status": s}, n) for s, n in sorted(store.history_status_counts().items())])  # fmt: skip
        totals = self.totals()
        m.counter("taskmill_tasks_completed_total", "Attempts completed since the supervisor started.",
                  [({}, totals["completed"])])  # fmt: skip
        m.counter("taskmill_task_failures_total", "Failed attempts since the supervisor started, by decision.",
                  [({"decision": k}, totals[k]) for k in ("retried", "failed", "dead_lettered")])  # fmt: skip
        m.gauge("taskmill_workers", "Configured worker processes.", [({}, health.workers)])
        m.gauge("taskmill_workers_alive", "Worker processes alive.", [({}, health.workers_alive)])
        m.gauge("taskmill_max_concurrency", "Current global concurrency limit.",
                [({}, self.sup.settings.max_concurrency)])  # fmt: skip
        m.gauge("taskmill_start_time_seconds", "Supervisor start time, Unix epoch seconds.",
                [({}, round(self.started_at, 3))])  # fmt: skip
        return m.text()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Metrics:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def _family(self, kind: str, name: str, help_: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        self._lines.append(f"# HELP {name} {help_}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            lab = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{lab}}} {value}" if lab else f"{name} {value}")

    def gauge(self, name: str, help_: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        self._family("gauge", name, help_, samples)

    def counter(self, name: str, help_: str, samples: list[tuple[dict[str, str], Any]]) -> None:
        self._family("counter", name, help_, samples)

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"

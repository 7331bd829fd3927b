"""Snapshots for dashboards: one call returns the scheduler's state as JSON-encodable msgspec Structs.

With a running scheduler, a snapshot joins the database (counts, running rows, paused groups, schedules,
recent durations) with a copy of the supervisor's memory taken between two dispatch turns (which worker
holds which task, progress reports, byte counts, policy figures). Without one (a plain ``tm.connect()``
client, or a scheduler not started) it is built from the database alone: ``live`` is False, running tasks
carry no progress, ``byte_progress`` is empty, and ``progress`` is extrapolated from history only.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import msgspec

from .events import header_of
from .policy.aging import AgingConfig, effective_priority
from .policy.progress import extrapolate
from .progress import EstimatedProgress, TaskProgress
from .scheduling import GroupAllocationInfo, PolicyView, RateLimitInfo
from .store import Store
from .store.records import RecurringScheduleInfo, TaskRecord

if TYPE_CHECKING:
    from .supervisor.progress import InFlight, LiveView

RUNNING_LIMIT = 10_000  # running rows read per snapshot (far above any worker pool)
DURATION_TTL_S = 5.0  # how long an average duration per task type is reused
NO_HISTORY_TTL_S = 1.0  # ... and "no history yet", so a new type's first completion shows up soon
DURATION_SAMPLE = 20  # completed runs averaged


class RunningTask(msgspec.Struct, frozen=True):
    """A task a supervisor has claimed. ``executing``: False while it is queued on a worker behind the task the
    worker runs; None when the snapshot came from the database alone. ``progress``/``message``: the executor's
    last ``ctx.progress.report()``."""

    record: TaskRecord
    executing: bool | None = None
    worker_pid: int | None = None
    progress: float | None = None
    message: str | None = None
    effective_priority: int | None = None  # with priority aging: the aged priority it was dispatched at


class PausedGroupInfo(msgspec.Struct, frozen=True):
    """A paused group: since when (epoch seconds), how many tasks its pause holds, when it resumes by itself."""

    group: str
    paused_at: float
    paused_task_count: int
    resume_at: float | None = None


class SchedulerSnapshot(msgspec.Struct, frozen=True):
    """Everything a dashboard shows, in one call (``scheduler.snapshot()``). ``msgspec.json.encode()`` it."""

    running: list[RunningTask]
    pending_count: int
    paused_count: int
    blocked_count: int
    waiting_count: int
    progress: list[EstimatedProgress]
    byte_progress: list[TaskProgress]
    pressure: float
    pressure_breakdown: list[tuple[str, float]]
    max_concurrency: int | None  # None: not known to a plain client
    is_paused: bool
    aging_config: AgingConfig | None
    group_allocations: list[GroupAllocationInfo]
    paused_groups: list[PausedGroupInfo]
    rate_limits: list[RateLimitInfo]
    recurring_schedules: list[RecurringScheduleInfo]
    live: bool  # True: joined with a running supervisor's memory; False: from the database alone
    taken_at: float


class DomainSnapshot(msgspec.Struct, frozen=True):
    """One domain's part of a snapshot (``handle.snapshot()``). ``is_paused``: the domain itself is paused."""

    domain: str
    running: list[RunningTask]
    pending_count: int
    paused_count: int
    blocked_count: int
    waiting_count: int
    progress: list[EstimatedProgress]
    byte_progress: list[TaskProgress]
    is_paused: bool
    live: bool
    taken_at: float


def policy_view(sup: Any) -> PolicyView:
    """The policy figures of a running supervisor (backpressure, aging, fair shares, rate limits, gate
    denials); runs on its loop (see ``capture_threadsafe``). Empty when no policy is configured."""
    policy = getattr(sup, "policy", None)
    return PolicyView() if policy is None else policy.view()


class Durations:
    """Average duration of each task type's recent completed runs, re-read at most every few seconds (one
    short index range per type, however long the history)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, float | None]] = {}

    def average(self, store: Store, task_type: str) -> float | None:
        now = time.monotonic()
        hit = self._cache.get(task_type)
        if hit is not None and now - hit[0] < (DURATION_TTL_S if hit[1] is not None else NO_HISTORY_TTL_S):
            return hit[1]
        avg, _ = store.recent_avg_duration(task_type, DURATION_SAMPLE)
        self._cache[task_type] = (now, avg)
        return avg


def _in_domain(task_type: str, domain: str | None) -> bool:
    return domain is None or task_type.startswith(domain + "::")


class Builder:
    """Builds snapshots and progress lists for one client (the database) and, if given, one live view."""

    def __init__(self, store: Store, durations: Durations, live: LiveView | None, domain: str | None = None) -> None:
        self.store = store
        self.durations = durations
        self.live = live
        self.domain = domain
        self.now = live.taken_at if live is not None else time.time()
        inflight = [f for f in live.inflight if _in_domain(f.claimed.task_type, domain)] if live is not None else []
        self.by_id: dict[int, InFlight] = {f.claimed.id: f for f in inflight}

    def running_records(self) -> list[TaskRecord]:
        if self.domain is None:
            return self.store.tasks_by_status("running", RUNNING_LIMIT)
        return self.store.tasks_of_domain("running", self.domain, RUNNING_LIMIT)

    def running(self, records: list[TaskRecord]) -> list[RunningTask]:
        aging = self.live.policy.aging_config if self.live is not None and self.live.policy is not None else None
        out = []
        for rec in records:
            eff = None
            if aging is not None:  # as of its start (time spent paused is not on the record: counted as waiting)
                started = rec.started_at if rec.started_at is not None else self.now
                eff = effective_priority(rec.priority, int(rec.created_at * 1000), 0, int(started * 1000), aging)
            f = self.by_id.get(rec.id)
            if f is None or f.claimed.attempt != rec.attempt:
                out.append(RunningTask(rec, effective_priority=eff))
            else:
                out.append(RunningTask(rec, f.executing, f.worker_pid, f.fraction, f.message, eff))
        return out

    def byte_progress(self) -> list[TaskProgress]:
        return [f.task_progress(self.now) for f in self.by_id.values() if f.executing and f.has_bytes]

    def estimated(self, records: list[TaskRecord]) -> list[EstimatedProgress]:
        out = []
        for rec in records:
            f = self.by_id.get(rec.id)
            if f is not None and f.claimed.attempt != rec.attempt:
                f = None
            if f is not None and not f.executing:
                continue  # queued on a worker: not started yet
            avg = self.durations.average(self.store, rec.task_type)
            started = f.started if f is not None and f.started is not None else rec.started_at
            reported = reported_at = message = None
            if f is not None:
                message = f.message
                if f.fraction is not None:
                    reported, reported_at = f.fraction, f.reported_at
                elif f.bytes_total:
                    reported, reported_at = min(f.bytes_done / f.bytes_total, 1.0), f.bytes_at
            extrap = extrapolate(avg, started, self.now, reported, reported_at)
            percent = reported if reported is not None else extrap if extrap is not None else 0.0
            header = header_of(f.claimed if f is not None else rec)
            out.append(EstimatedProgress(header, reported, extrap, percent, message))
        return out

    def counts(self) -> dict[str, int]:
        if self.domain is None:
            return self.store.status_counts()
        return {s: self.store.count(s, self.domain) for s in ("pending", "paused", "blocked", "waiting")}

    def scheduler_snapshot(self, max_concurrency: int | None) -> SchedulerSnapshot:
        records = self.running_records()
        counts = self.counts()
        policy = self.live.policy if self.live is not None and self.live.policy is not None else PolicyView()
        paused = self.store.is_paused()  # the database is the truth; the supervisor follows it within a turn
        groups = [PausedGroupInfo(g, at / 1000.0, n, None if resume is None else resume / 1000.0)
                  for g, at, resume, n in self.store.paused_group_info()]  # fmt: skip
        return SchedulerSnapshot(
            running=self.running(records), pending_count=counts["pending"], paused_count=counts["paused"],
            blocked_count=counts["blocked"], waiting_count=counts["waiting"], progress=self.estimated(records),
            byte_progress=self.byte_progress(), pressure=policy.pressure,
            pressure_breakdown=policy.pressure_breakdown,
            max_concurrency=self.live.max_concurrency if self.live is not None else max_concurrency,
            is_paused=paused, aging_config=policy.aging_config, group_allocations=policy.group_allocations,
            paused_groups=groups, rate_limits=policy.rate_limits,
            recurring_schedules=self.store.recurring_schedules(), live=self.live is not None, taken_at=self.now,
        )  # fmt: skip

    def domain_snapshot(self) -> DomainSnapshot:
        assert self.domain is not None
        records = self.running_records()
        counts = self.counts()
        return DomainSnapshot(
            domain=self.domain, running=self.running(records), pending_count=counts["pending"],
            paused_count=counts["paused"], blocked_count=counts["blocked"], waiting_count=counts["waiting"],
            progress=self.estimated(records), byte_progress=self.byte_progress(),
            is_paused=self.store.is_domain_paused(self.domain), live=self.live is not None, taken_at=self.now,
        )  # fmt: skip

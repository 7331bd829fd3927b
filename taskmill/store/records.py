"""Rows as typed records. Times are epoch seconds (float); the database stores integer milliseconds."""

from __future__ import annotations

from typing import Literal

import msgspec

TaskStatus = Literal["pending", "running", "paused", "waiting", "blocked"]
HistoryStatus = Literal["completed", "failed", "cancelled", "superseded", "expired", "dependency_failed", "dead_letter"]


# tasks.flags: what a row needs beyond plain dispatch. A plain task has 0, so dispatch tests one integer per
# task and does workflow work only for rows that need it.
F_FINALIZE = 1  # the next run is the finalize phase (a parent whose children are done)
F_DEPENDENTS = 2  # other tasks depend on this one (task_deps rows point at it)
F_CHILDREN = 4  # it spawned children
F_RECURRING = 8  # the current occurrence of a recurring schedule
F_TTL = 16  # it can expire (expires_at is set, or will be at its first attempt)
F_PARENT = 32  # it is a child: its end can settle its parent
F_TTL_FIRST = 64  # the TTL clock starts at the first attempt (expires_at is set at the first claim)
F_HAS_FINALIZE = 128  # set on a parent leaving execute: its executor has finalize()
F_DEPENDS = 256  # it was blocked on dependencies (its own task_deps rows are removed when it ends)


class NewTask(msgspec.Struct, kw_only=True, gc=False):
    """A fully resolved submission: every default layer applied, payload encoded, key hashed."""

    task_type: str
    domain: str
    key: str
    label: str
    priority: int
    payload: bytes
    created_at: int
    expected_read_bytes: int = 0
    expected_write_bytes: int = 0
    expected_net_rx_bytes: int = 0
    expected_net_tx_bytes: int = 0
    max_retries: int | None = None
    run_after: int | None = None
    parent_id: int | None = None
    fail_fast: bool = True
    group_key: str | None = None
    on_dep_failure: str = "cancel"
    ttl_seconds: float | None = None
    ttl_from: str = "submission"
    expires_at: int | None = None
    tags: dict[str, str] = {}
    on_duplicate: str = "skip"
    depends_on: list[int] = []
    flags: int = 0
    recurring_interval: float | None = None
    recurring_cron: str | None = None
    recurring_tz: str | None = None
    recurring_max: int | None = None
    # Set by the submission template that made the row: rows of one batch with equal shapes differ only in key,
    # label, payload and tags, so the store need not compare their other fields (None: it compares them).
    shape: tuple[int, int] | None = None


class TaskRecord(msgspec.Struct, kw_only=True):
    """A task in the active queue."""

    id: int
    task_type: str
    domain: str
    key: str
    label: str
    priority: int
    status: TaskStatus
    payload: bytes | None
    retry_count: int
    max_retries: int | None
    last_error: str | None
    attempt: int
    created_at: float
    started_at: float | None
    run_after: float | None
    parent_id: int | None
    group_key: str | None
    expected_read_bytes: int = 0
    expected_write_bytes: int = 0
    expected_net_rx_bytes: int = 0
    expected_net_tx_bytes: int = 0
    requeue: bool = False
    expires_at: float | None = None
    tags: dict[str, str] = {}


class HistoryRecord(msgspec.Struct, kw_only=True):
    """A terminal outcome. ``task_id`` is the task's own id (a requeued task can have several rows)."""

    hid: int
    task_id: int
    task_type: str
    domain: str
    key: str
    label: str
    priority: int
    status: HistoryStatus
    payload: bytes | None
    retry_count: int
    max_retries: int | None
    last_error: str | None
    created_at: float
    started_at: float | None
    completed_at: float
    duration: float | None
    parent_id: int | None
    group_key: str | None
    actual_read_bytes: int | None = None
    actual_write_bytes: int | None = None
    actual_net_rx_bytes: int | None = None
    actual_net_tx_bytes: int | None = None
    tags: dict[str, str] = {}


class ChildRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One child of a parent task (``ctx.children()``, ``client.children(id)``): where it is or how it ended."""

    id: int
    task_type: str
    key: str
    label: str
    status: str
    error: str | None = None
    finished_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def ok(self) -> bool:
        return self.status == "completed"


class Claimed(msgspec.Struct, array_like=True):
    """What dispatch needs of a freshly claimed task (no payload copy beyond the one sent to the worker)."""

    id: int
    task_type: str
    domain: str
    key: str
    label: str
    priority: int
    payload: bytes
    retry_count: int
    max_retries: int | None
    attempt: int
    created_at: int
    group_key: str | None
    tags: str | None
    parent_id: int | None
    flags: int = 0
    expires_at: int | None = None
    memo: bytes | None = None


class Candidate(msgspec.Struct, array_like=True):
    """A peeked runnable task: just enough for the gate to decide."""

    id: int
    task_type: str
    domain: str
    priority: int
    group_key: str | None
    created_at: int = 0
    pause_duration_ms: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0


def ms_to_s(value: int | None) -> float | None:
    return None if value is None else value / 1000.0


class TypeStats(msgspec.Struct, frozen=True, kw_only=True):
    """What the retained history says about one task type (``history_stats``).

    ``count``: finished runs of every outcome (cancelled, expired, ... included). ``completed`` and ``failed``
    (failed or dead-lettered) are the runs that reached an outcome by executing. ``failure_rate`` is
    ``failed / (completed + failed)``, 0.0 when neither happened. The averages cover completed runs and are None
    when there is none; IO averages are bytes the executors recorded (``ctx.record_read_bytes`` and friends).
    """

    task_type: str
    count: int = 0
    completed: int = 0
    failed: int = 0
    failure_rate: float = 0.0
    avg_duration_ms: float | None = None
    avg_read_bytes: float | None = None
    avg_write_bytes: float | None = None
    avg_net_rx_bytes: float | None = None
    avg_net_tx_bytes: float | None = None


class RecurringScheduleInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A live schedule. ``next_run``: when its queued occurrence is due (epoch seconds; None while one runs)."""

    task_id: int
    task_type: str
    domain: str
    key: str
    label: str
    status: str
    interval: float | None
    cron: str | None
    timezone: str | None
    max_occurrences: int | None
    occurrences: int
    next_run: float | None
    paused: bool

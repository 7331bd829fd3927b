"""taskmill: a persistent, priority-aware task scheduler on SQLite, with a supervisor and worker processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_getattr

__version__ = "0.1.0"

# Every public name is imported on first use. Worker processes import this package through the user's domain
# modules and need only the task API, and ``taskmill-supervisor`` execs its workers before importing anything
# heavy (supervisor/prespawn.py), which it can only do if importing the package itself costs nothing.
_LAZY = {
    "RetentionPolicy": "config", "ShutdownMode": "config", "Domain": "domain", "ConfigError": "errors",
    "CyclicDependency": "errors", "InvalidDependency": "errors", "InvalidPayload": "errors",
    "InvalidState": "errors", "NotFound": "errors", "PayloadTooLarge": "errors", "StorageFull": "errors",
    "StoreBusy": "errors", "StoreError": "errors", "SubmitError": "errors", "SupervisorRunning": "errors",
    "TaskCancelled": "errors", "TaskError": "errors", "TaskmillError": "errors", "TaskTimeout": "errors",
    "UnknownDomain": "errors", "UnknownTaskType": "errors", "WorkerBootError": "errors", "BatchSubmitted": "events",
    "Cancelled": "events", "Completed": "events", "DeadLettered": "events", "DependencyFailed": "events",
    "Dispatched": "events", "Event": "events", "EventHeader": "events", "Failed": "events", "GroupPaused": "events",
    "GroupResumed": "events", "GroupWeightChanged": "events", "Paused": "events", "Preempted": "events",
    "Progress": "events", "RecurringCompleted": "events", "RecurringSkipped": "events", "Resumed": "events",
    "Subscription": "events", "Superseded": "events", "TaskExpired": "events", "TaskPaused": "events",
    "TaskUnblocked": "events", "Waiting": "events", "WorkerDied": "events", "BatchOutcome": "outcome",
    "SubmitOutcome": "outcome", "AgingConfig": "policy.aging", "ResourceSnapshot": "policy.io",
    "CompositePressure": "policy.pressure", "PressureSource": "policy.pressure", "ThrottlePolicy": "policy.pressure",
    "RateLimit": "policy.ratelimit", "RecurringSchedule": "policy.recurrence", "RetryPolicy": "policy.retry",
    "Priority": "priority", "EstimatedProgress": "progress", "TaskProgress": "progress",
    "ResourceSampler": "resources", "SamplerConfig": "resources", "ChildRecord": "store.records",
    "HistoryRecord": "store.records", "RecurringScheduleInfo": "store.records", "TaskRecord": "store.records",
    "TypeStats": "store.records", "TaskSubmission": "submission", "DependencyFailurePolicy": "task",
    "IoBudget": "task", "Task": "task", "TaskTypeConfig": "task", "TaskContext": "workers.context",
    "Client": "client", "TaskLookup": "client", "connect": "client", "DomainHandle": "handle",
    "Scheduler": "scheduler", "SchedulerConfig": "settings", "load_config": "settings",
    "PolicyView": "scheduling", "RateLimitInfo": "scheduling", "GroupAllocationInfo": "scheduling",
    "SchedulerSnapshot": "snapshot", "DomainSnapshot": "snapshot", "RunningTask": "snapshot",
    "PausedGroupInfo": "snapshot", "TaskEvents": "task_events", "Metrics": "metrics",
    "MetricsSnapshot": "metrics",
}  # fmt: skip


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from .client import Client, TaskLookup, connect
    from .config import RetentionPolicy, ShutdownMode
    from .domain import Domain
    from .errors import (
        ConfigError,
        CyclicDependency,
        InvalidDependency,
        InvalidPayload,
        InvalidState,
        NotFound,
        PayloadTooLarge,
        StorageFull,
        StoreBusy,
        StoreError,
        SubmitError,
        SupervisorRunning,
        TaskCancelled,
        TaskError,
        TaskmillError,
        TaskTimeout,
        UnknownDomain,
        UnknownTaskType,
        WorkerBootError,
    )
    from .events import (
        BatchSubmitted,
        Cancelled,
        Completed,
        DeadLettered,
        DependencyFailed,
        Dispatched,
        Event,
        EventHeader,
        Failed,
        GroupPaused,
        GroupResumed,
        GroupWeightChanged,
        Paused,
        Preempted,
        Progress,
        RecurringCompleted,
        RecurringSkipped,
        Resumed,
        Subscription,
        Superseded,
        TaskExpired,
        TaskPaused,
        TaskUnblocked,
        Waiting,
        WorkerDied,
    )
    from .handle import DomainHandle
    from .metrics import Metrics, MetricsSnapshot
    from .outcome import BatchOutcome, SubmitOutcome
    from .policy.aging import AgingConfig
    from .policy.io import ResourceSnapshot
    from .policy.pressure import CompositePressure, PressureSource, ThrottlePolicy
    from .policy.ratelimit import RateLimit
    from .policy.recurrence import RecurringSchedule
    from .policy.retry import RetryPolicy
    from .priority import Priority
    from .progress import EstimatedProgress, TaskProgress
    from .resources import ResourceSampler, SamplerConfig
    from .scheduler import Scheduler
    from .scheduling import GroupAllocationInfo, PolicyView, RateLimitInfo
    from .settings import SchedulerConfig, load_config
    from .snapshot import DomainSnapshot, PausedGroupInfo, RunningTask, SchedulerSnapshot
    from .store.records import ChildRecord, HistoryRecord, RecurringScheduleInfo, TaskRecord, TypeStats
    from .submission import TaskSubmission
    from .task import DependencyFailurePolicy, IoBudget, Task, TaskTypeConfig
    from .task_events import TaskEvents
    from .workers.context import TaskContext

__all__ = [
    "AgingConfig",
    "BatchOutcome",
    "BatchSubmitted",
    "Cancelled",
    "ChildRecord",
    "Client",
    "Completed",
    "CompositePressure",
    "ConfigError",
    "CyclicDependency",
    "DeadLettered",
    "DependencyFailed",
    "DependencyFailurePolicy",
    "Dispatched",
    "Domain",
    "DomainHandle",
    "DomainSnapshot",
    "EstimatedProgress",
    "Event",
    "EventHeader",
    "Failed",
    "GroupAllocationInfo",
    "GroupPaused",
    "GroupResumed",
    "GroupWeightChanged",
    "HistoryRecord",
    "InvalidDependency",
    "InvalidPayload",
    "InvalidState",
    "IoBudget",
    "Metrics",
    "MetricsSnapshot",
    "NotFound",
    "Paused",
    "PausedGroupInfo",
    "PayloadTooLarge",
    "PolicyView",
    "Preempted",
    "PressureSource",
    "Priority",
    "Progress",
    "RateLimit",
    "RateLimitInfo",
    "RecurringCompleted",
    "RecurringSchedule",
    "RecurringScheduleInfo",
    "RecurringSkipped",
    "ResourceSampler",
    "ResourceSnapshot",
    "Resumed",
    "RetentionPolicy",
    "RetryPolicy",
    "RunningTask",
    "SamplerConfig",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerSnapshot",
    "ShutdownMode",
    "StorageFull",
    "StoreBusy",
    "StoreError",
    "SubmitError",
    "SubmitOutcome",
    "Subscription",
    "Superseded",
    "SupervisorRunning",
    "Task",
    "TaskCancelled",
    "TaskContext",
    "TaskError",
    "TaskEvents",
    "TaskExpired",
    "TaskLookup",
    "TaskPaused",
    "TaskProgress",
    "TaskRecord",
    "TaskSubmission",
    "TaskTimeout",
    "TaskTypeConfig",
    "TaskUnblocked",
    "TaskmillError",
    "ThrottlePolicy",
    "TypeStats",
    "UnknownDomain",
    "UnknownTaskType",
    "Waiting",
    "WorkerBootError",
    "WorkerDied",
    "connect",
    "load_config",
]  # fmt: skip

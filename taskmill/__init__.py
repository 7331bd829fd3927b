"""taskmill: a persistent, priority-aware task scheduler on SQLite, with a supervisor and worker processes."""

from __future__ import annotations

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
    UnknownDomain,
    UnknownTaskType,
    WorkerBootError,
)
from .events import (
    Cancelled,
    Completed,
    DeadLettered,
    DependencyFailed,
    Dispatched,
    Event,
    EventHeader,
    Failed,
    Progress,
    RecurringCompleted,
    RecurringSkipped,
    Subscription,
    TaskExpired,
    TaskUnblocked,
    Waiting,
    WorkerDied,
)
from .handle import DomainHandle
from .outcome import BatchOutcome, SubmitOutcome
from .policy.recurrence import RecurringSchedule
from .policy.retry import RetryPolicy
from .priority import Priority
from .scheduler import Scheduler
from .settings import SchedulerConfig, load_config
from .store.records import ChildRecord, HistoryRecord, TaskRecord
from .store.recurring import RecurringScheduleInfo
from .submission import TaskSubmission
from .task import DependencyFailurePolicy, IoBudget, Task, TaskTypeConfig
from .workers.context import TaskContext

__version__ = "0.1.0"

__all__ = [
    "BatchOutcome", "Cancelled", "ChildRecord", "Client", "Completed", "ConfigError", "CyclicDependency",
    "DeadLettered", "DependencyFailed", "DependencyFailurePolicy", "Dispatched", "Domain", "DomainHandle", "Event",
    "EventHeader", "Failed", "HistoryRecord", "InvalidDependency", "InvalidPayload", "InvalidState", "IoBudget",
    "NotFound", "PayloadTooLarge", "Priority", "Progress", "RecurringCompleted", "RecurringSchedule",
    "RecurringScheduleInfo", "RecurringSkipped", "RetentionPolicy", "RetryPolicy", "Scheduler", "SchedulerConfig",
    "ShutdownMode", "StorageFull", "StoreBusy", "StoreError", "SubmitError", "SubmitOutcome", "Subscription",
    "SupervisorRunning", "Task", "TaskCancelled", "TaskContext", "TaskError", "TaskExpired", "TaskLookup",
    "TaskRecord", "TaskSubmission", "TaskTypeConfig", "TaskUnblocked", "TaskmillError", "UnknownDomain",
    "UnknownTaskType", "Waiting", "WorkerBootError", "WorkerDied", "connect", "load_config",
]  # fmt: skip

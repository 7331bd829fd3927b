"""taskmill: a persistent, priority-aware task scheduler on SQLite, with a supervisor and worker processes."""

from __future__ import annotations

from .client import Client, TaskLookup, connect
from .config import RetentionPolicy, ShutdownMode
from .domain import Domain
from .errors import (
    ConfigError,
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
    Dispatched,
    Event,
    EventHeader,
    Failed,
    Progress,
    Subscription,
    WorkerDied,
)
from .handle import DomainHandle
from .outcome import BatchOutcome, SubmitOutcome
from .policy.retry import RetryPolicy
from .priority import Priority
from .scheduler import Scheduler
from .store.records import HistoryRecord, TaskRecord
from .submission import TaskSubmission
from .task import IoBudget, Task, TaskTypeConfig
from .workers.context import TaskContext

__version__ = "0.1.0"

__all__ = [
    "BatchOutcome", "Cancelled", "Client", "Completed", "ConfigError", "DeadLettered", "Dispatched", "Domain",
    "DomainHandle", "Event", "EventHeader", "Failed", "HistoryRecord", "InvalidPayload", "InvalidState",
    "IoBudget", "NotFound", "PayloadTooLarge", "Priority", "Progress", "RetentionPolicy", "RetryPolicy",
    "Scheduler", "ShutdownMode", "StorageFull", "StoreBusy", "StoreError", "SubmitError", "SubmitOutcome",
    "Subscription", "SupervisorRunning", "Task", "TaskCancelled", "TaskContext", "TaskError", "TaskLookup",
    "TaskRecord", "TaskSubmission", "TaskTypeConfig", "TaskmillError", "UnknownDomain", "UnknownTaskType",
    "WorkerBootError", "WorkerDied", "connect",
]  # fmt: skip

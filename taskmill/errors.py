"""One error tree rooted at :class:`TaskmillError`, so callers can catch everything taskmill raises."""

from __future__ import annotations


class TaskmillError(Exception):
    """Base of every error taskmill raises."""


class ConfigError(TaskmillError, ValueError):
    """A setting, domain or task definition is invalid."""


class StoreError(TaskmillError):
    """The database refused an operation."""


class StoreBusy(StoreError):
    """Another connection held the write lock for longer than the busy budget."""


class StorageFull(StoreError):
    """The disk holding the database is full; nothing was written."""


class SchemaError(StoreError):
    """The database file was written by a newer taskmill or an unsupported SQLite."""


class SubmitError(TaskmillError, ValueError):
    """A submission was rejected before anything was written."""


class PayloadTooLarge(SubmitError):
    """The encoded payload exceeds the configured limit."""


class UnknownTaskType(SubmitError):
    """No executor is registered for the task type."""


class UnknownDomain(SubmitError, KeyError):
    """The domain is not registered with this scheduler."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown domain"


class InvalidPayload(SubmitError):
    """The payload does not validate against its task class."""


class InvalidDependency(SubmitError):
    """``depends_on`` names a task that does not exist, already failed, or would close a cycle."""


class CyclicDependency(InvalidDependency):
    """The dependency would make a task wait, directly or through others, for itself."""


class NotFound(StoreError, LookupError):
    """No task or history row has that id."""


class InvalidState(StoreError):
    """The task is not in a state that allows the operation."""


class SupervisorRunning(TaskmillError):
    """Another supervisor already dispatches this database."""

    def __init__(self, path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(f"a supervisor is already running on {path} ({who})")
        self.path = path
        self.pid = pid


class WorkerBootError(TaskmillError):
    """A worker process could not start: its domain modules failed to import."""


class TaskCancelled(BaseException):
    """Raised inside an executor that is being cancelled or preempted.

    A BaseException, like asyncio.CancelledError, so a broad ``except Exception`` in user code does not
    swallow the stop request.
    """


class TaskTimeout(BaseException):
    """Raised inside an executor that ran past its ``timeout``; recorded as a retryable failure."""


class TaskError(TaskmillError):
    """An executor's failure, telling the scheduler whether to retry.

    Raise ``TaskError.retryable(msg, retry_after=seconds)`` or ``TaskError.permanent(msg)``. Any other
    exception escaping an executor counts as retryable.
    """

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.is_retryable = retryable
        self.retry_after = retry_after

    @classmethod
    def retryable(cls, message: str, *, retry_after: float | None = None) -> TaskError:
        return cls(message, retryable=True, retry_after=retry_after)

    @classmethod
    def permanent(cls, message: str) -> TaskError:
        return cls(message, retryable=False)

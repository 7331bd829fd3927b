"""What an executor sees: its task's record, cancellation, progress, IO counters and state."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from ..domain import StateBag
from ..errors import TaskCancelled
from ..protocol import Progress, TaskSpec

S = TypeVar("S")
_tags = msgspec.json.Decoder(dict[str, str])
PROGRESS_MIN_INTERVAL = 0.05


class RunningTask(msgspec.Struct, frozen=True, kw_only=True):
    """The executor's view of its task record."""

    id: int
    task_type: str
    key: str
    label: str
    priority: int
    retry_count: int
    max_retries: int
    attempt: int
    created_at: float
    group_key: str | None
    parent_id: int | None
    tags: dict[str, str]


class ProgressReporter:
    """Progress updates for the UI. Calls faster than every 50 ms are coalesced into the next one."""

    __slots__ = ("_attempt", "_last", "_pending", "_send", "_task_id", "fraction", "message")

    def __init__(self, task_id: int, attempt: int, send: Callable[[msgspec.Struct], None]) -> None:
        self._task_id = task_id
        self._attempt = attempt
        self._send = send
        self._last = 0.0
        self._pending = False
        self.fraction = 0.0
        self.message: str | None = None

    def report(self, fraction: float, message: str | None = None) -> None:
        self.fraction = min(1.0, max(0.0, float(fraction)))
        self.message = message
        now = time.monotonic()
        if now - self._last >= PROGRESS_MIN_INTERVAL or self.fraction >= 1.0:
            self._last = now
            self._pending = False
            self._send(Progress(self._task_id, self._attempt, self.fraction, message))
        else:
            self._pending = True

    def report_fraction(self, done: int, total: int, message: str | None = None) -> None:
        self.report(done / total if total > 0 else 0.0, message)

    def flush(self) -> None:
        if self._pending:
            self._pending = False
            self._send(Progress(self._task_id, self._attempt, self.fraction, self.message))


class TaskContext:
    """Passed to every executor call as ``ctx``."""

    def __init__(
        self,
        spec: TaskSpec,
        max_retries: int,
        send: Callable[[msgspec.Struct], None],
        domain_state: StateBag | None,
        app_state: StateBag | None,
    ) -> None:
        self.record = RunningTask(
            id=spec.id, task_type=spec.task_type, key=spec.key, label=spec.label, priority=spec.priority,
            retry_count=spec.retry_count, max_retries=max_retries, attempt=spec.attempt,
            created_at=spec.created_at / 1000.0, group_key=spec.group_key, parent_id=spec.parent_id,
            tags=_tags.decode(spec.tags) if spec.tags else {},
        )  # fmt: skip
        self.progress = ProgressReporter(spec.id, spec.attempt, send)
        self._domain_state = domain_state
        self._app_state = app_state
        self._cancelled = False
        self._run_hook = False  # the supervisor asked for on_cancel after this attempt stops
        self.read_bytes = self.write_bytes = self.net_rx_bytes = self.net_tx_bytes = 0

    @property
    def cancelled(self) -> bool:
        """True once the task is being cancelled or preempted: stop soon, ideally by raising."""
        return self._cancelled

    def check_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` if the task is being stopped."""
        if self._cancelled:
            raise TaskCancelled("task cancelled")

    def record_read_bytes(self, n: int) -> None:
        self.read_bytes += int(n)

    def record_write_bytes(self, n: int) -> None:
        self.write_bytes += int(n)

    def record_net_rx_bytes(self, n: int) -> None:
        self.net_rx_bytes += int(n)

    def record_net_tx_bytes(self, n: int) -> None:
        self.net_tx_bytes += int(n)

    def state(self, kind: type[S]) -> S:
        """Per-process state of type ``kind``: the domain's first, then the application's."""
        for bag in (self._domain_state, self._app_state):
            if bag is not None:
                found: Any = bag.find(kind)
                if found is not None:
                    return found  # type: ignore[no-any-return]
        raise LookupError(f"no state of type {kind.__qualname__} registered for this domain or the scheduler")

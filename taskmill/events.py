"""Lifecycle events and their fan-out to subscribers.

Events are msgspec Structs tagged with their kind, so ``msgspec.json.encode(event)`` gives JSON any UI can
read. Each subscriber has a bounded buffer: a slow subscriber loses its oldest events (counted in
``dropped``) rather than slowing dispatch.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import msgspec


class EventHeader(msgspec.Struct, frozen=True, array_like=False):
    task_id: int
    task_type: str
    key: str
    label: str
    base_priority: int
    effective_priority: int
    tags: dict[str, str] = {}


_tags = msgspec.json.Decoder(dict[str, str])


def header_of(row: Any) -> EventHeader:
    """The header of any task row that has id, task_type, key, label, priority and JSON ``tags``."""
    return EventHeader(row.id, row.task_type, row.key, row.label, row.priority, row.priority,
                       _tags.decode(row.tags) if row.tags else {})  # fmt: skip


class Event(msgspec.Struct, frozen=True, tag_field="event"):
    """Base of every event; ``header`` identifies the task (None for scheduler-wide events)."""

    header: EventHeader | None


class Dispatched(Event, frozen=True, tag="dispatched"):
    worker_pid: int = 0
    attempt: int = 0


class Completed(Event, frozen=True, tag="completed"):
    duration: float = 0.0


class Failed(Event, frozen=True, tag="failed"):
    error: str = ""
    will_retry: bool = False
    retry_after: float | None = None
    retry_count: int = 0


class DeadLettered(Event, frozen=True, tag="dead_lettered"):
    error: str = ""
    retry_count: int = 0


class Progress(Event, frozen=True, tag="progress"):
    fraction: float = 0.0
    message: str | None = None


class Cancelled(Event, frozen=True, tag="cancelled"):
    pass


class Preempted(Event, frozen=True, tag="preempted"):
    """A running task was stopped for a more urgent one; it is paused and resumes (from the start) later."""


class TaskPaused(Event, frozen=True, tag="task_paused"):
    """A running task was stopped by a domain, group or global pause."""

    reasons: int = 0


class Superseded(Event, frozen=True, tag="superseded"):
    """A running task was replaced by a newer submission with the same key."""


class Paused(Event, frozen=True, tag="paused"):
    """A scope was paused: ``scope`` is "all" or "domain" (``name`` = the domain)."""

    scope: str = "all"
    name: str | None = None
    count: int = 0


class Resumed(Event, frozen=True, tag="resumed"):
    scope: str = "all"
    name: str | None = None
    count: int = 0


class GroupPaused(Event, frozen=True, tag="group_paused"):
    group: str = ""
    pending_count: int = 0
    running_count: int = 0
    resume_at: float | None = None


class GroupResumed(Event, frozen=True, tag="group_resumed"):
    group: str = ""
    resumed_count: int = 0


class GroupWeightChanged(Event, frozen=True, tag="group_weight_changed"):
    group: str = ""
    previous_weight: int = 1
    new_weight: int = 1


class WorkerDied(Event, frozen=True, tag="worker_died"):
    pid: int = 0
    reason: str = ""


class Waiting(Event, frozen=True, tag="waiting"):
    """A parent's ``execute`` returned while its children still run; ``finalize`` runs once they are done."""

    children_count: int = 0


class TaskUnblocked(Event, frozen=True, tag="task_unblocked"):
    """Every dependency of a blocked task completed (or failed under the ``ignore`` policy): it is queued."""


class DependencyFailed(Event, frozen=True, tag="dependency_failed"):
    """A dependency ended without completing and this task's policy ended it too (``dependency_failed``)."""

    failed_dependency: int = 0
    dependency_status: str = ""
    policy: str = "cancel"


class TaskExpired(Event, frozen=True, tag="task_expired"):
    """The task's TTL ran out before it could run. ``age``: seconds since it was submitted."""

    age: float = 0.0


class RecurringSkipped(Event, frozen=True, tag="recurring_skipped"):
    """Fire times of a schedule passed while its previous occurrence had not finished: ``skipped`` of them were
    dropped instead of piling up. ``next_run``: when the next occurrence is due (epoch seconds)."""

    skipped: int = 0
    next_run: float | None = None


class RecurringCompleted(Event, frozen=True, tag="recurring_completed"):
    """A schedule reached ``max_occurrences``: no further occurrence is queued."""

    occurrences: int = 0


AnyEvent = (
    Dispatched | Completed | Failed | DeadLettered | Progress | Cancelled | Preempted | TaskPaused | Superseded
    | Paused | Resumed | GroupPaused | GroupResumed | WorkerDied | Waiting | TaskUnblocked | DependencyFailed
    | TaskExpired | RecurringSkipped | RecurringCompleted
)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Subscription:
    """An event stream. Iterate it with ``for`` (blocking) or ``async for``; ``close()`` ends it."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False

    def _push(self, event: Event) -> None:
        with self._cond:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds or once closed and drained."""
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def get_nowait(self) -> Event | None:
        with self._cond:
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        self._bus._remove(self)

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> Event:
        while True:
            event = self.get(timeout=1.0)
            if event is not None:
                return event
            if self.closed:
                raise StopIteration

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        loop = asyncio.get_running_loop()
        while True:
            with self._cond:
                if self._queue:
                    return self._queue.popleft()
                if self.closed:
                    raise StopAsyncIteration
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            await fut

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EventBus:
    """Fan-out of events to every open subscription. ``active`` is cheap to test on the hot path."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self.active = False

    def subscribe(self, maxsize: int = 10_000) -> Subscription:
        sub = Subscription(self, maxsize)
        with self._lock:
            self._subs = [*self._subs, sub]
            self.active = True
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]
            self.active = bool(self._subs)

    def publish(self, event: Event) -> None:
        for sub in self._subs:
            sub._push(event)

    def close_all(self) -> None:
        for sub in list(self._subs):
            sub.close()

"""Lifecycle events and their fan-out to subscribers.

Events are msgspec Structs tagged with their kind, so ``msgspec.json.encode(event)`` gives JSON any UI can
read. Each subscriber has a bounded buffer: a slow subscriber loses its oldest events (counted in
``dropped``) rather than slowing dispatch. A subscription may filter: the filter runs on the publishing
thread (the supervisor's loop), so it must be cheap and must not block.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from .store.records import HistoryRecord

E = TypeVar("E")


class EventHeader(msgspec.Struct, frozen=True):
    """Which task an event is about. ``domain`` is the prefix of ``task_type`` ("media" of "media::resize");
    ``key`` is the stored (hashed) dedup key; ``effective_priority`` is the priority the task was dispatched
    at (it differs from ``base_priority`` only under priority aging)."""

    task_id: int
    task_type: str
    key: str
    label: str
    base_priority: int
    effective_priority: int
    tags: dict[str, str] = {}
    domain: str = ""


_tags = msgspec.json.Decoder(dict[str, str])


def header_of(row: Any, effective_priority: int | None = None) -> EventHeader:
    """The header of any task row that has id, task_type, key, label, priority and ``tags`` (JSON text, as
    claimed rows carry them, or a dict, as records do). ``effective_priority``: the priority it was dispatched
    at, when aging changed it."""
    tags = row.tags
    if not tags:
        tags = {}
    elif isinstance(tags, str):
        tags = _tags.decode(tags)
    return EventHeader(row.id, row.task_type, row.key, row.label, row.priority,
                       row.priority if effective_priority is None else effective_priority, tags,
                       row.task_type.partition("::")[0])  # fmt: skip


class Event(msgspec.Struct, frozen=True, tag_field="event"):
    """Base of every event; ``header`` identifies the task (None for scheduler-wide events)."""

    header: EventHeader | None


class Dispatched(Event, frozen=True, tag="dispatched"):
    worker_pid: int = 0
    attempt: int = 0


class Completed(Event, frozen=True, tag="completed"):
    """``record``: the history record, filled in on a typed stream (``handle.task_events(T)``), else None."""

    duration: float = 0.0
    record: HistoryRecord | None = None


class Failed(Event, frozen=True, tag="failed"):
    """An attempt failed. ``will_retry``: it runs again (after ``retry_after`` seconds, if set); otherwise the
    task ended ``failed`` and a typed stream fills in ``record``."""

    error: str = ""
    will_retry: bool = False
    retry_after: float | None = None
    retry_count: int = 0
    record: HistoryRecord | None = None


class DeadLettered(Event, frozen=True, tag="dead_lettered"):
    """Out of retries: the task ended ``dead_letter`` (instead of ``Failed``)."""

    error: str = ""
    retry_count: int = 0
    record: HistoryRecord | None = None


class Progress(Event, frozen=True, tag="progress"):
    fraction: float = 0.0
    message: str | None = None


class Cancelled(Event, frozen=True, tag="cancelled"):
    """The task was cancelled: queued (at once) or running (once its executor stopped)."""

    record: HistoryRecord | None = None


class Preempted(Event, frozen=True, tag="preempted"):
    """A running task was stopped for a more urgent one; it is paused and resumes (from the start) later."""


class TaskPaused(Event, frozen=True, tag="task_paused"):
    """A running task was stopped by a domain, group or global pause."""

    reasons: int = 0


class Superseded(Event, frozen=True, tag="superseded"):
    """A task was replaced by a newer submission with the same key (``on_duplicate="supersede"``). The header
    describes the replaced task; ``new_task_id`` is the replacement (the same id when a queued task is
    replaced in place; None if the replacement has already ended)."""

    new_task_id: int | None = None


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
    """A group was resumed (by a call, or when a timed pause ran out)."""

    group: str = ""
    resumed_count: int = 0


class GroupWeightChanged(Event, frozen=True, tag="group_weight_changed"):
    """A group's fair-scheduling weight was changed."""

    group: str = ""
    previous_weight: int = 1
    new_weight: int = 1


class BatchSubmitted(Event, frozen=True, tag="batch_submitted"):
    """A batch was submitted in one transaction (``submit_batch``, or children / siblings spawned together).
    ``count``: tasks in the batch; ``inserted_ids``: those that became new tasks; ``domains``: their domains."""

    count: int = 0
    inserted_ids: list[int] = []
    domains: list[str] = []


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
    record: HistoryRecord | None = None


class RecurringSkipped(Event, frozen=True, tag="recurring_skipped"):
    """Fire times of a schedule passed while its previous occurrence had not finished: ``skipped`` of them were
    dropped instead of piling up. ``next_run``: when the next occurrence is due (epoch seconds)."""

    skipped: int = 0
    next_run: float | None = None
    reason: str = ""


class RecurringCompleted(Event, frozen=True, tag="recurring_completed"):
    """An occurrence of a recurring schedule completed. ``occurrences``: runs so far; ``next_run``: when the
    next one is due (epoch seconds), None when this was the last (``max_occurrences`` reached)."""

    occurrences: int = 0
    next_run: float | None = None


AnyEvent = (
    Dispatched
    | Completed
    | Failed
    | DeadLettered
    | Progress
    | Cancelled
    | Preempted
    | TaskPaused
    | Superseded
    | Paused
    | Resumed
    | GroupPaused
    | GroupResumed
    | GroupWeightChanged
    | WorkerDied
    | Waiting
    | TaskUnblocked
    | DependencyFailed
    | TaskExpired
    | RecurringSkipped
    | RecurringCompleted
    | BatchSubmitted
)
TERMINAL = (Completed, Failed, DeadLettered, Cancelled, TaskExpired)  # events that can carry a history record


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Subscription(Generic[E]):
    """An event stream. Iterate it with ``for`` (blocking) or ``async for``; ``close()`` ends it.

    ``maxsize`` bounds the buffer: when it is full the oldest event is dropped and counted in ``dropped``.
    """

    def __init__(self, bus: EventBus[E], maxsize: int, accept: Callable[[E], bool] | None = None) -> None:
        self._bus = bus
        self._queue: deque[E] = deque()
        self._cond = threading.Condition()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.accept = accept
        self.maxsize = maxsize
        self.dropped = 0
        self.closed = False
        self.interval = 1.0  # periodic streams (subscribe_progress): seconds between deliveries
        self.next_at = 0.0

    def _push(self, event: E) -> None:
        if self.accept is not None and not self.accept(event):
            return
        with self._cond:
            if len(self._queue) >= self.maxsize:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)

    def get(self, timeout: float | None = None) -> E | None:
        """The next event, or None after ``timeout`` seconds or once closed and drained."""
        with self._cond:
            if not self._queue and not self.closed:
                self._cond.wait(timeout)
            return self._queue.popleft() if self._queue else None

    def get_nowait(self) -> E | None:
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

    def __iter__(self) -> Subscription[E]:
        return self

    def __next__(self) -> E:
        while True:
            event = self.get(timeout=1.0)
            if event is not None:
                return event
            if self.closed:
                raise StopIteration

    def __aiter__(self) -> Subscription[E]:
        return self

    async def __anext__(self) -> E:
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

    def __enter__(self) -> Subscription[E]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EventBus(Generic[E]):
    """Fan-out of events to every open subscription. ``active`` is cheap to test on the hot path.

    ``on_change`` (optional) is called with the new ``active`` value whenever the first subscription opens
    or the last one closes (the progress ticker starts and stops with it)."""

    def __init__(self, on_change: Callable[[bool], None] | None = None) -> None:
        self._subs: list[Subscription[E]] = []
        self._lock = threading.Lock()
        self.active = False
        self.on_change = on_change

    def subscribe(self, maxsize: int = 10_000, accept: Callable[[E], bool] | None = None) -> Subscription[E]:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        sub = Subscription(self, maxsize, accept)
        with self._lock:
            self._subs = [*self._subs, sub]
            was, self.active = self.active, True
        if not was and self.on_change is not None:
            self.on_change(True)
        return sub

    def _remove(self, sub: Subscription[E]) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s is not sub]
            was, self.active = self.active, bool(self._subs)
        if was and not self.active and self.on_change is not None:
            self.on_change(False)

    @property
    def subscriptions(self) -> list[Subscription[E]]:
        return self._subs

    def publish(self, event: E) -> None:
        for sub in self._subs:
            sub._push(event)

    def close_all(self) -> None:
        for sub in list(self._subs):
            sub.close()

"""Event streams scoped to one domain (``handle.events()``) or one task type (``handle.task_events(T)``).

Both are filtered subscriptions of the scheduler's event bus: the filter runs where events are published,
so events of other domains or types never take room in the buffer. A typed stream also fills in the history
record of terminal events when they are read (one indexed read each, on the reading thread, never on the
supervisor's loop).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec

from . import events as ev
from .store import Store
from .store.records import HistoryRecord

T = TypeVar("T")


def domain_filter(domain: str) -> Callable[[ev.Event], bool]:
    """Events of ``domain``'s tasks, plus the scheduler-wide pause and resume, that domain's own pause and
    resume, group events (a group can hold tasks of any domain) and batches with tasks of the domain."""
    prefix = domain + "::"

    def accept(e: ev.Event) -> bool:
        h = e.header
        if h is not None:
            return h.task_type.startswith(prefix)
        if isinstance(e, ev.Paused | ev.Resumed):
            return e.scope == "all" or e.name == domain
        if isinstance(e, ev.GroupPaused | ev.GroupResumed | ev.GroupWeightChanged):
            return True
        if isinstance(e, ev.BatchSubmitted):
            return domain in e.domains
        return False  # WorkerDied: the tasks it affected get their own events

    return accept


def type_filter(task_type: str) -> Callable[[ev.Event], bool]:
    def accept(e: ev.Event) -> bool:
        return e.header is not None and e.header.task_type == task_type

    return accept


class TaskEvents(Generic[T]):
    """The events of one task type: ``Dispatched``, ``Progress``, ``Waiting``, ``Completed``, ``Failed``,
    ``DeadLettered``, ``Cancelled``, ``Preempted``, ``TaskPaused``, ``Superseded``, ``TaskExpired``,
    ``DependencyFailed``, ``TaskUnblocked`` and the recurring ones — every event whose header names the type.

    Terminal events (``Completed``, ``Failed`` without a retry, ``DeadLettered``, ``Cancelled``,
    ``TaskExpired``) arrive with ``record`` set to the task's newest history record. Iterate with ``for`` or
    ``async for``, like a subscription; :meth:`task` decodes a record's payload back into a ``T``.
    """

    def __init__(self, sub: ev.Subscription[ev.Event], store_of: Callable[[], Store], task_cls: type[T]) -> None:
        self._sub = sub
        self._store_of = store_of
        self.task_cls = task_cls
        self._decoder = msgspec.msgpack.Decoder(task_cls)

    @property
    def dropped(self) -> int:
        return self._sub.dropped

    @property
    def closed(self) -> bool:
        return self._sub.closed

    def _enrich(self, e: ev.Event) -> ev.Event:
        if not isinstance(e, ev.TERMINAL) or e.header is None or (isinstance(e, ev.Failed) and e.will_retry):
            return e
        record = self._store_of().latest_history_of_task(e.header.task_id)
        return e if record is None else msgspec.structs.replace(e, record=record)

    def task(self, record: HistoryRecord) -> T:
        """The task a record ran, decoded from its payload."""
        if record.payload is None:
            raise ValueError(f"history record {record.hid} has no payload")
        return self._decoder.decode(record.payload)

    def get(self, timeout: float | None = None) -> ev.Event | None:
        e = self._sub.get(timeout)
        return None if e is None else self._enrich(e)

    def get_nowait(self) -> ev.Event | None:
        e = self._sub.get_nowait()
        return None if e is None else self._enrich(e)

    def close(self) -> None:
        self._sub.close()

    def __iter__(self) -> TaskEvents[T]:
        return self

    def __next__(self) -> ev.Event:
        return self._enrich(next(self._sub))

    def __aiter__(self) -> TaskEvents[T]:
        return self

    async def __anext__(self) -> ev.Event:
        return self._enrich(await self._sub.__anext__())

    def __enter__(self) -> TaskEvents[T]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

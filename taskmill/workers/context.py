"""What an executor sees: its task's record, cancellation, progress, IO counters and state."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..domain import StateBag
from ..errors import InvalidState, TaskCancelled
from ..outcome import SubmitOutcome
from ..protocol import ChildrenQuery, Progress, Spawn, TaskSpec
from ..store.records import F_FINALIZE, ChildRecord
from ..task import Task

if TYPE_CHECKING:
    from .requests import Requests

S = TypeVar("S")
_tags = msgspec.json.Decoder(dict[str, str])
PROGRESS_MIN_INTERVAL = 0.05
MAX_MESSAGE = 4096  # characters of a progress message (frames between processes have a size cap)


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
        self.message = message if message is None or len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"
        now = time.monotonic()
        if now - self._last >= PROGRESS_MIN_INTERVAL or self.fraction >= 1.0:
            self._last = now
            self._pending = False
            self._send(Progress(self._task_id, self._attempt, self.fraction, self.message))
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
        requests: Requests | None = None,
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
        self._requests = requests
        self._attempt = spec.attempt
        self.phase = "finalize" if spec.flags & F_FINALIZE else "execute"  # which method this call is
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

    # -- workflows: children and siblings -------------------------------------------------------------------
    def _channel(self) -> Requests:
        if self._requests is None:
            raise InvalidState("spawning and children() need a running worker")
        return self._requests

    def _spawn_msg(self, tasks: Iterable[Task], sibling: bool, overrides: dict[str, Any]) -> tuple[int, Spawn]:
        if self.phase == "finalize" and not sibling:
            raise InvalidState("finalize cannot spawn children: spawn them from execute")
        if sibling and self.record.parent_id is None:
            raise InvalidState(f"task {self.record.id} has no parent: spawn_sibling needs one (use spawn_child)")
        rows = self._channel().rows(list(tasks), overrides)
        rid = self._channel().next_id()
        return rid, Spawn(rid, self.record.id, self._attempt, rows, sibling)

    def spawn_children(self, tasks: Iterable[Task], **overrides: Any) -> list[SubmitOutcome]:
        """Queue ``tasks`` as children of this task, in one transaction; returns once they are committed.

        Each task goes to its own domain (children may cross domains) with its type's and domain's defaults,
        then ``overrides`` (priority, key, group, tags, run_after, ttl, depends_on, ...). A child runs at the
        more urgent of its own and this task's priority, inherits this task's remaining TTL unless it has one,
        and this task's tags under its own. When ``execute`` returns while children are still active, this
        task waits for them, then ``finalize(task, memo, ctx)`` runs with what ``execute`` returned.
        In an async executor, prefer ``await ctx.aspawn_children(...)``: this call blocks the worker's loop.
        """
        rid, msg = self._spawn_msg(tasks, False, overrides)
        return self._channel().call(rid, msg).outcomes or []

    def spawn_child(self, task: Task, **overrides: Any) -> SubmitOutcome:
        return self.spawn_children([task], **overrides)[0]

    def spawn_siblings(self, tasks: Iterable[Task], **overrides: Any) -> list[SubmitOutcome]:
        """Queue ``tasks`` as children of this task's parent (peers of this task); the parent's ``finalize``
        waits for them too. Raises :class:`InvalidState` in a task that has no parent."""
        rid, msg = self._spawn_msg(tasks, True, overrides)
        return self._channel().call(rid, msg).outcomes or []

    def spawn_sibling(self, task: Task, **overrides: Any) -> SubmitOutcome:
        return self.spawn_siblings([task], **overrides)[0]

    async def aspawn_children(self, tasks: Iterable[Task], **overrides: Any) -> list[SubmitOutcome]:
        rid, msg = self._spawn_msg(tasks, False, overrides)
        return (await self._channel().acall(rid, msg)).outcomes or []

    async def aspawn_child(self, task: Task, **overrides: Any) -> SubmitOutcome:
        return (await self.aspawn_children([task], **overrides))[0]

    async def aspawn_siblings(self, tasks: Iterable[Task], **overrides: Any) -> list[SubmitOutcome]:
        rid, msg = self._spawn_msg(tasks, True, overrides)
        return (await self._channel().acall(rid, msg)).outcomes or []

    async def aspawn_sibling(self, task: Task, **overrides: Any) -> SubmitOutcome:
        return (await self.aspawn_siblings([task], **overrides))[0]

    def children(self) -> list[ChildRecord]:
        """This task's children and how each ended (in ``finalize`` they all have): ``status``, ``error``."""
        rid = self._channel().next_id()
        return self._channel().call(rid, ChildrenQuery(rid, self.record.id, self._attempt)).children or []

    async def achildren(self) -> list[ChildRecord]:
        rid = self._channel().next_id()
        return (await self._channel().acall(rid, ChildrenQuery(rid, self.record.id, self._attempt))).children or []

"""Requests from an executor to the supervisor (spawn children, list children), and their replies.

The worker never opens the database: ``ctx.spawn_children(...)`` builds the rows here (the worker has every
domain and executor after boot, so the domain's prefix and default layers apply exactly as for a submit),
sends one ``Spawn`` frame, and waits. The supervisor inserts the rows in its next turn's transaction and
replies after the commit, so an executor that got its outcomes knows the children are durable.

Waiting: a sync executor blocks on a ``threading.Event`` that the reader thread sets (the event loop is busy
running the executor); an async one awaits a future the reader thread resolves through the loop.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from .. import errors
from ..errors import TaskCancelled, TaskError, UnknownTaskType
from ..protocol import Reply
from ..store.records import NewTask
from ..submission import Defaults, Template, encode_payload
from ..task import Task

if TYPE_CHECKING:
    import asyncio

REPLY_TIMEOUT_S = 60.0
ALLOWED = frozenset({
    "priority", "key", "label", "group", "tags", "run_after", "run_at", "ttl", "ttl_from", "max_retries",
    "on_duplicate", "depends_on", "on_dependency_failure", "fail_fast",
})  # fmt: skip


class _Pending:
    __slots__ = ("event", "future", "loop", "reply")

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.event = threading.Event()
        self.loop = loop
        self.future: asyncio.Future[Reply] | None = None if loop is None else loop.create_future()
        self.reply: Reply | None = None


def _set(fut: asyncio.Future[Reply], reply: Reply) -> None:
    if not fut.done():
        fut.set_result(reply)


class Requests:
    """One per worker process: numbers requests and hands each reply to whoever waits for it."""

    def __init__(self, send: Callable[[msgspec.Struct], None], defaults: Defaults) -> None:
        self.send = send
        self.defaults = defaults
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()

    def next_id(self) -> int:
        return next(self._ids)

    def resolve(self, reply: Reply) -> None:
        """Called on the reader thread."""
        with self._lock:
            p = self._pending.pop(reply.request_id, None)
        if p is None:
            return
        p.reply = reply
        if p.future is not None and p.loop is not None:
            p.loop.call_soon_threadsafe(_set, p.future, reply)
        p.event.set()

    def call(self, request_id: int, msg: msgspec.Struct) -> Reply:
        p = _Pending()
        with self._lock:
            self._pending[request_id] = p
        self.send(msg)
        if not p.event.wait(REPLY_TIMEOUT_S):
            with self._lock:
                self._pending.pop(request_id, None)
            raise TaskError.retryable(f"no reply from the supervisor within {REPLY_TIMEOUT_S:g}s")
        assert p.reply is not None
        return _checked(p.reply)

    async def acall(self, request_id: int, msg: msgspec.Struct) -> Reply:
        import asyncio  # only async executors get here, in a worker that runs a loop

        p = _Pending(asyncio.get_running_loop())
        assert p.future is not None
        with self._lock:
            self._pending[request_id] = p
        self.send(msg)
        try:
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                reply = await p.future
        except TimeoutError:
            with self._lock:
                self._pending.pop(request_id, None)
            raise TaskError.retryable(f"no reply from the supervisor within {REPLY_TIMEOUT_S:g}s") from None
        return _checked(reply)

    def rows(self, tasks: Iterable[Task], overrides: dict[str, Any]) -> list[NewTask]:
        """Build the rows as a submit would: each task's own domain (children may cross domains), its type's
        and domain's defaults, then ``overrides``."""
        unknown = set(overrides) - ALLOWED
        if unknown:
            raise TypeError(f"unexpected spawn option(s) {sorted(unknown)}; allowed: {sorted(ALLOWED)}")
        templates: dict[type, Template] = {}
        out = []
        for t in tasks:
            template = templates.get(type(t))
            if template is None:
                domain = getattr(type(t), "__taskmill_domain__", None)
                if domain is None:
                    raise UnknownTaskType(f"{type(t).__qualname__} has no executor in any domain")
                spec = domain.spec_for(type(t))
                template = templates[type(t)] = Template(domain, spec, self.defaults, **overrides)
            out.append(template.row(t, encode_payload(template.spec, t, self.defaults.max_payload_bytes)))
        return out


def _checked(reply: Reply) -> Reply:
    if reply.error is None:
        return reply
    kind = getattr(errors, reply.error_kind or "", None)
    if kind is TaskCancelled:
        raise TaskCancelled(reply.error)
    if isinstance(kind, type) and issubclass(kind, errors.TaskmillError):
        raise kind(reply.error)
    raise errors.SubmitError(reply.error)

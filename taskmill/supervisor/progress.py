"""What the supervisor knows about its running tasks' progress, and the copy of it that snapshots read.

Everything here runs on the supervisor's loop. Reports arrive as worker frames (already coalesced in the
worker) and are kept per running attempt; nothing is done per finished task on the hot path: entries of
attempts no longer in flight are dropped when a view is taken or when the table grows.
Snapshots taken from other threads get a copy made on the loop (:func:`capture`), never the live objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from ..events import EventBus, Subscription
from ..policy.progress import Throughput, eta
from ..progress import TaskProgress
from ..protocol import ByteProgress, Progress
from ..store.records import Claimed

if TYPE_CHECKING:
    from .runtime import Supervisor

PRUNE_SLACK = 64


class Live:
    """The latest reports of one running attempt."""

    __slots__ = ("bytes_at", "bytes_done", "bytes_total", "fraction", "message", "reported_at", "started", "throughput")

    def __init__(self, started_ms: int) -> None:
        self.started = started_ms / 1000.0 if started_ms else None  # wall seconds, from the worker
        self.fraction: float | None = None
        self.message: str | None = None
        self.reported_at: float | None = None
        self.bytes_done = 0
        self.bytes_total: int | None = None
        self.bytes_at: float | None = None
        self.throughput: Throughput | None = None


class InFlight(msgspec.Struct):
    """A copy of one task a worker holds: running (``executing``) or queued behind the one it runs."""

    claimed: Claimed
    executing: bool
    worker_pid: int
    started: float | None  # wall seconds the executor started, if known
    fraction: float | None = None
    message: str | None = None
    reported_at: float | None = None
    bytes_done: int = 0
    bytes_total: int | None = None
    throughput_bps: float = 0.0
    bytes_at: float | None = None

    @property
    def has_bytes(self) -> bool:
        return self.bytes_done > 0 or self.bytes_total is not None

    def task_progress(self, now: float) -> TaskProgress:
        c = self.claimed
        elapsed = max(now - self.started, 0.0) if self.started is not None else 0.0
        left = eta(self.bytes_done, self.bytes_total, self.throughput_bps)
        return TaskProgress(c.id, c.task_type, c.key, c.label, self.bytes_done, self.bytes_total,
                            self.throughput_bps, elapsed, left)  # fmt: skip


class LiveView(msgspec.Struct):
    """Everything a snapshot needs from the supervisor's memory, copied between dispatch turns."""

    inflight: list[InFlight]
    max_concurrency: int
    taken_at: float
    policy: Any = None


class ProgressTable:
    def __init__(self) -> None:
        self.entries: dict[tuple[int, int], Live] = {}
        self.ticker: Any = None  # the loop's TimerHandle while progress subscribers exist

    def _entry(self, task_id: int, attempt: int, started_ms: int) -> Live:
        key = (task_id, attempt)
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = Live(started_ms)
        return e

    def on_progress(self, msg: Progress) -> None:
        """Called only for attempts a worker holds (the caller checks), so entries belong to live attempts."""
        e = self._entry(msg.task_id, msg.attempt, msg.started_ms)
        e.fraction, e.message, e.reported_at = msg.fraction, msg.message, time.time()

    def on_bytes(self, msg: ByteProgress) -> None:
        e = self._entry(msg.task_id, msg.attempt, msg.started_ms)
        e.bytes_done, e.bytes_total, e.bytes_at = msg.done, msg.total, time.time()
        if e.throughput is None:
            e.throughput = Throughput()
        e.throughput.sample(msg.done, time.monotonic())

    def prune(self, sup: Supervisor, inflight: int) -> None:
        """Forget finished attempts once their entries outnumber the running ones (kept off the hot path)."""
        if len(self.entries) > 2 * inflight + PRUNE_SLACK:
            self.view(sup)

    def last_report(self, task_id: int, attempt: int) -> tuple[float | None, str | None]:
        e = self.entries.get((task_id, attempt))
        return (None, None) if e is None else (e.fraction, e.message)

    def view(self, sup: Supervisor) -> list[InFlight]:
        """Every task held by a worker, with its reports; forgets reports of attempts that are gone."""
        d = sup.dispatcher
        out: list[InFlight] = []
        if d is None:
            return out
        wall, mono = time.time(), time.monotonic()
        for w in d.workers:
            for i, c in enumerate(w.sync):
                started = wall - (mono - w.head_since) if i == 0 and w.head_since else None
                out.append(self._copy(c, i == 0, w.pid, started))
            for c in w.asyncs.values():
                out.append(self._copy(c, True, w.pid, None))
        if len(self.entries) > len(out):
            live = {(f.claimed.id, f.claimed.attempt) for f in out}
            for key in [k for k in self.entries if k not in live]:
                del self.entries[key]
        return out

    def _copy(self, c: Claimed, executing: bool, pid: int, started: float | None) -> InFlight:
        e = self.entries.get((c.id, c.attempt))
        if e is None:
            return InFlight(c, executing, pid, started)
        return InFlight(c, executing, pid, e.started or started, e.fraction, e.message, e.reported_at, e.bytes_done,
                        e.bytes_total, e.throughput.bps if e.throughput is not None else 0.0, e.bytes_at)  # fmt: skip

    # -- periodic byte progress for subscribers -------------------------------------------------------------
    def start_ticker(self, sup: Supervisor, bus: EventBus[TaskProgress]) -> None:
        if self.ticker is None and bus.active and sup.loop is not None:
            self.ticker = sup.loop.call_soon(self._tick, sup, bus)

    def _tick(self, sup: Supervisor, bus: EventBus[TaskProgress]) -> None:
        self.ticker = None
        subs: list[Subscription[TaskProgress]] = bus.subscriptions
        if not subs or sup.loop is None:
            return
        now_mono, now = time.monotonic(), time.time()
        due = [s for s in subs if s.next_at <= now_mono]
        if due:
            items = [f.task_progress(now) for f in self.view(sup) if f.executing and f.has_bytes]
            for s in due:
                s.next_at = now_mono + s.interval
                for item in items:
                    s._push(item)
        wait = min(s.next_at for s in subs) - now_mono
        self.ticker = sup.loop.call_later(max(wait, 0.001), self._tick, sup, bus)


# -- copies for other threads ------------------------------------------------------------------------------
def capture(sup: Supervisor, policy: Any = None) -> LiveView:
    """A copy of the in-memory state snapshots need. Call on the supervisor's loop."""
    return LiveView(sup.progress.view(sup), sup.settings.max_concurrency, time.time(), policy)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def capture_threadsafe(
    sup: Supervisor, policy_of: Callable[[Supervisor], Any] | None = None, timeout: float = 5.0
) -> LiveView | None:
    """:func:`capture` run on the loop between dispatch turns (directly, if called on it); None if the
    supervisor is not running or does not answer in time. ``policy_of(sup)`` is evaluated there too."""
    loop = sup.loop
    if loop is None or sup.dispatcher is None or loop.is_closed():
        return None

    def take() -> LiveView:
        return capture(sup, policy_of(sup) if policy_of is not None else None)

    if _on_loop(loop):
        return take()
    fut: concurrent.futures.Future[LiveView] = concurrent.futures.Future()

    def run() -> None:
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(take())
            except BaseException as exc:
                fut.set_exception(exc)

    try:
        loop.call_soon_threadsafe(run)
    except RuntimeError:
        return None  # the loop has closed
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fut.result(0.05)
        except concurrent.futures.TimeoutError:
            if loop.is_closed() or not loop.is_running() or time.monotonic() >= deadline:
                fut.cancel()
                return None  # stopped meanwhile, or stuck: callers fall back to the database

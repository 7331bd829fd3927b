"""Running executors inside a worker.

A reader thread receives the frames that must land while an executor holds the main thread: a cancel flags the
attempt, and for a forced stop it signals the main thread, whose handler raises TaskCancelled inside the
executor; a reply wakes the executor waiting for it.

The main thread serves those frames one of two ways. Where some executor (or cancel hook) is async, it runs an
event loop: sync executors run inline on it (the supervisor never gives a worker anything else while one runs),
async ones as tasks on it, several at once, and the reader thread reads every frame. Where every executor is
sync, it never imports asyncio or uvloop (they are most of a worker's start-up, ~0.15 s of ~0.2 s here): it
reads its frames itself when idle, and the reader thread reads only when the supervisor rings (``channel``).
"""

from __future__ import annotations

import inspect
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..domain import ExecutorSpec, StateBag
from ..errors import TaskCancelled, TaskTimeout
from ..protocol import Cancel, Heartbeat, Reply, Result, Results, Run, Stop, TaskSpec, ToWorker
from ..slot import ExecutingSlot
from ..submission import Defaults
from . import attempt
from .channel import Channel
from .context import TaskContext
from .requests import Requests

if TYPE_CHECKING:
    import asyncio

EXIT_INTERNAL_ERROR = 70
EXIT_ORPHANED = 4
FLUSH_AFTER_S = 0.002  # report at least this often during a batch...
FLUSH_EVERY = 16  # ...or after this many results, so the supervisor can refill before the queue drains
RSS_EVERY_S = 1.0
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size, for RSS recycling.

    Read from ``/proc`` where there is one: importing psutil costs a worker ~15-25 ms of start-up.
    """
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


def needs_event_loop(executors: dict[str, ExecutorSpec]) -> bool:
    """Whether anything this worker may run is a coroutine: an async executor, or an async ``on_cancel``."""
    return any(
        spec.is_async or (spec.has_on_cancel and inspect.iscoroutinefunction(getattr(spec.factory, "on_cancel", None)))
        for spec in executors.values()
    )


def new_event_loop() -> asyncio.AbstractEventLoop:
    import asyncio

    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency; plain asyncio still works
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


class WorkerRuntime:
    def __init__(
        self,
        channel: Channel,
        executors: dict[str, ExecutorSpec],
        app_state: StateBag,
        domain_state: dict[str, StateBag],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.channel = channel
        self.executors = executors
        self.app_state = app_state
        self.domain_state = domain_state
        self.loop = loop  # None: every executor is sync, and the main thread serves frames from `inbox`
        self.inbox: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.SimpleQueue()
        self._post: Callable[..., Any] = loop.call_soon_threadsafe if loop is not None else self._queue_call
        self.running: dict[tuple[int, int], TaskContext] = {}
        self.async_tasks: dict[tuple[int, int], asyncio.Task[Any]] = {}  # only with a loop
        self.cancelled: set[tuple[int, int]] = set()  # cancel requests for attempts not started yet
        self.current_sync: TaskContext | None = None
        self.results: list[Result] = []
        self.flush_scheduled = False
        self.stopping = False
        self.finished = threading.Event()
        self._wake_loop: asyncio.Event | None = None  # set with `finished`, when serving on a loop
        self.default_max_retries = 3
        self.default_timeout: float | None = None
        self.heartbeat_interval = 0.0
        self.timer: attempt.SyncTimer | None = None
        self.slot: ExecutingSlot | None = None  # tells the supervisor what we run, should we die running it
        self.requests = Requests(channel.send, Defaults())  # spawn requests; Boot sets the defaults
        self._main_thread = threading.main_thread().ident
        self.stop_requested = False  # a Stop frame came: the end of the socket that follows is expected
        self._rss_at = 0.0

    def max_retries_of(self, spec: TaskSpec, executor: ExecutorSpec) -> int:
        """Effective max retries, resolved as the supervisor does: task > type > domain > scheduler."""
        if spec.max_retries is not None:
            return spec.max_retries
        cfg = executor.type_config
        if cfg.max_retries is not None:
            return cfg.max_retries
        policy = cfg.retry or executor.domain.default_retry
        return policy.max_retries if policy is not None else self.default_max_retries

    # -- messages (reader thread) -------------------------------------------------------------------------
    def _queue_call(self, fn: Callable[..., None], *args: Any) -> None:
        self.inbox.put((fn, args))

    def reader(self) -> None:
        try:
            if self.channel.bell is not None:  # only a worker without a loop keeps its bell (__main__)
                self.channel.serve_bell(self._received)  # the main thread reads the rest itself
            else:
                self.channel.serve_all(self._received)
        except Exception as exc:
            self._lost(exc)

    def _received(self, msg: ToWorker | None) -> None:
        """A frame just read, by either thread: what must happen at once happens here, the rest is queued (read
        by the idle main thread, it is the next thing that thread takes)."""
        if msg is None:
            self._lost(None)
        elif isinstance(msg, Reply):
            self.requests.resolve(msg)  # its executor may be blocking the main thread: wake it from here
        else:
            if isinstance(msg, Cancel):
                self._cancel(msg)
            elif isinstance(msg, Stop):
                self.stop_requested = True
            self._post(self.on_message, msg)

    def _lost(self, exc: Exception | None) -> None:
        """The supervisor closed its end (``exc`` None), reset it, or sent garbage."""
        if exc is not None and not isinstance(exc, ConnectionError):  # a reset needs no traceback
            import traceback  # here, not at the top: most workers never need it

            traceback.print_exception(exc)
        if not self.stop_requested:
            # The supervisor is gone without asking us to stop: whatever we run will be run again by its
            # successor, so stop now rather than race it.
            os._exit(EXIT_ORPHANED)
        self._post(self.on_eof)

    def _cancel(self, msg: Cancel) -> None:
        """Runs on the reader thread: flag the attempt so even a busy sync executor sees it."""
        key = (msg.task_id, msg.attempt)
        ctx = self.running.get(key)
        if ctx is None:
            self.cancelled.add(key)
            return
        ctx._cancelled = True
        ctx._run_hook = ctx._run_hook or msg.hook
        if msg.force and ctx is self.current_sync and self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGUSR1)  # the flag is set first: no lost wake-up

    def heartbeat(self) -> None:
        while not self.finished.wait(self.heartbeat_interval):
            self.channel.send(Heartbeat())

    def on_message(self, msg: object) -> None:
        try:
            self._handle(msg)
        except BaseException:
            # A bug here must not leave tasks hanging: die loudly, the supervisor re-queues our work.
            import traceback  # here, not at the top: most workers never need it

            traceback.print_exc()
            sys.stderr.flush()
            os._exit(EXIT_INTERNAL_ERROR)

    def _handle(self, msg: object) -> None:
        if isinstance(msg, Run):
            self.run_batch(msg.tasks)
        elif isinstance(msg, Cancel):
            task = self.async_tasks.get((msg.task_id, msg.attempt))
            if task is not None:
                task.cancel()
        elif isinstance(msg, Stop):
            self.stopping = True
            self._maybe_done()

    def on_eof(self) -> None:
        self.stopping = True
        for task in self.async_tasks.values():
            task.cancel()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.stopping and not self.async_tasks and self.current_sync is None:
            self.flush()
            self.finished.set()
            if self._wake_loop is not None:
                self._wake_loop.set()

    # -- signals ------------------------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """SIGUSR1 = "stop the running sync executor now". Stale signals (no flagged task running) are
        ignored; SIGINT from a terminal is the supervisor's business, not ours."""

        def handler(signum: int, frame: object) -> None:
            ctx = self.current_sync
            if ctx is not None and ctx._cancelled:
                raise TaskCancelled("task cancelled by the supervisor")

        signal.signal(signal.SIGUSR1, handler)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        self.timer = attempt.SyncTimer()

    # -- execution ----------------------------------------------------------------------------------------
    def run_batch(self, specs: list[TaskSpec]) -> None:
        started = time.monotonic()
        for spec in specs:
            executor = self.executors.get(spec.task_type)
            if executor is not None and executor.is_async:
                self._start_async(spec, executor)
                continue
            self.results.append(self._run_sync(spec, executor))
            if len(self.results) >= FLUSH_EVERY or time.monotonic() - started > FLUSH_AFTER_S:
                self.flush()
                started = time.monotonic()
        self.flush()

    def _prepare(self, spec: TaskSpec, executor: ExecutorSpec | None) -> tuple[Any, TaskContext] | Result:
        key = (spec.id, spec.attempt)
        if key in self.cancelled:
            self.cancelled.discard(key)
            return attempt.early_result(spec, "cancelled", "cancelled before start")
        task = attempt.decode(spec, executor)
        if isinstance(task, Result):
            return task
        assert executor is not None
        ctx = TaskContext(spec, self.max_retries_of(spec, executor), self.channel.send,
                          self.domain_state.get(executor.domain.name), self.app_state, self.requests)  # fmt: skip
        self.running[key] = ctx
        return task, ctx

    def _run_sync(self, spec: TaskSpec, executor: ExecutorSpec | None) -> Result:
        slot = self.slot
        if slot is None:
            return self._run_sync_inner(spec, executor)
        slot.set(spec.id, spec.attempt)
        try:
            return self._run_sync_inner(spec, executor)
        finally:
            slot.done(spec.id, spec.attempt)

    def _run_sync_inner(self, spec: TaskSpec, executor: ExecutorSpec | None) -> Result:
        prepared = self._prepare(spec, executor)
        if isinstance(prepared, Result):
            return prepared
        task, ctx = prepared
        assert executor is not None and self.timer is not None
        started = attempt.now_ms()
        ctx.progress._started_ms = started
        t0 = time.perf_counter()
        value: Any = None
        error: BaseException | None = None
        try:
            try:
                self.current_sync = ctx
                self.timer.arm(ctx, attempt.timeout_of(executor, self.default_timeout))
                value = attempt.entry(executor, spec)(task, ctx)
            except BaseException as exc:  # the executor's failure is data; TaskCancelled and TaskTimeout included
                error = exc
            finally:
                self.current_sync = None  # from here on a stop signal finds nothing to stop and is ignored
                self.timer.disarm()
        except (TaskCancelled, TaskTimeout) as exc:  # a stop signal that landed as the executor ended
            error = error or exc
        self.running.pop((spec.id, spec.attempt), None)
        ctx.progress.close()
        result = attempt.outcome(spec, ctx, started, t0, value, error)
        if result.status == "cancelled" and ctx._run_hook:
            attempt.run_cancel_hook_sync(executor, task, ctx)
        return result

    def _start_async(self, spec: TaskSpec, executor: ExecutorSpec) -> None:
        import asyncio  # an async executor means this worker runs a loop: asyncio is imported already

        assert self.loop is not None, "async executors run only in workers that have an event loop"
        prepared = self._prepare(spec, executor)
        if isinstance(prepared, Result):
            self.results.append(prepared)
            return
        task, ctx = prepared
        key = (spec.id, spec.attempt)
        limit = attempt.timeout_of(executor, self.default_timeout)

        async def run() -> None:
            started = attempt.now_ms()
            ctx.progress._started_ms = started
            t0 = time.perf_counter()
            value: Any = None
            error: BaseException | None = None
            try:
                async with asyncio.timeout(limit):
                    value = attempt.entry(executor, spec)(task, ctx)
                    if inspect.isawaitable(value):
                        value = await value
            except TimeoutError as exc:
                error = attempt.TaskTimeout(f"exceeded its {limit:g}s timeout") if limit else exc
            except BaseException as exc:
                error = exc
            self.running.pop(key, None)
            ctx.progress.close()
            result = attempt.outcome(spec, ctx, started, t0, value, error)
            if result.status == "cancelled" and ctx._run_hook:
                await attempt.run_cancel_hook_async(executor, task, ctx)
            self.async_tasks.pop(key, None)
            self.results.append(result)
            self._schedule_flush()
            self._maybe_done()

        self.async_tasks[key] = self.loop.create_task(run())

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.results:
            batch, self.results = self.results, []
            rss = 0
            now = time.monotonic()
            if now - self._rss_at >= RSS_EVERY_S:
                self._rss_at = now
                rss = resident_bytes()
            self.channel.send(Results(batch, rss))

    def run(self) -> None:
        """Serve frames until the supervisor asks us to stop (or goes away) and our work is done."""
        if self.loop is not None:
            self.loop.run_until_complete(self._serve_on_loop())
            return
        self._start_threads()
        if self.channel.bell is None:  # the reader thread reads every frame
            get = self.inbox.get
            while not self.finished.is_set():
                fn, args = get()
                fn(*args)
            return
        get_nowait = self.inbox.get_nowait
        while not self.finished.is_set():
            try:
                fn, args = get_nowait()
            except queue.Empty:
                self._read_idle()
                continue
            fn(*args)

    def _read_idle(self) -> None:
        """Nothing to run: wait for the next frame on this thread, with no hand-over (see ``channel``)."""
        try:
            read, msg = self.channel.read_idle(self.inbox.empty)
        except Exception as exc:
            self._lost(exc)
            return
        if read:  # else the reader thread queued something first
            self._received(msg)

    async def _serve_on_loop(self) -> None:
        import asyncio

        self._wake_loop = asyncio.Event()
        self._start_threads()
        await self._wake_loop.wait()

    def _start_threads(self) -> None:
        threading.Thread(target=self.reader, name="taskmill-reader", daemon=True).start()
        if self.heartbeat_interval > 0:
            threading.Thread(target=self.heartbeat, name="taskmill-heartbeat", daemon=True).start()

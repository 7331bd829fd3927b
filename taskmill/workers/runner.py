"""Running executors inside a worker.

The main thread runs an event loop. Sync executors run inline on it (the supervisor never gives a worker
anything else while one runs); async executors run as tasks on it, several at once. A reader thread
receives frames so cancel requests land even while a sync executor holds the main thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

import msgspec

from ..domain import ExecutorSpec, StateBag
from ..errors import TaskCancelled, TaskError
from ..protocol import Cancel, Result, Results, Run, Stop, TaskSpec
from .channel import Channel
from .context import TaskContext

MAX_ERROR_TEXT = 8192
EXIT_INTERNAL_ERROR = 70
EXIT_ORPHANED = 4
FLUSH_AFTER_S = 0.002  # report at least this often during a batch...
FLUSH_EVERY = 16  # ...or after this many results, so the supervisor can refill before the queue drains
_memo_encoder = msgspec.msgpack.Encoder()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc)).strip()
    return (
        text
        if len(text) <= MAX_ERROR_TEXT
        else text[: MAX_ERROR_TEXT // 2] + "\n…\n" + text[-MAX_ERROR_TEXT // 2 :]
    )


class WorkerRuntime:
    def __init__(
        self,
        channel: Channel,
        executors: dict[str, ExecutorSpec],
        app_state: StateBag,
        domain_state: dict[str, StateBag],
    ) -> None:
        self.channel = channel
        self.executors = executors
        self.app_state = app_state
        self.domain_state = domain_state
        self.loop = asyncio.get_event_loop()
        self.running: dict[tuple[int, int], TaskContext] = {}
        self.async_tasks: dict[tuple[int, int], asyncio.Task[Any]] = {}
        self.cancelled: set[tuple[int, int]] = set()  # cancel requests for attempts not started yet
        self.current_sync: TaskContext | None = None
        self.results: list[Result] = []
        self.flush_scheduled = False
        self.stopping = False
        self.done = asyncio.Event()
        self.default_max_retries = 3

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
    def reader(self) -> None:
        stop_requested = False
        try:
            while (msg := self.channel.recv()) is not None:
                if isinstance(msg, Cancel):
                    self._cancel(msg)
                elif isinstance(msg, Stop):
                    stop_requested = True
                self.loop.call_soon_threadsafe(self.on_message, msg)
        except Exception:
            traceback.print_exc()
        if not stop_requested:
            # The supervisor is gone without asking us to stop: whatever we run will be run again by its
            # successor, so stop now rather than race it.
            os._exit(EXIT_ORPHANED)
        self.loop.call_soon_threadsafe(self.on_eof)

    def _cancel(self, msg: Cancel) -> None:
        """Runs on the reader thread: flag the attempt so even a busy sync executor sees it."""
        key = (msg.task_id, msg.attempt)
        ctx = self.running.get(key)
        if ctx is None:
            self.cancelled.add(key)
        else:
            ctx._cancelled = True

    def on_message(self, msg: object) -> None:
        try:
            self._handle(msg)
        except BaseException:
            # A bug here must not leave tasks hanging: die loudly, the supervisor re-queues our work.
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
            self.done.set()

    # -- signals ------------------------------------------------------------------------------------------
    def install_signal_handler(self) -> None:
        """SIGUSR1 = "stop the running sync executor now": raising here interrupts pure-Python loops and
        blocking calls like time.sleep. Stale signals (no flagged task running) are ignored."""

        def handler(signum: int, frame: object) -> None:
            ctx = self.current_sync
            if ctx is not None and ctx._cancelled:
                raise TaskCancelled("task cancelled by the supervisor")

        signal.signal(signal.SIGUSR1, handler)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

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
        now = _now_ms()
        if key in self.cancelled:
            self.cancelled.discard(key)
            return Result(spec.id, spec.attempt, "cancelled", now, now, 0, "cancelled before start")
        if executor is None:
            error = f"no executor registered for type {spec.task_type!r} in the worker"
            return Result(spec.id, spec.attempt, "error", now, now, 0, error, retryable=False)
        try:
            task = executor.decoder.decode(spec.payload)
        except msgspec.ValidationError as exc:
            return Result(spec.id, spec.attempt, "error", now, now, 0,
                          f"PayloadDecodeError: payload does not match {executor.task_cls.__qualname__}: {exc}",
                          retryable=False)  # fmt: skip
        ctx = TaskContext(spec, self.max_retries_of(spec, executor), self.channel.send,
                          self.domain_state.get(executor.domain.name), self.app_state)  # fmt: skip
        self.running[key] = ctx
        return task, ctx

    def _finish(self, spec: TaskSpec, ctx: TaskContext, started: int, t0: float, value: Any,
                exc: BaseException | None) -> Result:  # fmt: skip
        elapsed_us = int((time.perf_counter() - t0) * 1e6)
        self.running.pop((spec.id, spec.attempt), None)
        ctx.progress.flush()
        r = Result(spec.id, spec.attempt, "ok", started, _now_ms(), elapsed_us)
        r.read_bytes, r.write_bytes = ctx.read_bytes, ctx.write_bytes
        r.net_rx_bytes, r.net_tx_bytes = ctx.net_rx_bytes, ctx.net_tx_bytes
        if exc is None:
            if value is not None:
                try:
                    r.memo = _memo_encoder.encode(value)
                except (TypeError, msgspec.EncodeError) as err:
                    r.status, r.error, r.retryable = (
                        "error",
                        f"executor returned an unencodable memo: {err}",
                        False,
                    )
        elif isinstance(exc, TaskCancelled | asyncio.CancelledError) or (
            ctx.cancelled and not isinstance(exc, TaskError)
        ):
            r.status, r.error = "cancelled", "cancelled"
        elif isinstance(exc, TaskError):
            r.status, r.error, r.retryable, r.retry_after = (
                "error",
                exc.message,
                exc.is_retryable,
                exc.retry_after,
            )
        else:
            r.status, r.error = "error", _error_text(exc)
        return r

    def _run_sync(self, spec: TaskSpec, executor: ExecutorSpec | None) -> Result:
        prepared = self._prepare(spec, executor)
        if isinstance(prepared, Result):
            return prepared
        task, ctx = prepared
        assert executor is not None
        started = _now_ms()
        t0 = time.perf_counter()
        self.current_sync = ctx
        value: Any = None
        error: BaseException | None = None
        try:
            value = executor.execute_callable()(task, ctx)
        except BaseException as exc:  # the executor's failure is data; TaskCancelled included
            error = exc
        finally:
            self.current_sync = None
        return self._finish(spec, ctx, started, t0, value, error)

    def _start_async(self, spec: TaskSpec, executor: ExecutorSpec) -> None:
        prepared = self._prepare(spec, executor)
        if isinstance(prepared, Result):
            self.results.append(prepared)
            return
        task, ctx = prepared
        key = (spec.id, spec.attempt)

        async def run() -> None:
            started = _now_ms()
            t0 = time.perf_counter()
            value: Any = None
            error: BaseException | None = None
            try:
                value = await executor.execute_callable()(task, ctx)
            except BaseException as exc:
                error = exc
            self.async_tasks.pop(key, None)
            self.results.append(self._finish(spec, ctx, started, t0, value, error))
            self._schedule_flush()
            self._maybe_done()

        self.async_tasks[key] = self.loop.create_task(run())

    def _schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.results:
            batch, self.results = self.results, []
            self.channel.send(Results(batch))

    async def serve(self) -> None:
        threading.Thread(target=self.reader, name="taskmill-reader", daemon=True).start()
        await self.done.wait()

"""One attempt of one task inside a worker: decode, run (sync or async), enforce its timeout, turn the way it
ended into a Result, and run ``on_cancel`` when the supervisor asked for it."""

from __future__ import annotations

import functools
import inspect
import signal
import sys
import time
import typing
from collections.abc import Callable
from typing import Any

import msgspec

from ..domain import ExecutorSpec
from ..errors import TaskCancelled, TaskError, TaskTimeout
from ..protocol import Result, TaskSpec
from ..store.records import F_FINALIZE
from .context import TaskContext

MAX_ERROR_TEXT = 8192
MAX_MEMO = 2 << 20  # bytes: results travel in frames of at most 64 MiB, up to 16 results each
_memo_encoder = msgspec.msgpack.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


def error_text(exc: BaseException) -> str:
    import traceback  # here, not at the top: it costs a worker's start-up ~5 ms, and most workers never need it

    text = "".join(traceback.format_exception(exc)).strip()
    if len(text) <= MAX_ERROR_TEXT:
        return text
    return text[: MAX_ERROR_TEXT // 2] + "\n…\n" + text[-MAX_ERROR_TEXT // 2 :]


def timeout_of(executor: ExecutorSpec, default: float | None) -> float | None:
    """Per type > domain > scheduler, as documented for every other default."""
    if executor.type_config.timeout is not None:
        return executor.type_config.timeout
    return executor.domain.timeout if executor.domain.timeout is not None else default


def early_result(spec: TaskSpec, status: str, error: str, retryable: bool = True) -> Result:
    now = now_ms()
    return Result(spec.id, spec.attempt, status, now, now, 0, error, retryable=retryable)


def decode(spec: TaskSpec, executor: ExecutorSpec | None) -> Any:
    """The typed payload, or a Result saying why there is none (both are permanent failures)."""
    if executor is None:
        return early_result(spec, "error", f"no executor registered for type {spec.task_type!r} in the worker", False)
    try:
        return executor.decoder.decode(spec.payload)
    except (msgspec.DecodeError, ValueError) as exc:  # ValidationError included; ValueError: invalid UTF-8
        name = executor.task_cls.__qualname__
        return early_result(spec, "error", f"PayloadDecodeError: payload does not match {name}: {exc}", False)


def entry(executor: ExecutorSpec, spec: TaskSpec) -> Callable[[Any, TaskContext], Any]:
    """What to call for this attempt: ``execute(task, ctx)``, or for a parent whose children are done
    ``finalize(task, memo, ctx)`` with the memo decoded (typed if ``finalize`` annotates it)."""
    if not spec.flags & F_FINALIZE:
        return executor.execute_callable()
    fin = getattr(executor.instance(), "finalize", None) if executor.is_class else None
    if fin is None:
        return _nothing_async if executor.is_async else _nothing
    memo_type = _memo_type(getattr(fin, "__func__", fin))
    memo = None if spec.memo is None else msgspec.msgpack.decode(spec.memo, type=memo_type)
    return functools.partial(_finalize, fin, memo)


def _finalize(fin: Callable[..., Any], memo: Any, task: Any, ctx: TaskContext) -> Any:
    return fin(task, memo, ctx)


def _nothing(task: Any, ctx: TaskContext) -> None:
    return None


async def _nothing_async(task: Any, ctx: TaskContext) -> None:
    return None


@functools.cache
def _memo_type(finalize: Callable[..., Any]) -> Any:
    """The annotation of finalize's memo parameter, ``(self, task, memo, ctx)``, or Any."""
    try:
        params = list(inspect.signature(finalize).parameters)
        return typing.get_type_hints(finalize).get(params[2], Any) if len(params) > 2 else Any
    except Exception:  # an annotation that does not resolve: decode without a type
        return Any


def outcome(spec: TaskSpec, ctx: TaskContext, started: int, t0: float, value: Any, exc: BaseException | None) -> Result:
    r = Result(spec.id, spec.attempt, "ok", started, now_ms(), int((time.perf_counter() - t0) * 1e6))
    r.read_bytes, r.write_bytes = ctx.read_bytes, ctx.write_bytes
    r.net_rx_bytes, r.net_tx_bytes = ctx.net_rx_bytes, ctx.net_tx_bytes
    if exc is None and ctx.cancelled:
        # Returned after being asked to stop: we cannot tell finished work from an early exit, so the stop
        # wins (a preempted task reruns, a cancelled one is cancelled) — at-least-once, never lost work.
        r.status, r.error = "cancelled", "stopped on request"
    elif exc is None:
        if value is not None:
            try:
                r.memo = _memo_encoder.encode(value)
            except (TypeError, OverflowError, msgspec.EncodeError) as err:
                r.status, r.error, r.retryable = "error", f"executor returned an unencodable memo: {err}", False
            if r.memo is not None and len(r.memo) > MAX_MEMO:
                size, r.memo = len(r.memo), None
                r.status, r.retryable = "error", False
                r.error = f"executor returned a {size}-byte memo, over the {MAX_MEMO}-byte limit"
    elif isinstance(exc, TaskTimeout):
        r.status, r.error = "error", f"TaskTimeout: {exc}"
    elif _is_cancellation(exc) or (ctx.cancelled and not isinstance(exc, TaskError)):
        r.status, r.error = "cancelled", "cancelled"
    elif isinstance(exc, TaskError):
        r.status, r.error, r.retryable, r.retry_after = "error", exc.message, exc.is_retryable, exc.retry_after
    else:
        if isinstance(exc, MemoryError):  # free what filled memory (the executor's locals) before formatting
            _clear_frames(exc.__traceback__)
        r.status, r.error = "error", error_text(exc)
    return r


def _clear_frames(tb: Any) -> None:
    """``traceback.clear_frames``, without importing traceback while memory is short."""
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # a frame still executing
            pass
        tb = tb.tb_next


_HOOK_TASKS: set[Any] = set()


def _is_cancellation(exc: BaseException) -> bool:
    if isinstance(exc, TaskCancelled):
        return True
    aio = sys.modules.get("asyncio")  # never imported by a worker whose executors are all sync
    return aio is not None and isinstance(exc, aio.CancelledError)


class SyncTimer:
    """SIGALRM-based deadline for a sync executor: the handler raises TaskTimeout in the main thread, which
    interrupts pure-Python loops and blocking calls such as time.sleep."""

    def __init__(self) -> None:
        self.armed: TaskContext | None = None
        self.seconds = 0.0
        signal.signal(signal.SIGALRM, self._fire)

    def _fire(self, signum: int, frame: object) -> None:
        if self.armed is not None:
            ctx, self.armed = self.armed, None
            ctx._cancelled = True
            raise TaskTimeout(f"exceeded its {self.seconds:g}s timeout")

    def arm(self, ctx: TaskContext, seconds: float | None) -> None:
        if seconds:
            self.armed, self.seconds = ctx, seconds
            signal.setitimer(signal.ITIMER_REAL, seconds)

    def disarm(self) -> None:
        if self.armed is not None:
            self.armed = None
            signal.setitimer(signal.ITIMER_REAL, 0)


def run_cancel_hook_sync(executor: ExecutorSpec, task: Any, ctx: TaskContext) -> None:
    """``on_cancel`` after a requested cancel; failures are reported on stderr, never raised."""
    hook = getattr(executor.instance(), "on_cancel", None) if executor.is_class else None
    if hook is None:
        return
    try:
        result = hook(task, ctx)
        if inspect.isawaitable(result):
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # a worker without a loop (it saw no async hook at boot): run the hook through
                asyncio.run(result)  # type: ignore[arg-type]
            else:
                task = loop.create_task(result)  # type: ignore[arg-type]  # runs alongside, on the worker's loop
                _HOOK_TASKS.add(task)  # held until done: the loop keeps only a weak reference
                task.add_done_callback(_HOOK_TASKS.discard)
    except BaseException:
        import traceback

        traceback.print_exc()


async def run_cancel_hook_async(executor: ExecutorSpec, task: Any, ctx: TaskContext) -> None:
    hook = getattr(executor.instance(), "on_cancel", None) if executor.is_class else None
    if hook is None:
        return
    try:
        result = hook(task, ctx)
        if inspect.isawaitable(result):
            await result
    except BaseException:
        import traceback

        traceback.print_exc()

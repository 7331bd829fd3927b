"""A stop signal that lands just after a sync executor has ended must not kill the worker.

The supervisor's forced cancel (SIGUSR1) and the time limit (SIGALRM) raise inside the worker's main thread.
When one arrives while the runner is already cleaning up after the executor, it used to escape the runner,
and the worker died with an internal error (seen with a preempted upload that stopped on its own a moment
before the signal). Here the signal is held pending until the runner disarms the time limit: exactly where it
landed then.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec
import pytest

import taskmill as tm
from taskmill.domain import StateBag
from taskmill.protocol import Cancel, TaskSpec
from taskmill.workers import attempt
from taskmill.workers.runner import WorkerRuntime

late = tm.Domain("late_signal")


class Job(tm.Task, frozen=True):
    task_type: ClassVar[str] = "job"
    how: str


RUNTIME: list[WorkerRuntime] = []


@late.executor(Job)
def job(task: Job, ctx: tm.TaskContext) -> None:
    rt = RUNTIME[0]
    if task.how == "cancel":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        rt._cancel(Cancel(ctx.record.id, ctx.record.attempt, force=True))  # the forced stop: SIGUSR1, pending
    else:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        # The time limit runs out: SIGALRM, pending. Sent to this thread, as the timer's would be in a worker: a
        # process-wide signal could go to another thread of the test process (pytest-xdist has some).
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)  # type: ignore[arg-type]
        assert signal.SIGALRM in signal.sigpending()
    # ...and the executor returns, before the signal is delivered.


class PendingUntilDisarm(attempt.SyncTimer):
    """The real timer, except that blocked signals are let through when the runner disarms it."""

    def disarm(self) -> None:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1, signal.SIGALRM})
        super().disarm()


class Channel:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> None:
        self.sent.append(msg)


@pytest.fixture
def runtime() -> Iterator[WorkerRuntime]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGALRM, signal.SIGINT)}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        rt = WorkerRuntime(Channel(), dict(late.executors), StateBag([]), {})  # type: ignore[arg-type]
        rt.install_signal_handlers()
        rt.timer = PendingUntilDisarm()
        RUNTIME[:] = [rt]
        yield rt
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for s, h in saved.items():
            signal.signal(s, h)
        asyncio.set_event_loop(None)
        loop.close()
        RUNTIME.clear()


def spec(how: str) -> TaskSpec:
    return TaskSpec(1, "late_signal::job", "late_signal", "k", "job", 128, msgspec.msgpack.encode(Job(how=how)),
                    0, 0, 1, 0, None, None, None)  # fmt: skip


@pytest.mark.parametrize(("how", "status", "error"), [("cancel", "cancelled", "stopped on request"),
                                                       ("timeout", "error", "TaskTimeout")])  # fmt: skip
def test_a_stop_signal_after_the_executor_ended_is_an_outcome_not_a_crash(
    runtime: WorkerRuntime, how: str, status: str, error: str
) -> None:
    runtime.default_timeout = 60.0 if how == "timeout" else None  # arms the timer, so disarm() runs
    result = runtime._run_sync(spec(how), runtime.executors["late_signal::job"])
    assert (result.status, (result.error or "")[: len(error)]) == (status, error)
    assert runtime.current_sync is None and runtime.timer is not None and runtime.timer.armed is None

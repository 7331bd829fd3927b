"""Executors for the control tests (preemption, cancel, pause, supersede, time limits, recycling).

Module level, because worker processes import this module to find them. Each reports to the JSON-lines
ledger named in its payload.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from typing import ClassVar

import taskmill as tm

from .domains import write_log

ctl = tm.Domain("tm_ctl")
grouped = tm.Domain("tm_grouped", default_group="g1")


class Spin(tm.Task):
    """Pure-Python busy loop that never looks at ctx.cancelled (first attempt only: a rerun is short)."""

    task_type: ClassVar[str] = "spin"
    log: str
    tag: str
    seconds: float = 30.0


@ctl.executor(Spin)
def spin(task: Spin, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, attempt=ctx.record.attempt, id=ctx.record.id)
    deadline = time.monotonic() + (task.seconds if ctx.record.attempt == 1 else 0.05)
    x = 0
    while time.monotonic() < deadline:
        x += 1
    write_log(task.log, ev="end", tag=task.tag, attempt=ctx.record.attempt, id=ctx.record.id)


class Quick(tm.Task):
    task_type: ClassVar[str] = "quick"
    log: str
    tag: str
    seconds: float = 0.0


@ctl.executor(Quick)
def quick(task: Quick, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)
    time.sleep(task.seconds)
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


class Stubborn(tm.Task):
    """Ignores the stop signal and has a grandchild: only SIGKILL of the process group stops it."""

    task_type: ClassVar[str] = "stubborn"
    log: str


@ctl.executor(Stubborn)
def stubborn(task: Stubborn, ctx: tm.TaskContext) -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "1000"])
    write_log(task.log, ev="start", tag="stubborn", child=child.pid, attempt=ctx.record.attempt)
    end = time.monotonic() + (60 if ctx.record.attempt == 1 else 0)
    while time.monotonic() < end:
        time.sleep(0.01)
    child.kill()


class Hooked(tm.Task):
    """A class executor with on_cancel; sleeps (interruptible) until cancelled."""

    task_type: ClassVar[str] = "hooked"
    log: str
    tag: str
    seconds: float = 30.0


@ctl.executor(Hooked)
class HookedExecutor:
    def execute(self, task: Hooked, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)
        time.sleep(task.seconds)
        write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)

    def on_cancel(self, task: Hooked, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="on_cancel", tag=task.tag, id=ctx.record.id)


class Keyed(tm.Task):
    task_type: ClassVar[str] = "keyed"
    log: str
    tag: str
    seconds: float = 30.0

    def key(self) -> str:
        return "the-one"


@ctl.executor(Keyed)
class KeyedExecutor:
    def execute(self, task: Keyed, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)
        time.sleep(task.seconds)
        write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)

    def on_cancel(self, task: Keyed, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="on_cancel", tag=task.tag, id=ctx.record.id)


class Sleepy(tm.Task):
    """Sleeps past its time limit; ``ignore_alarm`` also disarms the in-worker timer (like C code would)."""

    task_type: ClassVar[str] = "sleepy"
    log: str
    seconds: float = 30.0
    ignore_alarm: bool = False

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(timeout=0.5, max_retries=1)


@ctl.executor(Sleepy)
def sleepy(task: Sleepy, ctx: tm.TaskContext) -> None:
    if task.ignore_alarm:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
    write_log(task.log, ev="start", tag="sleepy", attempt=ctx.record.attempt)
    time.sleep(task.seconds)


class WhoAmI(tm.Task):
    task_type: ClassVar[str] = "whoami"
    log: str
    n: int
    grow_mb: int = 0


_ballast: list[bytes] = []


@ctl.executor(WhoAmI)
def whoami(task: WhoAmI, ctx: tm.TaskContext) -> None:
    if task.grow_mb:
        _ballast.append(b"x" * (task.grow_mb << 20))
    write_log(task.log, ev="end", tag="whoami", n=task.n)


class Freeze(tm.Task):
    """Stops its own worker process (SIGSTOP): no heartbeats, no progress — a hung worker."""

    task_type: ClassVar[str] = "freeze"
    log: str


@ctl.executor(Freeze)
def freeze(task: Freeze, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag="freeze", attempt=ctx.record.attempt)
    if ctx.record.attempt == 1:
        os.kill(os.getpid(), signal.SIGSTOP)


class Member(tm.Task):
    task_type: ClassVar[str] = "member"
    log: str
    tag: str


@grouped.executor(Member)
def member(task: Member, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="end", tag=task.tag)


class Polite(tm.Task):
    """Checks ctx.cancelled and simply returns when asked to stop (first attempt only runs long)."""

    task_type: ClassVar[str] = "polite"
    log: str


@ctl.executor(Polite)
def polite(task: Polite, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag="polite", attempt=ctx.record.attempt)
    end = time.monotonic() + (30 if ctx.record.attempt == 1 else 0)
    while time.monotonic() < end:
        if ctx.cancelled:
            return
        time.sleep(0.001)
    write_log(task.log, ev="end", tag="polite", attempt=ctx.record.attempt)


class Nap(tm.Task):
    """A plain sleep with no time limit of its own (the scheduler-wide one applies)."""

    task_type: ClassVar[str] = "nap"
    log: str
    seconds: float


@ctl.executor(Nap)
def nap(task: Nap, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag="nap", attempt=ctx.record.attempt)
    time.sleep(task.seconds)
    write_log(task.log, ev="end", tag="nap", attempt=ctx.record.attempt)


class SlowToStop(tm.Task):
    """First attempt: runs until asked to stop, then takes ``cleanup`` seconds before it gives up (cancelled)."""

    task_type: ClassVar[str] = "slow_to_stop"
    log: str
    cleanup: float = 0.4


@ctl.executor(SlowToStop)
def slow_to_stop(task: SlowToStop, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag="slow", attempt=ctx.record.attempt)
    end = time.monotonic() + (30 if ctx.record.attempt == 1 else 0)
    while time.monotonic() < end:
        if ctx.cancelled:
            time.sleep(task.cleanup)
            raise tm.TaskCancelled("stopped after cleaning up")
        time.sleep(0.001)
    write_log(task.log, ev="end", tag="slow", attempt=ctx.record.attempt)

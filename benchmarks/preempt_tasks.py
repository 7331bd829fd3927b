"""Executors for the preemption-latency benchmark (module level: worker processes import this module)."""

from __future__ import annotations

import os
import time
from typing import ClassVar

import taskmill as tm

preempt = tm.Domain("bench_preempt")


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class Busy(tm.Task):
    """A pure-Python loop that never looks at ctx.cancelled; its first attempt would run for a minute."""

    task_type: ClassVar[str] = "busy"
    trial: int
    log: str


@preempt.executor(Busy)
def busy(task: Busy, ctx: tm.TaskContext) -> None:
    if ctx.record.attempt > 1:
        return  # the rerun after preemption is short, so trials do not pile up
    _append(task.log, f"busy-start {task.trial} {time.time()}\n")
    try:
        end = time.monotonic() + 60
        x = 0
        while time.monotonic() < end:
            x += 1
    finally:
        _append(task.log, f"busy-stop {task.trial} {time.time()}\n")


class Urgent(tm.Task):
    task_type: ClassVar[str] = "urgent"
    trial: int
    log: str


@preempt.executor(Urgent)
def urgent(task: Urgent, ctx: tm.TaskContext) -> None:
    _append(task.log, f"urgent-start {task.trial} {time.time()}\n")

"""Executors for the query and metrics tests. Module level: worker processes import this module."""

from __future__ import annotations

import os
import time
from typing import ClassVar

import taskmill as tm

from .domains import write_log

obs = tm.Domain("tm_q", default_tags={"team": "core"})
obs_other = tm.Domain("tm_q_other")


class Io(tm.Task, frozen=True):
    """Records the IO it is told to, after ``sleep`` seconds. ``fail``: none | retry_once | permanent | always.

    ``gate``: a file path; the executor waits (checking ``ctx.cancelled``) until it exists.
    """

    task_type: ClassVar[str] = "io"
    log: str
    tag: str
    read: int = 0
    write: int = 0
    rx: int = 0
    tx: int = 0
    sleep: float = 0.0
    fail: str = "none"
    gate: str = ""
    k: str = ""

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(expected_io=tm.IoBudget(read=1000, write=100, net_rx=10, net_tx=1))

    def key(self) -> str | None:
        return self.k or None


@obs.executor(Io)
def run_io(task: Io, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id, attempt=ctx.record.attempt)
    if task.gate:
        while not os.path.exists(task.gate):
            if ctx.cancelled:
                raise tm.TaskCancelled("stopped")
            time.sleep(0.01)
    if task.sleep:
        time.sleep(task.sleep)
    ctx.record_read_bytes(task.read)
    ctx.record_write_bytes(task.write)
    ctx.record_net_rx_bytes(task.rx)
    ctx.record_net_tx_bytes(task.tx)
    if task.fail == "always" or (task.fail == "retry_once" and ctx.record.retry_count == 0):
        raise tm.TaskError.retryable(f"{task.tag} failed")
    if task.fail == "permanent":
        raise tm.TaskError.permanent(f"{task.tag} failed for good")
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


class Ping(tm.Task, frozen=True):
    task_type: ClassVar[str] = "ping"
    n: int


@obs_other.executor(Ping)
def run_ping(task: Ping, ctx: tm.TaskContext) -> None:
    pass

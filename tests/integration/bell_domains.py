"""Executors of a domain with no async executor, so its workers have a bell (see ``taskmill/workers/channel.py``):
a parent that spawns children and reads them back (each a reply its worker must read while the executor
waits), and a loop that runs until it sees ``ctx.cancelled``. Module level: worker processes import it."""

from __future__ import annotations

import time
from typing import ClassVar

import taskmill as tm

from .domains import write_log

bell = tm.Domain("tm_bell")


class Kid(tm.Task):
    task_type: ClassVar[str] = "kid"
    log: str
    tag: str


class Parent(tm.Task):
    task_type: ClassVar[str] = "parent"
    log: str
    tag: str
    kids: int


class Loop(tm.Task):
    task_type: ClassVar[str] = "loop"
    log: str
    tag: str


@bell.executor(Kid)
def run_kid(task: Kid, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="ran", tag=task.tag)


@bell.executor(Parent)
def run_parent(task: Parent, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag)
    spawned = [ctx.spawn_child(Kid(log=task.log, tag=f"{task.tag}-kid{i}")) for i in range(task.kids)]
    seen = ctx.children()
    write_log(task.log, ev="end", tag=task.tag, spawned=[o.id for o in spawned], seen=sorted(c.id for c in seen))


@bell.executor(Loop)
def run_loop(task: Loop, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag)
    deadline = time.monotonic() + 30
    while not ctx.cancelled and time.monotonic() < deadline:
        time.sleep(0.001)
    write_log(task.log, ev="end", tag=task.tag, cancelled=ctx.cancelled)

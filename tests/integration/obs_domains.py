"""Executors for the observability tests: byte and fractional progress, timed work, failures. Module level,
because worker processes import this module; each reports to the JSON-lines ledger named in its payload."""

from __future__ import annotations

import time
from typing import ClassVar

import taskmill as tm

from .domains import write_log

obs = tm.Domain("tm_obs")
obs2 = tm.Domain("tm_obs2")


class Transfer(tm.Task, frozen=True):
    """Moves ``total`` bytes in ``chunk``-sized steps, one every ``step`` seconds, counting them with add_bytes."""

    task_type: ClassVar[str] = "transfer"
    log: str
    tag: str
    total: int
    chunk: int
    step: float


@obs.executor(Transfer)
def run_transfer(task: Transfer, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)
    ctx.set_bytes_total(task.total)
    done = 0
    while done < task.total:
        time.sleep(task.step)
        n = min(task.chunk, task.total - done)
        ctx.add_bytes(n)
        done += n
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


class Timed(tm.Task, frozen=True):
    """Sleeps ``seconds``, optionally after reporting ``fraction``. ``k``: an explicit dedup key."""

    task_type: ClassVar[str] = "timed"
    log: str
    tag: str
    seconds: float = 0.0
    fraction: float = -1.0
    k: str = ""

    def key(self) -> str | None:
        return self.k or None


@obs.executor(Timed)
def run_timed(task: Timed, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id, attempt=ctx.record.attempt)
    if task.fraction >= 0:
        ctx.progress.report(task.fraction, f"{task.tag} at {task.fraction:.0%}")
    time.sleep(task.seconds)
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


class Boom(tm.Task, frozen=True):
    task_type: ClassVar[str] = "boom"
    tag: str


@obs.executor(Boom)
def run_boom(task: Boom, ctx: tm.TaskContext) -> None:
    raise tm.TaskError.permanent(f"{task.tag} failed on purpose")


class Other(tm.Task, frozen=True):
    task_type: ClassVar[str] = "other"
    log: str
    tag: str


@obs2.executor(Other)
def run_other(task: Other, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)

"""Executors for the workflow tests: parents with children and finalize, siblings, dependencies, recurring
tasks and TTL. Module level, because worker processes import this module to find them; each reports to the
JSON-lines ledger named in its payload (see ``domains.write_log``).
"""

from __future__ import annotations

import os
import time
from typing import ClassVar

import msgspec

import taskmill as tm

from .domains import write_log

flow = tm.Domain("tm_flow")
side = tm.Domain("tm_side")  # a second domain: cross-domain children and dependencies


def _wait_gate(gate: str) -> None:
    deadline = time.monotonic() + 30
    while gate and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)


class Step(tm.Task):
    """Logs start/end; waits for ``gate`` (a file) if given; fails permanently if ``fail``."""

    task_type: ClassVar[str] = "step"
    log: str
    tag: str
    gate: str = ""
    sleep: float = 0.0
    fail: bool = False


@flow.executor(Step)
def run_step(task: Step, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id, priority=ctx.record.priority,
              parent=ctx.record.parent_id, tags=ctx.record.tags)  # fmt: skip
    _wait_gate(task.gate)
    time.sleep(task.sleep)
    if task.fail:
        raise tm.TaskError.permanent(f"{task.tag} failed on purpose")
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


class SideStep(tm.Task):
    task_type: ClassVar[str] = "side_step"
    log: str
    tag: str
    gate: str = ""


@side.executor(SideStep)
def run_side_step(task: SideStep, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id, parent=ctx.record.parent_id)
    _wait_gate(task.gate)
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


# -- a multipart upload: N parts as children, finalize gets the memo -----------------------------------------


class UploadMemo(msgspec.Struct):
    upload_id: str
    parts: int


class Upload(tm.Task):
    task_type: ClassVar[str] = "upload"
    log: str
    name: str
    parts: int
    fail_part: int = -1  # this part fails permanently (at once: it does not wait for the gate)
    part_sleep: float = 0.0
    gate: str = ""  # parts wait for it
    cross_domain: bool = False  # one more child in the side domain


@flow.executor(Upload)
class Uploader:
    def execute(self, task: Upload, ctx: tm.TaskContext) -> UploadMemo:
        parts = [Step(log=task.log, tag=f"{task.name}-part{i}", gate="" if i == task.fail_part else task.gate,
                      sleep=task.part_sleep, fail=i == task.fail_part) for i in range(task.parts)]  # fmt: skip
        kids: list[tm.Task] = list(parts)
        if task.cross_domain:
            kids.append(SideStep(log=task.log, tag=f"{task.name}-side"))
        out = ctx.spawn_children(kids)
        write_log(task.log, ev="spawned", tag=task.name, ids=[o.id for o in out], phase=ctx.phase)
        return UploadMemo(upload_id=f"up-{task.name}", parts=task.parts)

    def finalize(self, task: Upload, memo: UploadMemo, ctx: tm.TaskContext) -> None:
        kids = ctx.children()
        write_log(task.log, ev="finalize", tag=task.name, memo_type=type(memo).__name__, upload_id=memo.upload_id,
                  parts=memo.parts, statuses=sorted(k.status for k in kids), phase=ctx.phase)  # fmt: skip


class AsyncUpload(tm.Task):
    task_type: ClassVar[str] = "async_upload"
    log: str
    name: str
    parts: int


@flow.executor(AsyncUpload)
class AsyncUploader:
    async def execute(self, task: AsyncUpload, ctx: tm.TaskContext) -> dict[str, int]:
        out = await ctx.aspawn_children([Step(log=task.log, tag=f"{task.name}-a{i}") for i in range(task.parts)])
        return {"spawned": len(out)}

    async def finalize(self, task: AsyncUpload, memo: dict[str, int], ctx: tm.TaskContext) -> None:
        kids = await ctx.achildren()
        write_log(task.log, ev="finalize", tag=task.name, memo=memo, statuses=sorted(k.status for k in kids))


# -- siblings ------------------------------------------------------------------------------------------------


class Family(tm.Task):
    """mode "tree": one child, which spawns a sibling. mode "root_sibling": try spawn_sibling from a root."""

    task_type: ClassVar[str] = "family"
    log: str
    mode: str


class Kid(tm.Task):
    task_type: ClassVar[str] = "kid"
    log: str
    tag: str
    sibling: bool = False


@flow.executor(Family)
class FamilyExec:
    def execute(self, task: Family, ctx: tm.TaskContext) -> str | None:
        if task.mode == "root_sibling":
            try:
                ctx.spawn_sibling(Kid(log=task.log, tag="never"))
            except tm.InvalidState as exc:
                write_log(task.log, ev="error", tag="family", kind=type(exc).__name__, msg=str(exc))
            return None
        ctx.spawn_child(Kid(log=task.log, tag="first", sibling=True))
        return "tree"

    def finalize(self, task: Family, memo: str, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="finalize", tag="family", memo=memo,
                  kids=sorted((k.label, k.status) for k in ctx.children()))  # fmt: skip


@flow.executor(Kid)
def run_kid(task: Kid, ctx: tm.TaskContext) -> None:
    if task.sibling:
        out = ctx.spawn_sibling(Kid(log=task.log, tag="second"), label="second")
        write_log(task.log, ev="sibling", tag=task.tag, id=out.id)
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id, parent=ctx.record.parent_id)


# -- recurring -------------------------------------------------------------------------------------------------


class Tick(tm.Task):
    task_type: ClassVar[str] = "tick"
    log: str
    tag: str
    sleep: float = 0.0


@flow.executor(Tick)
def run_tick(task: Tick, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id)
    time.sleep(task.sleep)
    write_log(task.log, ev="end", tag=task.tag, id=ctx.record.id)


# -- TTL from the first attempt: fails once, retries later ----------------------------------------------------


class Retrier(tm.Task):
    task_type: ClassVar[str] = "retrier"
    log: str
    tag: str
    retry_after: float = 1.0


@flow.executor(Retrier)
def run_retrier(task: Retrier, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, id=ctx.record.id, attempt=ctx.record.attempt)
    raise tm.TaskError.retryable("try again later", retry_after=task.retry_after)


# -- a parent whose children are delayed (TTL cascade) --------------------------------------------------------


class Delayer(tm.Task):
    task_type: ClassVar[str] = "delayer"
    log: str
    children: int = 2
    child_delay: float = 5.0


@flow.executor(Delayer)
class DelayerExec:
    def execute(self, task: Delayer, ctx: tm.TaskContext) -> None:
        ctx.spawn_children([Step(log=task.log, tag=f"late{i}") for i in range(task.children)],
                           run_after=task.child_delay)  # fmt: skip

    def finalize(self, task: Delayer, memo: None, ctx: tm.TaskContext) -> None:
        write_log(task.log, ev="finalize", tag="delayer")

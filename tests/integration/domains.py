"""Domains, task types and executors shared by the integration and crash tests.

Workers are separate processes: they import this module (``tests.integration.domains``) to find the
executors, so everything here is defined at module level. Executors report what they did by appending one
JSON line per event to the file named in the payload (``log``); see :func:`read_log`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import taskmill as tm

# -- the ledger -----------------------------------------------------------------------------------------


def write_log(path: str, **fields: Any) -> None:
    """Append one JSON line with a single O_APPEND write (atomic for short lines across processes)."""
    fields.setdefault("pid", os.getpid())
    fields.setdefault("t", time.time())
    line = (json.dumps(fields, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_log(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every complete line. A reader can see another process's append half copied (its size already grown),
    so a last line without its newline is still being written: the next read gets it whole."""
    p = Path(path)
    if not p.exists():
        return []
    done, _, _ = p.read_text().rpartition("\n")
    return [json.loads(line) for line in done.splitlines() if line.strip()]


def _record(ctx: tm.TaskContext) -> dict[str, Any]:
    r = ctx.record
    return {"id": r.id, "attempt": r.attempt, "retry_count": r.retry_count, "priority": r.priority}


def _count(path: str, tag: str, ev: str = "start") -> int:
    return sum(1 for e in read_log(path) if e.get("tag") == tag and e.get("ev") == ev)


# -- domains --------------------------------------------------------------------------------------------

main = tm.Domain("tm_main")
other = tm.Domain("tm_other")
capped = tm.Domain("tm_capped", max_concurrency=1)
payloads = tm.Domain("tm_payloads")


# -- tm_main: sync, async and class executors -------------------------------------------------------------


class Note(tm.Task, frozen=True):
    """Sync: log start, sleep, log end."""

    task_type: ClassVar[str] = "note"
    log: str
    tag: str
    sleep: float = 0.0


@main.executor(Note)
def run_note(task: Note, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, **_record(ctx))
    if task.sleep:
        time.sleep(task.sleep)
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


class SwitchProbe(tm.Task, frozen=True):
    """Logs the worker's GIL switch interval."""

    task_type: ClassVar[str] = "switch_probe"
    log: str


@main.executor(SwitchProbe)
def run_switch_probe(task: SwitchProbe, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="switch", value=sys.getswitchinterval())


class Keyed(tm.Task, frozen=True):
    """Sync, explicit dedup key; waits for ``gate`` (a file path) to exist before finishing."""

    task_type: ClassVar[str] = "keyed"
    log: str
    k: str
    tag: str = ""
    gate: str = ""

    def key(self) -> str | None:
        return self.k


@main.executor(Keyed)
def run_keyed(task: Keyed, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, k=task.k, **_record(ctx))
    deadline = time.monotonic() + 30
    while task.gate and not os.path.exists(task.gate) and time.monotonic() < deadline:
        time.sleep(0.005)
    write_log(task.log, ev="end", tag=task.tag, k=task.k, **_record(ctx))


def burn(iterations: int) -> int:
    """A fixed amount of pure-Python CPU work (holds the GIL throughout)."""
    x = 0
    for i in range(iterations):
        x = (x * 31 + i) % 1_000_003
    return x


class Spin(tm.Task, frozen=True):
    """CPU-bound pure Python: a fixed number of loop iterations (so two on one core take twice as long)."""

    task_type: ClassVar[str] = "spin"
    log: str
    tag: str
    iterations: int


@main.executor(Spin)
def run_spin(task: Spin, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, **_record(ctx))
    cpu0 = time.process_time()
    burn(task.iterations)
    write_log(task.log, ev="end", tag=task.tag, cpu=time.process_time() - cpu0, **_record(ctx))


class Nap(tm.Task, frozen=True):
    """Async: log start, asyncio.sleep, log end."""

    task_type: ClassVar[str] = "nap"
    log: str
    tag: str
    sleep: float = 0.0


@main.executor(Nap)
async def run_nap(task: Nap, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, **_record(ctx))
    import asyncio  # here, not at the top: workers of this module's sync-only domains never import it

    await asyncio.sleep(task.sleep)
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


class Tally(tm.Task, frozen=True):
    task_type: ClassVar[str] = "tally"
    log: str
    tag: str


@main.executor(Tally)
class Tallier:
    """A class executor: instantiated once per worker process, ``execute`` called per task."""

    instances: ClassVar[int] = 0

    def __init__(self) -> None:
        type(self).instances += 1
        self.calls = 0

    def execute(self, task: Tally, ctx: tm.TaskContext) -> None:
        self.calls += 1
        write_log(
            task.log,
            ev="start",
            tag=task.tag,
            obj=id(self),
            calls=self.calls,
            instances=type(self).instances,
            **_record(ctx),
        )


class AsyncTally(tm.Task, frozen=True):
    task_type: ClassVar[str] = "async_tally"
    log: str
    tag: str
    sleep: float = 0.0


@main.executor(AsyncTally)
class AsyncTallier:
    """A class executor whose ``execute`` is a coroutine."""

    def __init__(self) -> None:
        self.calls = 0

    async def execute(self, task: AsyncTally, ctx: tm.TaskContext) -> None:
        self.calls += 1
        write_log(task.log, ev="start", tag=task.tag, obj=id(self), calls=self.calls, **_record(ctx))
        import asyncio

        await asyncio.sleep(task.sleep)
        write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


class Flaky(tm.Task, frozen=True):
    """Fails its first ``fail_times`` executions (counted in the log), then succeeds.

    ``mode``: retryable | permanent | exception | selfkill.
    """

    task_type: ClassVar[str] = "flaky"
    log: str
    tag: str
    mode: str = "retryable"
    fail_times: int = 1_000_000
    message: str = "flaky failure"
    retry_after: float | None = None


@main.executor(Flaky)
def run_flaky(task: Flaky, ctx: tm.TaskContext) -> None:
    n = _count(task.log, task.tag)
    write_log(task.log, ev="start", tag=task.tag, n=n, **_record(ctx))
    if n < task.fail_times:
        if task.mode == "retryable":
            raise tm.TaskError.retryable(task.message, retry_after=task.retry_after)
        if task.mode == "permanent":
            raise tm.TaskError.permanent(task.message)
        if task.mode == "exception":
            raise ValueError(task.message)
        if task.mode == "selfkill":
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


class Hang(tm.Task, frozen=True):
    """The first execution logs its pid and sleeps ``seconds``; later ones finish at once."""

    task_type: ClassVar[str] = "hang"
    log: str
    tag: str
    seconds: float = 30.0


@main.executor(Hang)
def run_hang(task: Hang, ctx: tm.TaskContext) -> None:
    n = _count(task.log, task.tag)
    write_log(task.log, ev="start", tag=task.tag, n=n, **_record(ctx))
    if n == 0:
        time.sleep(task.seconds)
    write_log(task.log, ev="end", tag=task.tag, n=n, **_record(ctx))


class Report(tm.Task, frozen=True):
    """Reports progress twice."""

    task_type: ClassVar[str] = "report"
    log: str
    tag: str


@main.executor(Report)
def run_report(task: Report, ctx: tm.TaskContext) -> None:
    ctx.progress.report(0.5, "half way")
    time.sleep(0.06)
    ctx.progress.report(1.0, "done")
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


# -- tm_other: a task type with the same name as one in tm_main -----------------------------------------


class OtherKeyed(tm.Task, frozen=True):
    task_type: ClassVar[str] = "keyed"
    log: str
    k: str

    def key(self) -> str | None:
        return self.k


@other.executor(OtherKeyed)
def run_other_keyed(task: OtherKeyed, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag="other", k=task.k, **_record(ctx))


# -- tm_capped: a domain with max_concurrency=1 ----------------------------------------------------------


class CappedNap(tm.Task, frozen=True):
    task_type: ClassVar[str] = "capped_nap"
    log: str
    tag: str
    sleep: float = 0.0


@capped.executor(CappedNap)
async def run_capped_nap(task: CappedNap, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, **_record(ctx))
    import asyncio

    await asyncio.sleep(task.sleep)
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


class CappedNote(tm.Task, frozen=True):
    task_type: ClassVar[str] = "capped_note"
    log: str
    tag: str
    sleep: float = 0.0


@capped.executor(CappedNote)
def run_capped_note(task: CappedNote, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=task.tag, **_record(ctx))
    time.sleep(task.sleep)
    write_log(task.log, ev="end", tag=task.tag, **_record(ctx))


# -- tm_payloads: validation ----------------------------------------------------------------------------


class Strict(tm.Task, frozen=True):
    task_type: ClassVar[str] = "strict"
    log: str
    value: int


@payloads.executor(Strict)
def run_strict(task: Strict, ctx: tm.TaskContext) -> None:
    write_log(task.log, ev="start", tag=f"strict-{task.value}", **_record(ctx))


class Blob(tm.Task, frozen=True):
    task_type: ClassVar[str] = "blob"
    data: str


@payloads.executor(Blob)
def run_blob(task: Blob, ctx: tm.TaskContext) -> None:
    pass


class Orphan(tm.Task, frozen=True):
    """A task type with no executor anywhere."""

    task_type: ClassVar[str] = "orphan"
    x: int = 0

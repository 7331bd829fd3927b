"""Task types for the reliability suite. Workers import this module, so everything is at module level.

Every executor brackets its work with :func:`tests.crash.ledger.execution`, keyed by ``n``: the
submitter's unique number for the task.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from typing import ClassVar

import taskmill as tm
from tests.crash import ledger

fault = tm.Domain("tm_fault")
_leaked: list[bytes] = []
keys = tm.Domain("tm_fault_keys")


class Job(tm.Task, frozen=True):
    """Sync: sleep ``ms`` milliseconds (0: return at once); ``die``: SIGKILL its own worker every time
    (``die_attempt1``: on attempt 1 only); ``first_ms``: sleep that long instead on the task's first
    execution (per the ledger); ``attempt1_ms``: on attempt 1 (cheaper: no ledger read)."""

    task_type: ClassVar[str] = "job"
    ledger: str
    n: int
    ms: float = 0.0
    die: bool = False
    first_ms: float = 0.0
    leak_kb: int = 0  # memory kept by the worker process after each run (a leaky task)
    die_attempt1: bool = False
    attempt1_ms: float = 0.0


@fault.executor(Job)
def run_job(task: Job, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        if task.die or (task.die_attempt1 and ctx.record.attempt == 1):
            os.kill(os.getpid(), signal.SIGKILL)
        if task.leak_kb:
            _leaked.append(b"x" * (task.leak_kb << 10))
        ms = task.ms
        if task.first_ms and len(ledger.read(task.ledger).started(task.n)) == 1:
            ms = task.first_ms
        elif task.attempt1_ms and ctx.record.attempt == 1:
            ms = task.attempt1_ms
        if ms:
            time.sleep(ms / 1000)


class Bomb(tm.Task, frozen=True):
    """Allocates 1 MiB after 1 MiB without bound (``mib`` is a backstop, should no memory limit apply), and
    keeps all of it."""

    task_type: ClassVar[str] = "bomb"
    ledger: str
    n: int
    mib: int = 1 << 16


@fault.executor(Bomb)
def run_bomb(task: Bomb, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        hoard = [bytearray(1 << 20) for _ in range(task.mib)]
        del hoard


class AsyncJob(tm.Task, frozen=True):
    """Async: several share one worker."""

    task_type: ClassVar[str] = "async_job"
    ledger: str
    n: int
    ms: float = 0.0


@fault.executor(AsyncJob)
async def run_async_job(task: AsyncJob, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        await asyncio.sleep(task.ms / 1000)


class Deaf(tm.Task, frozen=True):
    """Ignores every stop signal it can and has a grandchild (``sleep``) in its worker's process group: only
    SIGKILL of the group stops it. Later attempts return at once."""

    task_type: ClassVar[str] = "deaf"
    ledger: str
    n: int
    seconds: float = 60.0


@fault.executor(Deaf)
def run_deaf(task: Deaf, ctx: tm.TaskContext) -> None:
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    child = subprocess.Popen(["sleep", "1000"])
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        ledger.append(task.ledger + ".children", f"{child.pid}\n")
        end = time.monotonic() + (task.seconds if ctx.record.attempt == 1 else 0)
        while time.monotonic() < end:
            pass  # pure-Python spin that never looks at ctx.cancelled
    child.kill()
    child.wait()


class Polite(tm.Task, frozen=True):
    """Checks ``ctx.cancelled`` every millisecond and stops by raising; later attempts return at once."""

    task_type: ClassVar[str] = "polite"
    ledger: str
    n: int
    seconds: float = 60.0


@fault.executor(Polite)
def run_polite(task: Polite, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        end = time.monotonic() + (task.seconds if ctx.record.attempt == 1 else 0)
        while time.monotonic() < end:
            if ctx.cancelled:
                raise tm.TaskError.retryable("preempted")
            time.sleep(0.001)


class Garbage(tm.Task, frozen=True):
    """On its first attempt writes ``data`` straight into its worker's channel to the supervisor (a corrupt
    frame from broken task code), then runs on for ``then`` seconds; later attempts return at once."""

    task_type: ClassVar[str] = "garbage"
    ledger: str
    n: int
    data: bytes
    then: float = 30.0


@fault.executor(Garbage)
def run_garbage(task: Garbage, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        if ctx.record.attempt == 1:
            fd = int(sys.argv[sys.argv.index("--fd") + 1])
            os.write(fd, task.data)
            time.sleep(task.then)


class Strict(tm.Task, frozen=True):
    """A typed payload for the decode tests."""

    task_type: ClassVar[str] = "strict"
    ledger: str
    n: int
    value: int


@fault.executor(Strict)
def run_strict(task: Strict, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        pass


class Keyed(tm.Task, frozen=True):
    """An explicit idempotency key."""

    task_type: ClassVar[str] = "keyed"
    ledger: str
    n: int
    k: str

    def key(self) -> str | None:
        return self.k


@keys.executor(Keyed)
def run_keyed(task: Keyed, ctx: tm.TaskContext) -> None:
    with ledger.execution(task.ledger, task.n, ctx.record.id, ctx.record.attempt):
        pass

"""Task types and executors of the project benchmark (``python -m benchmarks``).

They live at module level in an importable module because the scheduler's worker processes are exec'd and
import the domain's module by name; a domain defined inside a function would be invisible to them.

Executors record completions through the peer protocol's ``taskbody.mark()`` (one ``O_APPEND`` write of
``"<kind> <i> <t_submit> <t_start> <t_end> <pid>"`` to ``$PEERS_DONE_FILE``), so timings come from the
executors themselves and the harness never has to query the scheduler while it is being measured.

Three domains, so a workload registers only what it uses: a scheduler with any async executor claims
differently (see docs/benchmarks.md), so the sync workloads never see ``naps``.
"""

from __future__ import annotations

import time
from typing import ClassVar

import taskmill as tm

from .peers import taskbody

bench = tm.Domain("bench")
naps = tm.Domain("naps")  # async, I/O-bound
flaky = tm.Domain("flaky", default_retry=tm.RetryPolicy.constant(2))  # 3 attempts, inline retries


class Noop(tm.Task):
    """A no-op; ``t_submit`` and ``kind`` only matter for the latency workload."""

    task_type: ClassVar[str] = "noop"
    i: int
    t_submit: float = 0.0
    kind: str = "n"


class Spin(tm.Task):
    """``spin(1_600_000)``: pure-Python CPU work that holds the GIL (peer protocol W5)."""

    task_type: ClassVar[str] = "spin"
    i: int
    t_submit: float = 0.0


class Doze(tm.Task):
    """``time.sleep(ms)`` in a sync executor: blocking work (a sync HTTP call, a file copy) that holds its worker
    for milliseconds but not a core. Prefetch leaves such tasks one at a time (see ``policy.dispatch``)."""

    task_type: ClassVar[str] = "doze"
    i: int
    ms: float = 2.0


class Nap(tm.Task):
    """``await asyncio.sleep(ms)``: an I/O-bound task, so one worker can run many at once."""

    task_type: ClassVar[str] = "nap"
    i: int
    ms: float = 5.0
    kind: str = "a"


class Stream(tm.Task):
    """An async transfer: ``add_bytes(chunk)`` every ``every_ms`` until ``seconds`` have passed (snapshots)."""

    task_type: ClassVar[str] = "stream"
    i: int
    seconds: float
    chunk: int = 64 * 1024
    every_ms: float = 10.0


class Flaky(tm.Task):
    """Fails every attempt: retryable (3 attempts, then dead letter) or permanent (failed at once)."""

    task_type: ClassVar[str] = "flaky"
    i: int
    permanent: bool = False


@bench.executor(Noop)
def run_noop(task: Noop, ctx: tm.TaskContext) -> None:
    taskbody.noop(task.i, task.t_submit, task.kind)


@bench.executor(Spin)
def run_spin(task: Spin, ctx: tm.TaskContext) -> None:
    taskbody.cpu(task.i, task.t_submit)


@bench.executor(Doze)
def run_doze(task: Doze, ctx: tm.TaskContext) -> None:
    t_start = time.time()
    time.sleep(task.ms / 1000.0)
    taskbody.mark("n", task.i, 0.0, t_start)


@naps.executor(Nap)
async def run_nap(task: Nap, ctx: tm.TaskContext) -> None:
    import asyncio  # here, not at the top: the workers of the sync workloads never import asyncio

    t_start = time.time()
    await asyncio.sleep(task.ms / 1000.0)
    taskbody.mark(task.kind, task.i, 0.0, t_start)


@naps.executor(Stream)
async def run_stream(task: Stream, ctx: tm.TaskContext) -> None:
    import asyncio

    deadline = time.monotonic() + task.seconds
    ctx.set_bytes_total(int(task.seconds * 1000 / task.every_ms) * task.chunk)
    while time.monotonic() < deadline:
        await asyncio.sleep(task.every_ms / 1000.0)
        ctx.add_bytes(task.chunk)


@flaky.executor(Flaky)
def run_flaky(task: Flaky, ctx: tm.TaskContext) -> None:
    taskbody.mark("p" if task.permanent else "f", task.i, 0.0, time.time())
    if task.permanent:
        raise tm.TaskError.permanent("permanent failure")
    raise tm.TaskError.retryable("transient failure")

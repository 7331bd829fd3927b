"""Domains for the worker-runtime tests, in a module that does not import asyncio itself.

``loopless`` has only sync executors; ``looped`` has an async one. A worker hosts only the domains of its
scheduler, so a scheduler of ``loopless`` alone gets workers that never import asyncio or uvloop, even though
this module also defines ``looped``.
"""

from __future__ import annotations

import sys
from typing import ClassVar

import taskmill as tm
from tests.integration.domains import write_log  # that module imports asyncio only inside its executors

loopless = tm.Domain("tm_loopless")
looped = tm.Domain("tm_looped")


class Probe(tm.Task):
    task_type: ClassVar[str] = "probe"
    log: str
    tag: str = "probe"


class AsyncProbe(tm.Task):
    task_type: ClassVar[str] = "async_probe"
    log: str


@loopless.executor(Probe)
def probe(task: Probe, ctx: tm.TaskContext) -> None:
    """Report which event-loop modules this worker has loaded, then run a coroutine with ``asyncio.run``
    (it refuses to run inside a running loop)."""
    loaded = {name: name in sys.modules for name in ("asyncio", "uvloop")}
    import asyncio

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    try:
        ran: object = asyncio.run(answer())
    except RuntimeError as exc:
        ran = str(exc)
    write_log(task.log, ev="probe", tag=task.tag, ran=ran, **loaded)


@looped.executor(AsyncProbe)
async def async_probe(task: AsyncProbe, ctx: tm.TaskContext) -> None:
    import asyncio

    await asyncio.sleep(0)
    write_log(task.log, ev="async_probe", tag="async")

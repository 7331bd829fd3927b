"""taskmill side of the peer benchmark: one domain with the protocol's two tasks (``noop`` and ``cpu``).

Imported by name (``benchmarks.peers.taskmill_peer.tasks``) in three places: the harness, which submits
these typed payloads through ``taskmill.connect()``; the supervisor process (``supervise.py``); and the
worker processes, which the supervisor execs and which import the domain's module to find its executors.
Both bodies delegate to the shared ``taskbody`` so every peer does identical work per task.
"""

from __future__ import annotations

from typing import ClassVar

import taskmill as tm

from .. import taskbody

peer = tm.Domain("peer")


class NoopTask(tm.Task):
    task_type: ClassVar[str] = "noop"
    i: int
    t_submit: float
    kind: str


class CpuTask(tm.Task):
    task_type: ClassVar[str] = "cpu"
    i: int
    t_submit: float


@peer.executor(NoopTask)
def noop(task: NoopTask, ctx: tm.TaskContext) -> None:
    taskbody.noop(task.i, task.t_submit, task.kind)


@peer.executor(CpuTask)
def cpu(task: CpuTask, ctx: tm.TaskContext) -> None:
    taskbody.cpu(task.i, task.t_submit)


#: The harness's task names (protocol §2.1) mapped to payload classes.
TASKS: dict[str, type[tm.Task]] = {"noop": NoopTask, "cpu": CpuTask}

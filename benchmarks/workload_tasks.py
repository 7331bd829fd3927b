"""Task types and executors of the project benchmark (``python -m benchmarks.run``).

They live at module level in an importable module because the scheduler's worker processes are exec'd and
import the domain's module by name; a domain defined inside a function would be invisible to them.

Executors record completions through the peer protocol's ``taskbody.mark()`` (one ``O_APPEND`` write of
``"<kind> <i> <t_submit> <t_start> <t_end> <pid>"`` to ``$PEERS_DONE_FILE``), so timings come from the
executors themselves and the harness never has to query the scheduler while it is being measured.
"""

from __future__ import annotations

from typing import ClassVar

import taskmill as tm

from .peers import taskbody

bench = tm.Domain("bench")


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


@bench.executor(Noop)
def run_noop(task: Noop, ctx: tm.TaskContext) -> None:
    taskbody.noop(task.i, task.t_submit, task.kind)


@bench.executor(Spin)
def run_spin(task: Spin, ctx: tm.TaskContext) -> None:
    taskbody.cpu(task.i, task.t_submit)

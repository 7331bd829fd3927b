"""A domain in an importable module: the scheduler, its workers and other processes all import it."""

import os
from typing import ClassVar

import taskmill as tm

media = tm.Domain("media")


class Resize(tm.Task, frozen=True):
    task_type: ClassVar[str] = "resize"
    path: str
    width: int


@media.executor(Resize)
def resize(task: Resize, ctx: tm.TaskContext) -> None:
    print(f"worker {os.getpid()}: resize {task.path} to {task.width}px")

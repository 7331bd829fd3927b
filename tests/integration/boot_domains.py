"""A domain whose module refuses to load in a worker process when TASKMILL_TEST_FAIL_BOOT is set: the test
imports it first (variable unset), then sets the variable, so only the workers' import fails."""

from __future__ import annotations

import os
from typing import ClassVar

import taskmill as tm

if os.environ.get("TASKMILL_TEST_FAIL_BOOT"):
    raise RuntimeError("this module refuses to load in a worker")

boot = tm.Domain("tm_boot")


class Hello(tm.Task, frozen=True):
    task_type: ClassVar[str] = "hello"


@boot.executor(Hello)
def hello(task: Hello, ctx: tm.TaskContext) -> None:
    pass

import os
from typing import ClassVar

import taskmill as tm

media = tm.Domain("media")


class Resize(tm.Task, frozen=True):
    task_type: ClassVar[str] = "resize"  # stored as "media::resize"
    path: str
    width: int


@media.executor(Resize)
def resize(task: Resize, ctx: tm.TaskContext) -> None:
    print(f"resizing {task.path} to {task.width}px in worker {os.getpid()}")


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[media]) as scheduler:  # starts the worker processes
        h = scheduler.domain(media)
        h.submit(Resize(path="/photos/cover.jpg", width=300), priority=tm.Priority.HIGH)
        h.submit_batch([Resize(path=f"/photos/{i}.jpg", width=300) for i in range(5)])
        scheduler.wait_until_idle()

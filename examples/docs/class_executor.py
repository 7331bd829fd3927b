import os
from typing import ClassVar

import msgspec

import taskmill as tm


class Settings(msgspec.Struct):
    """Plain data: encoded once and sent to every worker."""

    bucket: str


class HttpSession:
    """A factory: built once in each worker process (sockets cannot cross process boundaries)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.requests = 0


media = tm.Domain("media", state=[HttpSession])


class Publish(tm.Task, frozen=True):
    task_type: ClassVar[str] = "publish"
    path: str


@media.executor(Publish)
class Publisher:
    def __init__(self) -> None:  # once per worker process, on first use
        self.published = 0

    def execute(self, task: Publish, ctx: tm.TaskContext) -> None:
        http = ctx.state(HttpSession)  # the domain's state first, then the scheduler's app_state
        settings = ctx.state(Settings)
        http.requests += 1
        self.published += 1
        print(f"worker {http.pid}: s3://{settings.bucket}{task.path} (request #{http.requests})")


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[media], workers=2, app_state=[Settings(bucket="photos")])
    with scheduler:
        scheduler.domain(media).submit_batch([Publish(path=f"/{i}.jpg") for i in range(6)])
        scheduler.wait_until_idle()

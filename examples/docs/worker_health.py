import logging
import os
import signal
import sys
import time
from collections import Counter
from typing import ClassVar

import taskmill as tm

jobs = tm.Domain("jobs")
_cache: list[bytes] = []  # a leak: it grows with every Thumbnail a worker runs


class Thumbnail(tm.Task, frozen=True):
    task_type: ClassVar[str] = "thumbnail"
    n: int
    leak_mb: int = 0


@jobs.executor(Thumbnail)
def thumbnail(task: Thumbnail, ctx: tm.TaskContext) -> None:
    _cache.append(b"x" * (task.leak_mb << 20))
    time.sleep(0.005)  # render it


class Convert(tm.Task, frozen=True):
    task_type: ClassVar[str] = "convert"


@jobs.executor(Convert)
def convert(task: Convert, ctx: tm.TaskContext) -> None:
    if ctx.record.attempt == 1:
        os.kill(os.getpid(), signal.SIGSTOP)  # the first attempt freezes its worker: a hang


def worker_pids(events: tm.Subscription) -> list[int]:
    return [e.worker_pid for e in iter(events.get_nowait, None) if isinstance(e, tm.Dispatched)]


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  log: %(message)s")  # the supervisor logs kills

    # Recycling by task count: each worker retires after about 5 tasks (±10%) and is replaced.
    with tm.Scheduler("count.db", domains=[jobs], workers=1, max_tasks_per_worker=5) as scheduler:
        events = scheduler.subscribe()
        scheduler.domain(jobs).submit_batch([Thumbnail(n=i) for i in range(15)])
        scheduler.wait_until_idle()
        per_worker = list(Counter(worker_pids(events)).values())
        print("tasks per worker process:", per_worker)
        assert sum(per_worker) == 15 and len(per_worker) >= 2

    # Recycling by memory: a worker whose RSS passed 200 MB is replaced before it takes more work.
    with tm.Scheduler("memory.db", domains=[jobs], workers=1, max_worker_memory=200 << 20) as scheduler:
        events = scheduler.subscribe()
        h = scheduler.domain(jobs)
        h.submit(Thumbnail(n=0, leak_mb=250))
        scheduler.wait_until_idle()
        h.submit(Thumbnail(n=1))
        scheduler.wait_until_idle()
        pids = worker_pids(events)
        print("after the leak, the next task ran in a new worker:", pids[0] != pids[1])
        assert pids[0] != pids[1]

    # Hang detection: a worker that sends nothing for hang_timeout is killed; the attempt counts as failed.
    with tm.Scheduler("hang.db", domains=[jobs], workers=1, hang_timeout=0.5, heartbeat_interval=0.1) as scheduler:
        tid = scheduler.domain(jobs).submit(Convert()).id
        scheduler.wait_until_idle()
        r = scheduler.history_of(tid)[0]
        print(f"after the hang: {r.status}, failed attempts: {r.retry_count}")
        assert r.status == "completed" and r.retry_count == 1

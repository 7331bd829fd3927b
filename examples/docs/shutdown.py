import time
from typing import ClassVar

import taskmill as tm

jobs = tm.Domain("jobs")


class Export(tm.Task, frozen=True):
    task_type: ClassVar[str] = "export"
    seconds: float


@jobs.executor(Export)
def export(task: Export, ctx: tm.TaskContext) -> None:
    time.sleep(task.seconds)


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[jobs], workers=1, shutdown=tm.ShutdownMode.graceful(0.5))
    tid = scheduler.domain(jobs).submit(Export(seconds=1.5)).id
    scheduler.start()
    while scheduler.running_count() == 0:
        time.sleep(0.01)
    t0 = time.monotonic()
    scheduler.stop()  # no new claims; running tasks get 0.5 s, then their workers are killed
    took = time.monotonic() - t0
    rec = scheduler.task(tid)
    print(f"stopped in {took:.1f} s; task {tid} is {rec.status}, retry_count {rec.retry_count}")
    scheduler.close()

    with tm.Scheduler("tasks.db", domains=[jobs], workers=1) as scheduler:  # the next start runs it
        scheduler.wait_until_idle()
        print("next run:", [(r.status, r.retry_count) for r in scheduler.history_of(tid)])

import time
from typing import ClassVar

import taskmill as tm
from taskmill.events import TaskPaused

reports = tm.Domain("reports")


class Build(tm.Task, frozen=True):
    task_type: ClassVar[str] = "build"
    name: str
    seconds: float = 0.05


@reports.executor(Build)
def build(task: Build, ctx: tm.TaskContext) -> None:
    time.sleep(task.seconds)


def status(scheduler: tm.Scheduler, task_id: int) -> str:
    rec = scheduler.task(task_id)
    return rec.status if rec is not None else scheduler.history_of(task_id)[0].status


def wait_for(scheduler: tm.Scheduler, task_id: int, wanted: str) -> float:
    t0 = time.monotonic()
    while status(scheduler, task_id) != wanted:
        time.sleep(0.01)
    return time.monotonic() - t0


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[reports], workers=1) as scheduler:
        events = scheduler.subscribe()
        h = scheduler.domain(reports)

        # Domain pause: the running task is stopped and paused, new submissions are stored paused.
        long = h.submit(Build(name="yearly", seconds=0.5)).id
        while status(scheduler, long) != "running":
            time.sleep(0.01)
        print("pause domain ->", h.pause(), "task(s)")
        wait_for(scheduler, long, "paused")
        later = h.submit(Build(name="monthly"))
        print("submitted while paused:", later.paused, status(scheduler, later.id), h.is_paused())
        print("resume domain ->", h.resume(), "task(s) pending again")
        scheduler.wait_until_idle()
        r = scheduler.history_of(long)[0]
        print(f"the stopped task reran from the start: {r.status}, retries used: {r.retry_count}")
        assert r.status == "completed" and r.retry_count == 0

        # Reasons combine: a task paused by its domain and its group waits until both are lifted.
        h.pause()
        scheduler.pause_group("nightly")
        tid = h.submit(Build(name="digest"), group="nightly").id
        h.resume()
        time.sleep(0.2)
        print("domain resumed, group still paused:", status(scheduler, tid))
        assert status(scheduler, tid) == "paused"
        print("resume group ->", scheduler.resume_group("nightly"))
        wait_for(scheduler, tid, "completed")

        # Timed group pause; pausing again moves the resume time.
        scheduler.pause_group_until("nightly", 3600)
        paused_at = time.monotonic()
        scheduler.pause_group_until("nightly", 0.3)  # now in 0.3 s, not in an hour
        out = h.submit(Build(name="backup"), group="nightly")
        print("paused groups:", scheduler.paused_groups(), "group_paused:", out.group_paused)
        wait_for(scheduler, out.id, "completed")
        took = time.monotonic() - paused_at
        print(f"resumed on its own after {took:.1f} s")
        assert 0.25 < took < 5 and not scheduler.is_group_paused("nightly")

        # Global pause: nothing is dispatched; queued tasks stay pending.
        scheduler.pause_all()
        held = h.submit(Build(name="audit")).id
        time.sleep(0.3)
        print("globally paused:", scheduler.is_paused(), status(scheduler, held))
        assert status(scheduler, held) == "pending"
        scheduler.resume_all()
        wait_for(scheduler, held, "completed")

        seen = list(iter(events.get_nowait, None))
        print([type(e).__name__ for e in seen if not isinstance(e, tm.Dispatched | tm.Completed)])
        paused = [e.header.task_id for e in seen if isinstance(e, TaskPaused)]
        attempts = [e.attempt for e in seen if isinstance(e, tm.Dispatched) and e.header.task_id == long]
        assert paused == [long] and attempts == [1, 2]

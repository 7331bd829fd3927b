import time
from typing import ClassVar

import taskmill as tm
from taskmill.events import Preempted

render = tm.Domain("render")


def burn(seconds: float) -> None:
    """Pure-Python CPU work: it never returns to taskmill until it is done."""
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


class Frame(tm.Task, frozen=True):
    """Cooperative: it checks for a stop request between tiles."""

    task_type: ClassVar[str] = "frame"
    number: int
    tiles: int = 20


@render.executor(Frame)
def draw_frame(task: Frame, ctx: tm.TaskContext) -> None:
    for tile in range(task.tiles):
        ctx.check_cancelled()  # raises tm.TaskCancelled once the task is preempted, paused or cancelled
        burn(0.05)  # draw one tile
        ctx.progress.report_fraction(tile + 1, task.tiles)


class Checksum(tm.Task, frozen=True):
    """Not cooperative: one tight loop that never looks at ctx."""

    task_type: ClassVar[str] = "checksum"
    seconds: float


@render.executor(Checksum)
def checksum(task: Checksum, ctx: tm.TaskContext) -> None:
    burn(task.seconds)  # interrupted anyway: a signal raises TaskCancelled inside the loop


class Alert(tm.Task, frozen=True):
    task_type: ClassVar[str] = "alert"
    message: str


@render.executor(Alert)
def alert(task: Alert, ctx: tm.TaskContext) -> None:
    time.sleep(0.5)  # page someone


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[render], workers=3) as scheduler:
        events = scheduler.subscribe()
        h = scheduler.domain(render)
        frame = h.submit(Frame(number=1)).id
        check = h.submit(Checksum(seconds=1.0)).id
        while scheduler.running_count() < 2:  # two workers busy, the third idle
            time.sleep(0.01)
        time.sleep(0.2)

        t0 = time.monotonic()
        urgent = h.submit(Alert(message="disk almost full"), priority=tm.Priority.REALTIME).id
        seen: list[tm.Event] = []
        while sum(isinstance(e, Preempted) for e in seen) < 2:
            seen.append(e := events.get(timeout=5))
            if isinstance(e, Preempted):
                print(f"task {e.header.task_id} preempted {(time.monotonic() - t0) * 1000:.0f} ms after the submit")
        print("while the alert runs, the frame is", scheduler.task(frame).status)  # paused, a worker idle
        scheduler.wait_until_idle()
        seen += iter(events.get_nowait, None)

        order = [(type(e).__name__, e.header.task_id) for e in seen if e.header is not None]
        alert_done = order.index(("Completed", urgent))
        for tid in (frame, check):
            attempts = [e.attempt for e in seen if isinstance(e, tm.Dispatched) and e.header.task_id == tid]
            rerun = order.index(("Dispatched", tid), order.index(("Preempted", tid)))
            r = scheduler.history_of(tid)[0]
            print(f"task {tid}: attempts {attempts}, {r.status}, retries used: {r.retry_count}")
            assert rerun > alert_done  # it came back only once the alert had finished
            assert attempts == [1, 2] and r.status == "completed" and r.retry_count == 0
        assert not any(isinstance(e, tm.WorkerDied) for e in seen)  # stopped in place: no worker killed

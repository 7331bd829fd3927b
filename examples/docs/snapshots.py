import time
from typing import ClassVar

import msgspec

import taskmill as tm

media = tm.Domain("media")


class Render(tm.Task, frozen=True):
    task_type: ClassVar[str] = "render"
    frame: int
    seconds: float


@media.executor(Render)
def render(task: Render, ctx: tm.TaskContext) -> None:
    time.sleep(task.seconds)  # reports no progress: estimates come from past runs of the type


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[media], workers=1) as scheduler:
        h = scheduler.domain(media)
        h.submit_batch([Render(frame=i, seconds=0.2) for i in range(3)])  # some history: about 0.2 s each
        scheduler.wait_until_idle()
        h.submit(Render(frame=99, seconds=0.4), label="frame 99")
        time.sleep(0.1)

        for est in scheduler.estimated_progress():
            print(f"{est.header.label}: reported {est.reported}, extrapolated {est.extrapolated:.2f}")

        snap = scheduler.snapshot()  # one call for a dashboard
        print("running:", [(r.record.label, r.executing, r.worker_pid is not None) for r in snap.running])
        print("pending", snap.pending_count, "| paused", snap.paused_count, "| live", snap.live)
        ui = msgspec.json.decode(msgspec.json.encode(snap))  # plain JSON for any UI
        print(sorted(ui))

        print("domain:", h.snapshot().domain, len(h.snapshot().running), "running")
        with tm.connect("tasks.db") as client:  # another process: from the database alone
            print("client snapshot live:", client.snapshot().live)
        scheduler.wait_until_idle()

import asyncio
import time
from typing import ClassVar

import msgspec

import taskmill as tm

media = tm.Domain("media")


class Transcode(tm.Task, frozen=True):
    task_type: ClassVar[str] = "transcode"
    path: str


@media.executor(Transcode)
def transcode(task: Transcode, ctx: tm.TaskContext) -> None:
    for i in range(1, 5):
        time.sleep(0.06)
        ctx.progress.report_fraction(i, 4, f"segment {i}/4")  # coalesced to one event per 50 ms


async def watch(events: tm.Subscription, expected: int) -> None:
    done = 0
    async for event in events:  # or a plain `for` loop in a thread
        if isinstance(event, tm.Progress):
            print(f"  task {event.header.task_id}: {event.fraction:.0%} {event.message}")
        else:
            print(msgspec.json.encode(event).decode()[:100], "...")  # JSON for any UI
        final = isinstance(event, tm.Completed | tm.DeadLettered)
        if final or (isinstance(event, tm.Failed) and not event.will_retry):
            done += 1
            if done == expected:
                return


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[media], workers=1) as scheduler:
        events = scheduler.subscribe()  # bounded: a slow subscriber drops its oldest events
        scheduler.domain(media).submit_batch([Transcode(path="/a.mp4"), Transcode(path="/b.mp4")])
        asyncio.run(watch(events, expected=2))
        events.close()

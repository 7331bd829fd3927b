import asyncio
from typing import ClassVar

import taskmill as tm

media = tm.Domain("media", default_priority=tm.Priority.NORMAL)


class Resize(tm.Task, frozen=True):
    task_type: ClassVar[str] = "resize"  # stored qualified: "media::resize"
    path: str
    width: int

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:  # static defaults for every Resize
        return tm.TaskTypeConfig(retry=tm.RetryPolicy.exponential(3, base=1.0, max=60.0))

    def key(self) -> str | None:  # dedup key; None would hash the whole payload
        return f"{self.path}:{self.width}"


class Upload(tm.Task, frozen=True):
    task_type: ClassVar[str] = "upload"
    path: str


@media.executor(Resize)
def resize(task: Resize, ctx: tm.TaskContext) -> None:
    for step in range(4):
        ctx.progress.report(step / 4, "resizing")
    ctx.record_read_bytes(4096)
    ctx.record_write_bytes(1024)


@media.executor(Upload)
async def upload(task: Upload, ctx: tm.TaskContext) -> None:
    await asyncio.sleep(0.05)  # an HTTP call, say
    ctx.record_net_tx_bytes(1024)


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[media], workers=2)
    events = scheduler.subscribe()
    h = scheduler.domain(media)

    print(h.submit(Resize(path="/photos/a.jpg", width=300)).kind)  # inserted
    print(h.submit(Resize(path="/photos/a.jpg", width=300)).kind)  # duplicate: same key, still queued
    h.submit(Upload(path="/photos/a.jpg"), priority=tm.Priority.HIGH)
    batch = h.submit_batch([Resize(path=f"/photos/{i}.jpg", width=640) for i in range(10)])
    print(len(batch.inserted()), "inserted in one transaction")

    scheduler.start()  # spawns the worker processes, recovers, dispatches
    scheduler.wait_until_idle()
    scheduler.stop()

    seen = list(iter(events.get_nowait, None))  # events are msgspec Structs
    print("dispatch order:", [e.header.label for e in seen if isinstance(e, tm.Dispatched)][:3])
    for e in seen:
        if isinstance(e, tm.Completed) and e.header.task_type == "media::upload":
            print(f"upload done in {e.duration * 1000:.0f} ms")
    print([(r.task_id, r.status) for r in scheduler.history(limit=3)])
    scheduler.close()

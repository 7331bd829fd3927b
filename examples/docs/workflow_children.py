import time
from typing import ClassVar

import msgspec

import taskmill as tm

storage = tm.Domain("storage")


class UploadPart(tm.Task):
    task_type: ClassVar[str] = "upload_part"
    upload_id: str
    number: int


class Upload(tm.Task):
    task_type: ClassVar[str] = "upload"
    path: str
    parts: int


class UploadState(msgspec.Struct):  # what execute hands over to finalize
    upload_id: str
    parts: int


@storage.executor(UploadPart)
def upload_part(task: UploadPart, ctx: tm.TaskContext) -> None:
    time.sleep(0.05)  # send this part's bytes


@storage.executor(Upload)
class Uploader:
    def execute(self, task: Upload, ctx: tm.TaskContext) -> UploadState:
        upload_id = f"mpu-{task.path}"  # start the multipart upload
        ctx.spawn_children([UploadPart(upload_id=upload_id, number=n) for n in range(task.parts)])
        return UploadState(upload_id=upload_id, parts=task.parts)  # stored with the task

    def finalize(self, task: Upload, memo: UploadState, ctx: tm.TaskContext) -> None:
        done = [child for child in ctx.children() if child.ok]
        print(f"complete {memo.upload_id}: {len(done)} of {memo.parts} parts")


class Page(tm.Task):
    task_type: ClassVar[str] = "page"
    url: str
    depth: int = 0


class Crawl(tm.Task):
    task_type: ClassVar[str] = "crawl"
    url: str


@storage.executor(Crawl)
class Crawler:
    def execute(self, task: Crawl, ctx: tm.TaskContext) -> None:
        ctx.spawn_child(Page(url=task.url))

    def finalize(self, task: Crawl, memo: None, ctx: tm.TaskContext) -> None:
        print(f"crawled {len(ctx.children())} pages from {task.url}")


@storage.executor(Page)
def fetch_page(task: Page, ctx: tm.TaskContext) -> None:
    if task.depth < 2:  # found two links: crawl them as peers, under the same Crawl
        ctx.spawn_siblings([Page(url=f"{task.url}/{n}", depth=task.depth + 1) for n in range(2)])


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[storage], workers=2) as scheduler:
        events = scheduler.subscribe()
        h = scheduler.domain(storage)
        upload = h.submit(Upload(path="video.mp4", parts=4)).id
        crawl = h.submit(Crawl(url="https://example.org")).id
        scheduler.wait_until_idle()
        for task_id in (upload, crawl):
            print(task_id, scheduler.history_of(task_id)[0].status)
        waiting = [e for e in iter(events.get_nowait, None) if isinstance(e, tm.Waiting)]
        print("waited for children:", sorted(e.header.task_type for e in waiting))

"""Queries: active tasks, history with tags and IO, statistics, tag queries (docs/queries.md)."""

import time
from typing import ClassVar

import taskmill as tm

media = tm.Domain("media", default_tags={"app": "gallery"})


class Resize(tm.Task, frozen=True):
    task_type: ClassVar[str] = "resize"
    path: str
    width: int

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(expected_io=tm.IoBudget.disk(read=4_000_000, write=500_000))


@media.executor(Resize)
def resize(task: Resize, ctx: tm.TaskContext) -> None:
    time.sleep(0.02)  # read the image, scale it, write it
    ctx.record_read_bytes(3_800_000)
    ctx.record_write_bytes(420_000)


def submit_some(h: tm.DomainHandle) -> None:
    for i in range(6):
        tenant = "acme" if i % 3 else "initech"
        h.submit(Resize(path=f"/img/{i}.jpg", width=300), tags={"tenant": tenant, "batch.2024-06": "import"})
    h.submit(Resize(path="/img/later.jpg", width=300), run_after=3600, tags={"tenant": "acme"})


def show_queue(scheduler: tm.Scheduler) -> None:
    print("pending:", scheduler.pending_count(), scheduler.pending_by_type())
    print("acme tasks:", scheduler.task_ids_by_tags({"tenant": "acme"}))
    print("by tenant:", scheduler.count_by_tag("tenant"))  # [('acme', 5), ('initech', 2)]
    print("batch keys:", scheduler.tag_keys_by_prefix("batch."))  # ['batch.2024-06']


def show_history(scheduler: tm.Scheduler, h: tm.DomainHandle) -> None:
    last = scheduler.history(limit=1)[0]
    print(f"task {last.task_id}: {last.status} in {last.duration:.3f}s, read {last.actual_read_bytes} B,",
          f"tags {last.tags}")
    stats = h.history_stats(Resize)  # or scheduler.history_stats("media::resize")
    print(f"{stats.count} runs, failure rate {stats.failure_rate:.0%},",
          f"avg {stats.avg_duration_ms:.0f} ms, avg read {stats.avg_read_bytes:,.0f} B")
    read_bps, write_bps = scheduler.avg_throughput("media::resize", n=20)
    print(f"throughput: read {read_bps / 1e6:.0f} MB/s, write {write_bps / 1e6:.1f} MB/s")


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[media], workers=1)
    h = scheduler.domain(media)
    submit_some(h)
    show_queue(scheduler)
    with scheduler:  # dispatch until every task of the import batch has run
        while scheduler.count_by_tag_key_prefix("batch.") > 0:
            time.sleep(0.05)
        show_history(scheduler, h)
        print("cancelled:", scheduler.cancel_by_tag_key_prefix("tenant"))  # the delayed one
        print("pruned:", scheduler.prune_history_by_count(3))

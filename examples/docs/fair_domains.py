"""Two domains sharing the workers by weight (docs/multi-domain.md): each domain's tasks are one group."""

import time
from typing import ClassVar

import taskmill as tm

crawl = tm.Domain("crawl", default_group="crawl")
index = tm.Domain("index", default_group="index")


class Fetch(tm.Task, frozen=True):
    task_type: ClassVar[str] = "fetch"
    n: int


class Add(tm.Task, frozen=True):
    task_type: ClassVar[str] = "add"
    n: int


@crawl.executor(Fetch)
def fetch(task: Fetch, ctx: tm.TaskContext) -> None:
    time.sleep(0.05)


@index.executor(Add)
def add(task: Add, ctx: tm.TaskContext) -> None:
    time.sleep(0.05)


def fair_scheduler() -> tm.Scheduler:
    return tm.Scheduler(
        "tasks.db",
        domains=[crawl, index],
        workers=4,
        max_concurrency=4,
        group_weights={"crawl": 1, "index": 3},  # index gets three slots for each one crawl gets
    )


if __name__ == "__main__":
    with fair_scheduler() as scheduler:
        scheduler.domain(crawl).submit_batch([Fetch(n=i) for i in range(20)])
        scheduler.domain(index).submit_batch([Add(n=i) for i in range(20)])
        time.sleep(0.3)
        shares = {a.group: a.allocated_slots for a in scheduler.policy_view().group_allocations}
        print("slots while both domains have work:", shares)
        assert shares == {"crawl": 1, "index": 3}, shares
        scheduler.wait_until_idle()

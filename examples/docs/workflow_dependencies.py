import time
from typing import ClassVar

import taskmill as tm

ingest = tm.Domain("ingest")
process = tm.Domain("process")


class Fetch(tm.Task):
    task_type: ClassVar[str] = "fetch"
    source: str
    broken: bool = False


class Merge(tm.Task):
    task_type: ClassVar[str] = "merge"
    sources: list[str]


class Report(tm.Task):
    task_type: ClassVar[str] = "report"
    name: str


@ingest.executor(Fetch)
def fetch(task: Fetch, ctx: tm.TaskContext) -> None:
    time.sleep(0.1)
    if task.broken:
        raise tm.TaskError.permanent(f"{task.source} is unreachable")


@process.executor(Merge)
def merge(task: Merge, ctx: tm.TaskContext) -> None:
    print("merging", task.sources)


@process.executor(Report)
def report(task: Report, ctx: tm.TaskContext) -> None:
    print("report", task.name)


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[ingest, process], workers=2) as scheduler:
        fetches = scheduler.domain(ingest)
        a = fetches.submit(Fetch(source="a")).id
        b = fetches.submit(Fetch(source="b")).id
        # runs only once both fetches completed (dependencies cross domains: ids are global)
        merged = scheduler.domain(process).submit(Merge(sources=["a", "b"]), depends_on=[a, b])
        print("merge is", scheduler.task(merged.id).status, "on", scheduler.task_dependencies(merged.id))

        broken = fetches.submit(Fetch(source="c", broken=True)).id
        dropped = scheduler.domain(process).submit(Merge(sources=["c"]), depends_on=[broken])
        anyway = scheduler.domain(process).submit(Report(name="c"), depends_on=[broken],
                                                  on_dependency_failure="ignore")
        scheduler.wait_until_idle()
        for out in (merged, dropped, anyway):
            print(out.id, scheduler.history_of(out.id)[0].status)

import logging
import sys
import time
from typing import ClassVar

import taskmill as tm
from taskmill.errors import TaskTimeout

etl = tm.Domain("etl", timeout=0.5)  # every etl task gets 0.5 s unless its type says otherwise


class Extract(tm.Task, frozen=True):
    task_type: ClassVar[str] = "extract"  # the domain's 0.5 s applies
    table: str


@etl.executor(Extract)
def extract(task: Extract, ctx: tm.TaskContext) -> None:
    try:
        time.sleep(2.0)  # a slow query
    except TaskTimeout:
        print(f"  extract {task.table}: TaskTimeout raised inside the executor, attempt {ctx.record.attempt}")
        raise


class Load(tm.Task, frozen=True):
    task_type: ClassVar[str] = "load"
    table: str

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(timeout=2.0)  # the type's limit beats the domain's


@etl.executor(Load)
def load(task: Load, ctx: tm.TaskContext) -> None:
    time.sleep(0.8)


class Crunch(tm.Task, frozen=True):
    task_type: ClassVar[str] = "crunch"
    n: int


@etl.executor(Crunch)
def crunch(task: Crunch, ctx: tm.TaskContext) -> None:
    sum(range(task.n))  # C code that holds the GIL: no Python signal handler runs until it returns


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stdout, format="  log: %(message)s")  # the supervisor logs kills
    with tm.Scheduler("tasks.db", domains=[etl], workers=3, preempt_grace=0.5) as scheduler:
        h = scheduler.domain(etl)
        t0 = time.monotonic()
        extract_id = h.submit(Extract(table="orders"), max_retries=1).id
        load_id = h.submit(Load(table="orders")).id
        crunch_id = h.submit(Crunch(n=10**11), max_retries=0).id
        scheduler.wait_until_idle()
        print(f"all done in {time.monotonic() - t0:.1f} s")

        for tid in (extract_id, load_id, crunch_id):
            r = scheduler.history_of(tid)[0]
            print(f"task {tid}: {r.status}, failed attempts: {r.retry_count}, {r.last_error}")
        extract_run, load_run, crunch_run = (scheduler.history_of(t)[0] for t in (extract_id, load_id, crunch_id))
        assert extract_run.status == "dead_letter" and extract_run.retry_count == 2  # timed out, retried, again
        assert extract_run.last_error == "TaskTimeout: exceeded its 0.5s timeout"
        assert load_run.status == "completed"
        assert crunch_run.status == "dead_letter" and "worker killed" in crunch_run.last_error
        assert crunch_run.completed_at - crunch_run.created_at < 2.0  # killed at about limit + preempt_grace

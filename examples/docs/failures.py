from typing import ClassVar

import taskmill as tm

jobs = tm.Domain("jobs", default_retry=tm.RetryPolicy.constant(2, delay=0.1))


class Charge(tm.Task, frozen=True):
    task_type: ClassVar[str] = "charge"
    order: int


@jobs.executor(Charge)
def charge(task: Charge, ctx: tm.TaskContext) -> None:
    if task.order < 0:
        raise tm.TaskError.permanent("negative order id")  # no retry: history status "failed"
    if task.order == 2 and ctx.record.retry_count == 0:
        raise tm.TaskError.retryable("gateway timeout", retry_after=0.2)  # retried once, then succeeds
    if task.order == 3:
        raise RuntimeError("card service down")  # any other exception is retryable


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[jobs], workers=2) as scheduler:
        h = scheduler.domain(jobs)
        events = scheduler.subscribe()
        ids = h.submit_batch([Charge(order=n) for n in (1, 2, 3, -1)]).inserted()
        scheduler.wait_until_idle()

        for tid in ids:
            r = scheduler.history_of(tid)[0]
            print(f"task {r.task_id}: {r.status:<11} failed attempts: {r.retry_count}")
        for e in iter(events.get_nowait, None):
            if isinstance(e, tm.Failed):
                last_line = e.error.splitlines()[-1]
                print(f"  Failed task {e.header.task_id}: will_retry={e.will_retry}, {last_line}")

        dead = h.dead_letter_tasks()[0]
        print("last error of the dead letter:", dead.last_error.splitlines()[-1])
        again = h.retry_dead_letter(dead.task_id)  # queued again with a fresh retry count
        print("retry_dead_letter ->", again.kind, "as task", again.id)
        scheduler.wait_until_idle()

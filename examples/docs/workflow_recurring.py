import time
from typing import ClassVar

import taskmill as tm

jobs = tm.Domain("jobs")


class Heartbeat(tm.Task):
    task_type: ClassVar[str] = "heartbeat"
    service: str


class NightlyReport(tm.Task):
    task_type: ClassVar[str] = "nightly_report"


@jobs.executor(Heartbeat)
def heartbeat(task: Heartbeat, ctx: tm.TaskContext) -> None:
    print("ping", task.service)


@jobs.executor(NightlyReport)
def nightly_report(task: NightlyReport, ctx: tm.TaskContext) -> None:
    print("building the report")


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[jobs], workers=1) as scheduler:
        h = scheduler.domain(jobs)
        # every 0.2 s, five times; the first run is immediate (or after initial_delay)
        ping = h.submit(Heartbeat(service="api"), recurring=tm.RecurringSchedule(0.2, max_occurrences=5)).id
        # 03:00 every night, Berlin time (daylight saving included)
        nightly = h.submit(NightlyReport(),
                           recurring=tm.RecurringSchedule(cron="0 3 * * *", timezone="Europe/Berlin")).id
        for schedule in scheduler.recurring_schedules():
            print(schedule.task_type, schedule.interval or schedule.cron, "next:", time.ctime(schedule.next_run))

        time.sleep(0.3)
        h.pause_recurring(ping)  # the same id for every occurrence
        time.sleep(0.5)  # nothing runs meanwhile
        h.resume_recurring(ping)
        while scheduler.recurring_schedules()[0].task_id == ping:
            time.sleep(0.05)
        print("heartbeat runs:", [r.status for r in scheduler.history_of(ping)])
        h.cancel_recurring(nightly)
        print("schedules left:", scheduler.recurring_schedules())

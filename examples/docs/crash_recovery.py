import os
import signal
import subprocess
import sys
import time
from typing import ClassVar

import psutil

import taskmill as tm

jobs = tm.Domain("jobs")


class Report(tm.Task, frozen=True):
    task_type: ClassVar[str] = "report"
    month: str


@jobs.executor(Report)
def report(task: Report, ctx: tm.TaskContext) -> None:
    print(f"  worker {os.getpid()}: {task.month}, attempt {ctx.record.attempt}", flush=True)
    time.sleep(1.0)


def start_supervisor() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "serve"])


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        tm.Scheduler("tasks.db", domains=[jobs], workers=1).run()  # blocks until SIGINT/SIGTERM
        sys.exit(0)

    with tm.connect("tasks.db") as client:
        tid = client.domain(jobs).submit(Report(month="2025-01")).id
        proc = start_supervisor()
        while client.running_count() == 0:
            time.sleep(0.01)
        # Crash mid-task: SIGKILL the supervisor and its workers, as a power cut or the OOM killer would.
        for pid in [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children()]:
            os.kill(pid, signal.SIGKILL)
        proc.wait()
        print("after the crash, the row says:", client.task(tid).status)

        proc = start_supervisor()  # recovery runs first: running -> pending, the retry count untouched
        while not client.history_of(tid):
            time.sleep(0.05)
        r = client.history_of(tid)[0]
        print(f"after the restart: {r.status}, failed attempts counted: {r.retry_count}")
        proc.send_signal(signal.SIGTERM)  # graceful stop
        print("supervisor exit code:", proc.wait())

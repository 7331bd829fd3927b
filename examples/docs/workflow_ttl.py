import time
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import taskmill as tm

mail = tm.Domain("mail", default_ttl=3600)  # anything not sent within an hour is pointless


class Reminder(tm.Task):
    task_type: ClassVar[str] = "reminder"
    to: str


class Digest(tm.Task):
    task_type: ClassVar[str] = "digest"
    to: str

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(ttl=0.3)  # per type: beats the domain's hour


@mail.executor(Reminder)
def send_reminder(task: Reminder, ctx: tm.TaskContext) -> None:
    print(f"reminder to {task.to} at {time.time():.3f}")


@mail.executor(Digest)
def send_digest(task: Digest, ctx: tm.TaskContext) -> None:
    time.sleep(0.5)
    print(f"digest to {task.to}")


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[mail], workers=1, expiry_sweep_interval=0.1) as scheduler:
        h = scheduler.domain(mail)
        due = time.time() + 0.5
        h.submit(Reminder(to="ann"), run_after=0.5)  # seconds (or a timedelta) from now
        h.submit(Reminder(to="bob"), run_at=datetime.now(UTC) + timedelta(seconds=0.7))
        print(f"next delayed task due in {scheduler.next_run_after() - time.time():.2f}s (ann: {due:.3f})")
        scheduler.wait_until_idle()

        first = h.submit(Digest(to="ann"), label="ann").id  # runs at once, holds the only worker for 0.5 s
        late = h.submit(Digest(to="bob"), label="bob").id  # waits longer than its 0.3 s TTL: expires
        patient = h.submit(Digest(to="cyd"), label="cyd", ttl_from="first_attempt").id  # TTL from its first run
        scheduler.wait_until_idle()
        for task_id in (first, late, patient):
            record = scheduler.history_of(task_id)[0]
            print(record.label, record.status)

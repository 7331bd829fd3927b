import time
from typing import ClassVar

import taskmill as tm

accounts = tm.Domain("accounts")


class SyncAccount(tm.Task, frozen=True):
    task_type: ClassVar[str] = "sync"
    account: str
    full: bool = False

    def key(self) -> str | None:
        return self.account  # at most one active sync per account, whatever the flags


@accounts.executor(SyncAccount)
def sync_account(task: SyncAccount, ctx: tm.TaskContext) -> None:
    time.sleep(0.3)


def show(what: str, out: tm.SubmitOutcome) -> None:
    print(f"{what:<38} -> {out.kind:<10} id={out.id}")


if __name__ == "__main__":
    scheduler = tm.Scheduler("tasks.db", domains=[accounts], workers=1)
    h = scheduler.domain(accounts)
    show("submit ann", h.submit(SyncAccount(account="ann")))
    show("same key, same priority", h.submit(SyncAccount(account="ann", full=True)))
    show("same key, more urgent", h.submit(SyncAccount(account="ann"), priority=tm.Priority.HIGH))
    replacement = SyncAccount(account="ann", full=True)
    show("same key, on_duplicate='supersede'", h.submit(replacement, on_duplicate="supersede"))
    show("same key, on_duplicate='reject'", h.submit(SyncAccount(account="ann"), on_duplicate="reject"))
    print("lookup:", h.lookup(SyncAccount(account="ann")).location)

    with scheduler:
        while scheduler.running_count() == 0:
            time.sleep(0.01)
        show("same key while it runs", h.submit(SyncAccount(account="ann")))  # runs once more afterwards
        scheduler.wait_until_idle()
        found = h.lookup(SyncAccount(account="ann"))
        print("lookup:", found.location, [r.status for r in scheduler.history_of(found.record.task_id)])
        show("same key after it finished", h.submit(SyncAccount(account="ann")))  # the key is free again
        scheduler.wait_until_idle()

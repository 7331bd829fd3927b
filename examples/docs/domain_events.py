import asyncio
from typing import ClassVar

import taskmill as tm

billing = tm.Domain("billing")
mail = tm.Domain("mail")


class Charge(tm.Task, frozen=True):
    task_type: ClassVar[str] = "charge"
    customer: str
    cents: int


class Receipt(tm.Task, frozen=True):
    task_type: ClassVar[str] = "receipt"
    customer: str


@billing.executor(Charge)
def charge(task: Charge, ctx: tm.TaskContext) -> None:
    if task.cents < 0:
        raise tm.TaskError.permanent("negative amount")
    ctx.progress.report(1.0, "charged")


@mail.executor(Receipt)
def receipt(task: Receipt, ctx: tm.TaskContext) -> None:
    pass


async def watch_charges(charges: tm.TaskEvents[Charge], expected: int) -> None:
    ended = 0
    async for event in charges:  # only billing::charge events
        if isinstance(event, tm.Completed | tm.Failed) and event.record is not None:
            task = charges.task(event.record)  # the Charge it ran, decoded
            print(f"{type(event).__name__}: {task.customer} {task.cents}c -> {event.record.status}")
            ended += 1
            if ended == expected:
                return


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[billing, mail], workers=1) as scheduler:
        b = scheduler.domain(billing)
        billing_events = b.events()  # billing's tasks, plus scheduler-wide Paused/Resumed
        charges = b.task_events(Charge)  # one type, terminal events with their history record
        b.submit_batch([Charge(customer="ada", cents=1200), Charge(customer="bob", cents=-5)])
        scheduler.domain(mail).submit(Receipt(customer="ada"))
        asyncio.run(watch_charges(charges, expected=2))
        scheduler.wait_until_idle()
        print("billing saw:", sorted({type(e).__name__ for e in iter(billing_events.get_nowait, None)}))
        charges.close()
        billing_events.close()

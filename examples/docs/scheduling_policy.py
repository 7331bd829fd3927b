import time
from typing import ClassVar

import taskmill as tm

api = tm.Domain("api")


class Fetch(tm.Task, frozen=True):
    task_type: ClassVar[str] = "fetch"
    tenant: str
    n: int

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(expected_io=tm.IoBudget.net(rx=50_000, tx=1_000))


@api.executor(Fetch)
def fetch(task: Fetch, ctx: tm.TaskContext) -> None:
    time.sleep(0.05)  # call the remote API
    ctx.record_net_rx_bytes(48_213)


def main() -> None:
    scheduler = tm.Scheduler(
        "tasks.db",
        domains=[api],
        workers=4,
        max_concurrency=4,
        # Each tenant is a group: at most 2 of one tenant's fetches run at once ...
        default_group_concurrency=2,
        # ... the remote API allows 40 calls a second in all, 10 at once ...
        rate_limits={"api::fetch": tm.RateLimit.per_second(40).with_burst(10)},
        # ... and the paying tenant gets three slots for every one of the others.
        group_weights={"acme": 3},
        # Work that waited 2 minutes climbs one level every 10 s, up to HIGH.
        priority_aging=tm.AgingConfig(grace_period=120, aging_interval=10),
    )
    h = scheduler.domain(api)
    for n in range(15):
        for tenant in ("acme", "globex", "initech"):
            h.submit(Fetch(tenant=tenant, n=n), group=tenant)

    with scheduler:
        time.sleep(0.5)
        view = scheduler.policy_view()
        for share in view.group_allocations:
            print(f"{share.group or '(ungrouped)':8} weight {share.weight}  slots {share.allocated_slots}"
                  f"  running {share.running}  waiting {share.pending}")
        for limit in view.rate_limits:
            print(f"{limit.scope}: {limit.permits}/{limit.interval:g}s, {limit.available_tokens:.1f} tokens left")
        scheduler.wait_until_idle()
        print("held back:", scheduler.policy_view().gate_denials)


if __name__ == "__main__":
    main()

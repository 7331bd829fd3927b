import time
from typing import ClassVar

import taskmill as tm

media = tm.Domain("media")


class Transcode(tm.Task, frozen=True):
    task_type: ClassVar[str] = "transcode"
    name: str

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        # What one run reads and writes: the IO gate holds a run back while the disk is busy.
        return tm.TaskTypeConfig(expected_io=tm.IoBudget.disk(read=200_000_000, write=50_000_000))


@media.executor(Transcode)
def transcode(task: Transcode, ctx: tm.TaskContext) -> None:
    time.sleep(0.05)
    ctx.record_read_bytes(180_000_000)
    ctx.record_write_bytes(40_000_000)


class Battery:
    """A pressure source: anything with a name and a pressure() in [0, 1]."""

    name = "battery"

    def __init__(self) -> None:
        self.level = 1.0

    def pressure(self) -> float:
        return 1.0 - self.level


def main() -> None:
    battery = Battery()
    battery.level = 0.3  # pressure 0.7: BACKGROUND work waits (over 0.5), NORMAL still runs (up to 0.75)
    scheduler = tm.Scheduler(
        "tasks.db",
        domains=[media],
        workers=2,
        resource_monitoring=True,  # psutil: disk and network throughput, smoothed
        sampler_config=tm.SamplerConfig(interval=0.1),
        pressure_sources=[battery],
        throttle_policy=tm.ThrottlePolicy.default_three_tier(),
    )
    h = scheduler.domain(media)
    h.submit(Transcode(name="thumbnail"), label="thumbnail", priority=tm.Priority.NORMAL)
    h.submit(Transcode(name="archive"), label="archive", priority=tm.Priority.BACKGROUND)
    with scheduler:
        time.sleep(1.0)
        view = scheduler.policy_view()
        print(f"pressure {view.pressure:.2f} from {view.pressure_breakdown}")
        print("done:", [r.label for r in scheduler.history()], "waiting:", scheduler.pending_count())
        battery.level = 1.0  # plugged in: the archive job runs
        scheduler.wait_until_idle()
        print("done:", sorted(r.label for r in scheduler.history()))
        print("archive read", scheduler.history()[0].actual_read_bytes, "bytes")


if __name__ == "__main__":
    main()

import time
from typing import ClassVar

import taskmill as tm

files = tm.Domain("files")


class Download(tm.Task, frozen=True):
    task_type: ClassVar[str] = "download"
    url: str
    size: int


@files.executor(Download)
def download(task: Download, ctx: tm.TaskContext) -> None:
    ctx.set_bytes_total(task.size)  # unknown until set: then no percentage and no ETA
    received = 0
    while received < task.size:
        time.sleep(0.01)  # stands in for reading a chunk from the network
        chunk = min(64 * 1024, task.size - received)
        received += chunk
        ctx.add_bytes(chunk)  # cheap: call it for every chunk, however small


if __name__ == "__main__":
    with tm.Scheduler("tasks.db", domains=[files], workers=1) as scheduler:
        ticks = scheduler.subscribe_progress(interval=0.25)  # periodic TaskProgress, apart from other events
        scheduler.domain(files).submit(Download(url="https://example.com/big.iso", size=8_000_000))
        scheduler.wait_until_idle()
        for p in iter(ticks.get_nowait, None):
            eta = "?" if p.eta is None else f"{p.eta:.1f}s"
            print(f"{p.bytes_completed:>9,}/{p.bytes_total:,} bytes  {p.throughput_bps / 1e6:5.2f} MB/s  eta {eta}")
        ticks.close()

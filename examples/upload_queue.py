"""A desktop-style upload queue: byte progress, an urgent upload that preempts a big one, pause, resume, cancel.

    python examples/upload_queue.py [--big-mb N] [--photo-kb N] [--speed-mbps N]

One worker uploads one file at a time, as a desktop app limiting its bandwidth would. The executor reports
bytes as it sends them, and the terminal shows each upload's progress, throughput and time left. The script
then plays a user:

1. a big video upload starts in the background (priority BACKGROUND);
2. three photos are queued (NORMAL), and the user removes the third from the queue (cancel);
3. the user clicks "upload now" on a document (REALTIME): it preempts the video, which is paused and resumes
   after the more urgent uploads;
4. while the first photo uploads, the user pauses the queue, then resumes it.

Uploads are resumable: the "server" keeps what it received, so a stopped upload continues from there
instead of sending everything again. Files go to ./upload_queue/ (or --dir).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import taskmill as tm

uploads = tm.Domain("uploads")
CHUNK = 64 * 1024
_printing = threading.Lock()


def say(line: str) -> None:
    """Print a whole line: the display thread and the main thread both print, and ``print`` writes the text and
    its newline separately, so two threads' lines could otherwise run into each other."""
    with _printing:
        print(line, flush=True)


class Upload(tm.Task, frozen=True):
    task_type: ClassVar[str] = "upload"
    src: str
    server: str  # the directory standing in for the remote server
    bytes_per_second: int

    def key(self) -> str:
        return self.src  # the same file is never queued twice


@uploads.executor(Upload)
def upload(task: Upload, ctx: tm.TaskContext) -> None:
    total = os.path.getsize(task.src)
    dest = Path(task.server) / Path(task.src).name
    sent = dest.stat().st_size if dest.exists() else 0  # resume: ask the server how much it already has
    ctx.report_bytes(sent, total)
    with open(task.src, "rb") as src, open(dest, "ab") as out:
        src.seek(sent)
        while chunk := src.read(CHUNK):
            ctx.check_cancelled()  # preempted, paused or cancelled: stop between chunks
            time.sleep(len(chunk) / task.bytes_per_second)  # the network
            out.write(chunk)
            out.flush()
            ctx.add_bytes(len(chunk))
    ctx.record_net_tx_bytes(total - sent)


def show(events: tm.Subscription, ticks: tm.Subscription, stop: threading.Event) -> None:
    """The progress display: a line per lifecycle event, and a line per running upload every 0.2 s."""
    while True:
        done = stop.is_set()  # read first: the events below then include everything up to the stop
        for e in iter(events.get_nowait, None):
            if e.header is None or isinstance(e, tm.Progress):
                continue
            extra = f" (attempt {e.attempt})" if isinstance(e, tm.Dispatched) else ""
            say(f"  [{type(e).__name__.lower()}] {Path(e.header.label).name}{extra}")
        if done:
            return
        p = ticks.get(timeout=0.05)
        if p is not None and p.bytes_total:
            eta = "?" if p.eta is None else f"{p.eta:.1f}s"
            say(
                f"    {Path(p.label).name:<12} {p.bytes_completed / p.bytes_total:6.1%}"
                f"  {p.throughput_bps / 1e6:5.1f} MB/s  eta {eta}"
            )


def status(scheduler: tm.Scheduler, task_id: int) -> str:
    rec = scheduler.task(task_id)
    return rec.status if rec is not None else scheduler.history_of(task_id)[0].status


def wait_until(what: str, check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting until {what}")
        time.sleep(0.01)


def sent(scheduler: tm.Scheduler, task_id: int) -> float | None:
    """The fraction of an upload already sent, while it runs (None otherwise)."""
    for p in scheduler.byte_progress():
        if p.task_id == task_id and p.bytes_total:
            return p.bytes_completed / p.bytes_total
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=float, default=8, help="size of the background video")
    parser.add_argument("--photo-kb", type=int, default=1024, help="size of each photo")
    parser.add_argument("--speed-mbps", type=float, default=8, help="upload speed, megabytes per second")
    parser.add_argument("--dir", default="upload_queue", help="working directory (created)")
    args = parser.parse_args(argv)
    work = Path(args.dir).resolve()
    outbox, server = work / "outbox", work / "server"
    for d in (outbox, server):
        d.mkdir(parents=True, exist_ok=True)
    sizes = {"video.mp4": int(args.big_mb * 1e6), "report.pdf": 256 * 1024}
    sizes.update({f"photo{i}.jpg": args.photo_kb * 1024 for i in (1, 2, 3)})
    for name, size in sizes.items():
        (outbox / name).write_bytes(os.urandom(size))
    speed = int(args.speed_mbps * 1e6)

    def job(name: str) -> Upload:
        return Upload(src=str(outbox / name), server=str(server), bytes_per_second=speed)

    with tm.Scheduler(work / "tasks.db", domains=[uploads], workers=1) as scheduler:
        events = scheduler.subscribe()
        ticks = scheduler.subscribe_progress(interval=0.2)  # byte progress, apart from lifecycle events
        stop = threading.Event()
        display = threading.Thread(target=show, args=(events, ticks, stop))
        display.start()
        h = scheduler.domain(uploads)

        say("user: upload video.mp4 in the background")
        video = h.submit(job("video.mp4"), priority=tm.Priority.BACKGROUND).id
        wait_until("the video is a quarter sent", lambda: (sent(scheduler, video) or 0) > 0.25)

        say("user: add three photos")
        photos = [h.submit(job(f"photo{i}.jpg")).id for i in (1, 2, 3)]
        say("user: remove photo3.jpg from the queue")
        assert h.cancel(photos[2])

        say("user: upload report.pdf now")
        report = h.submit(job("report.pdf"), priority=tm.Priority.REALTIME).id
        wait_until("the report is uploaded", lambda: status(scheduler, report) == "completed")

        wait_until("photo1 is being sent", lambda: sent(scheduler, photos[0]) is not None)
        say("user: pause the queue")
        h.pause()
        wait_until("photo1 has stopped", lambda: status(scheduler, photos[0]) == "paused")
        time.sleep(0.3)
        say(f"while paused: photo1 {status(scheduler, photos[0])}, video {status(scheduler, video)}")
        say("user: resume the queue")
        h.resume()
        scheduler.wait_until_idle(timeout=120)
        stop.set()
        display.join()
        events.close()
        ticks.close()

        print("\nsummary:")
        for task_id in (video, report, *photos):
            r = scheduler.history_of(task_id)[0]
            name = Path(r.label).name
            uploaded = (server / name).stat().st_size if (server / name).exists() else 0
            print(f"  {name:<12} {r.status:<10} {uploaded:>10,} of {sizes[name]:>10,} bytes on the server")
            if r.status == "completed":
                assert (server / name).read_bytes() == (outbox / name).read_bytes(), f"{name} arrived damaged"
        assert [scheduler.history_of(t)[0].status for t in (video, report, *photos)] == [
            "completed", "completed", "completed", "completed", "cancelled"]  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

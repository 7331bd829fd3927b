"""One application, three domains, with dependencies across them (see docs/multi-domain.md).

    python examples/multi_domain.py [--photos N] [--dir DIR]

`ingest` downloads photos, `media` makes a thumbnail of each once its download has completed, and `notify`
sends one email once every thumbnail has ended. A thumbnail waits for a task of another domain, and so does
the email. One download fails for good: its thumbnail ends `dependency_failed`, and the email, which
ignores failed dependencies, still goes out. `media` runs one task at a time (a domain cap), `notify` is
paused until the thumbnails are done, and each domain has its own event stream.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import ClassVar

import taskmill as tm

ingest = tm.Domain("ingest", default_retry=tm.RetryPolicy.constant(2, delay=0.05))
media = tm.Domain("media", max_concurrency=1)  # one thumbnail at a time, however many workers are free
notify = tm.Domain("notify", default_priority=tm.Priority.HIGH)


class Download(tm.Task, frozen=True):
    task_type: ClassVar[str] = "download"
    url: str
    dest: str


class Thumbnail(tm.Task, frozen=True):
    task_type: ClassVar[str] = "thumbnail"
    src: str
    dest: str
    size: int = 1024


class Email(tm.Task, frozen=True):
    task_type: ClassVar[str] = "email"
    to: str
    outbox: str
    thumbnails: list[str]


@ingest.executor(Download)
def download(task: Download, ctx: tm.TaskContext) -> None:
    if task.url.endswith("missing.jpg"):
        raise tm.TaskError.permanent(f"404 Not Found: {task.url}")
    data = hashlib.sha256(task.url.encode()).digest() * 2048  # 64 KiB standing in for the photo
    time.sleep(0.05)  # the network
    Path(task.dest).write_bytes(data)
    ctx.record_net_rx_bytes(len(data))


@media.executor(Thumbnail)
def thumbnail(task: Thumbnail, ctx: tm.TaskContext) -> None:
    data = Path(task.src).read_bytes()  # written by the Download this task depends on
    time.sleep(0.05)  # the resizing
    Path(task.dest).write_bytes(data[: task.size])


@notify.executor(Email)
def email(task: Email, ctx: tm.TaskContext) -> None:
    made = sum(Path(t).exists() for t in task.thumbnails)
    Path(task.outbox).write_text(f"To: {task.to}\n{made} of {len(task.thumbnails)} thumbnails are ready.\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=4, help="photos to download (one more is missing)")
    parser.add_argument("--dir", default="multi_domain", help="working directory (created)")
    args = parser.parse_args(argv)
    work = Path(args.dir).resolve()
    for sub in ("downloads", "thumbnails"):
        (work / sub).mkdir(parents=True, exist_ok=True)

    with tm.Scheduler(work / "tasks.db", domains=[ingest, media, notify], workers=2) as scheduler:
        events = scheduler.subscribe()  # every domain
        notify_events = scheduler.domain(notify).events()  # notify's tasks only, plus its pause and resume
        downloads, thumbs, mails = scheduler.domain(ingest), scheduler.domain(media), scheduler.domain(notify)

        mails.pause()  # notify's tasks wait; the other domains keep running
        urls = [f"https://photos.example/{k}.jpg" for k in range(args.photos)] + ["https://photos.example/missing.jpg"]
        thumb_ids, thumb_files = [], []
        for url in urls:
            name = url.rsplit("/", 1)[1]
            src, dest = work / "downloads" / name, work / "thumbnails" / name
            d = downloads.submit(Download(url=url, dest=str(src)))
            # Waits for a task of `ingest`. "fail": if the download fails, this thumbnail ends dependency_failed
            # and the email below applies its own policy (the default, "cancel", would take the email down too).
            t = thumbs.submit(Thumbnail(src=str(src), dest=str(dest)), depends_on=[d.id], on_dependency_failure="fail")
            thumb_ids.append(t.id)
            thumb_files.append(str(dest))
        mail = mails.submit(
            Email(to="owner@example.com", outbox=str(work / "email.txt"), thumbnails=thumb_files),
            depends_on=thumb_ids,  # tasks of `media`
            on_dependency_failure="ignore",  # send it even if a thumbnail could not be made
        )
        print(f"submitted {len(urls)} downloads, {len(thumb_ids)} thumbnails and 1 email (notify is paused)")

        deadline = time.monotonic() + 60
        while any(scheduler.task(t) is not None for t in thumb_ids):  # active tasks; ended ones are in history
            if time.monotonic() > deadline:
                raise SystemExit("thumbnails did not finish in time")
            time.sleep(0.02)
        record = scheduler.task(mail.id)
        print(f"thumbnails done; the email is {record.status if record else 'gone'} while notify is paused")
        mails.resume()
        scheduler.wait_until_idle(timeout=60)

        print("\nper domain:")
        for h in (downloads, thumbs, mails):
            outcomes = sorted(f"{r.task_type.split('::')[1]}={r.status}" for r in h.history(limit=100))
            print(f"  {h.name:<7} {', '.join(outcomes)}")
        print("notify's own stream:", [type(e).__name__ for e in iter(notify_events.get_nowait, None)])
        print((work / "email.txt").read_text().strip().replace("\n", " | "))

        # Check the order the events went out in: no thumbnail started before its download completed, at
        # most one ran at a time, and the email started only after every thumbnail had ended.
        seen = list(iter(events.get_nowait, None))
        order = [(type(e).__name__, e.header.task_type, e.header.task_id) for e in seen if e.header is not None]
        running = peak = 0
        for kind, task_type, _ in order:
            if task_type == "media::thumbnail" and kind in ("Dispatched", "Completed", "Failed"):
                running += 1 if kind == "Dispatched" else -1
                peak = max(peak, running)
        email_start = order.index(("Dispatched", "notify::email", mail.id))
        thumb_ends = [i for i, (k, t, _) in enumerate(order) if t == "media::thumbnail" and k != "Dispatched"]
        assert max(thumb_ends) < email_start, "the email started before every thumbnail had ended"
        assert peak == 1, f"media's cap is 1, yet {peak} thumbnails ran at once"
        statuses = [r.status for r in thumbs.history(limit=100)]
        assert statuses.count("completed") == args.photos and statuses.count("dependency_failed") == 1
        assert scheduler.history_of(mail.id)[0].status == "completed"
        events.close()
        notify_events.close()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

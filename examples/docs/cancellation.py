import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import taskmill as tm


class Staging:
    """Domain state, built once in each worker: where partial uploads are written."""

    def __init__(self) -> None:
        self.dir = Path("staging").resolve()
        self.dir.mkdir(exist_ok=True)


uploads = tm.Domain("uploads", state=[Staging])


class Upload(tm.Task, frozen=True):
    task_type: ClassVar[str] = "upload"
    name: str
    chunks: int = 100

    def key(self) -> str:
        return self.name


@uploads.executor(Upload)
class Uploader:
    def execute(self, task: Upload, ctx: tm.TaskContext) -> None:
        part = ctx.state(Staging).dir / f"{task.name}.part"
        with part.open("ab") as f:
            for _ in range(task.chunks):
                f.write(b"x" * 1024)
                f.flush()
                time.sleep(0.05)  # send one chunk
        part.rename(part.with_suffix(".done"))

    def on_cancel(self, task: Upload, ctx: tm.TaskContext) -> None:
        """Runs in the worker once execute() has stopped, with the same ctx (domain state included)."""
        (ctx.state(Staging).dir / f"{task.name}.part").unlink(missing_ok=True)


def wait_started(name: str) -> None:
    while not (Path("staging") / f"{name}.part").exists():
        time.sleep(0.01)


def final_status(client: tm.Client, task_id: int) -> str:
    while not client.history_of(task_id):
        time.sleep(0.01)
    return client.history_of(task_id)[0].status


if __name__ == "__main__":
    if sys.argv[1:2] == ["cancel"]:  # another process: a web app, a CLI
        with tm.connect("tasks.db") as client:
            print("  other process: cancel ->", client.cancel(int(sys.argv[2])))
        sys.exit(0)

    with tm.Scheduler("tasks.db", domains=[uploads], workers=1) as scheduler:
        events = scheduler.subscribe()
        h = scheduler.domain(uploads)

        # Running, pending and delayed tasks.
        running = h.submit(Upload(name="a")).id
        wait_started("a")
        pending = h.submit(Upload(name="b")).id  # queued behind "a": one worker
        delayed = h.submit(Upload(name="c"), run_after=60).id
        print("cancel pending, delayed:", scheduler.cancel(pending), scheduler.cancel(delayed))
        print("cancel running:", scheduler.cancel(running))
        print("statuses:", [final_status(scheduler, t) for t in (running, pending, delayed)])
        assert not Path("staging/a.part").exists()  # on_cancel removed the partial file
        assert scheduler.cancel(running) is False  # already finished

        # From another process, through the database.
        other = h.submit(Upload(name="d")).id
        wait_started("d")
        subprocess.run([sys.executable, __file__, "cancel", str(other)], check=True)
        print("cancelled from another process:", final_status(scheduler, other))

        # In bulk, within one domain.
        ids = [h.submit(Upload(name=f"e{i}"), run_after=3600).id for i in range(4)]
        odd = h.cancel_where(lambda r: r.label in ("e1", "e3"))
        rest = h.cancel_all()
        print("cancel_where:", sorted(odd), "cancel_all:", sorted(rest))
        assert sorted(odd + rest) == sorted(ids)

        # Supersede: a newer submission with the same key replaces the running task.
        old = h.submit(Upload(name="f")).id
        wait_started("f")
        out = h.submit(Upload(name="f", chunks=2), on_duplicate="supersede")
        print(f"supersede -> {out.kind}: task {out.id} replaces task {out.replaced_id}")
        scheduler.wait_until_idle()
        print(f"task {old}: {final_status(scheduler, old)}, task {out.id}: {final_status(scheduler, out.id)}")
        assert out.replaced_id == old and Path("staging/f.done").stat().st_size == 2048

        stopped = {e.header.task_id for e in iter(events.get_nowait, None) if isinstance(e, tm.Cancelled)}
        assert {running, other} <= stopped  # a Cancelled event once each running task had stopped
        assert sorted(p.name for p in Path("staging").iterdir()) == ["f.done"]

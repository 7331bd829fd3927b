"""``python -m benchmarks.progress_bench``: what progress reporting costs an executor, and what it sends.

1. In one process: N calls of ``ctx.add_bytes`` / ``ctx.progress.report`` on a real task context whose
   frames go through a real socket to a thread that counts them — ns per call and frames sent, next to an
   empty loop and a plain method call on the same machine.
2. End to end: an executor making N ``ctx.add_bytes`` calls against one making N calls of an empty method,
   run by a real scheduler (one worker); medians of the executors' own durations.

    python -m benchmarks.progress_bench            # N = 1,000,000
    python -m benchmarks.progress_bench --calls 200000 --repeat 5

``python -m benchmarks run byte_progress`` runs both parts as a workload of the suite (one end-to-end pair per
repetition), under the metric names of :data:`LABELS`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import taskmill as tm
from taskmill.protocol import HEADER, TaskSpec, body_length
from taskmill.workers.channel import Channel
from taskmill.workers.context import TaskContext

bench = tm.Domain("progress_bench")

# metric name (the suite's, units in the name) -> what the standalone command prints
LABELS = {
    "empty_loop_ns": "empty loop ns/iter",
    "empty_call_ns": "empty method ns/call",
    "add_bytes_ns": "ctx.add_bytes ns/call",
    "add_bytes_frames": "ctx.add_bytes frames",
    "add_bytes_frames_per_s": "ctx.add_bytes frames/s",
    "progress_add_bytes_ns": "ctx.progress.add_bytes ns/call",
    "progress_add_bytes_frames": "ctx.progress.add_bytes frames",
    "progress_add_bytes_frames_per_s": "ctx.progress.add_bytes frames/s",
    "report_ns": "ctx.progress.report ns/call",
    "report_frames": "ctx.progress.report frames",
    "report_frames_per_s": "ctx.progress.report frames/s",
    "worker_empty_calls_s": "executor with N empty calls s",
    "worker_add_bytes_s": "executor with N add_bytes s",
    "worker_add_bytes_overhead_ns": "add_bytes overhead ns/call",
}


class Transfer(tm.Task, frozen=True):
    task_type: ClassVar[str] = "transfer"
    calls: int
    report: bool


class _Sink:
    def noop(self, n: int) -> None:
        pass


@bench.executor(Transfer)
def transfer(task: Transfer, ctx: tm.TaskContext) -> None:
    if task.report:
        ctx.set_bytes_total(task.calls * 4096)
        add = ctx.add_bytes
        for _ in range(task.calls):
            add(4096)
    else:
        noop = _Sink().noop
        for _ in range(task.calls):
            noop(4096)


def _counting_channel() -> tuple[Channel, list[int], threading.Thread, socket.socket]:
    ours, theirs = socket.socketpair()
    frames = [0]

    def drain() -> None:
        f = theirs.makefile("rb")
        while header := f.read(HEADER.size):
            f.read(body_length(header))
            frames[0] += 1

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    return Channel(ours), frames, t, theirs


def _spec() -> TaskSpec:
    return TaskSpec(1, "progress_bench::transfer", "progress_bench", "k", "l", 128, b"", 0, None, 1, 0, None, None,
                    None)  # fmt: skip


def in_process(calls: int) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    for _ in range(calls):
        pass
    out["empty_loop_ns"] = (time.perf_counter() - t0) / calls * 1e9
    noop = _Sink().noop
    t0 = time.perf_counter()
    for _ in range(calls):
        noop(4096)
    out["empty_call_ns"] = (time.perf_counter() - t0) / calls * 1e9

    for name, metric in (("ctx.add_bytes", "add_bytes"), ("ctx.progress.add_bytes", "progress_add_bytes"),
                         ("ctx.progress.report", "report")):  # fmt: skip
        channel, frames, thread, theirs = _counting_channel()
        ctx = TaskContext(_spec(), 3, channel.send, None, None)
        ctx.set_bytes_total(calls * 4096)
        if name == "ctx.add_bytes":
            fn = ctx.add_bytes
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(4096)
        elif name == "ctx.progress.add_bytes":
            fn = ctx.progress.add_bytes
            t0 = time.perf_counter()
            for _ in range(calls):
                fn(4096)
        else:
            report = ctx.progress.report
            t0 = time.perf_counter()
            for i in range(calls):
                report(i / calls)
        elapsed = time.perf_counter() - t0
        ctx.progress.close()
        channel.sock.shutdown(socket.SHUT_WR)
        thread.join(5)
        channel.sock.close()
        theirs.close()
        out[f"{metric}_ns"] = elapsed / calls * 1e9
        out[f"{metric}_frames"] = frames[0]
        out[f"{metric}_frames_per_s"] = frames[0] / elapsed
    return out


def end_to_end(calls: int, repeat: int, directory: Path | None = None) -> dict[str, float]:
    """Medians of ``repeat`` pairs of executors (the order alternates); the database goes in ``directory``
    (default: a temporary directory)."""
    if directory is None:
        with tempfile.TemporaryDirectory() as tmp:
            return end_to_end(calls, repeat, Path(tmp))
    durations: dict[bool, list[float]] = {True: [], False: []}
    with tm.Scheduler(os.path.join(directory, "bench.db"), [bench], workers=1, durability="normal") as s:
        h = s.domain(bench)
        for i in range(repeat):
            for report in (False, True) if i % 2 == 0 else (True, False):
                tid = h.submit(Transfer(calls=calls, report=report), key=f"{i}-{report}").id
                assert tid is not None and s.wait_until_idle(600)
                [rec] = s.history_of(tid)
                assert rec.status == "completed" and rec.duration is not None
                durations[report].append(rec.duration)
    base, rep = statistics.median(durations[False]), statistics.median(durations[True])
    return {"worker_empty_calls_s": base, "worker_add_bytes_s": rep,
            "worker_add_bytes_overhead_ns": (rep - base) / calls * 1e9}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.progress_bench", description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-scheduler", action="store_true", help="in-process figures only")
    args = p.parse_args(argv)
    print(f"calls per run: {args.calls:,}")
    for k, v in in_process(args.calls).items():
        print(f"  {LABELS[k]:<34} {v:>14,.1f}")
    if not args.no_scheduler:
        for k, v in end_to_end(args.calls, args.repeat).items():
            print(f"  {LABELS[k]:<34} {v:>14,.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

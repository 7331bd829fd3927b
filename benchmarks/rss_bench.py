"""Supervisor memory over a long run (DESIGN.md §4: "supervisor RSS flat over a long run").

The scheduler runs in a child process of its own (``python -m benchmarks.rss_bench --serve DB``: a ``Scheduler``
with 2 workers, durability normal, the default retention of 100,000 history rows), so its resident set is not
mixed with the harness's. The harness submits no-ops from a ``connect()`` client in rounds of ``round_size``
(one ``submit_batch`` each), waits for each round's completions in the log, and reads the child's
``/proc/<pid>/status`` after every round:

* ``start_mib``: after ``start()`` returned (workers up), before any task;
* ``warm_mib``: after the first ``warmup`` tasks;
* ``end_mib`` and ``peak_mib`` (VmHWM) after all ``total`` tasks; ``anon_*_mib``: the anonymous part (heap:
  Python objects and SQLite's page cache, 16 MiB per connection at most) without mapped files;
* ``growth_per_100k_mib``: (end - warm) per 100,000 tasks after the warm-up (``anon_growth_per_100k_mib`` the
  same for the anonymous part). Flat means about 0.

The growth includes SQLite's page cache filling up as the database grows (the history keeps 100,000 rows),
which is bounded; a leak keeps growing with the number of tasks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import taskmill as tm

from .harness import Result
from .scratch import DONE_VAR, DoneLog, check_distinct, scratch_dir
from .workload_tasks import Noop, bench

ROUND_TIMEOUT_S = 120.0
REPO = Path(__file__).resolve().parent.parent
KEEP = 10_000  # history rows kept: the database reaches its steady size early in the warm-up


def serve(db: str, keep: int) -> None:
    """The child: run a scheduler until stdin is closed (the harness exiting closes it too)."""
    retention = tm.RetentionPolicy.max_count(keep)
    with tm.Scheduler(db, [bench], workers=2, durability="normal", retention=retention):
        print("ready", flush=True)
        sys.stdin.read()


def read_status(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and VmHWM of ``pid`` in MiB (Linux)."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "VmHWM"):
                out[key] = int(value.split()[0]) / 1024
    return out


def supervisor_rss(root: Path, total: int, warmup: int, round_size: int, keep: int = KEEP) -> Result:
    if not Path("/proc/self/status").exists():
        return {"problems": ["needs Linux /proc to read another process's RSS"]}
    out: Result = {"problems": []}
    with scratch_dir(root, "rss") as d:
        db = str(d / "tasks.db")
        done = DoneLog(d / "done.txt")
        env = {**os.environ, DONE_VAR: str(done.path)}
        cmd = [sys.executable, "-m", "benchmarks.rss_bench", "--serve", db, "--keep", str(keep)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO, env=env, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            if proc.stdout.readline().strip() != "ready":
                return {"problems": [f"the supervisor process did not start (exit status {proc.wait(30)})"]}
            start = read_status(proc.pid)
            warm = None
            samples: list[tuple[int, float, float]] = []
            t0 = time.time()
            with tm.connect(db, durability="normal") as client:
                handle = client.domain(bench)
                submitted = 0
                while submitted < total:
                    k = min(round_size, total - submitted)
                    handle.submit_batch([Noop(i=submitted + i) for i in range(k)])
                    submitted += k
                    done.wait(submitted, ROUND_TIMEOUT_S)
                    status = read_status(proc.pid)
                    samples.append((submitted, status["VmRSS"], status["RssAnon"]))
                    if warm is None and submitted >= warmup:
                        warm, warm_at = status, submitted
                out["tasks_per_s"] = total / (time.time() - t0)
            end = read_status(proc.pid)
        finally:
            proc.stdin.close()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                out["problems"].append("the supervisor process did not stop within 60 s of its stdin closing")
        if proc.returncode:
            out["problems"].append(f"the supervisor process exited with status {proc.returncode}")
        out["problems"] += check_distinct(done.lines("n"), total, "rss")
    assert warm is not None
    per_100k = 100_000 / max(1, total - warm_at)
    out.update(
        start_mib=start["VmRSS"],
        warm_mib=warm["VmRSS"],
        end_mib=end["VmRSS"],
        peak_mib=end["VmHWM"],
        anon_start_mib=start["RssAnon"],
        anon_warm_mib=warm["RssAnon"],
        anon_end_mib=end["RssAnon"],
        growth_per_100k_mib=(end["VmRSS"] - warm["VmRSS"]) * per_100k,
        anon_growth_per_100k_mib=(end["RssAnon"] - warm["RssAnon"]) * per_100k,
        rss_by_round=samples,  # (tasks done, VmRSS, RssAnon): in the JSON only
    )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.rss_bench", description=__doc__.split("\n")[0])
    p.add_argument("--serve", metavar="DB", required=True, help="run the scheduler on DB until stdin closes")
    p.add_argument("--keep", type=int, default=KEEP, help="history rows kept (retention)")
    args = p.parse_args(argv)
    serve(args.serve, args.keep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

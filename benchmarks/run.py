"""The project benchmark: DESIGN.md §4 targets, measured on this machine, medians over repetitions.

    python -m benchmarks.run [--durability normal,full] [--repeat 3] [--smoke] [--json out.json]

Repetitions are the outer loop and the durability order rotates each time, so load drifts on a shared
machine spread over both settings. The exit status is 1 only when a run is *broken* (lost, duplicated or
stuck tasks, a crash); a missed target is printed as such and never fails the command, so CI's smoke run
(``--smoke``: tiny counts, well under 30 s) checks that everything works, not how fast this box is.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import apsw

import taskmill

from .latency import latency
from .measure import batch_submit, cpu_scaling, dispatch_complete, single_submit
from .scratch import Durability, describe_root, scratch_root

HIDDEN = {"seconds"}  # kept in the JSON, left out of the table


@dataclass(frozen=True)
class Counts:
    submit: int = 5000
    batch: int = 5000
    drain: int = 10_000
    cpu: int = 40
    cpu_warmup: int = 10
    latency: int = 300
    idle_s: float = 2.0


SMOKE = Counts(submit=200, batch=500, drain=500, cpu=4, cpu_warmup=2, latency=20, idle_s=0.1)


@dataclass(frozen=True)
class Target:
    workload: str
    metric: str
    durability: str | None  # None: any
    op: str  # ">=" or "<="
    value: float


TARGETS = [
    Target("single_submit", "tasks_per_s", "normal", ">=", 25_000),
    Target("single_submit", "tasks_per_s", "full", ">=", 4_000),
    Target("batch_submit", "tasks_per_s", None, ">=", 150_000),
    Target("dispatch", "tasks_per_s", "normal", ">=", 35_000),
    Target("dispatch", "tasks_per_s", "full", ">=", 20_000),
    Target("dispatch", "steady_tasks_per_s", "normal", ">=", 35_000),
    Target("dispatch", "steady_tasks_per_s", "full", ">=", 20_000),
    Target("cpu_scaling", "speedup", None, ">=", 1.8),
    Target("latency", "inproc_p50_ms", None, "<=", 1.0),
    Target("latency", "xproc_p50_ms", None, "<=", 3.0),
    Target("latency", "inproc_p99_ms", None, "<=", 10.0),
    Target("latency", "xproc_p99_ms", None, "<=", 10.0),
]
OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}
ORDER = ["single_submit", "batch_submit", "dispatch", "latency", "cpu_scaling"]


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n")[0])
    p.add_argument("--durability", type=_csv, default=["normal", "full"], help="comma list of normal,full")
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; 1 with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny counts: checks that everything works")
    p.add_argument("--json", type=Path, help="write every repetition and the summary here")
    args = p.parse_args(argv)
    if not args.durability or any(d not in ("normal", "full") for d in args.durability):
        p.error("--durability takes a comma list of normal and full")
    args.repeat = args.repeat or (1 if args.smoke else 3)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    return args


Step = tuple[str, str, Callable[[], dict[str, Any]]]


def plan(durabilities: list[Durability], c: Counts, root: Path) -> list[Step]:
    """One repetition: every durability-dependent workload per durability, CPU scaling once."""
    steps: list[Step] = []
    for dur in durabilities:
        steps += [
            ("single_submit", dur, partial(single_submit, root, dur, c.submit)),
            ("batch_submit", dur, partial(batch_submit, root, dur, c.batch)),
            ("dispatch", dur, partial(dispatch_complete, root, dur, c.drain)),
            ("latency", dur, partial(latency, root, dur, c.latency, c.idle_s)),
        ]
    steps.append(("cpu_scaling", "-", partial(cpu_scaling, root, c.cpu, c.cpu_warmup)))
    return steps


def run_step(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    load_start = os.getloadavg()[0]
    t_a = time.time()
    try:
        res = fn()
    except Exception as exc:  # reported as a broken run; the other workloads still run
        traceback.print_exc()
        res = {"problems": [f"{type(exc).__name__}: {exc}"]}
    res.update(load_start=load_start, load_end=os.getloadavg()[0], elapsed_s=time.time() - t_a)
    res["ok"] = not res["problems"]
    return res


def summarise(runs: list[dict]) -> dict[tuple[str, str, str], list[float]]:
    values: dict[tuple[str, str, str], list[float]] = {}
    for run in runs:
        for metric, v in run["result"].items():
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if numeric and metric not in HIDDEN and not metric.startswith("load_") and metric != "elapsed_s":
                values.setdefault((run["workload"], metric, run["durability"]), []).append(float(v))
    return values


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _verdict(workload: str, metric: str, cells: dict[str, list[float]]) -> str:
    marks = []
    for t in TARGETS:
        if t.workload != workload or t.metric != metric:
            continue
        for dur, vs in cells.items():
            if t.durability in (None, dur):
                med = statistics.median(vs)
                tag = "" if t.durability is None and len(cells) == 1 else f"{dur} "
                ok = "ok" if OPS[t.op](med, t.value) else "MISSED"
                marks.append(f"{tag}{t.op} {_fmt(t.value)} {ok}")
    return "; ".join(marks)


def print_table(
    values: dict[tuple[str, str, str], list[float]], durabilities: list[str], judge: bool
) -> None:
    cols = [*durabilities, "-"]
    keys = sorted({(w, m) for w, m, _ in values}, key=lambda k: (ORDER.index(k[0]), k[1]))
    table = [["workload", "metric", *[c if c != "-" else "(any)" for c in cols], "target"]]
    for w, m in keys:
        cells = {d: values[(w, m, d)] for d in cols if (w, m, d) in values}
        line = [w, m]
        for d in cols:
            vs = cells.get(d)
            line.append(f"{_fmt(statistics.median(vs))} [{_fmt(min(vs))}-{_fmt(max(vs))}]" if vs else "")
        table.append([*line, _verdict(w, m, cells) if judge else ""])
    empty = {i for i in range(2, len(cols) + 2) if not any(row[i] for row in table[1:])}
    table = [[cell for i, cell in enumerate(row) if i not in empty] for row in table]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = SMOKE if args.smoke else Counts()
    root = scratch_root()
    meta = {
        "python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
        "taskmill": taskmill.__version__, "sqlite": apsw.sqlite_lib_version(), "apsw": apsw.apsw_version(),
        "scratch": describe_root(root), "counts": asdict(counts), "repeat": args.repeat,
        "load_1min_start": os.getloadavg()[0], "started": time.time(),
    }  # fmt: skip
    print(f"taskmill {meta['taskmill']} | SQLite {meta['sqlite']} | Python {meta['python']} | "
          f"{meta['cpus']} CPUs | load(1 min) {meta['load_1min_start']:.2f} | "
          f"db dir {meta['scratch']}")  # fmt: skip
    print(f"counts: {counts}; durabilities: {args.durability}; repetitions: {args.repeat}", flush=True)
    runs: list[dict] = []
    for rep in range(args.repeat):
        shift = rep % len(args.durability)
        durs = cast(list[Durability], args.durability[shift:] + args.durability[:shift])
        for workload, dur, fn in plan(durs, counts, root):
            res = run_step(fn)
            runs.append({"rep": rep, "workload": workload, "durability": dur, "result": res})
            state = "ok" if res["ok"] else f"BROKEN {res['problems']}"
            print(f"rep {rep} {workload}/{dur}: {state} ({res['elapsed_s']:.1f} s, "
                  f"load {res['load_start']:.2f}->{res['load_end']:.2f})", flush=True)  # fmt: skip
    values = summarise(runs)
    print()
    print_table(values, args.durability, judge=not args.smoke)
    if args.smoke:
        print("(--smoke: counts too small for the figures to mean anything; targets are not judged)")
    meta["load_1min_end"] = os.getloadavg()[0]
    broken = [(r["rep"], r["workload"], r["durability"]) for r in runs if not r["result"]["ok"]]
    print(f"\nload(1 min) {meta['load_1min_start']:.2f} -> {meta['load_1min_end']:.2f}; "
          f"{time.time() - meta['started']:.1f} s; broken runs: {broken or 'none'}")  # fmt: skip
    if args.json:
        summary = [
            {"workload": w, "metric": m, "durability": d, "n": len(vs),
             "median": statistics.median(vs), "min": min(vs), "max": max(vs)}
            for (w, m, d), vs in values.items()
        ]  # fmt: skip
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "runs": runs, "summary": summary}, indent=1))
        print(f"wrote {args.json}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks run [WORKLOAD ...]``: the workloads of ``suite.py``, medians over repetitions.

    python -m benchmarks run                      # everything, 3 repetitions, both durabilities
    python -m benchmarks run drain latency        # a subset
    python -m benchmarks.run --smoke              # CI: tiny counts, one repetition, targets not judged

Repetitions are the outer loop and the durability order rotates each time, so load drifts on a shared
machine spread over both settings. Results go to ``--out`` (default ``benchmarks/results/run-<time>/``):
``results.txt`` (the table), ``results.json`` (every repetition, the summary, the machine) and PNG plots.
The exit status is 1 only when a run is *broken* (lost, duplicated or stuck tasks, a crash); a missed
target is printed as such and never fails the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from . import report, run_plots
from .scratch import Durability, describe_root, scratch_root
from .suite import BY_NAME, ORDER, SMOKE, TARGETS, Counts


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks run",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="workloads:\n" + "\n".join(f"  {w:<15} {BY_NAME[w].about}" for w in ORDER),
    )
    p.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="names to run (default: all)")
    p.add_argument("--durability", type=_csv, default=["normal", "full"], help="comma list of normal,full")
    p.add_argument("--repeat", type=int, default=None, help="repetitions (default 3; 1 with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny counts: checks that everything works")
    p.add_argument(
        "--out",
        type=Path,
        help="output directory (default benchmarks/results/run-<time>; none with --smoke unless given)",
    )
    p.add_argument("--json", type=Path, help="also write the JSON here")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    args = p.parse_args(argv)
    unknown = [w for w in args.workloads if w not in BY_NAME]
    if unknown:
        p.error(f"unknown workload(s) {unknown}; known: {', '.join(ORDER)}")
    args.workloads = [w for w in ORDER if w in args.workloads] if args.workloads else list(ORDER)
    if not args.durability or any(d not in ("normal", "full") for d in args.durability):
        p.error("--durability takes a comma list of normal and full")
    args.repeat = args.repeat or (1 if args.smoke else 3)
    if args.repeat < 1:
        p.error("--repeat must be >= 1")
    if args.out is None and not args.smoke:
        args.out = report.default_out("run")
    return args


Step = tuple[str, str, Callable[[], dict[str, Any]]]


def plan(names: list[str], durabilities: list[Durability], c: Counts, root: Path) -> list[Step]:
    """One repetition: each durability-dependent workload per durability, the others once (on normal)."""
    steps: list[Step] = []
    for name in names:
        w = BY_NAME[name]
        for dur in durabilities if w.per_durability else [cast(Durability, "normal")]:
            steps.append((name, dur if w.per_durability else "-", lambda w=w, dur=dur: w.fn(root, dur, c)))
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = SMOKE if args.smoke else Counts()
    root = scratch_root()
    out = report.Printer()
    meta = report.machine(
        scratch=describe_root(root),
        counts=asdict(counts),
        repeat=args.repeat,
        workloads=args.workloads,
        durabilities=args.durability,
    )
    out(report.describe(meta) + f" | db dir {meta['scratch']}")
    out(f"workloads: {' '.join(args.workloads)}; durabilities: {args.durability}; repetitions: {args.repeat}")
    runs: list[dict[str, Any]] = []
    for rep in range(args.repeat):
        shift = rep % len(args.durability)
        durs = cast(list[Durability], args.durability[shift:] + args.durability[:shift])
        for workload, dur, fn in plan(args.workloads, durs, counts, root):
            res = run_step(fn)
            runs.append({"rep": rep, "workload": workload, "durability": dur, "result": res})
            state = "ok" if res["ok"] else f"BROKEN {res['problems']}"
            print(
                f"rep {rep} {workload}/{dur}: {state} ({res['elapsed_s']:.1f} s, "
                f"load {res['load_start']:.2f}->{res['load_end']:.2f})",
                flush=True,
            )
    report.finish(meta)
    values = report.summarise(runs)
    out()
    out("\n".join(report.value_table(values, ORDER, [*args.durability, "-"])))
    checks = report.verdicts(values, TARGETS)
    if args.smoke:
        out("(--smoke: counts too small for the figures to mean anything; targets are not judged)")
    elif checks:
        out("\ntargets (DESIGN.md §4), medians:")
        out("\n".join(report.verdict_table(checks)))
    broken = [(r["rep"], r["workload"], r["durability"]) for r in runs if not r["result"]["ok"]]
    la = meta["load_avg_end"]
    out(
        f"\nload avg at the end {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}; {meta['duration_s']:.1f} s; "
        f"broken runs: {broken or 'none'}"
    )
    payload = {
        "meta": meta,
        "runs": runs,
        "summary": report.summary_rows(values),
        "targets": [] if args.smoke else checks,
    }
    if args.out:
        report.write_outputs(args.out, payload, out.lines)
        if not args.no_plots:
            for line in run_plots.plot_run(runs, meta, args.out):
                out(line)
        print(f"wrote {args.out}/")
    if args.json:
        report.write_json(args.json, payload)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks compare``: the peer protocol's W1-W5 for taskmill and every installed peer, in one
run, with taskmill / peer ratios and the issue's two peer targets.

    python -m benchmarks compare                        # taskmill and every available peer, normal and full
    python -m benchmarks compare --peers taskmill,huey,rq --repeat 5
    python -m benchmarks compare --peers taskmill --smoke

It drives ``benchmarks.peers`` (the harness, adapters and workloads, ``reference/peer-protocol.md``). A peer
whose library is missing is skipped with one line (``pip install -e '.[bench]'`` installs Huey,
``'.[peers-redis]'`` RQ, Dramatiq and Celery), and so is a Redis peer when no Redis server answers at
``REDIS_URL`` (default ``redis://127.0.0.1:6379``). Targets: taskmill drains W3 at >= 5x Huey's rate and its W4
p50 latency is <= 1/5 of Huey's, per durability, from the medians of this run; the other peers get the same
ratios without a target. The ``per-rep`` column gives the min-max of the ratio taken within each repetition.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
from pathlib import Path
from typing import Any

from . import plots, report
from .peers import run as peers_run
from .peers.adapter import pids_with_marker
from .peers.workloads import ORDER

RATIO_TARGETS = [  # (workload, metric, op, bound, text)
    ("W3", "tasks_per_s", ">=", 5.0, "W3 drain >= 5x Huey"),
    ("W4", "p50_ms", "<=", 0.2, "W4 p50 latency <= 1/5 of Huey"),
]
CONTEXT = [
    ("W1", "tasks_per_s"),
    ("W2", "tasks_per_s"),
    ("W3", "steady_tasks_per_s"),
    ("W3", "startup_s"),
    ("W4", "p99_ms"),
    ("W5", "speedup"),
]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, argparse.Namespace]:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks compare",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--peers", default="taskmill,huey,rq,dramatiq,celery", help="comma list of registered peers")
    p.add_argument("--baseline", default="huey", help="the peer the targets are judged against")
    p.add_argument("--durability", default="normal,full")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the protocol's task counts")
    p.add_argument("--workloads", default=",".join(ORDER))
    p.add_argument("--smoke", action="store_true", help="--scale 0.02 --repeat 1")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/results/compare-<time>)")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.scale, args.repeat = 0.02, 1
    args.out = args.out or report.default_out("compare")
    inner = peers_run.parse_args(
        [
            "--peers",
            args.peers,
            "--durability",
            args.durability,
            "--repeat",
            str(args.repeat),
            "--scale",
            str(args.scale),
            "--workloads",
            args.workloads,
            "--baseline",
            args.baseline,
        ]
    )
    return args, inner


def ratios(runs: list[dict], rows: list[dict], peer: str, base: str, targets: bool = True) -> list[dict[str, Any]]:
    """taskmill/peer ratio of the medians per (workload, metric, durability), and the per-repetition range;
    with ``targets`` the issue's two targets are judged (they are stated against Huey)."""
    med = {(r["workload"], r["metric"], r["peer"], r["durability"]): r.get("median") for r in rows}
    judged = [(w, m, op, bound, text if targets else "") for w, m, op, bound, text in RATIO_TARGETS]
    out = []
    for wl, metric, op, bound, text in [*judged, *[(w, m, "", 0.0, "") for w, m in CONTEXT]]:
        for dur in sorted({r["durability"] for r in runs}):
            a, b = med.get((wl, metric, peer, dur)), med.get((wl, metric, base, dur))
            if not a or not b:
                continue
            per_rep = []
            for rep in sorted({r["rep"] for r in runs}):
                ra = [
                    r["workloads"].get(wl, {}).get(metric)
                    for r in runs
                    if (r["rep"], r["peer"], r["durability"]) == (rep, peer, dur)
                ]
                rb = [
                    r["workloads"].get(wl, {}).get(metric)
                    for r in runs
                    if (r["rep"], r["peer"], r["durability"]) == (rep, base, dur)
                ]
                if ra and rb and ra[0] and rb[0]:
                    per_rep.append(ra[0] / rb[0])
            ratio = a / b
            row = {
                "vs": base,
                "workload": wl,
                "metric": metric,
                "durability": dur,
                peer: a,
                base: b,
                "ratio": ratio,
                "per_rep_min": min(per_rep, default=ratio),
                "per_rep_max": max(per_rep, default=ratio),
            }
            if text:
                row.update(target=text, **{"pass": report.OPS[op](ratio, bound)})
            out.append(row)
    return out


def ratio_table(rows: list[dict[str, Any]], peer: str, base: str) -> list[str]:
    table = [["workload", "metric", "durability", peer, base, f"{peer} / {base}", "per-rep", "target"]]
    for r in rows:
        verdict = f"{r['target']}: {'pass' if r['pass'] else 'MISS'}" if "target" in r else ""
        table.append(
            [
                r["workload"],
                r["metric"],
                r["durability"],
                report.fmt(r[peer]),
                report.fmt(r[base]),
                f"{r['ratio']:.2f}x",
                f"{r['per_rep_min']:.2f}-{r['per_rep_max']:.2f}",
                verdict,
            ]
        )
    return report.render(table)


def plot_compare(runs: list[dict], meta: dict[str, Any], out: Path) -> list[str]:
    if not plots.available():
        return ["plots skipped: matplotlib is not installed (pip install -e '.[bench]')"]
    la = meta["load_avg_start"][0]
    note = f"{meta['cpus']} CPUs, SQLite {meta['sqlite']}, load {la:.2f}; pooled over {meta['repeat']} repetition(s)"
    combos = sorted({(r["peer"], r["durability"]) for r in runs})
    series = {
        f"{p}/{d}": [
            x
            for r in runs
            if (r["peer"], r["durability"]) == (p, d)
            for x in r["workloads"].get("W4", {}).get("samples_ms", [])
        ]
        for p, d in combos
    }
    done = [
        plots.latency_cdf(
            {k: v for k, v in series.items() if v},
            out / "compare_w4_latency_cdf.png",
            "W4: submit → start latency, 2 worker processes (10 ms grid)",
            note,
        )
    ]
    labels = ["W1 enqueue", "W2 bulk", "W3 drain", "W3 steady"]
    keys = [("W1", "tasks_per_s"), ("W2", "tasks_per_s"), ("W3", "tasks_per_s"), ("W3", "steady_tasks_per_s")]
    groups = {}
    for p, d in combos:
        vals = []
        for wl, metric in keys:
            xs = [r["workloads"].get(wl, {}).get(metric) for r in runs if (r["peer"], r["durability"]) == (p, d)]
            xs = [x for x in xs if x]
            vals.append(statistics.median(xs) if xs else float("nan"))
        groups[f"{p}/{d}"] = vals
    done.append(
        plots.bars(
            labels,
            groups,
            out / "compare_throughput.png",
            title="peer protocol throughput (median)",
            ylabel="tasks/s (log)",
            note=note,
            logy=True,
        )
    )
    return [f"plot: {p}" for p in done]


def main(argv: list[str] | None = None) -> int:
    args, inner = parse_args(argv)
    out = report.Printer()
    meta = report.machine(repeat=args.repeat, scale=args.scale, peers=args.peers)
    out(report.describe(meta))
    adapters = peers_run.load_adapters(inner.peers)
    combos = peers_run.plan(inner, adapters)
    if not combos:
        print("nothing to run", file=sys.stderr)
        return 1
    runs = peers_run.execute(inner, adapters, combos)
    report.finish(meta)
    rows = peers_run.summarise(runs)
    for dur in dict.fromkeys(d for _, d in combos):  # One table per durability keeps the columns readable.
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            peers_run.print_table(rows, [c for c in combos if c[1] == dur], None)
        out("\n" + buf.getvalue().rstrip())
    checks: list[dict[str, Any]] = []
    others = [p for p in adapters if p != "taskmill"]
    for peer in others if "taskmill" in adapters else []:
        table = ratios(runs, rows, "taskmill", peer, targets=peer == args.baseline)
        checks += table
        out(f"\ntaskmill / {peer}, ratio of the medians (per-rep: range of the within-repetition ratios):")
        out("\n".join(ratio_table(table, "taskmill", peer)))
    if not checks:
        out("\n(no ratios: needs taskmill and another peer in one run)")
    leftovers = pids_with_marker()
    failures = peers_run.failures_of(runs)
    out(
        f"\n{meta['duration_s']:.0f} s; failed workloads: {failures or 'none'}; leftover workers: {leftovers or 'none'}"
    )
    settings = {f"{x['peer']}/{x['durability']}": x["settings"] for x in runs if x["rep"] == 0}
    for k, v in settings.items():
        out(f"settings {k}: {v}")
    report.write_outputs(
        args.out, {"meta": meta, "runs": runs, "summary": rows, "ratios": checks, "settings": settings}, out.lines
    )
    if not args.no_plots:
        for line in plot_compare(runs, meta, args.out):
            out(line)
    print(f"wrote {args.out}/")
    return 1 if failures or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())

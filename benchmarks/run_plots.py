"""Plots of a ``run``: latency CDFs, concurrency scaling, next-task cost by queue depth, supervisor RSS."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from . import plots


def _note(meta: dict[str, Any]) -> str:
    la = meta["load_avg_start"][0]
    return (
        f"taskmill {meta['taskmill']} ({meta['commit']}), SQLite {meta['sqlite']}, Python {meta['python']}, "
        f"{meta['cpus']} CPUs, load {la:.2f}; medians over {meta['repeat']} repetition(s), band = min-max"
    )


def _results(runs: list[dict[str, Any]], workload: str) -> list[dict[str, Any]]:
    return [r for r in runs if r["workload"] == workload and r["result"].get("ok")]


def _spread(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return math.nan, math.nan, math.nan
    return statistics.median(values), min(values), max(values)


def plot_run(runs: list[dict[str, Any]], meta: dict[str, Any], out: Path) -> list[str]:
    """Write the PNGs this run has data for; returns one message per plot (or why there are none)."""
    if not plots.available():
        return ["plots skipped: matplotlib is not installed (pip install -e '.[bench]')"]
    note, done = _note(meta), []
    lat = _results(runs, "latency")
    if lat:
        series = {}
        for where, label in (
            ("inproc", "in-process"),
            ("inproc_busy", "in-process, busy submitter"),
            ("xproc", "other process"),
        ):
            for dur in sorted({r["durability"] for r in lat}):
                pooled = [x for r in lat if r["durability"] == dur for x in r["result"].get(f"{where}_samples_ms", [])]
                if pooled:
                    series[f"{label}, {dur}"] = pooled
        done.append(
            plots.latency_cdf(
                series,
                out / "latency_cdf.png",
                "taskmill: submit → start latency (10 ms grid, 2 workers)",
                note,
                marks=(1.0, 3.0, 10.0),
            )
        )
    conc = _results(runs, "concurrency")
    if conc:
        levels = sorted({int(k[2:].split("_")[0]) for r in conc for k in r["result"] if k.endswith("_tasks_per_s")})
        got = [_spread([r["result"][f"mc{m}_tasks_per_s"] for r in conc]) for m in levels]
        ideal = [m * 1000.0 / 5.0 for m in levels]
        curves = {
            "measured": ([g[0] for g in got], [g[1] for g in got], [g[2] for g in got]),
            "ideal (max_concurrency / 5 ms)": (ideal, ideal, ideal),
        }
        done.append(
            plots.lines(
                levels,
                curves,
                out / "concurrency.png",
                title="async 5 ms tasks on 2 workers",
                xlabel="max_concurrency",
                ylabel="tasks/s",
                note=note,
                logx=True,
            )
        )
    nxt = _results(runs, "next_task")
    if nxt:
        tags = [k[1:-6] for k in nxt[0]["result"] if k.startswith("d") and k.endswith("_tx_us") and "batch" not in k]
        groups = {
            "claim 1 (BEGIN..COMMIT)": [_spread([r["result"][f"d{t}_tx_us"] for r in nxt])[0] for t in tags],
            "claim_next call only": [_spread([r["result"][f"d{t}_claim_us"] for r in nxt])[0] for t in tags],
        }
        done.append(
            plots.bars(
                [f"{t} pending" for t in tags],
                groups,
                out / "next_task.png",
                title="next-task cost by queue depth",
                ylabel="µs (median)",
                note=note,
            )
        )
    rss = _results(runs, "rss")
    if rss:
        starts = [[0, r["result"]["start_mib"], r["result"]["anon_start_mib"]] for r in rss]
        rounds = [[start, *r["result"]["rss_by_round"]] for start, r in zip(starts, rss, strict=True)]
        xs = [row[0] // 1000 if row[0] % 1000 == 0 else row[0] / 1000 for row in rounds[0]]
        curves = {}
        for col, label in ((1, "RSS"), (2, "anonymous (heap)")):
            per_x = [[rr[k][col] for rr in rounds if len(rr) > k] for k in range(len(xs))]
            got = [_spread(v) for v in per_x]
            curves[label] = ([g[0] for g in got], [g[1] for g in got], [g[2] for g in got])
        done.append(
            plots.lines(
                xs,
                curves,
                out / "rss.png",
                title="supervisor process memory while it drains no-ops (2 workers)",
                xlabel="thousands of tasks done",
                ylabel="MiB",
                note=note,
            )
        )
    return [f"plot: {p}" for p in done] or ["no plots for these workloads"]

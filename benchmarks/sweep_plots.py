"""Plots of a ``sweep``: one PNG per panel, throughput against the panel's knob, knees starred."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import plots

TITLES = {
    "workers": ("no-op throughput vs workers", "workers", False),
    "depth": ("no-op throughput vs prefetch depth (tasks claimed per worker), 2 workers", "prefetch depth", True),
    "async": ("async 5 ms tasks on 2 workers vs max_concurrency", "max_concurrency", True),
    "cpu": ("CPU-bound spin(1.6M) throughput vs workers", "workers", False),
    "short": ("sync tasks that block a few ms (time.sleep) vs workers", "workers", False),
}


def plot_sweep(panels: dict[str, Any], meta: dict[str, Any], out: Path) -> list[str]:
    if not plots.available():
        return ["plots skipped: matplotlib is not installed (pip install -e '.[bench]')"]
    la = meta["load_avg_start"][0]
    note = (
        f"taskmill {meta['taskmill']} ({meta['commit']}), SQLite {meta['sqlite']}, {meta['cpus']} CPUs, "
        f"load {la:.2f}; median of {meta['repeat']}, band = min-max; busy rate"
    )
    done = []
    for panel, data in panels.items():
        title, xlabel, logx = TITLES[panel]
        curves = {s: (c["median"], c["min"], c["max"]) for s, c in data["curves"].items()}
        knees = {s: k for s, k in data["knees"].items() if k is not None}
        done.append(
            plots.lines(
                data["x"],
                curves,
                out / f"sweep_{panel}.png",
                title=title,
                xlabel=xlabel,
                ylabel="tasks/s",
                note=note,
                logx=logx,
                knees=knees,
            )
        )
    return [f"plot: {p}" for p in done]

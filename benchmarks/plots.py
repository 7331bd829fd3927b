"""PNG plots of benchmark results, with matplotlib (the optional ``bench`` extra).

Every function takes plain result data and a path, and returns the path it wrote; ``available()`` says
whether matplotlib is importable, so callers skip the plots with a message instead of failing.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Series = dict[str, list[float]]  # label -> values


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path, note: str) -> Path:
    fig.text(0.01, 0.005, note, fontsize=7, color="0.4", va="bottom")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def latency_cdf(series: Series, path: Path, title: str, note: str, marks: Sequence[float] = ()) -> Path:
    """One empirical CDF per label (samples in ms, pooled over repetitions), log x axis."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, samples in series.items():
        xs = sorted(samples)
        if xs:
            ax.step(xs, [(i + 1) / len(xs) for i in range(len(xs))], where="post", label=f"{label} (n={len(xs)})")
    for m in marks:
        ax.axvline(m, color="0.6", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("submit → executor start (ms, log scale)")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path, note)


def lines(
    xs: Sequence[float],
    curves: dict[str, tuple[list[float], list[float], list[float]]],
    path: Path,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    note: str,
    logx: bool = False,
    knees: dict[str, float] | None = None,
) -> Path:
    """Median curves with a min-max band; ``curves[label] = (medians, mins, maxes)`` aligned with ``xs``.

    A NaN median leaves a gap (that combination was not measured). ``knees`` marks a point per curve.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, (med, lo, hi) in curves.items():
        (line,) = ax.plot(xs, med, marker="o", label=label)
        ax.fill_between(xs, lo, hi, alpha=0.15, color=line.get_color())
        if knees and label in knees:
            k = knees[label]
            ax.plot(
                [k],
                [med[list(xs).index(k)]],
                marker="*",
                markersize=14,
                color=line.get_color(),
                markeredgecolor="black",
                linestyle="none",
            )
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_xticks(list(xs))
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path, note + ("   ★ = knee" if knees else ""))


def bars(
    labels: list[str],
    groups: dict[str, list[float]],
    path: Path,
    *,
    title: str,
    ylabel: str,
    note: str,
    logy: bool = False,
) -> Path:
    """Grouped bars: ``groups[series] = one value per label`` (NaN: not measured)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    width = 0.8 / max(1, len(groups))
    for k, (name, vals) in enumerate(groups.items()):
        pos = [i + (k - (len(groups) - 1) / 2) * width for i in range(len(labels))]
        bars_ = ax.bar(pos, [0 if v != v else v for v in vals], width=width, label=name)
        for x, v in zip(pos, vals, strict=True):
            if v != v:  # NaN: not measured / no such API
                ax.text(
                    x,
                    0.02,
                    "n/a",
                    transform=ax.get_xaxis_transform(),
                    ha="center",
                    fontsize=7,
                    color=bars_.patches[0].get_facecolor(),
                )
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_title(title)
    if len(groups) > 4:  # Many series (every peer, both durabilities): keep the legend off the bars.
        fig.set_size_inches(9.5, 4.5)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    else:
        ax.legend(fontsize=8)
    return _save(fig, path, note)

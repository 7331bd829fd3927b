"""Everything the three subcommands share about results: the machine, medians over repetitions, the text
table, target verdicts, and writing ``results.json`` / ``results.txt`` into an output directory.

A *run* is one repetition of one workload: ``{"rep", "workload", "durability", "result"}`` where ``result``
is a flat dict of figures (units in the names). Lists in a result (latency samples) go to the JSON and the
plots only; ``summarise`` keeps the numbers.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

import taskmill

from . import bytecode

BENCH_DIR = Path(__file__).resolve().parent
HIDDEN = {"seconds", "elapsed_s"}  # kept in the JSON, left out of the table
Values = dict[tuple[str, str, str], list[float]]  # (workload, metric, durability) -> one value per repetition


@dataclass(frozen=True)
class Target:
    workload: str
    metric: str
    durability: str | None  # None: any
    op: str  # ">=" or "<="
    value: float
    text: str  # how the docs state it
    ceiling: tuple[str, str] | None = None  # (workload, metric): the most this machine allows, same durability


OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "taskmill"],
            cwd=BENCH_DIR.parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{head}{'+dirty' if dirty else ''}" if head else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine(**extra: Any) -> dict[str, Any]:
    """What the numbers came from; ``finish()`` adds the end load and the duration. Byte-compiles this checkout
    first where needed (:mod:`.bytecode`: measured as installed), and records whether that worked."""
    compiled = bytecode.ensure_compiled()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": apsw.sqlite_lib_version(),
        "apsw": apsw.apsw_version(),
        "taskmill": taskmill.__version__,
        "commit": _git_commit(),
        "bytecode": compiled,
        "load_avg_start": os.getloadavg(),
        "started": time.time(),
        **extra,
    }


def finish(meta: dict[str, Any]) -> None:
    meta["load_avg_end"] = os.getloadavg()
    meta["duration_s"] = time.time() - meta["started"]


def describe(meta: dict[str, Any]) -> str:
    la = meta["load_avg_start"]
    return (
        f"taskmill {meta['taskmill']} ({meta['commit']}) | SQLite {meta['sqlite']} | Python {meta['python']} | "
        f"{meta['cpus']} CPUs ({meta['cpu_model']}) | load avg {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} | "
        f"{meta['bytecode']}"
    )


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def summarise(runs: Iterable[dict[str, Any]]) -> Values:
    values: Values = {}
    for run in runs:
        for metric, v in run["result"].items():
            if is_number(v) and metric not in HIDDEN and not metric.startswith("load_"):
                values.setdefault((run["workload"], metric, run["durability"]), []).append(float(v))
    return values


def summary_rows(values: Values) -> list[dict[str, Any]]:
    return [
        {
            "workload": w,
            "metric": m,
            "durability": d,
            "n": len(vs),
            "median": statistics.median(vs),
            "min": min(vs),
            "max": max(vs),
        }
        for (w, m, d), vs in values.items()
    ]


def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def cell(vs: list[float]) -> str:
    """``median [min-max]``; just the value when there was one repetition."""
    med = statistics.median(vs)
    return fmt(med) if len(vs) == 1 else f"{fmt(med)} [{fmt(min(vs))}-{fmt(max(vs))}]"


def verdicts(values: Values, targets: list[Target]) -> list[dict[str, Any]]:
    """One row per target and matching durability that was measured: the median, and pass/MISS."""
    out = []
    for t in targets:
        for (w, m, d), vs in sorted(values.items()):
            if w == t.workload and m == t.metric and t.durability in (None, d):
                med = statistics.median(vs)
                limit = values.get((*t.ceiling, d)) if t.ceiling is not None else None
                out.append(
                    {
                        "target": t.text,
                        "workload": w,
                        "metric": m,
                        "durability": d,
                        "median": med,
                        "min": min(vs),
                        "max": max(vs),
                        "pass": OPS[t.op](med, t.value),
                        "target_value": t.value,
                        "ceiling": statistics.median(limit) if limit else None,
                    }
                )
    return out


def _verdict(row: dict[str, Any]) -> str:
    """pass / MISS; a miss names the machine's own ceiling when one was measured, and whether it is below the
    target (then no code change can pass it here)."""
    if row["pass"]:
        return "pass"
    ceiling = row.get("ceiling")
    if ceiling is None:
        return "MISS"
    below = ", below the target" if ceiling < row["target_value"] else ""
    return f"MISS (this machine's ceiling: {fmt(ceiling)}{below})"


def render(rows: list[list[str]]) -> list[str]:
    """Left-aligned columns; a rule under the header row; empty columns dropped."""
    keep = [i for i in range(len(rows[0])) if i < 2 or any(r[i] for r in rows[1:])]
    rows = [[r[i] for i in keep] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def value_table(values: Values, order: list[str], columns: list[str]) -> list[str]:
    """Rows (workload, metric), one column per durability (``-``: durability-independent)."""
    keys = sorted({(w, m) for w, m, _ in values}, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[1]))
    rows = [["workload", "metric", *[c if c != "-" else "(any)" for c in columns]]]
    for w, m in keys:
        rows.append([w, m, *[cell(values[(w, m, d)]) if (w, m, d) in values else "" for d in columns]])
    return render(rows)


def verdict_table(rows: list[dict[str, Any]]) -> list[str]:
    table = [["target", "durability", "median [min-max]", "verdict"]]
    for r in rows:
        spread = f"{fmt(r['median'])} [{fmt(r['min'])}-{fmt(r['max'])}]"
        table.append([r["target"], r["durability"], spread, _verdict(r)])
    return render(table)


def default_out(kind: str) -> Path:
    return BENCH_DIR / "results" / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))


def write_outputs(out_dir: Path, payload: dict[str, Any], text: list[str]) -> None:
    write_json(out_dir / "results.json", payload)
    (out_dir / "results.txt").write_text("\n".join(text) + "\n")


class Printer:
    """Prints lines and keeps them, so ``results.txt`` holds exactly what the terminal showed."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, *parts: object) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        self.lines.extend(line.split("\n"))

"""``python -m benchmarks sweep``: throughput over a grid of scheduler settings, and where the curve flattens.

Panels (each a grid; ``--panels`` picks them, the axis options change their values):

* ``workers``  sync no-ops: workers x prefetch on/off x durability
* ``depth``    sync no-ops on 2 workers: the prefetch depth (tasks claimed per worker at once) forced to each
               value, per durability. ``prefetch=False`` is depth 1; the default sizes it adaptively.
* ``async``    async 5 ms naps on 2 workers: max_concurrency x async_concurrency (per-worker slots)
* ``cpu``      spin(1.6M) CPU-bound tasks: workers
* ``short``    sync executors that block for a few ms (``time.sleep``, ``--short-ms``): workers. Tasks this long
               go one per worker at a time, so each pays a dispatch round trip; the ideal is
               workers x 1000 / ms tasks/s

Task counts: ``--tasks`` no-ops per point (a tenth of it where dispatch goes one task per round trip:
prefetch off, depth < 16), ``--async-tasks`` naps per slot that can run at once, ``--cpu-tasks`` spins,
``--short-tasks`` sleeps per worker.

Each point is a fresh scheduler, warmed up, then one ``submit_batch``; the figure is the *busy rate*,
tasks / (last end - first start), from the executors' own timestamps. Repetitions are the outer loop and the
point order is shuffled each time. The knee of a curve is the smallest setting whose median reaches 90% of
the curve's best median: past it, turning the knob up buys less than 10%.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import report, sweep_plots
from .harness import Result, prefetch_cap, rates, warm_scheduler
from .scratch import Durability, Line, by_worker, check_distinct, describe_root, scratch_root
from .workload_tasks import Doze, Nap, Noop, Spin, bench, naps

PANELS = ("workers", "depth", "async", "cpu", "short")
KNEE_SHARE = 0.9
METRIC = "busy_tasks_per_s"


@dataclass(frozen=True)
class Point:
    panel: str
    kind: str  # noop | nap | spin | doze
    n: int
    workers: int = 2
    durability: str = "normal"
    prefetch: bool = True
    depth: int | None = None  # forced prefetch depth; None = adaptive
    max_concurrency: int | None = None  # None = the scheduler's default (workers x async_concurrency)
    async_concurrency: int = 16
    ms: float = 0.0  # doze: how long each task sleeps

    def x(self) -> float:
        return {
            "workers": self.workers,
            "cpu": self.workers,
            "short": self.workers,
            "depth": self.depth or 0,
            "async": self.max_concurrency or 0,
        }[self.panel]

    def series(self) -> str:
        if self.panel == "workers":
            return f"prefetch {'on' if self.prefetch else 'off'}, {self.durability}"
        if self.panel == "async":
            return f"async_concurrency {self.async_concurrency}"
        if self.panel == "short":
            return f"{self.ms:g} ms sync sleeps, {self.durability}"
        return self.durability


def _ints(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p.strip()]


def _csv(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks sweep",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--panels", type=_csv, default=list(PANELS), help=f"comma list of {','.join(PANELS)}")
    p.add_argument("--workers", type=_ints, default=[1, 2, 3, 4], help="worker counts (workers, cpu panels)")
    p.add_argument("--prefetch", type=_csv, default=["on", "off"], help="on,off (workers panel)")
    p.add_argument("--durability", type=_csv, default=["normal", "full"], help="workers and depth panels")
    p.add_argument("--depths", type=_ints, default=[1, 2, 4, 8, 16, 32, 64, 128, 256], help="depth panel")
    p.add_argument("--max-concurrency", type=_ints, default=[2, 8, 32, 128], help="async panel")
    p.add_argument("--async-concurrency", type=_ints, default=[1, 4, 16, 64], help="async panel, per worker")
    p.add_argument("--tasks", type=int, default=20_000, help="no-ops per point")
    p.add_argument("--async-tasks", type=int, default=40, help="5 ms naps per point, per slot that can run at once")
    p.add_argument("--cpu-tasks", type=int, default=16, help="CPU tasks per point")
    p.add_argument("--short-workers", type=_ints, default=[1, 2, 4, 8], help="worker counts (short panel)")
    p.add_argument("--short-ms", type=float, default=2.0, help="how long each task of the short panel sleeps")
    p.add_argument("--short-tasks", type=int, default=300, help="sleeps per worker per point (short panel)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--smoke", action="store_true", help="two values per axis, tiny counts, one repetition")
    p.add_argument("--out", type=Path, help="output directory (default benchmarks/results/sweep-<time>)")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.workers, args.prefetch, args.durability = [1, 2], ["on", "off"], ["normal"]
        args.depths, args.max_concurrency, args.async_concurrency = [1, 64], [2, 16], [1, 8]
        args.tasks, args.async_tasks, args.cpu_tasks, args.repeat = 300, 5, 2, 1
        args.short_workers, args.short_tasks = [1, 2], 20
    bad = [x for x in args.panels if x not in PANELS] + [x for x in args.prefetch if x not in ("on", "off")]
    bad += [x for x in args.durability if x not in ("normal", "full")]
    if bad or args.repeat < 1 or not args.short_ms > 0:
        p.error(f"invalid values {bad} (or --repeat < 1, or --short-ms not > 0)")
    args.out = args.out or report.default_out("sweep")
    return args


def grid(args: argparse.Namespace) -> list[Point]:
    points: list[Point] = []
    slow = max(300, args.tasks // 10)  # one task per round trip: ~1-2k/s, so fewer tasks give as long a run
    if "workers" in args.panels:
        base = Point("workers", "noop", args.tasks)
        points += [
            replace(base, workers=w, prefetch=pf == "on", durability=d, n=args.tasks if pf == "on" else slow)
            for w in args.workers
            for pf in args.prefetch
            for d in args.durability
        ]
    if "depth" in args.panels:
        points += [
            Point("depth", "noop", args.tasks if k >= 16 else slow, depth=k, durability=d)
            for k in args.depths
            for d in args.durability
        ]
    if "async" in args.panels:
        points += [
            Point("async", "nap", args.async_tasks * max(5, min(m, 2 * a)), max_concurrency=m, async_concurrency=a)
            for m in args.max_concurrency
            for a in args.async_concurrency
        ]
    if "cpu" in args.panels:
        points += [Point("cpu", "spin", args.cpu_tasks, workers=w) for w in args.workers]
    if "short" in args.panels:
        points += [
            Point("short", "doze", args.short_tasks * w, workers=w, ms=args.short_ms) for w in args.short_workers
        ]
    return points


def measure(root: Path, p: Point) -> Result:
    """One point: fresh scheduler with the point's settings, warmed up, one submit_batch, until all ran."""
    domains = [naps] if p.kind == "nap" else [bench]
    options: dict[str, Any] = {"workers": p.workers, "prefetch": p.prefetch, "async_concurrency": p.async_concurrency}
    if p.max_concurrency is not None:
        options["max_concurrency"] = p.max_concurrency
    durability: Durability = "full" if p.durability == "full" else "normal"
    with (
        prefetch_cap(p.depth),
        warm_scheduler(
            root,
            f"sweep-{p.panel}",
            durability=durability,
            domains=domains,
            warmup=20 if p.kind == "nap" else 100,
            **options,
        ) as run,
    ):
        if p.kind == "nap":
            tasks: list[Any] = [Nap(i=i, ms=5.0, kind="n") for i in range(p.n)]
        elif p.kind == "doze":
            tasks = [Doze(i=i, ms=p.ms) for i in range(p.n)]
        else:
            tasks = [Spin(i=i) for i in range(p.n)] if p.kind == "spin" else [Noop(i=i) for i in range(p.n)]
        kind = "c" if p.kind == "spin" else "n"
        t0 = time.time()
        run.handle(domains[0]).submit_batch(tasks)
        run.done.wait(run.done.count + p.n, 300.0)
        lines = run.done.lines(kind)
    out = rates(lines, t0)
    if p.kind == "doze":
        out.update(handoff(lines))
    out["problems"] = check_distinct(lines, p.n, f"{p.panel} point")
    return out


def handoff(lines: list[Line]) -> dict[str, float]:
    """For tasks that go one per worker at a time: the median time inside the executor (``body_ms``: the sleep
    and its oversleep), and the median gap on a worker from one task's end to the start of its next
    (``gap_ms``: the dispatch round trip, result to supervisor and next task back, that the ideal leaves out)."""
    gaps = [b.t_start - a.t_end for mine in by_worker(lines).values() for a, b in itertools.pairwise(mine)]
    body = statistics.median(ln.t_end - ln.t_start for ln in lines)
    return {"body_ms": body * 1000, "gap_ms": statistics.median(gaps) * 1000 if gaps else float("nan")}


def knee(xs: list[float], medians: list[float]) -> float | None:
    """Smallest x whose median reaches ``KNEE_SHARE`` of the best median."""
    pairs = [(x, m) for x, m in zip(xs, medians, strict=True) if m == m]  # NaN-free
    if not pairs:
        return None
    best = max(m for _, m in pairs)
    return min(x for x, m in pairs if m >= KNEE_SHARE * best)


def summarise(points: list[Point], results: dict[Point, list[Result]]) -> dict[str, Any]:
    """Per panel: x values, per series the (median, min, max) at each x, and the series' knee."""
    panels: dict[str, Any] = {}
    for panel in dict.fromkeys(p.panel for p in points):
        mine = [p for p in points if p.panel == panel]
        xs = sorted({p.x() for p in mine})
        curves: dict[str, dict[str, list[float]]] = {}
        for s in dict.fromkeys(p.series() for p in mine):
            med, lo, hi = [], [], []
            for x in xs:
                vals = [r[METRIC] for p in mine if p.series() == s and p.x() == x for r in results[p] if r["ok"]]
                med.append(statistics.median(vals) if vals else float("nan"))
                lo.append(min(vals) if vals else float("nan"))
                hi.append(max(vals) if vals else float("nan"))
            curves[s] = {"median": med, "min": lo, "max": hi}
        knees = {s: knee(xs, c["median"]) for s, c in curves.items()}
        panels[panel] = {"x": xs, "curves": curves, "knees": knees}
        if panel == "short":
            for key in ("gap_ms", "body_ms"):
                per_x = [[r[key] for p in mine if p.x() == x for r in results[p] if r["ok"]] for x in xs]
                panels[panel][key] = [statistics.median(v) if v else float("nan") for v in per_x]
    return panels


XLABEL = {
    "workers": "workers",
    "depth": "prefetch depth",
    "async": "max_concurrency",
    "cpu": "workers",
    "short": "workers",
}


def tables(panels: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for panel, data in panels.items():
        heads = list(data["curves"])
        rows = [[XLABEL[panel], "", *heads]]
        for i, x in enumerate(data["x"]):
            cells = []
            for s in heads:
                c = data["curves"][s]
                ok = c["median"][i] == c["median"][i]
                cells.append(
                    f"{report.fmt(c['median'][i])} [{report.fmt(c['min'][i])}-{report.fmt(c['max'][i])}]" if ok else ""
                )
            rows.append([f"{x:g}", "", *cells])
        knees = ", ".join(f"{s}: {XLABEL[panel]} = {k:g}" for s, k in data["knees"].items() if k is not None)
        lines += [f"\n[{panel}] tasks/s (busy rate), median [min-max]", *report.render(rows), f"knee -> {knees}"]
        if "gap_ms" in data:
            per = "; ".join(
                f"{XLABEL[panel]}={x:g}: {g:.2f} ms between tasks, {b:.2f} ms in each"
                for x, g, b in zip(data["x"], data["gap_ms"], data["body_ms"], strict=True)
            )
            lines.append(f"on each worker, medians: {per}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = scratch_root()
    points = grid(args)
    out = report.Printer()
    meta = report.machine(
        scratch=describe_root(root), repeat=args.repeat, args={k: v for k, v in vars(args).items() if k != "out"}
    )
    out(report.describe(meta))
    out(f"{len(points)} points x {args.repeat} repetitions; panels {args.panels}")
    results: dict[Point, list[Result]] = {p: [] for p in points}
    runs = []
    for rep in range(args.repeat):
        order = points[:]
        random.Random(rep).shuffle(order)
        for k, p in enumerate(order):
            try:
                res = measure(root, p)
            except Exception as exc:  # a broken point is reported; the sweep goes on
                res = {"problems": [f"{type(exc).__name__}: {exc}"]}
            res["ok"] = not res["problems"]
            results[p].append(res)
            runs.append({"rep": rep, "point": asdict(p), "result": res})
            rate = f"{res[METRIC]:,.0f}/s" if res["ok"] else f"BROKEN {res['problems']}"
            print(
                f"rep {rep} [{k + 1}/{len(order)}] {p.panel}: {XLABEL[p.panel]}={p.x():g} {p.series()}: {rate}",
                flush=True,
            )
    report.finish(meta)
    panels = summarise(points, results)
    for line in tables(panels):
        out(line)
    broken = [r for r in runs if not r["result"]["ok"]]
    out(
        f"\n{meta['duration_s']:.0f} s; load avg at the end {meta['load_avg_end'][0]:.2f}; broken points: {len(broken)}"
    )
    report.write_outputs(args.out, {"meta": meta, "runs": runs, "panels": panels}, out.lines)
    if not args.no_plots:
        for line in sweep_plots.plot_sweep(panels, meta, args.out):
            out(line)
    print(f"wrote {args.out}/")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line for the peer benchmark (protocol §2.4): repetitions outermost, peer order rotated.

    python -m benchmarks.peers.run --peers taskmill,huey --durability normal,full --repeat 3 [--json out.json]

With several peers including huey, the ratio columns divide by huey unless ``--baseline`` names another.

Peers come from a registry; another peer plugs in with
``register_adapter("name", factory)`` where ``factory()`` returns a
``PeerAdapter`` and raises ``ImportError`` when its library is missing, or
``PeerUnavailable`` when its server does not answer (the Redis peers: RQ,
Dramatiq, Celery at ``REDIS_URL``); the peer is then skipped with a message.
Exit status is 1 when any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .adapter import PEERS_DIR, PeerAdapter, PeerUnavailable, pids_with_marker
from .workloads import ORDER, Context, Counts, run_selected

TABLE_HIDES = {"elapsed_s", "seconds"}  # Kept in the JSON, left out of the printed table.
AdapterFactory = Callable[[], PeerAdapter]
REGISTRY: dict[str, AdapterFactory] = {}


def register_adapter(name: str, factory: AdapterFactory) -> None:
    """Make a peer available to ``--peers``; ``factory`` raises ImportError if the library is absent."""
    REGISTRY[name] = factory


def _huey() -> PeerAdapter:
    from .huey_peer.adapter import HueyAdapter

    return HueyAdapter()


def _taskmill() -> PeerAdapter:
    from .taskmill_peer.adapter import TaskmillAdapter

    return TaskmillAdapter()


def _rq() -> PeerAdapter:
    from .redisbase import require_server
    from .rq_peer.adapter import RQAdapter

    require_server(RQAdapter.db)
    return RQAdapter()


def _dramatiq() -> PeerAdapter:
    from .dramatiq_peer.adapter import DramatiqAdapter
    from .redisbase import require_server

    require_server(DramatiqAdapter.db)
    return DramatiqAdapter()


def _celery() -> PeerAdapter:
    from .celery_peer.adapter import CeleryAdapter
    from .redisbase import require_server

    require_server(CeleryAdapter.db)
    return CeleryAdapter()


register_adapter("huey", _huey)
register_adapter("taskmill", _taskmill)
register_adapter("rq", _rq)
register_adapter("dramatiq", _dramatiq)
register_adapter("celery", _celery)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.run", description=__doc__.split("\n")[0])
    p.add_argument("--peers", type=_csv, default=["huey"], help="comma list of registered peers")
    p.add_argument("--durability", type=_csv, default=["normal", "full"], help="comma list, e.g. normal,full")
    p.add_argument("--repeat", type=int, default=3, help="repetitions (the protocol asks for >= 3)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply task counts (0.02: smoke run)")
    p.add_argument("--workloads", type=_csv, default=list(ORDER), help="comma list out of W1..W5")
    p.add_argument("--baseline", help="peer whose medians the others are divided by (default: huey)")
    p.add_argument("--json", type=Path, help="write every repetition and the summary here")
    p.add_argument("--state-dir", type=Path, default=PEERS_DIR / "state")
    p.add_argument("--results-dir", type=Path, default=PEERS_DIR / "results")
    args = p.parse_args(argv)
    if args.baseline is None and len(args.peers) > 1 and "huey" in args.peers:
        args.baseline = "huey"
    bad = [w for w in args.workloads if w not in ORDER]
    if bad or args.repeat < 1 or args.scale <= 0:
        p.error(f"invalid --workloads {bad}, --repeat or --scale")
    return args


def load_adapters(names: list[str]) -> dict[str, PeerAdapter]:
    """Instantiate the requested peers, skipping (with one line each) those whose library is missing or whose
    server does not answer."""
    adapters = {}
    for name in names:
        if name not in REGISTRY:
            sys.exit(f"unknown peer {name!r}; registered: {', '.join(sorted(REGISTRY))}")
        try:
            adapters[name] = REGISTRY[name]()
        except ImportError as exc:
            print(f"skipping peer {name}: its library is not importable ({exc})", file=sys.stderr)
        except PeerUnavailable as exc:
            print(f"skipping peer {name}: {exc}", file=sys.stderr)
    return adapters


def run_one(adapter: PeerAdapter, durability: str, rep: int, args: argparse.Namespace, counts: Counts) -> dict:
    """One repetition of the selected workloads for one (peer, durability), on a fresh state directory."""
    state_dir = args.state_dir / f"{adapter.name}-{durability}"
    shutil.rmtree(state_dir, ignore_errors=True)
    try:
        adapter.setup(state_dir, durability)
    except Exception as exc:  # e.g. a Redis server that refuses CONFIG SET: this combination fails, the rest runs.
        with contextlib.suppress(Exception):
            adapter.close()
        load = os.getloadavg()[0]
        problem = f"setup: {type(exc).__name__}: {exc}"
        failed = {"ok": False, "problems": [problem], "load_start": load, "load_end": load}
        workloads = {w: dict(failed) for w in ORDER if w in args.workloads}
        return {"rep": rep, "peer": adapter.name, "durability": durability, "settings": {}, "workloads": workloads}
    try:
        ctx = Context(adapter, state_dir, args.results_dir / "logs", f"{adapter.name}-{durability}-r{rep}")
        settings = adapter.settings()
        results = run_selected(ctx, args.workloads, counts)
    finally:
        adapter.close()
    return {
        "rep": rep,
        "peer": adapter.name,
        "durability": durability,
        "settings": settings,
        "workloads": results,
    }


def summarise(runs: list[dict]) -> list[dict]:
    """Median, min and max over repetitions of each numeric figure per workload/metric/peer/durability."""
    values: dict[tuple[str, str, str, str], list[float]] = {}
    failed: dict[tuple[str, str, str], int] = {}
    for run in runs:
        for wl, res in run["workloads"].items():
            cell = (wl, run["peer"], run["durability"])
            failed[cell] = failed.get(cell, 0) + (not res["ok"])
            for metric, v in res.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and not metric.startswith("load_"):
                    values.setdefault((wl, metric, run["peer"], run["durability"]), []).append(float(v))
                elif metric == "na":
                    values.setdefault((wl, "tasks_per_s", run["peer"], run["durability"]), [])
    rows = []
    for (wl, metric, peer, dur), vs in values.items():
        row = {
            "workload": wl,
            "metric": metric,
            "peer": peer,
            "durability": dur,
            "n": len(vs),
            "failed_reps": failed.get((wl, peer, dur), 0),
        }
        if vs:
            row.update(median=statistics.median(vs), min=min(vs), max=max(vs))
        rows.append(row)
    return rows


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def print_table(rows: list[dict], columns: list[tuple[str, str]], baseline: str | None) -> None:
    """Rows = (workload, metric); one column per (peer, durability): ``median [min-max]``."""
    by_key = {(r["workload"], r["metric"], r["peer"], r["durability"]): r for r in rows}
    rows = [r for r in rows if r["metric"] not in TABLE_HIDES]
    metrics = sorted({(r["workload"], r["metric"]) for r in rows}, key=lambda k: (ORDER.index(k[0]), k[1]))
    heads = [f"{p}/{d}" for p, d in columns]
    ratio_cols = [(p, d) for p, d in columns if baseline and p != baseline and (baseline, d) in columns]
    heads += [f"{p}/{d} ÷ {baseline}" for p, d in ratio_cols]
    table = [["workload", "metric", *heads]]
    for wl, metric in metrics:
        line = [wl, metric]
        for p, d in columns:
            r = by_key.get((wl, metric, p, d))
            if r is None or "median" not in r:
                line.append("n/a" if r is not None else "")
            else:
                line.append(f"{_fmt(r['median'])} [{_fmt(r['min'])}-{_fmt(r['max'])}]")
        for p, d in ratio_cols:
            r, b = by_key.get((wl, metric, p, d)), by_key.get((wl, metric, baseline, d))
            ok = r and b and "median" in r and "median" in b and b["median"]
            line.append(f"{r['median'] / b['median']:.2f}x" if ok else "")  # type: ignore[index]
        table.append(line)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def plan(args: argparse.Namespace, adapters: dict[str, PeerAdapter]) -> list[tuple[str, str]]:
    """The (peer, durability) combinations to run, skipping (with a message) what a peer does not know."""
    combos = []
    for name, adapter in adapters.items():
        for dur in args.durability:
            if dur in adapter.durabilities:
                combos.append((name, dur))
            else:
                known = ", ".join(adapter.durabilities)
                print(f"skipping {name}/{dur}: durabilities are {known}", file=sys.stderr)
    return combos


def execute(args: argparse.Namespace, adapters: dict[str, PeerAdapter], combos: list[tuple[str, str]]) -> list[dict]:
    """Every repetition of every combination, repetitions outermost, order rotated (protocol §2.4)."""
    counts = Counts.scaled(args.scale)
    print(f"counts: {counts}; combos: {combos}; repetitions: {args.repeat}", flush=True)
    runs = []
    for rep in range(args.repeat):
        shift = rep % len(combos)  # Rotate the order so load drifts spread over all peers.
        for name, dur in combos[shift:] + combos[:shift]:
            run = run_one(adapters[name], dur, rep, args, counts)
            runs.append(run)
            status = "; ".join(
                f"{w} {'ok' if r['ok'] else 'FAIL ' + str(r['problems'])}"
                f" (load {r['load_start']:.2f}->{r['load_end']:.2f})"
                for w, r in run["workloads"].items()
            )
            print(f"rep {rep} {name}/{dur}: {status}", flush=True)
    return runs


def failures_of(runs: list[dict]) -> list[tuple]:
    return [(r["rep"], r["peer"], r["durability"], w) for r in runs for w, x in r["workloads"].items() if not x["ok"]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    adapters = load_adapters(args.peers)
    combos = plan(args, adapters)
    if not combos:
        print("nothing to run", file=sys.stderr)
        return 1
    t_start = time.time()
    runs = execute(args, adapters, combos)
    rows = summarise(runs)
    print()
    print_table(rows, combos, args.baseline)
    leftovers = pids_with_marker()  # Any peer worker still alive is a bug.
    failures = failures_of(runs)
    print(
        f"\n{len(runs)} runs in {time.time() - t_start:.1f} s; failed workloads: {failures or 'none'}; "
        f"leftover worker processes: {leftovers or 'none'}"
    )
    for x in (x for x in runs if x["rep"] == 0):
        print(f"settings {x['peer']}/{x['durability']}: {x['settings']}")
    if args.json:
        meta = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "started": t_start,
            "scale": args.scale,
            "counts": Counts.scaled(args.scale).__dict__,
            "repeat": args.repeat,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "runs": runs, "summary": rows}, indent=1))
        print(f"wrote {args.json}")
    return 1 if failures or leftovers else 0


if __name__ == "__main__":
    sys.exit(main())

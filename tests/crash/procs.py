"""Processes of the reliability suite: ``python -m tests.crash.procs serve|submit|read ...``.

``serve`` runs a supervisor (``Scheduler.run``, so SIGTERM is a graceful stop and a second one a hard stop)
under ``apsw.fork_checker()`` where the apsw build has it; ``submit`` submits a range of task numbers in random batches and records what
was acknowledged; ``read`` loops read-only queries. ``submit`` and ``read`` print a JSON summary (errors that
reached the caller, latencies) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import apsw


def serve_options(db: str, **options: Any) -> dict[str, Any]:
    """The supervisor's options: ``serve``'s defaults, overridden by ``options``."""
    args = _parser().parse_args(["serve", db])
    for k, v in options.items():
        assert hasattr(args, k), k
        setattr(args, k, v)
    return vars(args)


def supervise(o: dict[str, Any], fault: str | None = None) -> None:
    """Run a supervisor with these options until SIGTERM (graceful stop; a second one is a hard stop).
    ``fault``: arm that fault point first (a forked process, see taskmill.faults.arm)."""
    import taskmill as tm
    from taskmill import faults
    from tests.crash import faulty

    if fault:
        faults.arm(fault)
    tm.Scheduler(
        o["db"], [faulty.fault, faulty.keys], workers=o["workers"], durability=o["durability"],
        shutdown=tm.ShutdownMode.graceful(o["grace"]), preempt_grace=o["preempt_grace"],
        retry=tm.RetryPolicy.constant(o["max_retries"], 0.0), hang_timeout=o["hang_timeout"],
        heartbeat_interval=o["heartbeat"], timeout=o["timeout"], max_tasks_per_worker=o["max_tasks_per_worker"],
        max_worker_memory=o["max_worker_memory"],
    ).run()  # fmt: skip


def serve(args: argparse.Namespace) -> None:
    checker = getattr(apsw, "fork_checker", None)  # only in apsw builds with the fork checker compiled in
    if checker is not None:
        checker()  # any connection used across a fork raises ForkingViolationError
    supervise(vars(args))


def _percentile(xs: list[float], q: float) -> float:
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def submit_range(db: str, acks: str, ledger_path: str, start: int, count: int, *, seed: int = 0,
                 batch_max: int = 20, ms_max: float = 2.0, async_share: float = 0.0, keys: int = 0,
                 pause_ms: float = 0.0, durability: str = "full", fault: str | None = None) -> dict[str, object]:  # fmt: skip
    """Submit task numbers ``start .. start+count-1`` in random batches (the same tasks for the same seed),
    writing ``T`` before and ``A`` after each submit to ``acks``. Returns a summary. ``fault``: arm that
    fault point first (a forked process)."""
    import taskmill as tm
    from taskmill import faults
    from tests.crash import faulty, ledger

    if fault:
        faults.arm(fault)
    rng = random.Random(seed)
    errors: list[str] = []
    latencies: list[float] = []
    with tm.connect(db, durability=durability) as client:
        h = client.domain(faulty.keys if keys else faulty.fault)
        n, end = start, start + count
        while n < end:
            size = min(rng.randint(1, batch_max), end - n)
            if keys:
                tasks: list[tm.Task] = [faulty.Keyed(ledger=ledger_path, n=i, k=f"key-{i % keys}")
                                        for i in range(n, n + size)]  # fmt: skip
            else:
                tasks = [
                    (faulty.AsyncJob if rng.random() < async_share else faulty.Job)(
                        ledger=ledger_path, n=i, ms=round(rng.random() * ms_max, 3)
                    )
                    for i in range(n, n + size)
                ]
            single = keys or (size == 1 and rng.random() < 0.5)
            ledger.append(acks, "T " + " ".join(str(i) for i in range(n, n + size)) + "\n")
            t0 = time.monotonic()
            try:
                if keys:  # keyed tasks wait an hour: their keys stay taken for the whole test
                    outcomes = []
                    for t in tasks:  # one latency per submit call
                        outcomes.append(h.submit(t, run_after=3600))
                        if t is not tasks[-1]:
                            latencies.append(time.monotonic() - t0)
                            t0 = time.monotonic()
                else:
                    outcomes = [h.submit(tasks[0])] if single else list(h.submit_batch(tasks))
            except tm.TaskmillError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                n += size
                continue
            except Exception as exc:  # anything untyped reaching the caller is a finding
                errors.append(f"untyped {type(exc).__module__}.{type(exc).__name__}: {exc}")
                n += size
                continue
            latencies.append(time.monotonic() - t0)
            lines = [f"A {i} {o.id}\n" for i, o in zip(range(n, n + size), outcomes, strict=True) if o.id is not None]
            if lines:
                ledger.append(acks, "".join(lines))
            n += size
            if pause_ms:
                time.sleep(rng.random() * pause_ms / 1000)
    return {"errors": errors, "submits": len(latencies), "p50": _percentile(latencies, 0.5),
            "p99": _percentile(latencies, 0.99), "max": max(latencies, default=0.0),
            "latencies": [round(x, 5) for x in latencies]}  # fmt: skip


def submit(args: argparse.Namespace) -> None:
    summary = submit_range(args.db, args.acks, args.ledger, args.start, args.count, seed=args.seed,
                           batch_max=args.batch_max, ms_max=args.ms_max, async_share=args.async_share,
                           keys=args.keys, pause_ms=args.pause_ms, durability=args.durability)  # fmt: skip
    print(json.dumps(summary))


def read(args: argparse.Namespace) -> None:
    print(json.dumps(read_loop(args.db, args.stop)))


def read_loop(db: str, stop_file: str) -> dict[str, Any]:
    """Loop read-only queries until ``stop_file`` exists; errors that reached the caller, and how many loops."""
    import taskmill as tm

    errors: list[str] = []
    loops = 0
    stop = Path(stop_file)
    with tm.connect(db) as client:
        while not stop.exists():
            try:
                client.status_counts()
                client.running_tasks(limit=50)
                client.history(limit=20)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
            loops += 1
            time.sleep(0.002)
    return {"errors": errors, "loops": loops}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.crash.procs")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("db")
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--durability", default="full")
    s.add_argument("--grace", type=float, default=5.0)
    s.add_argument("--preempt-grace", type=float, default=3.0)
    s.add_argument("--max-retries", type=int, default=3)
    s.add_argument("--hang-timeout", type=float, default=None)
    s.add_argument("--heartbeat", type=float, default=1.0)
    s.add_argument("--timeout", type=float, default=None)
    s.add_argument("--max-tasks-per-worker", type=int, default=None)
    s.add_argument("--max-worker-memory", type=int, default=None)
    q = sub.add_parser("submit")
    q.add_argument("db")
    q.add_argument("acks")
    q.add_argument("ledger")
    q.add_argument("--start", type=int, required=True)
    q.add_argument("--count", type=int, required=True)
    q.add_argument("--batch-max", type=int, default=20)
    q.add_argument("--ms-max", type=float, default=2.0)
    q.add_argument("--async-share", type=float, default=0.0)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--keys", type=int, default=0, help="submit delayed Keyed tasks with key-(n %% KEYS)")
    q.add_argument("--pause-ms", type=float, default=0.0)
    q.add_argument("--durability", default="full")
    r = sub.add_parser("read")
    r.add_argument("db")
    r.add_argument("stop")
    return p


def main() -> None:
    args = _parser().parse_args()
    {"serve": serve, "submit": submit, "read": read}[args.cmd](args)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: nothing left to flush, and it keeps a short-lived helper cheap


if __name__ == "__main__":
    main()

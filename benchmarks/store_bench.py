"""Store-level workloads: the cost of claiming the next task at a queue depth, and history queries.

Both drive ``taskmill.store`` directly (no supervisor, no workers), so the figure is the database work alone.

Next task: ``claim_next`` inside ``store.write()`` (``BEGIN IMMEDIATE`` … ``COMMIT``, as the dispatcher does
once per turn) on a database holding N pending rows; after each sample the claimed rows are released (not
timed), so the depth stays N. Databases are filled with ``Store.submit_batch`` of ``NewTask`` rows; the
1,000,000-row one is built once and cached in the scratch dir (keyed by the schema, rebuilt when it changes).
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import taskmill as tm
from taskmill.store import NewTask, Store, dispatch
from taskmill.store import schema as store_schema

from .harness import Result
from .scratch import scratch_dir

CACHE_MIN = 100_000  # depths from here up are cached between runs
CHUNK = 50_000
TYPES = 5
LEVELS = (0, 64, 128, 192, 255)
_payload = msgspec.msgpack.Encoder().encode


def _now_ms() -> int:
    return int(time.time() * 1000)


def _rows(start: int, count: int, now: int) -> list[NewTask]:
    return [
        NewTask(
            task_type=f"bench::t{i % TYPES}",
            domain="bench",
            key=hashlib.sha256(b"%d" % i).hexdigest(),
            label=f"t{i}",
            priority=LEVELS[i % len(LEVELS)],
            payload=_payload({"i": i}),
            created_at=now,
        )
        for i in range(start, start + count)
    ]


def fill(path: Path, n: int) -> None:
    """Create ``path`` with ``n`` pending rows (mixed priorities, 5 types) in chunks of 50,000 per transaction."""
    store = Store(path, "normal")
    try:
        now = _now_ms()
        for start in range(0, n, CHUNK):
            store.submit_batch(_rows(start, min(CHUNK, n - start), now))
        store.checkpoint()
    finally:
        store.close()


def schema_fingerprint() -> str:
    return hashlib.sha256(repr(store_schema.MIGRATIONS).encode()).hexdigest()[:12]


def cached_db(root: Path, n: int, log: Callable[[str], None] = print) -> Path:
    """The cached ``n``-row database, built (into a temp name, then renamed) if missing or stale."""
    cache = root / "taskmill-bench-cache"
    cache.mkdir(exist_ok=True)
    path = cache / f"pending-{n}-{schema_fingerprint()}.db"
    if not path.exists():
        for old in cache.glob(f"pending-{n}-*.db*"):
            old.unlink()
        tmp = cache / f"building-{os.getpid()}.db"
        log(f"building the {n:,}-row database once (cached as {path}) ...")
        t_a = time.perf_counter()
        fill(tmp, n)
        for suffix in ("-wal", "-shm"):
            Path(f"{tmp}{suffix}").unlink(missing_ok=True)
        tmp.rename(path)
        log(f"built in {time.perf_counter() - t_a:.1f} s ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def _claim_samples(store: Store, limit: int, samples: int, warmup: int) -> tuple[list[float], list[float]]:
    """Microseconds per sample: the whole write transaction, and the ``claim_next`` call inside it."""
    tx_us, claim_us = [], []
    for k in range(warmup + samples):
        now = _now_ms()
        t_a = time.perf_counter()
        with store.write():
            t_b = time.perf_counter()
            got = dispatch.claim_next(store.conn, limit, now)
            t_c = time.perf_counter()
        t_d = time.perf_counter()
        with store.write():
            dispatch.release(store.conn, [(c.id, c.attempt) for c in got])
        if len(got) != limit:
            raise RuntimeError(f"claimed {len(got)} of {limit}")
        if k >= warmup:
            tx_us.append((t_d - t_a) * 1e6)
            claim_us.append((t_c - t_b) * 1e6)
    return tx_us, claim_us


def _measure_depth(path: Path, n: int, samples: int, out: Result) -> None:
    store = Store(path, "normal")
    try:
        with store.write():
            dispatch.recover(store.conn, _now_ms())  # a run killed mid-sample may have left one claimed
        depth = store.count("pending")
        if depth != n:
            out["problems"].append(f"depth {n}: database holds {depth} pending rows")
        tag = (
            f"{n // 1_000_000}m"
            if n >= 1_000_000 and n % 1_000_000 == 0
            else f"{n // 1000}k"
            if n >= 1000 and n % 1000 == 0
            else str(n)
        )
        tx, claim = _claim_samples(store, 1, samples, warmup=max(10, samples // 10))
        out[f"d{tag}_tx_us"] = statistics.median(tx)
        out[f"d{tag}_claim_us"] = statistics.median(claim)
        if n >= 256:
            tx_batch, _ = _claim_samples(store, 256, max(10, samples // 10), warmup=3)
            out[f"d{tag}_batch256_tx_us"] = statistics.median(tx_batch)
    finally:
        store.close()


def next_task(root: Path, depths: tuple[int, ...], samples: int) -> Result:
    """Claim cost (median µs of ``samples`` claims) at each depth, and the 1M : 1k ratio when both ran."""
    out: Result = {"problems": []}
    for n in depths:
        if n >= CACHE_MIN:
            _measure_depth(cached_db(root, n), n, samples, out)
        else:
            with scratch_dir(root, f"depth{n}") as d:
                fill(d / "tasks.db", n)
                _measure_depth(d / "tasks.db", n, samples, out)
    for metric in ("tx", "claim", "batch256_tx"):
        if f"d1k_{metric}_us" in out and f"d1m_{metric}_us" in out:
            out[f"ratio_1m_1k_{metric}"] = out[f"d1m_{metric}_us"] / out[f"d1k_{metric}_us"]
    return out


def _finished_db(path: Path, n: int) -> None:
    """``n`` completed rows of 5 task types, written the way the dispatcher records completions."""
    fill(path, n)
    store = Store(path, "normal")
    try:
        with store.write():
            now = _now_ms()
            claimed = dispatch.claim_next(store.conn, n, now)
            dispatch.finish(
                store.conn, [("completed", now + 1, now, 1, 0, 0, 0, 0, 0, None, c.id, c.attempt) for c in claimed]
            )
        if store.history_count() != n:
            raise RuntimeError(f"history holds {store.history_count()} rows, expected {n}")
    finally:
        store.close()


def _time_calls(fn: Callable[[], Any], samples: int) -> float:
    for _ in range(max(5, samples // 10)):
        fn()
    times = []
    for _ in range(samples):
        t_a = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t_a) * 1e6)
    return statistics.median(times)


def history(root: Path, sizes: tuple[int, ...], samples: int) -> Result:
    """Median µs of ``history(50, 0)`` and ``history_by_type(t, 100)`` over N finished rows of 5 types."""
    out: Result = {"problems": []}
    for n in sizes:
        with scratch_dir(root, f"history{n}") as d:
            _finished_db(d / "tasks.db", n)
            with tm.connect(d / "tasks.db", durability="normal") as client:
                page = client.history(50, 0)
                by_type = client.history_by_type("bench::t2", 100)
                if len(page) != min(50, n) or len(by_type) != min(100, n // TYPES):
                    out["problems"].append(f"{n} rows: history gave {len(page)}, by type {len(by_type)}")
                out[f"n{n}_history50_us"] = _time_calls(lambda: client.history(50, 0), samples)
                out[f"n{n}_by_type100_us"] = _time_calls(lambda: client.history_by_type("bench::t2", 100), samples)
    return out

"""F11: power loss, simulated on the store layer with a crash VFS (tests/crash/crashvfs.py), for both
durability settings.

A seeded workload runs a submitter's connection and a supervisor's connection against one file: single and
batch submits, claims, completions, retries, releases, checkpoints. A reference run records the table after
every commit. Each trial cuts the power at a random file operation, opens what the disk would hold and
checks: ``integrity_check`` ok; the table equals the reference after some commit (a prefix of the history,
never a mix); with ``durability="full"`` no commit that had returned is missing; with ``"normal"`` the
number of returned commits lost is reported. Then recovery runs and every task can be taken to the end.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import apsw
import pytest

import taskmill as tm
from taskmill.store import Store, dispatch
from tests.crash import faulty
from tests.crash.crashvfs import BASE, CrashVFS, Disk, PowerCut, write_image
from tests.crash.harness import publish, size

SNAPSHOT = "SELECT id, status, attempt, retry_count FROM tasks ORDER BY id"
STEPS = 40


def _snapshot(conn: apsw.Connection) -> tuple[tuple[Any, ...], ...]:
    try:
        return tuple(tuple(r) for r in conn.execute(SNAPSHOT))
    except apsw.SQLError:  # no schema yet
        return ()


def _workload(path: str, durability: str, seed: int, history: list[tuple[Any, ...]], disk: Disk, lax: set[int]) -> None:
    """Run the seeded workload; append the table's state after each commit that returned, and the index in
    ``history`` of each commit made with ``durable=False`` to ``lax``."""
    rng = random.Random(seed)
    ledger = str(Path(path).parent / "ledger")
    client: tm.Client | None = None
    sup: Store | None = None
    try:
        client = tm.connect(path, durability=durability)
        sup = Store(path, durability)  # type: ignore[arg-type]
        history.append(_snapshot(sup.conn))
        h = client.domain(faulty.fault)
        n = 0
        for _ in range(STEPS):
            op = rng.random()
            now = 1_000_000 + len(history)
            if op < 0.3:
                n += 1
                h.submit(faulty.Job(ledger=ledger, n=n))
            elif op < 0.5:
                k = rng.randint(2, 12)
                h.submit_batch([faulty.Job(ledger=ledger, n=n + i) for i in range(1, k + 1)])
                n += k
            elif op < 0.7:
                with sup.write(durable=False):  # as a dispatch turn that only claims: a power cut may undo it
                    dispatch.claim_next(sup.conn, rng.randint(1, 6), now)
                lax.add(len(history))
            elif op < 0.93:
                running = [(int(i), int(a)) for i, a in sup.conn.execute(
                    "SELECT id, attempt FROM tasks WHERE status = 'running' ORDER BY id")]  # fmt: skip
                if not running:
                    continue
                picked = rng.sample(running, rng.randint(1, len(running)))
                how = rng.random()
                with sup.write():
                    if how < 0.7:
                        dispatch.finish(sup.conn, [("completed", now, now - 5, 5, 0, 0, 0, 0, 0, None, i, a)
                                                   for i, a in picked])  # fmt: skip
                    elif how < 0.85:
                        dispatch.retry_later(sup.conn, [("boom", None, i, a) for i, a in picked])
                    else:
                        dispatch.release(sup.conn, picked)
            else:
                sup.checkpoint()  # TRUNCATE, as at shutdown
                continue
            history.append(_snapshot(sup.conn))
    finally:
        if disk.cut is None and disk.cut_at is not None:
            # The run made fewer file operations than the cut point: the checkpoint thread's share varies from
            # run to run. The power goes off now, after the last commit, instead.
            disk.cut = disk.image()
        disk.closing = True  # after a cut, what closing writes no longer matters (the image is taken)
        if sup is not None:
            sup.close()
        if client is not None:
            client.close()


def _reference(tmp: Path, durability: str, seed: int) -> tuple[list[tuple[Any, ...]], int]:
    """The history of a run without a cut, and how many file operations it made."""
    tmp.mkdir()
    disk = Disk(None, random.Random(0))
    vfs = CrashVFS(disk)
    history: list[tuple[Any, ...]] = []
    try:
        _workload(str(tmp / "tasks.db"), durability, seed, history, disk, set())
    finally:
        vfs.unregister()
    return history, disk.ops


def _recover_and_finish(path: str) -> int:
    """Reopen the image as a supervisor would, then take every task to the end; returns how many finished."""
    store = Store(path)
    try:
        with store.write():
            dispatch.recover(store.conn, 2_000_000)
        while True:
            with store.write():
                claimed = dispatch.claim_next(store.conn, 50, 2_000_000)
                if not claimed:
                    break
                dispatch.finish(store.conn, [("completed", 2_000_000, 1, 1, 0, 0, 0, 0, 0, None, c.id, c.attempt)
                                             for c in claimed])  # fmt: skip
        assert store.integrity_check() == ["ok"]
        left = store.count("pending") + store.count("running")
        assert left == 0
        return int(next(iter(store.conn.execute("SELECT count(*) FROM tasks WHERE status = 'completed'")))[0])
    finally:
        store.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_power_cuts_leave_a_consistent_prefix_and_full_durability_loses_no_acknowledged_commit(
    tmp_path: Path, durability: str
) -> None:
    seeds, cuts_per_seed = size(5, 25), size(10, 20)
    lost: list[int] = []
    in_flight_kept = 0
    lax_lost = 0  # with "full": claims committed without a sync that a cut undid (none acknowledged after them)
    trials = 0
    for seed in range(seeds):
        reference, total_ops = _reference(tmp_path / f"ref-{seed}", durability, seed)
        rng = random.Random(seed * 7919)
        for cut in range(cuts_per_seed):
            trials += 1
            here = tmp_path / f"s{seed}-c{cut}"
            here.mkdir()
            disk = Disk(rng.randint(1, total_ops), random.Random(rng.random()))
            vfs = CrashVFS(disk)
            acked: list[tuple[Any, ...]] = []
            lax: set[int] = set()
            try:
                _workload(str(here / "tasks.db"), durability, seed, acked, disk, lax)
            except (PowerCut, apsw.Error, tm.TaskmillError):
                pass  # the power went off mid-workload
            finally:
                vfs.unregister()
            assert disk.cut is not None
            image = write_image(disk.cut, here / "after")
            conn = apsw.Connection(str(image / "tasks.db"), vfs=BASE)
            try:
                assert [r[0] for r in conn.execute("PRAGMA integrity_check")] == ["ok"], (seed, cut)
                state = _snapshot(conn)
            finally:
                conn.close()
            returned = len(acked) - 1  # commits that returned before the cut (history[0] is the start)
            matches = [j for j, snap in enumerate(reference) if snap == state]
            assert matches, f"seed {seed} cut {cut}: the database is not the state after any commit"
            j = max(m for m in matches if m <= returned + 1) if any(m <= returned + 1 for m in matches) else None
            assert j is not None, f"seed {seed} cut {cut}: a state from the future ({matches}, {returned})"
            if durability == "full":  # every commit up to the last synced one that returned is there
                synced = max((k for k in range(returned + 1) if k not in lax), default=0)
                assert j >= synced, f"seed {seed} cut {cut}: {synced - j} acknowledged commit(s) lost"
                lax_lost += max(0, returned - max(j, synced))
            lost.append(max(0, returned - j))
            in_flight_kept += j == returned + 1
            _recover_and_finish(str(image / "tasks.db"))
    publish({"scenario": f"F11 power loss, durability={durability}", "cuts": trials, "integrity_ok": trials,
             "non_prefix": 0, "acked_commits_lost_total": sum(lost), "acked_commits_lost_max": max(lost),
             "cuts_losing_acked": sum(1 for x in lost if x), "in_flight_commit_survived": in_flight_kept,
             "unsynced_claims_lost": lax_lost})  # fmt: skip

"""Workers SIGKILLed mid-task: the pool recovers, the attempt counts, poison tasks end dead-lettered."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import taskmill as tm
from tests.crash import faulty, ledger
from tests.crash.harness import Run, publish, size
from tests.crash.ledger import read
from tests.helpers import entries, wait_for
from tests.integration import domains as D


def _running(ledger_path: str) -> list[Any]:
    """Executions started and not ended, in a worker that is still alive."""
    return [e for e in read(ledger_path).executions if e.end is None and not _gone(e.pid)]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _live_workers() -> list[psutil.Process]:
    """Worker processes of the supervisor embedded in this (the test) process."""
    out = []
    for p in psutil.Process().children():
        try:
            if p.status() != psutil.STATUS_ZOMBIE and "taskmill.workers" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            continue
    return out


def _drain(sub: tm.Subscription) -> list[tm.Event]:
    out = []
    while (ev := sub.get_nowait()) is not None:
        out.append(ev)
    return out


def test_a_worker_killed_mid_task_is_replaced_and_the_task_retried(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, retry=tm.RetryPolicy.constant(3, 0.0))
    sub = s.subscribe()
    h = s.domain(D.main)
    victim = h.submit(D.Hang(log=log, tag="victim", seconds=30))
    others = [h.submit(D.Note(log=log, tag=f"other{i}")) for i in range(3)]
    s.start()
    [first] = wait_for(lambda: entries(log, "start", "victim"), timeout=10)
    pid = first["pid"]
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    assert s.wait_until_idle(20)
    wait_for(lambda: _gone(pid), timeout=5, what="the killed worker to be reaped")

    starts = entries(log, "start", "victim")
    assert len(starts) == 2
    assert starts[1]["pid"] != pid  # ran again, in the replacement worker
    assert starts[1]["retry_count"] == 1  # the killed attempt counted
    [rec] = s.history_of(victim.id)
    assert rec.status == "completed" and rec.retry_count == 1
    for o in others:  # the queue kept moving
        assert [r.status for r in s.history_of(o.id)] == ["completed"]

    time.sleep(0.05)  # events are published just after the commit wait_until_idle saw
    events = _drain(sub)
    failed = [e for e in events if isinstance(e, tm.Failed) and e.header and e.header.task_id == victim.id]
    assert len(failed) == 1 and failed[0].will_retry is True
    assert "worker died (signal 9" in failed[0].error
    died = [e for e in events if isinstance(e, tm.WorkerDied)]
    assert [e.pid for e in died] == [pid]
    sub.close()


def test_a_killed_task_without_retries_is_dead_lettered(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1)
    h = s.domain(D.main)
    victim = h.submit(D.Hang(log=log, tag="victim", seconds=30), max_retries=0)
    after = h.submit(D.Note(log=log, tag="after"))
    s.start()
    [first] = wait_for(lambda: entries(log, "start", "victim"), timeout=10)
    os.kill(first["pid"], signal.SIGKILL)
    assert s.wait_until_idle(20)
    assert len(entries(log, "start", "victim")) == 1
    [rec] = s.history_of(victim.id)
    assert rec.status == "dead_letter" and rec.retry_count == 1
    assert rec.last_error is not None and "worker died (signal 9" in rec.last_error
    assert [r.task_id for r in s.dead_letter_tasks()] == [victim.id]
    assert [r.status for r in s.history_of(after.id)] == ["completed"]
    assert entries(log, "start", "after")[0]["pid"] != first["pid"]


def test_a_task_that_kills_its_worker_every_time_ends_dead_lettered(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=2, retry=tm.RetryPolicy.constant(5, 0.0))
    h = s.domain(D.main)
    before = [h.submit(D.Note(log=log, tag=f"before{i}", sleep=0.05)) for i in range(3)]
    poison = h.submit(D.Flaky(log=log, tag="poison", mode="selfkill"), max_retries=2)
    after = [h.submit(D.Note(log=log, tag=f"after{i}", sleep=0.05)) for i in range(3)]
    s.start()
    assert s.wait_until_idle(30)
    runs = entries(log, "start", "poison")
    assert len(runs) == 3  # max_retries + 1 attempts, then it stops
    assert len({e["pid"] for e in runs}) == 3  # each attempt killed its worker
    [rec] = s.history_of(poison.id)
    assert rec.status == "dead_letter" and rec.retry_count == 3
    assert rec.last_error is not None and "worker died (signal 9" in rec.last_error
    for o in before + after:
        assert [r.status for r in s.history_of(o.id)] == ["completed"]
    # the pool is back to full strength, and both workers take work
    wait_for(lambda: len(_live_workers()) == 2, timeout=10, what="the pool to refill")
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    wait_for(lambda: sum(w.alive for w in sup.dispatcher.workers) == 2, timeout=10, what="the new worker to be ready")
    h.submit_batch([D.Note(log=log, tag=f"final{i}", sleep=0.3) for i in range(2)])
    assert s.wait_until_idle(15)
    final_pids = {e["pid"] for e in entries(log, "start") if e["tag"].startswith("final")}
    assert len(final_pids) == 2 and not any(_gone(p) for p in final_pids)


def test_random_busy_worker_kills_lose_nothing_and_the_pool_refills_within_a_second(
    make_scheduler: Any, tmp_path: Path
) -> None:
    """F3: SIGKILL a random busy worker again and again. Each killed execution counts as a failed attempt and
    runs again; nothing is lost or run twice at once; the pool is back to full strength within 1 s."""
    rng = random.Random(3)
    run = Run(tmp_path)
    workers, kills, tasks = 2, size(12, 200), size(160, 2000)
    lo, hi = size((20.0, 60.0), (200.0, 500.0))
    s = make_scheduler([faulty.fault], workers=workers, path=run.db, retry=tm.RetryPolicy.constant(50, 0.0))
    h = s.domain(faulty.fault)
    acked = {}
    for i in range(1, tasks + 1):
        acked[i] = h.submit(faulty.Job(ledger=run.ledger, n=i, ms=round(rng.uniform(lo, hi), 1))).id
    s.start()
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    wait_for(lambda: read(run.ledger).executions, 10, what="the first execution")  # workers up before any kill
    killed: dict[int, set[int]] = {}  # n -> pids killed while running it
    refill: list[float] = []
    requeue: list[float] = []
    for _ in range(kills):
        time.sleep(rng.uniform(0.05, size(0.25, 1.0)))
        busy = _running(run.ledger)
        gap_ends = time.monotonic() + 2.0  # between two tasks, or a worker still booting (a loaded machine)
        while not busy and time.monotonic() < gap_ends:
            time.sleep(0.005)
            busy = _running(run.ledger)
        if not busy:
            break  # all done
        pid = rng.choice(busy).pid
        t_kill = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        while sum(w.alive for w in sup.dispatcher.workers) < workers or any(
            w.pid == pid for w in sup.dispatcher.workers
        ):
            assert time.monotonic() - t_kill < 1.0 + 1.0, "the pool was not refilled within 2 s"
            time.sleep(0.002)
        refill.append(time.monotonic() - t_kill)
        # what the kill interrupted (the chosen execution may have finished just before the kill)
        mine = [e for e in read(run.ledger).executions if e.pid == pid]
        if mine and mine[-1].end is not None:  # its body ended, but the kill may have beaten its result to the
            killed.setdefault(mine[-1].n, set()).add(pid)  # supervisor: then it runs again (at least once)
        for e in [e for e in mine if e.end is None]:
            killed.setdefault(e.n, set()).add(pid)
            [again, *_] = wait_for(lambda v=e: [x for x in read(run.ledger).started(v.n) if x.start > v.start], 10)
            requeue.append(again.start / 1e9 - t_kill)  # both CLOCK_MONOTONIC
    assert s.wait_until_idle(size(120, 1200))
    report = ledger.check("F3 worker SIGKILL mid-task", read(run.ledger), acked, run.db, allowed=set(killed),
                          ended_ok=())  # fmt: skip
    report.assert_ok()
    assert len(killed) >= kills // 2  # most kills interrupted a task
    by_task = read(run.ledger).by_task()
    for n, tid in acked.items():
        [rec] = s.history_of(tid)
        assert rec.status == "completed"
        unfinished = sum(1 for e in by_task[n] if e.how == "")  # killed mid-execution
        assert unfinished <= rec.retry_count <= len(by_task[n]) - 1, (n, rec.retry_count, by_task[n])
    refill.sort()
    publish(report, kills=len(refill), interrupted=sum(len(p) for p in killed.values()), refill_max_s=refill[-1],
            refill_p50_s=refill[len(refill) // 2], requeue_max_s=max(requeue, default=0.0))  # fmt: skip
    assert refill[len(refill) // 2] < 1.0  # the pool is back within 1 s (the median; the worst is bounded above)


def test_a_memory_bomb_under_worker_memory_limit_fails_its_own_attempts_and_nothing_else(
    make_scheduler: Any, tmp_path: Path
) -> None:
    """F3, memory bomb: with ``worker_memory_limit`` (RLIMIT_AS in each worker) a task allocating without bound
    gets a MemoryError; each of its attempts fails with it, then it is dead-lettered. Its worker frees the
    memory and goes on (no worker dies), tasks on both workers complete, the supervisor runs on."""
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=2, path=run.db, worker_memory_limit=256 << 20,
                       retry=tm.RetryPolicy.constant(1, 0.0))  # fmt: skip
    sub = s.subscribe()
    h = s.domain(faulty.fault)
    acked = {i: h.submit(faulty.Job(ledger=run.ledger, n=i, ms=5)).id for i in range(1, 21)}
    bomb = h.submit(faulty.Bomb(ledger=run.ledger, n=100)).id
    acked.update({i: h.submit(faulty.Job(ledger=run.ledger, n=i, ms=5)).id for i in range(21, 41)})
    s.start()
    sup = s._supervisor
    assert sup is not None and sup.dispatcher is not None
    pids = {w.pid for w in sup.dispatcher.workers}
    assert s.wait_until_idle(60)
    [rec] = s.history_of(bomb)
    assert rec.status == "dead_letter" and rec.retry_count == 2, (rec.status, rec.retry_count, rec.last_error)
    assert rec.last_error is not None and rec.last_error.rstrip().endswith("MemoryError"), rec.last_error
    runs = read(run.ledger).started(100)
    assert [e.attempt for e in runs] == [1, 2] and all(e.how == "I" for e in runs)  # ended by the exception
    for n, tid in acked.items():
        assert [r.status for r in s.history_of(tid)] == ["completed"], n
    assert {w.pid for w in sup.dispatcher.workers if w.alive} == pids  # no worker died or was replaced
    assert s.is_running
    time.sleep(0.05)  # events are published just after the commit wait_until_idle saw
    failed = [e for e in _drain(sub) if isinstance(e, tm.Failed | tm.DeadLettered) and e.header.task_id == bomb]
    assert len(failed) == 2 and all("MemoryError" in e.error for e in failed)
    assert not [e for e in _drain(sub) if isinstance(e, tm.WorkerDied)]
    sub.close()
    # the workers are usable afterwards: memory was given back
    more = h.submit_batch([faulty.Job(ledger=run.ledger, n=i, ms=5) for i in range(200, 204)]).inserted()
    assert s.wait_until_idle(30)
    assert all(s.history_of(t)[0].status == "completed" for t in more)
    publish({"scenario": "F3 memory bomb under worker_memory_limit", "limit_bytes": 256 << 20,
             "bomb_attempts": len(runs), "bomb_status": rec.status, "others_completed": len(acked) + len(more),
             "workers_died": 0})  # fmt: skip


def test_a_worker_memory_limit_below_what_a_worker_needs_is_refused_at_start(make_scheduler: Any) -> None:
    s = make_scheduler(workers=1, worker_memory_limit=8 << 20)
    with pytest.raises(tm.WorkerBootError, match="worker_memory_limit is 8388608 bytes, but a worker already maps"):
        s.start()


def test_a_poison_task_among_quick_tasks_of_its_type_is_the_only_one_blamed(
    make_scheduler: Any, tmp_path: Path
) -> None:
    """Quick tasks are prefetched and their results sent in batches, so when a worker dies the head of its
    queue may have finished long ago. The worker's executing slot says which task it died running: the
    poison task alone uses up its retries; its neighbours run again uncounted."""
    run = Run(tmp_path)
    s = make_scheduler([faulty.fault], workers=2, path=run.db, retry=tm.RetryPolicy.constant(2, 0.0))
    h = s.domain(faulty.fault)
    s.start()
    h.submit_batch([faulty.Job(ledger=run.ledger, n=i) for i in range(1, 81)])  # the type is known to be fast
    assert s.wait_until_idle(20)
    poison = {120, 160}
    batch = [faulty.Job(ledger=run.ledger, n=i, die=i in poison) for i in range(100, 200)]
    ids = dict(zip(range(100, 200), h.submit_batch(batch).inserted(), strict=True))
    assert s.wait_until_idle(60)
    runs = ledger.execution_counts(read(run.ledger))
    for n, tid in ids.items():
        [rec] = s.history_of(tid)
        if n in poison:
            assert (rec.status, rec.retry_count, runs[n]) == ("dead_letter", 3, 3)
        else:
            assert (rec.status, rec.retry_count) == ("completed", 0), (n, rec.status, rec.retry_count, runs[n])

"""Running and stopping: one supervisor per database, shutdown modes, delayed tasks, wake-up latency."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import taskmill as tm
from tests.helpers import entries, run_python, start_supervisor, stop_process, wait_for
from tests.integration import domains as D

# -- one supervisor per database ---------------------------------------------------------------------------


def _start_second(second: tm.Scheduler, how: str) -> None:
    """Start a scheduler that must be refused (``start`` gets a short timeout: refusal must be fast)."""
    try:
        if how == "run":
            second.run()
        else:
            second.start(timeout=2.5)
    finally:
        with contextlib.suppress(Exception):
            second.stop()


@pytest.mark.parametrize("how", ["run", "start"])
def test_a_second_scheduler_in_the_same_process_is_refused(make_scheduler: Any, how: str) -> None:
    make_scheduler(start=True)
    second = make_scheduler()
    t0 = time.monotonic()
    with pytest.raises(tm.SupervisorRunning) as err:
        _start_second(second, how)
    assert time.monotonic() - t0 < 2.0
    assert err.value.pid == os.getpid() and f"pid {os.getpid()}" in str(err.value)
    assert not second.is_running


@pytest.mark.parametrize("how", ["run", "start"])
def test_a_second_supervisor_from_another_process_is_refused_naming_the_first(
    make_scheduler: Any, db: Path, log: str, tmp_path: Path, how: str
) -> None:
    with tm.connect(db) as c:
        c.domain(D.main).submit(D.Note(log=log, tag="proof"))
    first = start_supervisor(tmp_path, db, workers=1)
    try:
        wait_for(lambda: entries(log, "end", "proof"), timeout=30, what="the first supervisor to run a task")
        second = make_scheduler()
        t0 = time.monotonic()
        with pytest.raises(tm.SupervisorRunning) as err:
            _start_second(second, how)
        assert time.monotonic() - t0 < 2.0
        assert err.value.pid == first.pid and str(first.pid) in str(err.value)
    finally:
        assert stop_process(first) == 0


def test_the_lock_is_free_again_after_a_stop(make_scheduler: Any, log: str) -> None:
    first = make_scheduler(start=True)
    first.stop()
    second = make_scheduler(start=True)
    out = second.domain(D.main).submit(D.Note(log=log, tag="after"))
    assert second.wait_until_idle(10)
    assert [r.status for r in second.history_of(out.id)] == ["completed"]


# -- shutdown -------------------------------------------------------------------------------------------


def test_graceful_shutdown_lets_the_running_task_finish_and_starts_nothing_new(
    make_scheduler: Any, db: Path, log: str
) -> None:
    s = make_scheduler(workers=1, shutdown=tm.ShutdownMode.graceful(10))
    h = s.domain(D.main)
    running = h.submit(D.Note(log=log, tag="running", sleep=0.8))
    queued = h.submit(D.Note(log=log, tag="queued"))
    s.start()
    wait_for(lambda: entries(log, "start", "running"), timeout=10)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    assert entries(log, "end", "running")  # it finished
    assert not entries(log, "start", "queued")  # nothing new started
    with tm.connect(db) as c:
        assert [r.status for r in c.history_of(running.id)] == ["completed"]
        rec = c.task(queued.id)  # type: ignore[arg-type]
        assert rec is not None and rec.status == "pending"


def test_graceful_shutdown_interrupts_what_outlives_the_timeout(make_scheduler: Any, db: Path, log: str) -> None:
    s = make_scheduler(workers=1, shutdown=tm.ShutdownMode.graceful(0.3))
    out = s.domain(D.main).submit(D.Hang(log=log, tag="slow", seconds=30))
    s.start()
    wait_for(lambda: entries(log, "start", "slow"), timeout=10)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 4
    with tm.connect(db) as c:
        rec = c.task(out.id)  # type: ignore[arg-type]
        assert rec is not None and rec.status == "pending" and rec.retry_count == 0


def test_hard_shutdown_interrupts_and_the_task_runs_at_the_next_start(make_scheduler: Any, db: Path, log: str) -> None:
    s = make_scheduler(workers=1, shutdown=tm.ShutdownMode.hard())
    out = s.domain(D.main).submit(D.Hang(log=log, tag="h", seconds=30))
    s.start()
    [first] = wait_for(lambda: entries(log, "start", "h"), timeout=10)
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 3
    assert not psutil.pid_exists(first["pid"]) or psutil.Process(first["pid"]).status() == psutil.STATUS_ZOMBIE
    assert not entries(log, "end", "h")  # interrupted, not finished
    with tm.connect(db) as c:
        rec = c.task(out.id)  # type: ignore[arg-type]
        assert rec is not None and rec.status == "pending" and rec.retry_count == 0
        assert c.history_of(out.id) == []  # not counted as a failure

    again = make_scheduler(workers=1)
    again.start()
    assert again.wait_until_idle(10)
    starts = entries(log, "start", "h")
    assert len(starts) == 2 and starts[1]["retry_count"] == 0
    [rec2] = again.history_of(out.id)
    assert rec2.status == "completed" and rec2.retry_count == 0


def test_stop_hard_overrides_a_graceful_mode(make_scheduler: Any, db: Path, log: str) -> None:
    s = make_scheduler(workers=1, shutdown=tm.ShutdownMode.graceful(30))
    out = s.domain(D.main).submit(D.Hang(log=log, tag="o", seconds=30))
    s.start()
    wait_for(lambda: entries(log, "start", "o"), timeout=10)
    t0 = time.monotonic()
    s.stop(hard=True)
    assert time.monotonic() - t0 < 3
    with tm.connect(db) as c:
        rec = c.task(out.id)  # type: ignore[arg-type]
        assert rec is not None and rec.status == "pending" and rec.retry_count == 0


# -- delayed tasks -----------------------------------------------------------------------------------------


def test_a_delayed_task_runs_on_time_without_busy_polling(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, start=True)
    sub = s.subscribe()
    t_submit = time.time()
    cpu0 = time.process_time()
    out = s.domain(D.main).submit(D.Note(log=log, tag="later"), run_after=0.5)
    rec = s.task(out.id)
    assert rec is not None and rec.status == "pending" and rec.run_after is not None
    ev = sub.get(timeout=5)  # blocks this thread: only the supervisor thread uses CPU meanwhile
    cpu = time.process_time() - cpu0
    sub.close()
    assert isinstance(ev, tm.Dispatched) and ev.header is not None and ev.header.task_id == out.id
    assert s.wait_until_idle(5)
    [start] = entries(log, "start", "later")
    delay = start["t"] - t_submit
    assert delay >= 0.5 - 0.005, f"ran {delay:.3f}s after submit"
    assert delay < 0.8, f"ran {delay:.3f}s after submit"
    assert cpu < 0.15, f"the supervisor used {cpu:.2f}s of CPU waiting 0.5 s"


def test_a_delayed_task_submitted_before_start_keeps_its_delay(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1)
    s.domain(D.main).submit(D.Note(log=log, tag="later"), run_after=1.5)
    t_submit = time.time()
    s.domain(D.main).submit(D.Note(log=log, tag="now"))
    s.start()
    assert s.wait_until_idle(10)
    assert [e["tag"] for e in entries(log, "start")] == ["now", "later"]
    assert entries(log, "start", "later")[0]["t"] - t_submit >= 1.5 - 0.05


# -- wake-up latency ---------------------------------------------------------------------------------------

SUBMITTER = textwrap.dedent(
    """
    import json, sys, time
    import taskmill as tm
    from tests.integration import domains as D

    db, log = sys.argv[1], sys.argv[2]
    client = tm.connect(db)
    t0 = time.time()
    out = client.domain(D.main).submit(D.Note(log=log, tag="remote"))
    print(json.dumps({"t0": t0, "kind": out.kind, "id": out.id}))
    client.close()
    """
)


def test_a_submit_from_another_process_starts_within_a_few_hundred_ms(
    make_scheduler: Any, db: Path, log: str, tmp_path: Path
) -> None:
    s = make_scheduler(workers=1, start=True, poll_interval=5.0)  # only the wake-up can be this fast
    script = tmp_path / "submitter.py"
    script.write_text(SUBMITTER)
    proc = run_python(script, str(db), log, timeout=60)
    assert proc.returncode == 0, proc.stderr
    sent = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sent["kind"] == "inserted"
    [start] = wait_for(lambda: entries(log, "start", "remote"), timeout=10)
    latency = start["t"] - sent["t0"]
    assert latency < 0.3, f"started {latency:.3f}s after the submit"
    assert start["id"] == sent["id"]
    assert s.wait_until_idle(5)


def test_an_in_process_submit_starts_promptly(make_scheduler: Any, log: str) -> None:
    s = make_scheduler(workers=1, start=True, poll_interval=2.0)
    h = s.domain(D.main)
    for i in range(5):
        t0 = time.time()
        h.submit(D.Note(log=log, tag=f"p{i}"))
        [start] = wait_for(
            lambda i=i: entries(log, "start", f"p{i}"),
            timeout=0.2,  # type: ignore[misc]
            what=f"task p{i} to start",
        )
        assert start["t"] - t0 < 0.2


def test_a_client_pings_no_one_once_and_again_as_soon_as_a_supervisor_starts(
    make_scheduler: Any, db: Path, log: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no supervisor, one refused ping stops the rest (a sixth of a submit's cost); a supervisor's start
    makes the next submit ping again, so it starts at once rather than at the 5 s poll."""
    from taskmill import client as client_module
    from taskmill.supervisor import wakeup

    pings: list[bool] = []
    ping = wakeup.WakeupSender.ping

    def counted(self: wakeup.WakeupSender, submitted: bool = False) -> bool:
        pings.append(ping(self, submitted))
        return pings[-1]

    monkeypatch.setattr(wakeup.WakeupSender, "ping", counted)
    with tm.connect(db) as c:
        h = c.domain(D.main)
        for i in range(5):
            assert h.submit(D.Note(log=log, tag=f"early{i}")).kind == "inserted"
        assert pings == [False]
        s = make_scheduler(workers=1, start=True, poll_interval=5.0)
        wait_for(lambda: len(entries(log, "start")) == 5, timeout=10, what="the early tasks")
        t0 = time.time()
        h.submit(D.Note(log=log, tag="late"))
        [start] = wait_for(lambda: entries(log, "start", "late"), timeout=10)
        assert start["t"] - t0 < 0.3, f"started {start['t'] - t0:.3f}s after the submit"
        assert pings == [False, True]
        s.stop()
        h.submit(D.Note(log=log, tag="after"))
        h.submit(D.Note(log=log, tag="after2"))
        assert pings == [False, True, False]
        # A supervisor of an earlier version would not bump the epoch: pings are tried again now and then.
        monkeypatch.setattr(client_module, "UNHEARD_RETRY_S", 0.2)
        time.sleep(0.25)
        h.submit(D.Note(log=log, tag="after3"))
        h.submit(D.Note(log=log, tag="after4"))
        assert pings == [False, True, False, False]


# -- history retention -----------------------------------------------------------------------------------


def test_history_retention_max_count_prunes_while_running(make_scheduler: Any, log: str) -> None:
    keep = 50
    s = make_scheduler(workers=1, retention=tm.RetentionPolicy.max_count(keep))
    n = 1100
    s.domain(D.main).submit_batch([D.Note(log=log, tag=f"r{i}") for i in range(n)])
    s.start()
    assert s.wait_until_idle(60)
    assert len(entries(log, "end")) == n  # pruning history never removed a queued task
    history = s.history(limit=10 * n)
    assert len(history) < n, "history was never pruned"
    assert len(history) >= keep
    newest = [e["id"] for e in entries(log, "end")][-keep:]
    assert set(newest) <= {r.task_id for r in history}  # the most recent outcomes are the ones kept


def test_dispatch_begins_with_the_first_worker_and_start_returns_once_all_joined(make_scheduler: Any, log: str) -> None:
    s = make_scheduler([D.main], workers=3)
    h = s.domain(D.main)
    h.submit(D.Note(log=log, tag="early"))
    s.start()
    assert s._supervisor is not None and all(w.alive for w in s._supervisor.dispatcher.workers)  # type: ignore[union-attr]
    for i in range(30):
        h.submit(D.Note(log=log, tag=f"n{i}", sleep=0.05))
    assert s.wait_until_idle(30)
    pids = {e["pid"] for e in entries(log, "start")}
    assert len(pids) == 3  # every worker joined the pool and took work


def test_a_worker_that_cannot_import_the_domains_fails_start(make_scheduler: Any, monkeypatch: Any) -> None:
    from tests.integration import boot_domains as B

    monkeypatch.setenv("TASKMILL_TEST_FAIL_BOOT", "1")  # only the workers' import of the module sees it
    s = make_scheduler([B.boot], workers=2)
    with pytest.raises(tm.WorkerBootError, match="refuses to load"):
        s.start()


def test_a_store_that_cannot_open_fails_start_and_the_booting_workers_go(make_scheduler: Any, db: Path) -> None:
    """Workers are exec'd before the store is opened (they import while it recovers): a store that then fails
    to open must not leave them behind (the leak check fails the test if it does)."""
    import apsw

    from taskmill.store import Store
    from taskmill.store.schema import SCHEMA_VERSION

    Store(db).close()
    s = make_scheduler([D.main], workers=2, path=db)  # constructed while the file is still good
    conn = apsw.Connection(str(db))
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")  # a newer taskmill's database
    conn.close()
    with pytest.raises(tm.TaskmillError, match=str(SCHEMA_VERSION + 1)):
        s.start()
    children = psutil.Process().children(recursive=True)
    wait_for(lambda: not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], 10,
             what="the booting workers to exit")  # fmt: skip


def _starved_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "taskmill.supervisor" and "starved" in r.getMessage()]


def _watched(make_scheduler: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
             interval_s: float) -> tm.DomainHandle:  # fmt: skip
    """A started embedded scheduler whose starvation check runs every ``interval_s``, its warnings captured."""
    from taskmill.policy import starvation

    monkeypatch.setattr(starvation, "INTERVAL_S", interval_s)
    caplog.set_level(logging.WARNING, logger="taskmill.supervisor")
    return make_scheduler([D.main], start=True).domain(D.main)


@pytest.mark.alone  # the application thread needs a core to itself to keep the GIL busy
def test_an_embedded_supervisor_starved_by_a_busy_application_thread_says_so(
    make_scheduler: Any, log: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = _watched(make_scheduler, monkeypatch, caplog, 0.5)
    deadline = time.monotonic() + 30
    while not _starved_warnings(caplog) and time.monotonic() < deadline:
        h.submit(D.Note(log=log, tag="busy"))  # each submit wakes the loop for a turn...
        busy_until = time.perf_counter() + 0.02
        while time.perf_counter() < busy_until:  # ...while this thread keeps running Python
            pass
    warned = _starved_warnings(caplog)
    assert warned and "Scheduler(...).run()" in warned[0] and "tm.connect()" in warned[0]


def test_an_embedded_supervisor_next_to_a_waiting_thread_does_not_warn(
    make_scheduler: Any, log: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    h = _watched(make_scheduler, monkeypatch, caplog, 0.3)
    for i in range(100):  # ~2 s: several intervals of turns while this thread sleeps between submits
        h.submit(D.Note(log=log, tag=f"idle{i}"))
        time.sleep(0.02)
    wait_for(lambda: len(entries(log, "end")) == 100, 30)
    assert _starved_warnings(caplog) == []


# -- sharing the GIL with the application ----------------------------------------------------------------


def _worker_switch(s: tm.Scheduler, log: str) -> float:
    s.domain(D.main).submit(D.SwitchProbe(log=log))
    [probe] = wait_for(lambda: entries(log, "switch"), 30, what="the probe task to run")
    return float(probe["value"])


def test_a_running_supervisor_shortens_the_gil_switch_interval_until_it_stops(make_scheduler: Any, log: str) -> None:
    """Beside a CPU-busy application thread, the loop gets the GIL back only at forced switches; in a worker, the
    reader thread that takes stop messages waits for the executor's thread the same way."""
    default = sys.getswitchinterval()
    s = make_scheduler(start=True)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert _worker_switch(s, log) == pytest.approx(0.0005)
    s.stop()
    assert sys.getswitchinterval() == pytest.approx(default)
    os.unlink(log)
    s = make_scheduler(start=True, switch_interval=None)
    assert sys.getswitchinterval() == pytest.approx(default)
    assert _worker_switch(s, log) == pytest.approx(0.005)  # the interpreter's own default


def test_the_switch_interval_option_is_checked(make_scheduler: Any) -> None:
    with pytest.raises(tm.ConfigError, match="switch_interval"):
        make_scheduler(switch_interval=0)

"""The writers' line (taskmill/store/writers.py): writers waiting for the database's write lock get it in the
order they started waiting, and a stopped or dead writer never holds the others up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import apsw
import pytest

import taskmill as tm
from taskmill.store import writers
from taskmill.store.writers import WriterLine

pytestmark = pytest.mark.skipif(writers._GETLK < 0, reason="needs open-file-description locks (Linux)")


def _line(db: Path) -> WriterLine:
    Path(writers.path_for(str(db))).touch()  # the supervisor's lock file
    line = WriterLine.open(str(db))
    assert line is not None
    return line


def test_the_longest_waiter_is_at_the_head_and_the_line_moves_when_it_leaves(tmp_path: Path) -> None:
    db = tmp_path / "tasks.db"
    first, second, third = _line(db), _line(db), _line(db)  # three connections (descriptors), one process
    assert not first.waiting()
    first.join()
    time.sleep(0.002)
    second.join()
    time.sleep(0.002)
    third.join()
    assert third.waiting()
    assert not first._ahead(first.mark) and second._ahead(second.mark) and third._ahead(third.mark)
    first.leave()
    assert not second._ahead(second.mark) and third._ahead(third.mark)
    second.close()  # a connection closed (or its process dead) while waiting: its place goes with it
    assert not third._ahead(third.mark)
    third.leave()
    assert not first.waiting()


def test_a_waiter_stuck_at_the_head_is_passed_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "tasks.db"
    stuck, behind = _line(db), _line(db)
    stuck.join()
    time.sleep(0.002)
    behind.join()
    t0 = time.monotonic()
    behind.wait_turn(time.monotonic() + 10)  # it may still try the lock itself after PROBE_S
    assert writers.PROBE_S - 0.01 <= time.monotonic() - t0 < writers.PROBE_S + 0.5
    monkeypatch.setattr(writers, "STALE_S", 0.05)
    time.sleep(0.06)
    assert not behind._ahead(behind.mark)  # waiting longer than STALE_S: not a waiter any more, stuck


_HOLD = """
import sys, time, apsw
conn = apsw.Connection(sys.argv[1])
conn.execute("BEGIN IMMEDIATE")
print("held", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""

_SUBMIT = """
import sys, time
import taskmill as tm
from tests.crash import faulty
with tm.connect(sys.argv[1]) as c:
    print("ready", flush=True)
    t0 = time.monotonic()
    c.domain(faulty.fault).submit(faulty.Job(ledger=sys.argv[2], n=int(sys.argv[3])))
    print(time.monotonic() - t0, flush=True)
"""


def test_a_stopped_writer_in_the_line_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """A submitter is SIGSTOPped while it waits (at the head of the line); the lock comes free; another
    submitter gets it within about PROBE_S, not after the stopped one wakes up."""
    from tests.crash import faulty

    db = tmp_path / "tasks.db"
    ledger = str(tmp_path / "ledger")
    with tm.connect(db) as c:
        c.domain(faulty.fault).submit(faulty.Job(ledger=ledger, n=0))
    Path(writers.path_for(str(db))).touch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(db), "0.6"], stdout=subprocess.PIPE, env=env)
    procs = [holder]
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        stopped = subprocess.Popen([sys.executable, "-c", _SUBMIT, str(db), ledger, "1"], stdout=subprocess.PIPE,
                                   env=env)  # fmt: skip
        procs.append(stopped)
        assert stopped.stdout is not None and stopped.stdout.readline().strip() == b"ready"
        time.sleep(0.1)  # it is waiting for the lock now, first in line
        stopped.send_signal(signal.SIGSTOP)
        other = subprocess.Popen([sys.executable, "-c", _SUBMIT, str(db), ledger, "2"], stdout=subprocess.PIPE,
                                 env=env)  # fmt: skip
        procs.append(other)
        assert other.stdout is not None and other.stdout.readline().strip() == b"ready"
        holder.wait(10)
        waited = float(other.stdout.readline())  # the holder had ~0.4 s left when it started waiting
        assert waited < 0.4 + writers.PROBE_S + 1.0, waited
        assert other.wait(10) == 0
        stopped.send_signal(signal.SIGCONT)
        assert stopped.wait(10) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()
    conn = apsw.Connection(str(db))
    try:
        assert next(iter(conn.execute("SELECT count(*) FROM tasks")))[0] == 3
    finally:
        conn.close()

"""The starvation check: a loop whose turns mostly wait while other threads of the process run Python is
starved; turns that wait while nothing else in the process runs (a slow disk, a busy machine) are not."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from taskmill.policy import starvation
from taskmill.policy.starvation import starved
from taskmill.supervisor.starvation import LINUX, StarvationWatch, thread_cpu_clock


def test_starved_needs_waiting_turns_and_busy_threads() -> None:
    assert starved(turn_wall_s=2.0, turn_cpu_s=0.1, other_cpu_s=4.5, interval_s=5.0)
    # turns that mostly ran: not starved, however busy the other threads
    assert not starved(turn_wall_s=2.0, turn_cpu_s=1.0, other_cpu_s=4.5, interval_s=5.0)
    # turns that waited (a slow disk) while no other thread ran
    assert not starved(turn_wall_s=2.0, turn_cpu_s=0.1, other_cpu_s=0.1, interval_s=5.0)
    # too little waiting in all to matter
    assert not starved(turn_wall_s=0.1, turn_cpu_s=0.0, other_cpu_s=4.5, interval_s=5.0)
    assert not starved(turn_wall_s=1.0, turn_cpu_s=0.0, other_cpu_s=1.0, interval_s=0.0)


@pytest.mark.skipif(not LINUX, reason="Linux thread CPU clocks")
def test_a_thread_cpu_clock_is_built_from_its_native_id() -> None:
    own = time.clock_gettime(thread_cpu_clock(threading.get_native_id()))
    assert abs(own - time.thread_time()) < 0.05
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,))
    spinner.start()
    try:
        time.sleep(0.3)
        assert spinner.ident is not None and spinner.native_id is not None
        theirs = time.clock_gettime(thread_cpu_clock(spinner.native_id))
        reference = time.clock_gettime(time.pthread_getcpuclockid(spinner.ident))
        assert theirs > 0.05 and abs(theirs - reference) < 0.05
    finally:
        stop.set()
        spinner.join()


def _spin(stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1


def test_the_watch_sees_a_busy_application_thread(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(starvation, "INTERVAL_S", 0.3)
    watch = StarvationWatch()
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,), name="app-worker")
    spinner.start()
    try:
        messages = []
        deadline = time.monotonic() + 10
        while not messages and time.monotonic() < deadline:
            watch.turn(0.05, 0.001)  # what a GIL-starved turn looks like
            time.sleep(0.05)
            with caplog.at_level(logging.WARNING, logger="taskmill.supervisor"):
                msg = watch.check(time.monotonic())
            if msg:
                messages.append(msg)
    finally:
        stop.set()
        spinner.join()
    assert messages and "tm.connect()" in messages[0]
    assert any("starved" in r.getMessage() for r in caplog.records)
    # once warned, quiet for QUIET_S even if it goes on
    watch.turn(5.0, 0.0)
    assert watch.check(time.monotonic() + 1.0) is None


def test_the_watch_ignores_waiting_turns_when_no_thread_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(starvation, "INTERVAL_S", 0.3)
    watch = StarvationWatch()
    idle = threading.Thread(target=time.sleep, args=(1.5,), name="app-idle")
    idle.start()
    try:
        seen = []
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            watch.turn(0.05, 0.001)  # turns that wait: for the disk, say
            time.sleep(0.05)
            seen.append(watch.check(time.monotonic()))
    finally:
        idle.join()
    assert not any(seen)


def test_the_warning_names_a_long_switch_interval_and_the_option_that_shortens_it() -> None:
    from taskmill.supervisor.starvation import _switch_hint

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        assert "5.0 ms" in _switch_hint() and "switch_interval=0.0005" in _switch_hint()
        sys.setswitchinterval(0.0005)
        assert _switch_hint() == ""
    finally:
        sys.setswitchinterval(before)

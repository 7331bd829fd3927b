"""Warn when the dispatch loop is starved by the application's own threads (see :mod:`taskmill.policy.starvation`).

The loop adds up each turn's wall and CPU time (two clock reads a turn); every ``INTERVAL_S`` it reads the CPU
clock of each of the process's other Python threads and logs a warning, at most once per ``QUIET_S``, if they
kept the loop waiting. taskmill's own threads do not count. No psutil: a clean start does without its import.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from ..policy import starvation
from . import gil

log = logging.getLogger("taskmill.supervisor")
LINUX = sys.platform.startswith("linux")


def thread_cpu_clock(tid: int) -> int:
    """The CPU clock of thread ``tid`` (Linux's MAKE_THREAD_CPUCLOCK, as glibc builds it). Unlike
    ``time.pthread_getcpuclockid``, it never reads a pthread handle that may belong to a thread that has just
    ended: a stale id only makes ``clock_gettime`` fail."""
    return (~tid << 3) | 6


def _switch_hint() -> str:
    """The loop waits up to one switch interval for each GIL hand-back: name it when it is longer than ours."""
    interval = sys.getswitchinterval()
    if interval <= gil.DEFAULT_S:
        return ""
    return (f" The GIL switch interval is {interval * 1000:.1f} ms; Scheduler(switch_interval={gil.DEFAULT_S}) "
            "shortens each wait.")  # fmt: skip


class StarvationWatch:
    __slots__ = ("_baseline", "_me", "cpu", "next_check", "quiet_until", "since", "wall")

    def __init__(self) -> None:
        self._me = threading.get_ident()  # built on the loop's thread
        self._baseline: dict[int, float] = {}
        self.wall = self.cpu = 0.0
        self.since = self.next_check = self.quiet_until = 0.0
        self._restart(time.monotonic())
        self._other_cpu()  # the baseline: the first interval counts too

    def turn(self, wall_s: float, cpu_s: float) -> None:
        self.wall += wall_s
        self.cpu += cpu_s

    def check(self, now: float) -> str | None:
        """Every ``INTERVAL_S``: the warning to log if the loop was starved (also logged here), else None."""
        if now < self.next_check:
            return None
        other = self._other_cpu()
        interval = now - self.since
        wall, cpu = self.wall, self.cpu
        self._restart(now)
        if now < self.quiet_until or not starvation.starved(wall, cpu, other, interval):
            return None
        self.quiet_until = now + starvation.QUIET_S
        message = (
            f"the dispatch loop is starved by other threads of this process: in the last {interval:.1f} s its turns "
            f"took {wall:.2f} s for {cpu:.2f} s of work, while other threads used {other:.1f} s of CPU. The "
            "supervisor shares the GIL with them (as Scheduler.start() does inside an application), so tasks start "
            "late; run it in a process of its own (taskmill-supervisor, or a Scheduler(...).run() script) and "
            f"submit through tm.connect().{_switch_hint()} This warning repeats at most every "
            f"{starvation.QUIET_S / 60:.0f} minutes."
        )
        log.warning(message)
        return message

    def _restart(self, now: float) -> None:
        self.wall = self.cpu = 0.0
        self.since = now
        self.next_check = now + starvation.INTERVAL_S

    def _other_cpu(self) -> float:
        """CPU seconds the application's Python threads used since the last call (the first sets the baseline)."""
        times: dict[int, float] = {}
        if not LINUX:
            return 0.0  # no per-thread CPU clocks to read: never warn
        for t in threading.enumerate():
            tid = t.native_id
            if tid is None or t.ident == self._me or t.name.startswith("taskmill-"):
                continue
            try:
                times[tid] = time.clock_gettime(thread_cpu_clock(tid))
            except OSError:  # it ended meanwhile
                continue
        used = sum(cpu - self._baseline.get(tid, 0.0) for tid, cpu in times.items())
        self._baseline = times
        return max(used, 0.0)

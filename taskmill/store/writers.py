"""A line for the database's write lock, so that writers get it in about the order they asked.

SQLite's write lock is not a queue: a waiting connection sleeps and tries again, and whoever tries first
after the holder commits gets it. A process that commits and at once begins again (a supervisor's dispatch
turns, a busy submitter) is usually first, and a writer that has already waited long is no more likely to be
next than one that just arrived. With several processes writing at full speed some submits waited ten times
longer than the median.

So a writer that finds the lock taken, or finds others already waiting, joins a line: it takes a read lock on
one byte of the supervisor's lock file (``<db>.supervisor.lock``), at the offset of its monotonic clock in
microseconds (the clock every process on the machine shares), and only asks SQLite for the lock once no
byte before its own is locked, that is once it is the longest waiter. Byte-range locks of an open file
description (Linux ``F_OFD_*``) belong to the connection's own descriptor and vanish when it is closed or its
process dies, however it dies, so a crashed writer never blocks the line. A waiter that sits at the head
longer than :data:`STALE_S` (stopped, or stuck) is passed over, and everyone still tries SQLite's lock now
and then while waiting (:data:`PROBE_S`), so nothing can stall behind a stopped process.

Where the file or OFD locks are missing (no supervisor has run yet, another OS), writers do without a line.
"""

from __future__ import annotations

import contextlib
import os
import struct
import time

try:
    import fcntl
except ImportError:  # not POSIX: no line
    fcntl = None  # type: ignore[assignment]

STALE_S = 2.0  # a mark older than this is passed over: its owner is stopped or stuck
PROBE_S = 0.05  # a waiter not at the head still tries the lock itself this often
CHECK_S = 0.0005  # how often a waiter not at the head looks whether it is
_FLOCK = "hhqqi4x"  # struct flock on Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid
_GETLK: int = getattr(fcntl, "F_OFD_GETLK", -1)  # -1: no open file description locks here
_SETLK: int = getattr(fcntl, "F_OFD_SETLK", -1)
if _GETLK >= 0:
    _ANYONE = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 1, 0, 0)  # any byte from 1 on (l_len 0: to the end)
    _NO_ONE = struct.pack("h", fcntl.F_UNLCK)


def path_for(db_path: str) -> str:
    """The supervisor's lock file (supervisor/lock.py), whose far bytes the line uses."""
    return os.path.abspath(db_path) + ".supervisor.lock"


class WriterLine:
    """One connection's place in the line (its own descriptor of the lock file)."""

    __slots__ = ("fd", "mark")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.mark = 0  # the byte this connection holds while it waits, 0 if none

    @classmethod
    def open(cls, db_path: str) -> WriterLine | None:
        if _GETLK < 0 or _SETLK < 0:
            return None
        try:
            return cls(os.open(path_for(db_path), os.O_RDONLY | os.O_CLOEXEC))
        except OSError:
            return None

    def close(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()

    def _ahead(self, before: int) -> bool:
        """Is a byte in [now - STALE_S, before) locked by another descriptor (someone waiting longer)?"""
        start = max(1, time.monotonic_ns() // 1000 - int(STALE_S * 1e6))
        if before <= start:
            return False
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, start, before - start, 0)
        try:
            got = fcntl.fcntl(self.fd, _GETLK, probe)
        except OSError:
            return False
        return struct.unpack(_FLOCK, got)[0] != fcntl.F_UNLCK

    def waiting(self) -> bool:
        """Are writers in the line now? (Asked before every write transaction: one system call.)"""
        try:
            return fcntl.fcntl(self.fd, _GETLK, _ANYONE)[:2] != _NO_ONE  # type: ignore[arg-type]
        except OSError:
            return False

    def join(self) -> None:
        """Take a place at the end of the line (a no-op if already in it)."""
        if self.mark:
            return
        mark = time.monotonic_ns() // 1000
        try:
            fcntl.fcntl(self.fd, _SETLK, struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, mark, 1, 0))
        except OSError:
            return  # no place in the line: wait as if there were none
        self.mark = mark

    def leave(self) -> None:
        if self.mark:
            with contextlib.suppress(OSError):
                fcntl.fcntl(self.fd, _SETLK, struct.pack(_FLOCK, fcntl.F_UNLCK, os.SEEK_SET, self.mark, 1, 0))
            self.mark = 0

    def wait_turn(self, deadline: float) -> None:
        """Until no one waits longer than us, for at most :data:`PROBE_S` (and never past ``deadline``)."""
        until = min(time.monotonic() + PROBE_S, deadline)
        while self.mark and self._ahead(self.mark) and time.monotonic() < until:
            time.sleep(CHECK_S)

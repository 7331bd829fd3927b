"""One supervisor per database: an exclusive ``flock`` on ``<db>.supervisor.lock``.

The file holds the owner's pid on its first line, then the pid of each live worker. The kernel drops the
lock when its holder dies, however it dies, so a crashed supervisor never blocks its successor; a live one
makes the second fail fast with its pid in the message. The successor reads the worker pids its predecessor
left behind (see :mod:`.leftovers`); a clean stop empties the file.

Writers waiting for the database's write lock also place byte-range locks far beyond its content (the
writers' line, taskmill/store/writers.py); those are independent of the ``flock`` and of what is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time

from ..errors import SupervisorRunning

# holder() finds out by taking the lock for an instant; a supervisor starting in that instant tries again
# for this long before it concludes another one runs.
PROBE_GRACE_S = 0.1


def _first_pid(raw: bytes) -> int | None:
    first = raw.decode(errors="replace").split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


class SupervisorLock:
    def __init__(self, db_path: str) -> None:
        self.path = os.path.abspath(db_path) + ".supervisor.lock"
        self.db_path = db_path
        self.previous: tuple[int | None, list[int]] = (None, [])  # (supervisor pid, its workers) of a crash
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + PROBE_GRACE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:  # maybe a holder() probe, which holds it for microseconds
                    time.sleep(0.002)
                    continue
                raw = os.pread(fd, 32, 0)
                os.close(fd)
                raise SupervisorRunning(self.db_path, _first_pid(raw)) from None
        lines = os.pread(fd, 1 << 16, 0).decode(errors="replace").split()
        if lines and lines[0].isdigit():
            self.previous = (int(lines[0]), [int(p) for p in lines[1:] if p.isdigit()])
        self._fd = fd
        self.record_workers([])

    def record_workers(self, pids: list[int]) -> None:
        """Rewrite the file: our pid, then the workers a successor must make sure are gone if we crash."""
        if self._fd is None:
            return
        data = "".join(f"{p}\n" for p in [os.getpid(), *pids]).encode()
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the live supervisor, if any (for status displays)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _first_pid(os.pread(fd, 32, 0)) or -1
        finally:
            os.close(fd)
        return None

"""One supervisor per database: an exclusive ``flock`` on ``<db>.supervisor.lock`` holding the owner's pid.

The kernel drops the lock when its holder dies, however it dies, so a crashed supervisor never blocks its
successor; a live one makes the second fail fast with its pid in the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from ..errors import SupervisorRunning


class SupervisorLock:
    def __init__(self, db_path: str) -> None:
        self.path = os.path.abspath(db_path) + ".supervisor.lock"
        self.db_path = db_path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SupervisorRunning(self.db_path, int(raw) if raw.isdigit() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

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
            raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(raw) if raw.isdigit() else -1
        finally:
            os.close(fd)
        return None

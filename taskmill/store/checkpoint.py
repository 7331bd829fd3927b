"""WAL checkpoints on a thread of their own, one per database file and process.

A checkpoint copies the WAL's pages into the database file and syncs it: milliseconds that would otherwise be
paid by whichever call happened to commit past the threshold — a producer's ``submit_batch`` (a 1,000-task
batch ran ~40 % faster without it) or a supervisor's dispatch turn. SQLite lets a checkpoint run on another
connection while others read and write, so the committing call only hands the work over and returns.

Nothing depends on when a checkpoint runs: committed data is in the WAL either way, and a checkpoint that
fails (a full disk, a long reader) is simply tried again after a later commit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .connection import Durability

IDLE_EXIT_S = 30.0  # a thread with nothing to do for this long ends; the next request starts a new one
JOIN_TIMEOUT_S = 10.0  # a checkpoint waits at most ~0.2 s for readers: this is a safety net, not a wait


class Checkpointer:
    """Shared by every read-write connection of this process to one database file (reference counted)."""

    _shared: ClassVar[dict[tuple[str, str], Checkpointer]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str, durability: Durability) -> None:
        self.path = path
        self.durability = durability
        self.users = 0
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._frames = 0  # the largest WAL size a commit reported since the last checkpoint
        self._thread: threading.Thread | None = None
        self._closing = False
        self.runs = 0  # checkpoints run, for tests and benchmarks

    @classmethod
    def acquire(cls, path: str, durability: Durability) -> Checkpointer:
        key = (os.path.realpath(path), durability)
        with cls._registry_lock:
            cp = cls._shared.get(key)
            if cp is None or cp.pid != os.getpid():  # a forked child starts afresh
                cp = cls._shared[key] = Checkpointer(key[0], durability)
            cp.users += 1
            return cp

    def release(self) -> None:
        with self._registry_lock:
            self.users -= 1
            if self.users > 0:
                return
            if self._shared.get((self.path, self.durability)) is self:
                del self._shared[(self.path, self.durability)]
        with self._lock:
            self._closing = True
            self._frames = 0  # the last connection to close checkpoints the file itself
            self._wake.notify()
            thread = self._thread
        # Once the caller's connection is closed, none of ours may stay open: a caller that deletes or moves
        # the database files next would pull them from under a connection of the same process (I/O errors).
        if thread is not None and thread is not threading.current_thread():
            thread.join(JOIN_TIMEOUT_S)

    @property
    def usable(self) -> bool:
        """False in a forked child, where the parent's thread does not exist: the caller checkpoints itself."""
        return self.pid == os.getpid()

    def request(self, frames: int) -> None:
        """A commit left ``frames`` frames in the WAL: checkpoint soon, off the caller's thread."""
        with self._lock:
            self._frames = max(self._frames, frames)
            if self._thread is None or not self._thread.is_alive():
                self._closing = False
                self._thread = threading.Thread(target=self._run, name="taskmill-checkpoint", daemon=True)
                self._thread.start()
            else:
                self._wake.notify()

    def _run(self) -> None:
        from .connection import checkpoint_passive, open_connection

        conn = None
        try:
            while True:
                with self._lock:
                    if not self._frames and not self._closing:
                        self._wake.wait(IDLE_EXIT_S)
                    frames, self._frames = self._frames, 0
                    if not frames or self._closing:  # released, or idle for IDLE_EXIT_S
                        self._thread = None
                        return
                if conn is None:
                    try:
                        conn = open_connection(self.path, self.durability, background_checkpoints=False)
                    except Exception:  # the file went away or the disk is full: a later commit asks again
                        return
                conn.wal_frames = frames  # type: ignore[attr-defined]
                checkpoint_passive(conn)
                self.runs += 1
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

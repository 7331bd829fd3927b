"""WAL checkpoints on a thread of their own, one per database file and process.

A checkpoint copies the WAL's pages into the database file and syncs it: milliseconds that would otherwise be
paid by whichever call happened to commit past the threshold — a producer's ``submit_batch`` (a 1,000-task
batch ran ~40 % faster without it) or a supervisor's dispatch turn. SQLite lets a checkpoint run on another
connection while others read and write, so the committing call only hands the work over and returns.

Nothing depends on when a checkpoint runs: committed data is in the WAL either way, and a checkpoint that
fails (a full disk, a long reader) is simply tried again after a later commit.

With durability "normal", a checkpoint waits for a lull: until this process has committed nothing for
:data:`LULL_S`, or the WAL has reached ``BURST_PAGES`` frames. A checkpoint's fsyncs slow the commits around
it even from the other core (single submits of ~35 µs stalled for milliseconds beside one; a thread that
only called ``fdatasync`` every 5 ms cost a submit loop 15-30%), and a passive checkpoint never catches up
with a writer that does not pause: a burst paid for a pass every 250 frames, then a RESTART that held every
writer back for up to ~30 ms. A burst now runs with none, and the checkpoint after it copies each page once
however often the burst wrote it. The WAL grows meanwhile, within the room ``journal_size_limit`` leaves it
anyway (``connection.WAL_SIZE_LIMIT``); commits do not sync, so a longer WAL costs them nothing. With "full"
they do, and one that grows the WAL past the file's end syncs its new size too (twice the time), so there
checkpoints run at once and the WAL is written over in place; the thread's passes early in a new WAL's lap
also write room for the lap as zeros, a step ahead of the commits (walroom.py). A power cut under "normal" loses
the commits since the last checkpoint, which during a burst may be the burst so far.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .connection import Durability

IDLE_EXIT_S = 30.0  # a thread with nothing to do for this long ends; the next request starts a new one
JOIN_TIMEOUT_S = 10.0  # a checkpoint waits at most ~0.2 s for readers: this is a safety net, not a wait
LULL_S = 0.003  # durability "normal": a checkpoint waits until this process has committed nothing for this long


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
        self.defers = durability == "normal"  # waits for a lull (module doc)
        self.last_commit = 0.0  # monotonic time of this process's last commit to the file (connection._wal_hook)
        self.makes_room = durability == "full"  # room in the WAL before a burst grows it (walroom.py)

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

    def _await_lull(self, burst_pages: int) -> None:
        """Until no commit for :data:`LULL_S`, the WAL has ``burst_pages`` frames, or release (lock held)."""
        while not self._closing and self._frames < burst_pages:
            quiet = time.monotonic() - self.last_commit
            if quiet >= LULL_S:
                return
            self._wake.wait(LULL_S - quiet)

    def _run(self) -> None:
        from .connection import BURST_PAGES, RESTART_PAGES, checkpoint_passive, open_connection
        from .walroom import make_room

        conn = None
        try:
            while True:
                with self._lock:
                    if not self._frames and not self._closing:
                        self._wake.wait(IDLE_EXIT_S)
                    if self.defers and self._frames:
                        self._await_lull(BURST_PAGES)
                    frames, self._frames = self._frames, 0
                    if not frames or self._closing:  # released, or idle for IDLE_EXIT_S
                        self._thread = None
                        return
                if conn is None:
                    try:
                        conn = open_connection(self.path, self.durability, background_checkpoints=False)
                    except Exception:  # the file went away or the disk is full: a later commit asks again
                        return
                    if self.defers:  # a burst's WAL restarts past what it may reach before its first pass
                        conn.restart_base = conn.restart_pages = BURST_PAGES + RESTART_PAGES  # type: ignore[attr-defined]
                if self.makes_room and frames < RESTART_PAGES:  # early in a lap: a step of room ahead of it
                    self.makes_room = make_room(conn)  # once it could not, not again for this file
                conn.wal_frames = frames  # type: ignore[attr-defined]
                checkpoint_passive(conn)
                self.runs += 1
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

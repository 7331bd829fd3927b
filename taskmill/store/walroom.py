"""Room in the WAL file for a lap of synced commits, written once as zeros, before a burst grows it commit by commit.

With durability "full" every commit ends in an ``fdatasync`` of the WAL. A commit whose frames lie past the file's
end grows the file, and its sync then also has to write the new size through the filesystem's journal: a
5,000-submit burst into a fresh database ran its first ~1,300 submits at ~1,850/s on ext4 here, and the rest, once
the WAL was written over in place, at ~3,300/s. A WAL is written over in place only after its first RESTART, which
under sustained load comes at ``RESTART_PAGES`` frames (``connection.checkpoint_passive``), ~16 MiB of growth that
every new WAL (a new database, or the first connection after the last one closed) paid again. Written as zeros
and synced once the WAL first asks for a checkpoint, that room costs ~16 ms in all and turns the rest of the lap
into overwrites: the same burst, 5 alternating pairs, 3,593 → 4,321/s. With "normal" commits do not sync, and the
same room bought ~7% for 64 MiB of zeros: not done.

The room is made ``STEP_BYTES`` at a time, one step per checkpoint request early in the lap (every quarter of
``CHECKPOINT_PAGES`` frames, ~1 MiB of them), so that it stays ahead of the commits while the write lock is held
~2-4 ms at a time rather than for a whole ~18 MiB write and sync (11-15 ms here, more on a slow disk).

Nothing SQLite relies on changes. The file is only extended past its end, while this connection holds the write
lock, so no frame is being written there, and frames are only ever written by the holder of that lock. A frame of
zeros never passes SQLite's checksum, so recovery stops where the real frames end, as it stops at the frames of an
earlier lap. ``journal_size_limit`` (64 MiB) is above the room, so SQLite never truncates it away while the WAL is
in use. SQLite takes no POSIX lock on the WAL file (only on the database and ``-shm`` files), so opening and closing
another descriptor of it releases none of its locks.
"""

from __future__ import annotations

import os

import apsw

from .connection import CHECKPOINT_PAGES, RESTART_PAGES, _begin, _rollback

ROOM_FRAMES = RESTART_PAGES + CHECKPOINT_PAGES // 2  # the passes between the restart mark and the RESTART itself
STEP_BYTES = 2 << 20  # room made per call: twice the frames written between two checkpoint requests
WAL_HEADER = 32
FRAME_HEADER = 24
_CHUNK = bytes(1 << 20)


def room_bytes(page_size: int) -> int:
    """The size of a WAL holding :data:`ROOM_FRAMES` frames of ``page_size`` bytes."""
    return WAL_HEADER + ROOM_FRAMES * (FRAME_HEADER + page_size)


def make_room(conn: apsw.Connection) -> bool:
    """Extend ``conn``'s WAL with synced zeros by up to :data:`STEP_BYTES`, towards :func:`room_bytes`. False if
    it could not (a full disk, an I/O error, the write lock not had), in which case the file may have grown part
    of the way, which changes nothing either."""
    path = conn.filename_wal
    try:
        page_size = int(next(iter(conn.execute("PRAGMA page_size")))[0])
        want = room_bytes(page_size)
        if os.stat(path).st_size >= want:
            return True
        _begin(conn)  # the write lock: no frame is written while the file grows
    except Exception:  # an I/O error, or the lock not had within the busy budget (StoreBusy)
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            end = os.fstat(fd).st_size  # read under the lock: commits may have grown it since the stat above
            want = min(want, end + STEP_BYTES)
            while end < want:
                end += os.pwrite(fd, memoryview(_CHUNK)[: min(len(_CHUNK), want - end)], end)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    except OSError:
        return False
    finally:
        _rollback(conn)
    return True

"""WAL checkpoints run on a background thread, not in the call that committed past the threshold."""

from __future__ import annotations

import errno
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import taskmill as tm
from taskmill.store import checkpoint, connection, walroom
from taskmill.store.checkpoint import Checkpointer
from tests.integration import domains as D


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "taskmill-checkpoint"]


def test_a_producer_never_checkpoints_in_its_own_call_and_the_wal_is_still_kept_short(
    db: Path, monkeypatch: object
) -> None:
    callers: list[str] = []
    real = connection.checkpoint_passive

    def spy(conn: object) -> None:
        callers.append(threading.current_thread().name)
        real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(connection, "checkpoint_passive", spy)  # type: ignore[attr-defined]
    with tm.connect(db, durability="normal") as client:
        h = client.domain(D.main)
        for n in range(0, 12_000, 1000):  # each batch commits well past SQLite's 1,000-page threshold
            h.submit_batch([D.Note(log="-", tag=f"{i}") for i in range(n, n + 1000)])
        cp = client._store().conn.checkpointer
        assert isinstance(cp, Checkpointer)
        deadline = time.monotonic() + 10.0
        while (cp.runs == 0 or cp._frames) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cp.runs > 0
        assert callers and set(callers) == {"taskmill-checkpoint"}
        # Checkpointed pages are reused: the WAL stays near the threshold, not the size of everything written.
        h.submit_batch([D.Note(log="-", tag="last")])
        assert os.path.getsize(f"{db}-wal") < 8 * connection.CHECKPOINT_PAGES * 4096
        assert client.pending_count() == 12_001


def test_connections_to_one_file_share_one_thread_which_ends_when_the_last_closes(db: Path) -> None:
    before = len(_checkpoint_threads())
    a, b = tm.connect(db), tm.connect(db)
    try:
        ca, cb = a._store().conn.checkpointer, b._store().conn.checkpointer
        assert ca is cb and ca is not None and ca.users == 2
        ca.request(connection.CHECKPOINT_PAGES)
        deadline = time.monotonic() + 10.0
        while ca.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ca.runs == 1 and len(_checkpoint_threads()) == before + 1
    finally:
        a.close()
        assert ca.users == 1
        b.close()
    deadline = time.monotonic() + 10.0
    while len(_checkpoint_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(_checkpoint_threads()) == before


def test_after_close_no_connection_of_ours_holds_the_files(db: Path) -> None:
    """Closing the last connection waits for the checkpoint thread's connection too, so the files can be
    deleted or moved at once (a benchmark cache built, then renamed, hit I/O errors before)."""
    for round_ in range(3):
        with tm.connect(db, durability="normal") as client:
            h = client.domain(D.main)
            for n in range(0, 6000, 1000):
                h.submit_batch([D.Note(log="-", tag=f"{round_}-{i}") for i in range(n, n + 1000)])
        assert not [k for k in Checkpointer._shared if k[0] == os.path.realpath(db)]  # released and joined
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        moved = db.with_name(f"moved-{round_}.db")
        db.rename(moved)
        with tm.connect(moved) as client:  # opens cleanly: no I/O error, everything there
            assert client.pending_count() == 6000
        moved.rename(db)
        for suffix in ("-wal", "-shm"):
            Path(f"{moved}{suffix}").unlink(missing_ok=True)
        db.unlink()


def _burst(h: tm.DomainHandle, batches: int, tag: str) -> None:
    for n in range(batches):
        h.submit_batch([D.Note(log="-", tag=f"{tag}-{n}-{i}") for i in range(1000)])


def test_with_normal_durability_a_burst_runs_without_checkpoints_which_wait_for_the_lull_after_it(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint's fsyncs slow the commits around it, and a writer that never pauses kept a passive
    checkpoint from ever finishing: a burst paid for a pass every 250 frames, then a RESTART."""
    monkeypatch.setattr(checkpoint, "LULL_S", 1.0)  # far longer than any gap between the burst's commits
    ran_at: list[float] = []
    real = connection.checkpoint_passive

    def spy(conn: object) -> None:
        ran_at.append(time.monotonic())
        real(conn)  # type: ignore[arg-type]

    monkeypatch.setattr(connection, "checkpoint_passive", spy)
    with tm.connect(db, durability="normal") as client:
        h = client.domain(D.main)
        conn = client._store().conn
        _burst(h, 30, "a")
        last_commit = time.monotonic()
        frames = conn.wal_frames
        assert frames > 2 * connection.CHECKPOINT_PAGES  # a checkpoint was asked for, several times over
        cp = conn.checkpointer
        assert isinstance(cp, Checkpointer) and cp.runs == 0 and not ran_at
        deadline = time.monotonic() + 10.0
        while cp.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cp.runs == 1 and ran_at[0] - last_commit >= 0.9  # once, after a second without commits
        h.submit(D.Note(log="-", tag="after"))
        assert conn.wal_frames < frames / 10  # the checkpoint copied everything: the WAL started over
        assert client.pending_count() == 30_001


def test_a_burst_checkpoints_without_a_lull_once_the_wal_reaches_the_burst_limit(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoint, "LULL_S", 60.0)
    monkeypatch.setattr(connection, "BURST_PAGES", 2 * connection.CHECKPOINT_PAGES)
    ran_at_frames: list[int] = []
    real = connection.checkpoint_passive

    def spy(conn: Any) -> None:
        ran_at_frames.append(conn.wal_frames)  # the WAL's length as the commit that asked for it reported
        real(conn)

    monkeypatch.setattr(connection, "checkpoint_passive", spy)
    with tm.connect(db, durability="normal") as client:
        h = client.domain(D.main)
        cp = client._store().conn.checkpointer
        assert isinstance(cp, Checkpointer)
        deadline = time.monotonic() + 20.0
        n = 0
        while cp.runs == 0 and time.monotonic() < deadline:  # commits go on: there is never a lull
            _burst(h, 1, f"b{n}")
            n += 1
        assert cp.runs > 0
        assert ran_at_frames[0] >= 2 * connection.CHECKPOINT_PAGES  # not before the limit


def test_with_full_durability_checkpoints_do_not_wait_for_a_lull(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each commit syncs, and one that grows the WAL past its file's end syncs its size too: the WAL is
    better written over in place than grown through a burst."""
    monkeypatch.setattr(checkpoint, "LULL_S", 60.0)
    with tm.connect(db, durability="full") as client:
        h = client.domain(D.main)
        cp = client._store().conn.checkpointer
        assert isinstance(cp, Checkpointer) and not cp.defers
        _burst(h, 15, "c")
        deadline = time.monotonic() + 10.0
        while cp.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cp.runs > 0


def _wal_size(db: Path) -> int:
    return os.path.getsize(f"{db}-wal")


def test_with_full_durability_a_new_wal_gets_a_laps_room_as_zeros_ahead_of_a_burst(db: Path) -> None:
    """Checkpoint requests early in a new WAL's lap make room for the frames the lap writes, a step at a time
    ahead of them, so that a burst's commits write over zeros instead of growing the file, each sync writing its
    size too (walroom.py)."""
    room = walroom.room_bytes(4096)
    with tm.connect(db, durability="full") as client:
        h = client.domain(D.main)
        h.submit(D.Note(log="-", tag="first"))
        assert _wal_size(db) < room // 10
        n = 1
        deadline = time.monotonic() + 30.0
        while _wal_size(db) < room and time.monotonic() < deadline:
            h.submit(D.Note(log="-", tag=f"{n}"))
            n += 1
        assert _wal_size(db) == room  # made in steps: no commit grew the file past them
        for i in range(100):  # commits go on over the room
            h.submit(D.Note(log="-", tag=f"after{i}"))
        assert _wal_size(db) == room
        assert client.pending_count() == n + 100


def test_with_normal_durability_the_wal_grows_only_with_its_frames(db: Path) -> None:
    """Commits do not sync: growing the file costs them little, and the room is not worth its zeros."""
    with tm.connect(db, durability="normal") as client:
        h = client.domain(D.main)
        cp = client._store().conn.checkpointer
        assert isinstance(cp, Checkpointer) and not cp.makes_room
        n = 0
        while client._store().conn.wal_frames < connection.CHECKPOINT_PAGES + 100:  # type: ignore[attr-defined]
            h.submit(D.Note(log="-", tag=f"{n}"))
            n += 1
        frames = client._store().conn.wal_frames  # type: ignore[attr-defined]
        time.sleep(0.1)  # the lull's checkpoint
        assert _wal_size(db) <= walroom.WAL_HEADER + frames * (walroom.FRAME_HEADER + 4096)


def test_the_room_keeps_every_frame_and_recovery_stops_where_the_frames_end(db: Path, tmp_path: Path) -> None:
    """The zeros go only past the file's end, and a WAL recovered from disk after a crash (no ``-shm``) ends at
    its last frame: every committed task is there."""
    with tm.connect(db, durability="full") as client:
        h = client.domain(D.main)
        ids = {h.submit(D.Note(log="-", tag=f"a{i}")).id for i in range(30)}
        before = Path(f"{db}-wal").read_bytes()
        assert walroom.make_room(client._store().conn)
        assert _wal_size(db) == len(before) + walroom.STEP_BYTES  # a step at a time
        while _wal_size(db) < walroom.room_bytes(4096):
            assert walroom.make_room(client._store().conn)
        after = Path(f"{db}-wal").read_bytes()
        assert len(after) == walroom.room_bytes(4096)
        assert after[: len(before)] == before
        assert after[len(before) :].count(0) == len(after) - len(before)
        assert walroom.make_room(client._store().conn)  # room already: nothing written
        assert _wal_size(db) == walroom.room_bytes(4096)
        ids |= {h.submit(D.Note(log="-", tag=f"b{i}")).id for i in range(30)}
        assert client._store().conn.wal_frames < connection.CHECKPOINT_PAGES  # type: ignore[attr-defined]
        crashed = tmp_path / "crashed"
        crashed.mkdir()
        for suffix in ("", "-wal"):  # the files as a crash leaves them: the database file holds none of the tasks
            shutil.copyfile(f"{db}{suffix}", f"{crashed / 'tasks.db'}{suffix}")
    with tm.connect(crashed / "tasks.db") as recovered:
        assert recovered.pending_count() == 60
        assert {t.id for t in recovered.pending_tasks()} == ids


def test_room_that_cannot_be_made_changes_nothing_and_is_not_tried_again(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk (or any error) while making room: commits go on as before, and the file is not tried again."""
    tries: list[int] = []

    def no_space(fd: int, data: object, offset: int) -> int:
        tries.append(offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", no_space)  # Python's only: SQLite writes its frames itself
    with tm.connect(db, durability="full") as client:
        h = client.domain(D.main)
        cp = client._store().conn.checkpointer
        assert isinstance(cp, Checkpointer) and cp.makes_room
        for n in range(600):  # ~1,900 frames: more than one checkpoint request
            h.submit(D.Note(log="-", tag=f"{n}"))
        deadline = time.monotonic() + 10.0
        while cp.makes_room and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not cp.makes_room
        for n in range(600, 900):
            h.submit(D.Note(log="-", tag=f"{n}"))
        assert len(tries) == 1
        assert _wal_size(db) < walroom.room_bytes(4096)
        assert client.pending_count() == 900

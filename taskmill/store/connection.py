"""Opening the database and running transactions.

Every write runs inside ``BEGIN IMMEDIATE`` so the write lock is taken up front (a deferred transaction that
upgrades to a writer can fail with SQLITE_BUSY no matter how long it waits). Busy errors are retried here,
inside a time budget, so callers never see "database is locked".

Checkpoints run after a commit has returned, never inside it. SQLite's automatic checkpoint runs within the
COMMIT statement, and when it fails (a full disk cannot grow the database file) the COMMIT reports the
error although the transaction did commit: a caller would undo in memory what the database holds. They run
on a background thread (``checkpoint.py``) unless the connection was opened without one.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Iterator
from typing import Literal

import apsw

from .. import faults
from ..errors import SchemaError, StorageFull, StoreBusy, StoreError
from .checkpoint import Checkpointer
from .writers import WriterLine

Durability = Literal["full", "normal"]
MIN_SQLITE = (3, 51, 3)
BUSY_BUDGET_S = 30.0
CHECKPOINT_PAGES = 1000  # SQLite's own autocheckpoint threshold
RESTART_PAGES = 4 * CHECKPOINT_PAGES  # a WAL this long is under sustained load: restart it (below)
BURST_PAGES = 12 * CHECKPOINT_PAGES  # durability "normal": checkpoints wait for a lull up to this (checkpoint.py)
RESTART_WAIT_S = 0.2
WAL_SIZE_LIMIT = 64 << 20  # bytes a WAL file is truncated back to once restarted
NAP_S = 0.001  # a waiter's nap for a lock: at first, ...
NAP_MIN_S = 0.0002  # ... shrinking to this the longer it has waited, and at the head of the writers' line
NAP_AGE_S = 0.005


class Connection(apsw.Connection):
    """An apsw connection that knows how many frames its last commit left in the WAL, and who checkpoints."""

    wal_frames = 0
    checkpoint_pages = CHECKPOINT_PAGES
    checkpoint_at = CHECKPOINT_PAGES  # frames in the WAL that make the next commit checkpoint
    restart_pages = RESTART_PAGES
    restart_base = RESTART_PAGES  # what restart_pages goes back to once a restart has run
    checkpointer: Checkpointer | None = None  # None: the committing thread checkpoints itself
    busy: _BusyWait | None = None
    line: WriterLine | None = None  # its place among writers waiting for the lock (store/writers.py)
    line_retry_at = 0.0  # no line yet (no supervisor lock file): when to look for one again
    written_version = -100  # data_version() after its last single submit (submit.read_epoch); first: no match
    supervisor_epoch = ""  # the supervisors started so far, as the last single submit read it (client.py)
    synced = False  # opened with durability "full": every commit waits for the disk, unless write_tx says not

    def close(self, force: bool = False) -> None:
        cp, self.checkpointer = self.checkpointer, None
        try:
            super().close(force)
        finally:
            if self.line is not None:
                self.line.close()
            if cp is not None:
                cp.release()


class _BusyWait:
    """Wait for another connection's lock in short jittered naps (SQLite's own handler sleeps up to 100 ms
    at a time, so under contention a writer can nap long after the lock came free), up to the budget.

    A writer beginning a transaction (``line`` set, see :func:`write_tx`) waits in the writers' line
    instead, so writers get the lock in about the order they asked for it (store/writers.py). Without a
    line the naps shrink as the wait grows, from :data:`NAP_S` towards :data:`NAP_MIN_S`, so the writer that
    has waited longest at least asks most often."""

    __slots__ = ("budget", "line", "started")

    def __init__(self, budget: float | None = None) -> None:
        self.budget = budget
        self.started = 0.0
        self.line: WriterLine | None = None

    def __call__(self, count: int) -> bool:
        now = time.monotonic()
        line = self.line
        if count == 0 and not (line is not None and line.mark):  # (a writer already in line started earlier)
            self.started = now
            if line is not None:
                line.join()
        elif now - self.started >= (BUSY_BUDGET_S if self.budget is None else self.budget):
            return False  # SQLITE_BUSY: _retry turns it into StoreBusy
        if line is not None and line.mark:
            line.wait_turn(self.started + (BUSY_BUDGET_S if self.budget is None else self.budget))
            nap = NAP_MIN_S
        elif count < 4:
            nap = 0.0002
        else:
            nap = max(NAP_MIN_S, NAP_S / (1.0 + (now - self.started) / NAP_AGE_S))
        time.sleep(nap * (0.5 + random.random()))
        return True


def _wal_hook(conn: Connection, name: str, pages: int) -> int:
    """Called after each commit, inside it: the checkpoint runs later (see the module doc)."""
    if pages < conn.wal_frames:  # the WAL was started over
        conn.checkpoint_at = conn.checkpoint_pages
    conn.wal_frames = pages
    cp = conn.checkpointer
    if cp is not None:
        cp.last_commit = time.monotonic()  # its checkpoints wait for a lull in this process's commits
    return apsw.SQLITE_OK


def _check_sqlite_version() -> None:
    version = tuple(int(p) for p in apsw.sqlite_lib_version().split(".")[:3])
    if version < MIN_SQLITE:
        need = ".".join(map(str, MIN_SQLITE))
        raise SchemaError(f"taskmill needs SQLite >= {need}, apsw is linked against {apsw.sqlite_lib_version()}")


def _pragma(conn: apsw.Connection, name: str, value: str | int, expect: str | int | None = None) -> None:
    """Set one pragma and read it back: apsw runs multi-statement strings lazily (DESIGN.md §5)."""
    rows = list(conn.execute(f"PRAGMA {name}={value}"))
    got = rows[0][0] if rows else next(iter(conn.execute(f"PRAGMA {name}")), (None,))[0]
    want = value if expect is None else expect
    if got is not None and str(got).lower() != str(want).lower():
        raise StoreError(f"could not set PRAGMA {name}={value} (database reports {got!r})")


def open_connection(
    path: str, durability: Durability = "full", *, readonly: bool = False, background_checkpoints: bool = True
) -> apsw.Connection:
    """Open ``path`` in WAL mode with the durability the caller asked for."""
    _check_sqlite_version()
    if durability not in ("full", "normal"):
        raise StoreError(f"durability must be 'full' or 'normal', got {durability!r}")
    flags = apsw.SQLITE_OPEN_READONLY if readonly else apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    try:
        vfs = faults.vfs_name() if faults.FAULTS else None
        conn = Connection(os.fspath(path), flags=flags | apsw.SQLITE_OPEN_NOMUTEX, vfs=vfs)
    except apsw.CantOpenError as exc:
        raise StoreError(f"cannot open database {path!r}: {exc}") from exc
    conn.busy = _BusyWait()
    conn.set_busy_handler(conn.busy)
    if not readonly:
        conn.line = WriterLine.open(os.fspath(path))
        _retry(lambda: _pragma(conn, "journal_mode", "wal"))
    sync = {"full": ("FULL", 2), "normal": ("NORMAL", 1)}[durability]
    _pragma(conn, "synchronous", sync[0], sync[1])
    conn.synced = durability == "full"
    _pragma(conn, "foreign_keys", "OFF", 0)
    _pragma(conn, "temp_store", "MEMORY", 2)
    _pragma(conn, "cache_size", -16384)
    conn.set_wal_hook(_wal_hook)  # type: ignore[arg-type]  # replaces SQLite's autocheckpoint hook; conn is ours
    if not readonly:
        _pragma(conn, "journal_size_limit", WAL_SIZE_LIMIT)
    if faults.FAULTS and vfs is not None:
        conn.checkpoint_pages = 16  # mid_checkpoint armed: reach a checkpoint in a short run
    elif background_checkpoints and not readonly:
        conn.checkpointer = Checkpointer.acquire(os.fspath(path), durability)
    return conn


def _retry(fn, *args, budget: float | None = None):  # type: ignore[no-untyped-def]
    """``fn(*args)``, again on SQLITE_BUSY/LOCKED with jittered backoff until ``budget`` seconds have passed
    (arguments rather than a closure: it wraps the BEGIN and COMMIT of every transaction)."""
    budget = BUSY_BUDGET_S if budget is None else budget
    deadline = time.monotonic() + budget
    delay = 0.001
    while True:
        try:
            return fn(*args)
        except (apsw.BusyError, apsw.LockedError) as exc:
            if time.monotonic() >= deadline:
                raise StoreBusy(f"database write lock held for more than {budget:.0f}s") from exc
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.05)
        except apsw.FullError as exc:
            raise StorageFull(f"disk full: {exc}") from exc
        except apsw.IOError as exc:
            raise StoreError(f"disk I/O error: {exc}") from exc


def _begin(conn: apsw.Connection) -> None:
    """``BEGIN IMMEDIATE``, in the writers' line (:func:`_in_line`)."""
    _in_line(conn, "BEGIN IMMEDIATE", None)


def _in_line(conn: apsw.Connection, statement: str, params: tuple | None) -> None:  # type: ignore[type-arg]
    """Run a statement that takes the write lock, in the writers' line: behind those already waiting, even if the
    lock happens to be free this instant (a writer that has just committed would otherwise always be first)."""
    busy, line = getattr(conn, "busy", None), getattr(conn, "line", None)
    if line is None and busy is not None and time.monotonic() >= conn.line_retry_at:  # type: ignore[attr-defined]
        conn.line = line = WriterLine.open(conn.filename)  # type: ignore[attr-defined]  # a supervisor has started?
        conn.line_retry_at = time.monotonic() + 1.0  # type: ignore[attr-defined]
    if busy is None or line is None:
        _retry(conn.execute, statement, params)
        return
    busy.line = line
    try:
        if line.waiting():
            busy.started = time.monotonic()
            line.join()
            line.wait_turn(busy.started + (BUSY_BUDGET_S if busy.budget is None else busy.budget))
        _retry(conn.execute, statement, params)
    finally:
        busy.line = None
        line.leave()


def write_one(conn: apsw.Connection, statement: str, params: tuple) -> int:  # type: ignore[type-arg]
    """One write statement as a transaction of its own (SQLite's autocommit): the ``BEGIN IMMEDIATE`` and
    ``COMMIT`` round trips of :class:`write_tx` saved, the writers' line and the checkpoint hand-over kept. An
    error leaves nothing written (SQLite rolls the statement's transaction back). Returns the rows changed."""
    _in_line(conn, statement, params)
    changed: int = conn.changes()
    _after_commit(conn)
    return changed


def _rollback(conn: apsw.Connection) -> None:
    with contextlib.suppress(apsw.Error):
        conn.execute("ROLLBACK")


def _commit(conn: apsw.Connection) -> None:
    """``COMMIT`` (rolled back if it fails), then hand a checkpoint over if the WAL has grown past the mark."""
    try:
        _retry(conn.execute, "COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    _after_commit(conn)


def _after_commit(conn: apsw.Connection) -> None:
    """Hand a checkpoint over (or run it) if the commit left the WAL past the mark."""
    frames = getattr(conn, "wal_frames", 0)
    if frames >= getattr(conn, "checkpoint_at", CHECKPOINT_PAGES):
        cp = getattr(conn, "checkpointer", None)
        if cp is not None and cp.usable:
            conn.checkpoint_at = frames + max(1, conn.checkpoint_pages // 4)  # type: ignore[attr-defined]  # as checkpoint_passive does
            cp.request(frames)
        else:
            checkpoint_passive(conn)


class write_tx:  # lower case: used as the function it replaced, ``with write_tx(conn):``
    """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back explicitly on any error (no reliance on connection drop).

    ``durable=False``: on a ``full`` connection, this commit does not wait for the disk (``synchronous`` is
    NORMAL for it; SQLite allows the change only outside a transaction). For writes that a power loss may undo
    at no cost, such as a dispatch turn that only claimed tasks: recovery puts running tasks back to pending
    anyway. The next synced commit of any connection flushes the WAL, these frames included, and a power loss
    before it leaves the database as it was before them (WAL frames are checksummed).

    A class rather than a generator-based context manager: it runs around every submit and dispatch turn."""

    __slots__ = ("conn", "lax")

    def __init__(self, conn: apsw.Connection, durable: bool = True) -> None:
        self.conn = conn
        self.lax = not durable and getattr(conn, "synced", False)

    def __enter__(self) -> apsw.Connection:
        if self.lax:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            _begin(self.conn)
        except BaseException:
            if self.lax:
                _resync(self.conn)
            raise
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if kind is None:
                _commit(self.conn)
                return
            _rollback(self.conn)
            if isinstance(exc, apsw.FullError | apsw.IOError):  # a statement needed a new page, a write failed
                raise translate_errors(exc) from exc
        finally:
            if self.lax:
                _resync(self.conn)


def _resync(conn: apsw.Connection) -> None:
    """Back to synced commits after a ``durable=False`` transaction, which must be over for SQLite to allow it."""
    try:
        conn.execute("PRAGMA synchronous=FULL")
    except apsw.Error:  # still in the transaction: a failed COMMIT whose ROLLBACK failed too
        _rollback(conn)
        conn.execute("PRAGMA synchronous=FULL")


def checkpoint_passive(conn: apsw.Connection) -> None:
    """Copy what it can from the WAL into the database without waiting for readers. A failure (disk full,
    busy) changes nothing that was committed; the next commit tries again.

    Under sustained load (writers back to back, readers in between) a passive checkpoint never catches up,
    the WAL is never started over and grows without bound. Past :data:`RESTART_PAGES` (with "normal",
    :data:`BURST_PAGES` more: see checkpoint.py) the checkpoint is a RESTART instead: it holds new writers
    back for at most :data:`RESTART_WAIT_S` while readers finish, copies everything, and the next writer starts
    the WAL over.

    Once the WAL is past the threshold, a passive checkpoint usually cannot finish (another connection is
    reading), so the WAL stays long and every commit would try again, each time paying an fsync of the
    database file inside a submit's latency. A connection tries again only after the WAL has grown by a
    quarter of the threshold, or once it was started over."""
    frames = conn.wal_frames  # type: ignore[attr-defined]
    conn.checkpoint_at = frames + max(1, conn.checkpoint_pages // 4)  # type: ignore[attr-defined]
    if frames < getattr(conn, "restart_pages", RESTART_PAGES):
        with contextlib.suppress(apsw.Error):
            conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
        return
    conn.set_busy_handler(_BusyWait(RESTART_WAIT_S))
    try:
        conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_RESTART)
        conn.restart_pages = getattr(conn, "restart_base", RESTART_PAGES)  # type: ignore[attr-defined]
    except apsw.Error:  # a long reader, a full disk: not again before the WAL has grown some more
        conn.restart_pages = frames + CHECKPOINT_PAGES  # type: ignore[attr-defined]
    finally:
        conn.set_busy_handler(getattr(conn, "busy", None) or _BusyWait())


@contextlib.contextmanager
def read_tx(conn: apsw.Connection) -> Iterator[apsw.Connection]:
    """A deferred read transaction: one consistent snapshot across several SELECTs."""
    _retry(conn.execute, "BEGIN")
    try:
        yield conn
    finally:
        with contextlib.suppress(apsw.Error):
            conn.execute("COMMIT")


@contextlib.contextmanager
def savepoint(conn: apsw.Connection, name: str) -> Iterator[apsw.Connection]:
    """A nested part of the caller's transaction that an error undoes alone (then re-raised)."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield conn
    except BaseException:
        conn.execute(f"ROLLBACK TO {name}")
        conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def translate_errors(exc: apsw.Error) -> StoreError:
    if isinstance(exc, apsw.FullError):
        return StorageFull(f"disk full: {exc}")
    if isinstance(exc, apsw.BusyError | apsw.LockedError):
        return StoreBusy(str(exc))
    if isinstance(exc, apsw.IOError):
        return StoreError(f"disk I/O error: {exc}")
    return StoreError(str(exc))

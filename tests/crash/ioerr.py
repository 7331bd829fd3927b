"""I/O errors on demand: an apsw VFS over SQLite's unix VFS that fails the N-th ``xWrite`` or ``xSync`` (as
SQLite's own test/ioerr*.test fail the N-th I/O) with SQLITE_FULL or SQLITE_IOERR, once.

Registered as the default VFS, it covers every connection this process opens afterwards. With
:attr:`IoErrorVFS.fail_at` None it only counts, which gives the number of operations a workload makes, so a
sweep can fail each one in turn. ``xSync`` only counts (no fsync): the sweeps are about how errors are
handled, not about durability, and it keeps them fast.
"""

from __future__ import annotations

import apsw

BASE = "unix"  # named: once this VFS is the default, "" would mean itself
ERRORS = {"full": apsw.FullError, "ioerr": apsw.IOError}


class _File(apsw.VFSFile):
    def __init__(self, vfs: IoErrorVFS, name: object, flags: list[int]) -> None:
        super().__init__(BASE, name, flags)  # type: ignore[arg-type]
        self.vfs = vfs

    def xWrite(self, data: bytes, offset: int) -> None:
        self.vfs.tick("write")
        super().xWrite(data, offset)

    def xSync(self, flags: int) -> None:
        self.vfs.tick("sync")  # and no fsync: this is about errors, not durability, and it keeps sweeps fast


class IoErrorVFS(apsw.VFS):
    """Fails the ``fail_at``-th operation of kind ``op`` ("write" or "sync") with ``error`` ("full"/"ioerr")."""

    NAME = "taskmill-test-ioerr"

    def __init__(self, op: str = "write", fail_at: int | None = None, error: str = "ioerr") -> None:
        self.op, self.fail_at, self.error = op, fail_at, ERRORS[error]
        self.counts = {"write": 0, "sync": 0}
        self.fired = False
        super().__init__(self.NAME, BASE, makedefault=True)

    def tick(self, op: str) -> None:
        self.counts[op] += 1
        if op == self.op and self.counts[op] == self.fail_at:
            self.fired = True
            raise self.error(f"injected {self.error.__name__} at {op} #{self.fail_at}")

    def xOpen(self, name: object, flags: list[int]) -> _File:  # type: ignore[override]
        return _File(self, name, flags)

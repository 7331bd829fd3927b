"""A disk that can fill up: an apsw VFS over the default one that fails any write growing a file with
SQLITE_FULL while :attr:`DiskFullVFS.full` is set, as a real full disk fails ``write()`` with ENOSPC.

Registered as the default VFS, it covers every connection this process opens afterwards (the embedded
supervisor's and the clients'). Overwrites inside a file's current size still succeed, as on a real disk,
so SQLite can go on rewriting its WAL from the start after a checkpoint.
"""

from __future__ import annotations

import apsw

BASE = "unix"  # named: once this VFS is the default, "" would mean itself


class _File(apsw.VFSFile):
    def __init__(self, vfs: DiskFullVFS, name: object, flags: list[int]) -> None:
        super().__init__(BASE, name, flags)  # type: ignore[arg-type]
        self.vfs = vfs

    def xWrite(self, data: bytes, offset: int) -> None:
        if self.vfs.full and offset + len(data) > self.xFileSize():
            self.vfs.refused += 1
            raise apsw.FullError("no space left on device (simulated)")
        super().xWrite(data, offset)

    def xTruncate(self, size: int) -> None:
        if self.vfs.full and size > self.xFileSize():
            self.vfs.refused += 1
            raise apsw.FullError("no space left on device (simulated)")
        super().xTruncate(size)


class DiskFullVFS(apsw.VFS):
    NAME = "taskmill-test-diskfull"

    def __init__(self) -> None:
        self.full = False
        self.refused = 0
        super().__init__(self.NAME, BASE, makedefault=True)

    def xOpen(self, name: object, flags: list[int]) -> _File:  # type: ignore[override]
        return _File(self, name, flags)

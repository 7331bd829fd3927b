"""A power cut for SQLite files, after SQLite's own crash tests (test/walcrash.test and its crash VFS).

:class:`CrashVFS` passes every operation through to SQLite's unix VFS, and also keeps, for each file, a
*durable image* (its content as of its last ``xSync``) and the writes and truncations made since. At a chosen
operation (:attr:`Disk.cut_at`) the power fails: :meth:`Disk.image` is what the disk would hold afterwards,
the durable image plus a random choice of the unsynced operations, each kept, dropped or (for writes) torn at
a 512-byte boundary; keeping a later write while dropping an earlier one models reordering. From then on
every operation fails, as the machine is off. ``xSync`` does not call fsync: nothing here outlives a real
power cut anyway, and it keeps the simulation fast.

Limits: one process (both connections of the workload live in it); ``-shm`` is not modelled (images are
opened without one, so SQLite rebuilds it from the WAL); directory entries are taken as durable.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import apsw

BASE = "unix"


class PowerCut(apsw.IOError):
    """Raised by every file operation once the power is off."""


class Disk:
    def __init__(self, cut_at: int | None, rng: random.Random) -> None:
        self.cut_at = cut_at
        self.rng = rng
        self.ops = 0
        self.durable: dict[str, bytearray] = {}
        self.pending: dict[str, list[tuple[str, int, bytes]]] = {}
        self.cut: dict[str, bytes] | None = None
        self.closing = False  # the workload is closing its connections: let that pass quietly

    def track(self, path: str) -> None:
        if path not in self.durable:
            self.durable[path] = bytearray(Path(path).read_bytes() if os.path.exists(path) else b"")
            self.pending[path] = []

    def tick(self) -> None:
        """Count an operation; at the cut, take the image and turn the power off."""
        if self.closing:
            return
        if self.cut is not None:
            raise PowerCut("the power is off")
        self.ops += 1
        if self.cut_at is not None and self.ops >= self.cut_at:
            self.cut = self.image()
            raise PowerCut("power cut")

    def image(self) -> dict[str, bytes]:
        out = {}
        for path, data in self.durable.items():
            disk = bytearray(data)
            for kind, offset, payload in self.pending[path]:
                fate = self.rng.random()
                if fate < 0.3:
                    continue  # never reached the platter
                if kind == "t":
                    del disk[offset:]
                    continue
                if fate < 0.45 and len(payload) > 512:
                    payload = payload[: 512 * self.rng.randrange(1, (len(payload) + 511) // 512)]  # torn
                _apply(disk, offset, payload)
            out[path] = bytes(disk)
        return out

    def sync(self, path: str) -> None:
        disk = self.durable[path]
        for kind, offset, payload in self.pending[path]:
            if kind == "t":
                del disk[offset:]
            else:
                _apply(disk, offset, payload)
        self.pending[path].clear()

    def forget(self, path: str) -> None:
        self.durable.pop(path, None)
        self.pending.pop(path, None)


def _apply(disk: bytearray, offset: int, payload: bytes) -> None:
    if offset > len(disk):
        disk.extend(b"\0" * (offset - len(disk)))
    disk[offset : offset + len(payload)] = payload


class _File(apsw.VFSFile):
    def __init__(self, disk: Disk, name: apsw.URIFilename | str | None, flags: list[int]) -> None:
        super().__init__(BASE, name, flags)  # type: ignore[arg-type]
        self.disk = disk
        self.path = name.filename() if isinstance(name, apsw.URIFilename) else name
        if self.path:
            disk.track(self.path)

    def xWrite(self, data: bytes, offset: int) -> None:
        self.disk.tick()
        if self.path:
            self.disk.pending[self.path].append(("w", offset, bytes(data)))
        super().xWrite(data, offset)

    def xTruncate(self, size: int) -> None:
        self.disk.tick()
        if self.path:
            self.disk.pending[self.path].append(("t", size, b""))
        super().xTruncate(size)

    def xSync(self, flags: int) -> None:
        self.disk.tick()
        if self.path:
            self.disk.sync(self.path)


class CrashVFS(apsw.VFS):
    """Made the default VFS while it exists: every connection this process opens goes through it."""

    NAME = "taskmill-test-crash"

    def __init__(self, disk: Disk) -> None:
        self.disk = disk
        super().__init__(self.NAME, BASE, makedefault=True)

    def xOpen(self, name: apsw.URIFilename | str | None, flags: list[int]) -> _File:  # type: ignore[override]
        return _File(self.disk, name, flags)

    def xDelete(self, name: str, syncdir: bool) -> None:
        self.disk.tick()
        self.disk.forget(name)
        super().xDelete(name, syncdir)


def write_image(image: dict[str, bytes], into: Path) -> Path:
    """Lay a cut's files out in ``into`` (same names, no ``-shm``); returns the directory."""
    into.mkdir(parents=True)
    for path, data in image.items():
        (into / os.path.basename(path)).write_bytes(data)
    return into

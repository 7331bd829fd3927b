"""Plumbing shared by the benchmark workloads: on-disk scratch databases and the completion log.

Databases must sit on a real disk: on tmpfs an fsync costs nothing and ``durability="full"`` would look as
fast as ``normal``. The completion log is the peer protocol's file (``taskbody.mark()``); while a run is
being measured it is only *counted* (newlines in the bytes appended since the last look), and parsed once
at the end, so watching it costs the scheduler's process next to nothing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

Durability = Literal["normal", "full"]
BENCH_DIR = Path(__file__).resolve().parent
LOCAL_SCRATCH = BENCH_DIR / ".scratch"  # git-ignored (benchmarks/.gitignore)
DONE_VAR = "PEERS_DONE_FILE"
POLL_S = 0.010
MEMORY_FS = {"tmpfs", "ramfs"}


def _fs_type(path: str) -> str | None:
    """The type of the filesystem holding ``path`` (longest matching mount point), Linux only."""
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            mounts = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    real = os.path.realpath(path)
    best_mount, best_type = "", None
    for mount, fstype in mounts:
        if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best_mount):
            best_mount, best_type = mount, fstype
    return best_type


def scratch_root() -> Path:
    """The system temp dir when it is on disk, else ``benchmarks/.scratch``."""
    tmp = tempfile.gettempdir()
    if _fs_type(tmp) in MEMORY_FS:
        LOCAL_SCRATCH.mkdir(exist_ok=True)
        return LOCAL_SCRATCH
    return Path(tmp)


def describe_root(root: Path) -> str:
    return f"{root} ({_fs_type(str(root)) or 'unknown fs'})"


@contextlib.contextmanager
def scratch_dir(root: Path, tag: str) -> Iterator[Path]:
    """A fresh directory for one measurement's database, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=f"taskmill-bench-{tag}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def done_env(path: Path) -> Iterator[None]:
    """Point executors at ``path``: workers inherit the environment when the supervisor spawns them."""
    saved = os.environ.get(DONE_VAR)
    os.environ[DONE_VAR] = str(path)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(DONE_VAR, None)
        else:
            os.environ[DONE_VAR] = saved


class Line(NamedTuple):
    kind: str
    i: int
    t_submit: float
    t_start: float
    t_end: float
    pid: int


class DoneLog:
    """The completion file: cheap counting while measuring, full parse afterwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")
        self._offset = 0
        self.count = 0

    def wait(self, total: int, timeout: float) -> float:
        """Block until ``total`` lines exist (of any kind); returns the time of the poll that saw them."""
        deadline = time.monotonic() + timeout
        with open(self.path, "rb") as f:
            while True:
                f.seek(self._offset)
                data = f.read()
                self._offset += len(data)
                self.count += data.count(b"\n")
                if self.count >= total:
                    return time.time()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.count}/{total} completions after {timeout:.0f} s")
                time.sleep(POLL_S)

    def lines(self, kind: str | None = None) -> list[Line]:
        out = []
        for raw in self.path.read_bytes().splitlines():
            k, i, ts, t0, t1, pid = raw.decode().split()
            if kind is None or k == kind:
                out.append(Line(k, int(i), float(ts), float(t0), float(t1), int(pid)))
        return out


def by_worker(lines: list[Line]) -> dict[int, list[Line]]:
    """Each worker pid's executions in the order they started: one worker runs its sync tasks one after another,
    so ``b.t_start - a.t_end`` of neighbours is how long it waited between them."""
    out: dict[int, list[Line]] = {}
    for ln in lines:
        out.setdefault(ln.pid, []).append(ln)
    for mine in out.values():
        mine.sort(key=lambda ln: ln.t_start)
    return out


def check_distinct(lines: list[Line], expected: int, what: str) -> list[str]:
    """Every ``i`` in ``0..expected-1`` completed exactly once."""
    seen = [ln.i for ln in lines]
    problems = []
    if len(seen) != len(set(seen)):
        problems.append(f"{what}: {len(seen) - len(set(seen))} duplicate completions")
    missing = expected - len(set(seen) & set(range(expected)))
    if missing:
        problems.append(f"{what}: {missing} tasks missing")
    return problems

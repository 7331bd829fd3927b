"""``PeerAdapter`` for Huey with ``SqliteHuey`` (protocol §2.3 row "Huey").

Producer: ``noop(...)`` / ``cpu(...)`` on the task wrappers, which commit one
insert each. Worker: ``huey_consumer tasks.huey -k process -w N -q`` (``-q`` =
WARNING level). Huey's ``map()`` is a loop over single enqueues, so there is no
true batch API and W2 is n/a.

``run.py`` imports this module inside the registry factory, so a missing huey
raises ImportError there and the peer is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import huey

from ..adapter import PEERS_DIR, PeerAdapter, load_tasks, spawn

HUEY_DIR = Path(__file__).resolve().parent
TASKS_PY = HUEY_DIR / "tasks.py"


def _load_tasks(state_dir: Path, durability: str) -> ModuleType:
    """A fresh module per call: a fresh ``huey`` instance for each durability."""
    return load_tasks(TASKS_PY, {"PEERS_STATE_DIR": str(state_dir), "PEERS_DURABILITY": durability})


class HueyAdapter(PeerAdapter):
    """SqliteHuey on ``<state_dir>/huey.db``; durability mapping documented in ``tasks.py``."""

    name = "huey"
    durabilities = {
        "full": "WAL, synchronous=FULL (fsync=True)",
        "normal": "WAL, synchronous=NORMAL (storage subclass; huey has no option for it)",
        "default": "WAL, SQLite's compiled-in synchronous (SqliteHuey() as shipped)",
    }

    def __init__(self) -> None:
        self._tasks: ModuleType | None = None
        self._state_dir = Path()
        self._durability = ""

    @property
    def _mod(self) -> ModuleType:
        if self._tasks is None:
            raise RuntimeError("setup() has not been called")
        return self._tasks

    def setup(self, state_dir: Path, durability: str) -> None:
        if durability not in self.durabilities:
            raise ValueError(f"huey: unknown durability {durability!r}")
        state_dir.mkdir(parents=True, exist_ok=True)
        self._state_dir, self._durability = state_dir, durability
        self._tasks = _load_tasks(state_dir, durability)
        self._mod.huey.pending_count()  # Connect (and set the pragmas) before any timing.

    def reset(self) -> None:
        self._mod.huey.flush()

    def enqueue(self, task: str, args: tuple) -> None:
        getattr(self._mod, task)(*args)

    def queue_depth(self) -> int:
        return int(self._mod.huey.pending_count())

    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        consumer = [sys.executable, "-m", "huey.bin.huey_consumer"]
        cmd = [*consumer, "tasks.huey", "-k", "process", "-w", str(n), "-q"]
        worker_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(HUEY_DIR), str(PEERS_DIR)]),
            "PEERS_STATE_DIR": str(self._state_dir),
            "PEERS_DURABILITY": self._durability,
        }
        return spawn(cmd, worker_env, cwd=HUEY_DIR, log=log)

    def settings(self) -> dict[str, object]:
        storage = self._mod.huey.storage
        return {
            "huey": huey.__version__,
            "sqlite": storage.sql("select sqlite_version()", results=True)[0][0],
            "journal_mode": storage.sql("pragma journal_mode", results=True)[0][0],
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(
                storage.sql("pragma synchronous", results=True)[0][0], "?"
            ),
        }

    def close(self) -> None:
        if self._tasks is not None:
            self._tasks.huey.storage.close()
            self._tasks = None

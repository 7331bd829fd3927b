"""``PeerAdapter`` for taskmill (protocol §2.3 row "new scheduler", §4).

Producer: ``handle.submit(...)`` through a ``taskmill.connect(path)`` client in the harness process; it
returns once the insert has committed under the configured durability (and pings the supervisor's wake-up
socket). ``enqueue_batch`` is ``submit_batch``: one transaction for all tasks, so W2 is a true batch.
Worker: ``supervise.py`` (``Scheduler(...).run()`` with N worker processes) in its own session.

Reset deletes the database: no supervisor runs at that point, and a fresh file is the cheapest way to
empty every table (active tasks, history, tags) without a purge API.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import taskmill as tm

from ..adapter import PEERS_DIR, Item, PeerAdapter, spawn
from .tasks import TASKS, peer

REPO_DIR = PEERS_DIR.parent.parent
DB_NAME = "taskmill.db"
DB_FILES = ("", "-wal", "-shm", ".supervisor.lock")


class TaskmillAdapter(PeerAdapter):
    """taskmill on ``<state_dir>/taskmill.db``; client and supervisor use the same durability."""

    name = "taskmill"
    durabilities = {
        "full": "WAL, synchronous=FULL (durability='full', the default): a submit survives power loss",
        "normal": "WAL, synchronous=NORMAL (durability='normal'): a submit survives any process crash",
    }

    def __init__(self) -> None:
        self._client: tm.Client | None = None
        self._handle: tm.DomainHandle | None = None
        self._db = Path()
        self._durability = ""

    def _connect(self) -> None:
        self._client = tm.connect(self._db, durability=self._durability)
        self._handle = self._client.domain(peer)
        self._client.pending_count()  # open the connection and set the pragmas before any timing

    @property
    def _h(self) -> tm.DomainHandle:
        if self._handle is None:
            raise RuntimeError("setup() has not been called")
        return self._handle

    @property
    def _c(self) -> tm.Client:
        if self._client is None:
            raise RuntimeError("setup() has not been called")
        return self._client

    def setup(self, state_dir: Path, durability: str) -> None:
        if durability not in self.durabilities:
            raise ValueError(f"taskmill: unknown durability {durability!r}")
        state_dir.mkdir(parents=True, exist_ok=True)
        self._db, self._durability = state_dir / DB_NAME, durability
        self._connect()

    def reset(self) -> None:
        self.close()
        for suffix in DB_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{self._db}{suffix}")
        self._connect()

    def enqueue(self, task: str, args: tuple) -> None:
        self._h.submit(TASKS[task](*args))

    def enqueue_batch(self, items: list[Item]) -> None:
        self._h.submit_batch([TASKS[task](*args) for task, args in items])

    def queue_depth(self) -> int:
        return self._c.pending_count()

    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        module = f"{__package__}.supervise"
        cmd = [sys.executable, "-m", module, "--db", str(self._db), "--workers", str(n),
               "--durability", self._durability]  # fmt: skip
        return spawn(cmd, {**env, "PYTHONPATH": str(REPO_DIR)}, cwd=REPO_DIR, log=log)

    def settings(self) -> dict[str, object]:
        """Read back from the client's own connection: a FULL store that believes it is NORMAL is the
        classic mistake (DESIGN.md §5), so the pragma the producer really runs with is what gets recorded."""
        conn = self._c._store().conn  # benchmark introspection of the producer's connection

        def one(sql: str) -> object:
            return next(iter(conn.execute(sql)))[0]

        sync = int(str(one("pragma synchronous")))
        return {
            "taskmill": tm.__version__,
            "sqlite": one("select sqlite_version()"),
            "journal_mode": one("pragma journal_mode"),
            "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(sync, "?"),
        }

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = self._handle = None

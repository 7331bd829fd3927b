"""``PeerAdapter`` for Dramatiq with its ``RedisBroker`` on Redis db 1 (protocol §2.3 row "Dramatiq").

Producer: ``actor.send(...)``, which returns once Redis has run the broker's enqueue script (message hash +
queue push), under the persistence set by the durability (``redisbase``). Worker:
``dramatiq tasks --processes N --threads 1 --skip-logging``: without ``basicConfig`` only warnings and errors
reach stderr (Python's last-resort handler), the WARNING level the protocol asks for.

W2 is n/a: the broker enqueues one message per call, and ``group(...).run()`` is a loop over ``send``.

``run.py`` imports this module inside the registry factory, so a missing dramatiq or redis raises ImportError
there and the peer is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dramatiq  # noqa: F401  # Fails here, in the registry factory, when dramatiq is missing.

from ..redisbase import RedisPeer

DRAMATIQ_DIR = Path(__file__).resolve().parent
QUEUE = "default"


class DramatiqAdapter(RedisPeer):
    """Dramatiq's ``RedisBroker``, default middleware, one thread per worker process."""

    name = "dramatiq"
    db = 1
    library = "dramatiq"
    peer_dir = DRAMATIQ_DIR

    def open_library(self) -> None:
        self._mod.broker.client.ping()  # Connect before any timing.

    def close_library(self) -> None:
        self._mod.broker.client.close()

    def enqueue(self, task: str, args: tuple) -> None:
        getattr(self._mod, task).send(*args)

    def queue_depth(self) -> int:
        """Messages the broker holds for the queue (``qsize``: queued, delayed and unacked)."""
        return int(self._mod.broker.do_qsize(QUEUE))

    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "dramatiq", "tasks", "--processes", str(n), "--threads", "1", "--skip-logging"]
        return self.spawn_workers(cmd, env, log)

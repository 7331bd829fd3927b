"""``PeerAdapter`` for Celery with the Redis broker on Redis db 3 (protocol §2.3 row "Celery").

Producer: ``task.delay(...)``, which returns once Redis has executed the ``LPUSH`` of the message (kombu's
Redis transport), under the persistence set by the durability (``redisbase``). Worker:
``celery -A tasks worker --pool prefork --concurrency N -l WARNING``.

W2 is n/a: ``group(...).apply_async()`` publishes one message per task.

Reset is ``FLUSHDB``, which also drops kombu's record of the queue's binding (``_kombu.binding.celery``). The
producer's connection remembers the queue as declared and does not declare it again, so reset declares it, and
every workload starts from the state a fresh producer leaves.

``run.py`` imports this module inside the registry factory, so a missing celery or redis raises ImportError
there and the peer is skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import celery  # noqa: F401  # Fails here, in the registry factory, when celery is missing.

from ..redisbase import RedisPeer

CELERY_DIR = Path(__file__).resolve().parent
QUEUE = "celery"  # Celery's default queue (and routing key).


class CeleryAdapter(RedisPeer):
    """Celery's Redis transport, default task options, prefork pool."""

    name = "celery"
    db = 3
    library = "celery"
    peer_dir = CELERY_DIR

    def _declare(self) -> None:
        with self._mod.app.connection_for_write() as conn:
            self._mod.app.amqp.queues[QUEUE](conn.default_channel).declare()

    def open_library(self) -> None:
        self._declare()
        self._mod.noop.delay(-1, 0.0, "w")  # The producer's pooled connection exists before any timing.
        self.reset()

    def close_library(self) -> None:
        self._mod.app.close()

    def reset(self) -> None:
        super().reset()
        self._declare()

    def enqueue(self, task: str, args: tuple) -> None:
        getattr(self._mod, task).delay(*args)

    def queue_depth(self) -> int:
        """Messages waiting in the queue, summed over kombu's priority sub-queues."""
        with self._mod.app.connection_for_read() as conn:
            return int(conn.default_channel.queue_declare(QUEUE, passive=True).message_count)

    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool", "prefork",
               "--concurrency", str(n), "-l", "WARNING"]  # fmt: skip
        return self.spawn_workers(cmd, env, log)

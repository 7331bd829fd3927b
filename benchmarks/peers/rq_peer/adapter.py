"""``PeerAdapter`` for RQ on Redis db 2 (protocol §2.3 row "RQ").

Producer: ``queue.enqueue(noop, ...)`` on ``Queue("default")``; it returns once Redis has executed the job's
MULTI/EXEC (job hash + queue push), under the persistence set by the durability (``redisbase``).
Worker: ``rq worker-pool -n N -l WARNING -u URL default``; each pool worker forks a work horse per job, RQ's
default worker class.

W2: ``Queue.enqueue_many`` is a true batch. It builds every job in Python, then sends all job hashes and queue
pushes in one pipeline that redis-py wraps in a single MULTI/EXEC: one round trip and one atomic write for the
whole batch, where a loop of ``enqueue`` pays both per task. (Huey's ``map()``, Dramatiq's ``group().run()`` and
Celery's ``group().apply_async()`` are n/a because they are such loops.)

``run.py`` imports this module inside the registry factory, so a missing rq or redis raises ImportError
there and the peer is skipped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import rq

from ..adapter import Item, pids_with_marker, stop_process_tree
from ..redisbase import RedisPeer

RQ_DIR = Path(__file__).resolve().parent
QUEUE = "default"


class RQAdapter(RedisPeer):
    """RQ 1.14+ (``worker-pool`` exists from 1.14 on); pickle serializer and job options left at their defaults."""

    name = "rq"
    db = 2
    library = "rq"
    peer_dir = RQ_DIR

    def __init__(self) -> None:
        super().__init__()
        self._queue: rq.Queue | None = None

    @property
    def _q(self) -> rq.Queue:
        if self._queue is None:
            raise RuntimeError("setup() has not been called")
        return self._queue

    def open_library(self) -> None:
        self._queue = rq.Queue(QUEUE, connection=self.client)
        self._queue.count  # noqa: B018  # A first command, so the connection exists before any timing.

    def close_library(self) -> None:
        self._queue = None

    def enqueue(self, task: str, args: tuple) -> None:
        self._q.enqueue(getattr(self._mod, task), *args)

    def enqueue_batch(self, items: list[Item]) -> None:
        funcs = {name: getattr(self._mod, name) for name in ("noop", "cpu")}
        self._q.enqueue_many([rq.Queue.prepare_data(funcs[task], args) for task, args in items])

    def queue_depth(self) -> int:
        return self._q.count

    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "rq.cli", "worker-pool", "-n", str(n), "-l", "WARNING", "-u", self.url, QUEUE]
        return self.spawn_workers(cmd, env, log)

    def stop_workers(self, proc: subprocess.Popen) -> list[int]:
        """SIGTERM the work horses together with the group.

        A horse leaves the worker's process group (``os.setpgrp()`` after the fork), so the group's SIGTERM
        misses one that is still writing its last job's status when the workload ends; it would then be found
        by the marker after the group is gone and reported as a stray. Only a process that outlives this stop
        still is.
        """
        marker = getattr(proc, "peers_marker", None)
        for pid in pids_with_marker(marker) if marker else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        return stop_process_tree(proc)

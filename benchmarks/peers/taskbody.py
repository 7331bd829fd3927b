"""Task bodies shared verbatim by every peer (peer protocol §2.1).

Each peer registers ``noop`` and ``cpu`` in its own way and delegates here, so the
work done per task, and the cost of counting it, is identical for every peer.
The harness learns that a task is done from the line ``mark()`` appends to the
file named by ``PEERS_DONE_FILE``; it never asks the peer.

This module must stay importable as a top-level ``taskbody`` (peer workers get
the ``peers`` directory on ``PYTHONPATH``) and must not import the harness.
"""

from __future__ import annotations

import os
import time

CPU_LOOPS = 1_600_000  # Fixed by the protocol (§3 W5); never recalibrate.

_fd: int | None = None
_pid: int = 0


def _reset_after_fork() -> None:
    """Forked workers (e.g. multiprocessing) must open their own descriptor and report their own pid."""
    global _fd, _pid
    _fd = None
    _pid = 0


os.register_at_fork(after_in_child=_reset_after_fork)


def mark(kind: str, i: int, t_submit: float, t_start: float) -> None:
    """Append ``"<kind> <i> <t_submit> <t_start> <t_end> <pid>\\n"`` with one ``write(2)``.

    The file is opened once per process with ``O_APPEND``; lines stay under 100
    bytes, so appends from several processes never interleave.
    """
    global _fd, _pid
    t_end = time.time()
    if _fd is None:
        _fd = os.open(os.environ["PEERS_DONE_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _pid = os.getpid()
    os.write(_fd, f"{kind} {i} {t_submit!r} {t_start!r} {t_end!r} {_pid}\n".encode())


def spin(n: int) -> int:
    """Pure-Python CPU work that holds the GIL for the whole loop."""
    s = 0
    for k in range(n):
        s += k
    return s


def noop(i: int, t_submit: float, kind: str) -> None:
    """Measured (``n``) or warm-up (``w``) no-op."""
    t_start = time.time()
    mark(kind, i, t_submit, t_start)


def cpu(i: int, t_submit: float) -> None:
    """CPU task: ``spin(1_600_000)`` then mark kind ``c``."""
    t_start = time.time()
    spin(CPU_LOOPS)
    mark("c", i, t_submit, t_start)

"""Workers exec'd before the daemon has imported its own side, so the two start-ups overlap.

A worker imports taskmill's worker side and then waits for its ``Boot`` message before it imports any domain
module, so it can be exec'd as soon as the worker count is known. ``taskmill-supervisor`` does that first
thing (the daemon then spends ~0.3 s importing typer, the configuration, the store and the domains); the pool
adopts these processes instead of exec'ing new ones. Nothing here imports more than the standard library (and
``taskmill`` itself imports nothing until a name is used). A pre-spawned worker that is never adopted exits by
itself: its socket closes with this process, and the kernel kills it if this process dies first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

from ..slot import ExecutingSlot


class ExecdWorker:
    """A worker process just exec'd, not yet a pool member: its process, our end of its socket, its executing
    slot. The pool execs every worker this way; here some are exec'd before the pool exists."""

    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        bell, their_bell = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # see workers/channel.py
        bell.setblocking(False)
        made = ExecutingSlot.create()
        self.slot: ExecutingSlot | None = None
        slot_args: list[str] = []
        if made is not None:
            self.slot, slot_fd = made
            slot_args = ["--slot-fd", str(slot_fd)]
        fds = (theirs.fileno(), their_bell.fileno(), *([int(slot_args[1])] if slot_args else []))
        try:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "taskmill.workers", "--fd", str(theirs.fileno()),
                 "--bell-fd", str(their_bell.fileno()), "--parent-pid", str(os.getpid()), *slot_args],
                pass_fds=fds, start_new_session=True, env=env, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            ours.close()
            bell.close()
            if self.slot is not None:
                self.slot.close()
            raise
        finally:
            theirs.close()
            their_bell.close()
            if slot_args:
                os.close(int(slot_args[1]))
        self.sock = ours
        self.bell = bell
        self.env = env

    def discard(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.sock.close()
        self.bell.close()
        if self.slot is not None:
            self.slot.close()
        with contextlib.suppress(Exception):
            self.popen.wait(5.0)


_ready: list[ExecdWorker] = []


def search_path() -> list[str]:
    """Our ``sys.path`` with the current directory spelled out: workers import the same modules from it."""
    return [p or os.getcwd() for p in sys.path]


def worker_env() -> dict[str, str]:
    """The environment workers are exec'd with: ours, with our ``sys.path`` so they import the same taskmill."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(search_path())}


def early_count(n: int) -> int:
    """How many of ``n`` workers to exec before the supervisor's imports: as many as leave one core to those
    imports, which are the critical path (at least one). Dispatch starts with the first worker; the others
    are exec'd once the pool starts. On 2 cores, exec'ing both workers first slowed the imports enough to
    start dispatch ~0.07 s later."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(n, cores - 1))


def start(n: int) -> None:
    """Exec workers now for the ``n``-worker pool of the supervisor this process is about to run (see
    :func:`early_count`)."""
    env = worker_env()
    for _ in range(early_count(n)):
        _ready.append(ExecdWorker(env))


def _same(a: dict[str, str], b: dict[str, str]) -> bool:
    """The environments match but for PYTHONPATH: the config's ``python_path`` joins ``sys.path`` after the
    workers were exec'd, and reaches them in their Boot message instead."""
    return {k: v for k, v in a.items() if k != "PYTHONPATH"} == {k: v for k, v in b.items() if k != "PYTHONPATH"}


def take(n: int, env: dict[str, str]) -> list[ExecdWorker]:
    """Up to ``n`` pre-spawned workers exec'd with ``env`` (any others are discarded: the pool is settled)."""
    taken = [p for p in _ready if _same(p.env, env) and p.popen.poll() is None][:n]
    for p in _ready:
        if p not in taken:
            p.discard()
    _ready.clear()
    return taken


def discard() -> None:
    """Start-up failed before the pool adopted them: stop every pre-spawned worker."""
    for p in _ready:
        p.discard()
    _ready.clear()

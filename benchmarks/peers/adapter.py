"""The interface every peer implements, plus the process handling they all share.

The workloads (``workloads.py``) only talk to a ``PeerAdapter``, so a new peer
(taskmill included) needs one subclass and one ``register_adapter()`` call in
``run.py``; nothing in the workloads changes.

Worker processes are started in their own session and carry an environment
marker (``PEERS_RUN_MARKER``), so stopping them can find any descendant that left
the process group (protocol §2.3).
"""

from __future__ import annotations

import abc
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import IO

from . import taskbody

PEERS_DIR = Path(__file__).resolve().parent
MARKER_VAR = "PEERS_RUN_MARKER"

Item = tuple[str, tuple]  # (task name, positional args); task is "noop" or "cpu".


class PeerUnavailable(Exception):
    """Raised by a registry factory when the peer's library imports but something it needs (a server) does not
    answer; the peer is then skipped with this message, like a missing library."""


class PeerAdapter(abc.ABC):
    """One task-queue library, driven by the harness as producer, with its own CLI as worker.

    Lifecycle: ``setup()`` once per (repetition, durability), then per workload
    ``reset()`` / enqueue calls / ``start_workers()`` / ``stop_workers()``, and
    ``close()`` at the end. Enqueue calls must return only once the peer has
    accepted the task under its configured persistence.
    """

    name: str = "?"
    #: Durability names this peer understands, mapped to a one-line description.
    durabilities: dict[str, str] = {}

    @abc.abstractmethod
    def setup(self, state_dir: Path, durability: str) -> None:
        """Create and connect the producer-side client; state lives under ``state_dir``."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Empty every queue, result and job table of the peer."""

    @abc.abstractmethod
    def enqueue(self, task: str, args: tuple) -> None:
        """Submit one task with the peer's normal single-submit call and default options."""

    def enqueue_batch(self, items: list[Item]) -> None:
        """Submit all items in one call of a true batch API.

        Raise ``NotImplementedError`` when the peer has none, or when its "batch"
        call is only a loop over single enqueues: W2 is then reported as n/a.
        """
        raise NotImplementedError(f"{self.name} has no true batch-enqueue API")

    @abc.abstractmethod
    def queue_depth(self) -> int:
        """Number of tasks waiting to be executed."""

    @abc.abstractmethod
    def start_workers(self, n: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen:
        """Start the peer's own worker CLI with ``n`` executing processes (use ``spawn()``)."""

    def stop_workers(self, proc: subprocess.Popen) -> list[int]:
        """SIGTERM the group, SIGKILL on timeout; returns the pids of strays that had to be killed."""
        return stop_process_tree(proc)

    def settings(self) -> dict[str, object]:
        """Effective storage settings (journal mode, synchronous, ...) recorded with the results."""
        return {}

    def close(self) -> None:  # noqa: B027  # An optional hook, not abstract.
        """Release the producer-side client."""


def new_marker() -> str:
    """A fresh value for ``PEERS_RUN_MARKER``; one per worker start."""
    return uuid.uuid4().hex


def spawn(cmd: list[str], env: dict[str, str], cwd: Path, log: Path | None) -> subprocess.Popen:
    """Start ``cmd`` as a fresh process in its own session, with a marker in its environment.

    ``env`` is merged over the harness's own environment; a marker is added if the
    caller did not provide one.
    """
    full_env = dict(os.environ)
    full_env.update(env)
    marker = full_env[MARKER_VAR] = env.get(MARKER_VAR) or new_marker()
    out: IO[bytes] | int = subprocess.DEVNULL
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")
    try:
        proc = subprocess.Popen(
            cmd,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc.peers_marker = marker  # type: ignore[attr-defined]  # Read back by stop_process_tree().
        return proc
    finally:
        if not isinstance(out, int):
            out.close()  # The child holds its own copy.


def pids_with_marker(marker: str | None = None) -> list[int]:
    """Pids of live processes whose environment has ``PEERS_RUN_MARKER=marker`` (any value if None)."""
    needle = f"{MARKER_VAR}={marker or ''}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue  # Gone, or not ours to read.
        if any(v == needle or (marker is None and v.startswith(needle)) for v in env):
            found.append(int(entry.name))
    return found


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_process_tree(proc: subprocess.Popen, grace: float = 10.0) -> list[int]:
    """SIGTERM the process group, wait up to ``grace`` s, then SIGKILL what is left.

    Afterwards any process still carrying the worker's marker (one that left the
    group) is killed too; their pids are returned so the harness can report them.
    """
    pgid = proc.pid  # start_new_session=True: the leader's pid is the group id.
    marker: str | None = getattr(proc, "peers_marker", None)
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(0.02)
    else:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    strays = pids_with_marker(marker) if marker else []
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return strays


def load_tasks(path: Path, env: dict[str, str]) -> ModuleType:
    """Execute a peer's ``tasks.py`` under the module name ``tasks``, as its worker CLI will import it.

    Task names (RQ's function path, Celery's task name) are then the same on both sides. ``env`` is set while
    the module runs (the worker gets the same values in its environment); the shared ``taskbody`` is aliased
    so the file's top-level ``import taskbody`` resolves.
    """
    sys.modules.setdefault("taskbody", taskbody)
    spec = importlib.util.spec_from_file_location("tasks", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return module

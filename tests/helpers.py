"""Small helpers shared by the tests (no fixtures here; see conftest.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tests.integration.domains import read_log

T = TypeVar("T")

ROOT = Path(os.path.abspath(__file__)).parent.parent  # the checkout (not resolved: it may be a symlinked copy)


def wait_for(cond: Callable[[], T], timeout: float = 10.0, interval: float = 0.005, what: str = "") -> T:
    """Poll ``cond`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        time.sleep(interval)


def events_until(sub: Any, done: Callable[[list[Any]], bool], timeout: float = 10.0) -> list[Any]:
    """Every event of ``sub`` so far, waiting up to ``timeout`` for the list to satisfy ``done``. A turn's events
    are published just after its commit, so a query can see a task finished before its event is out."""
    out: list[Any] = []

    def pump() -> bool:
        while (e := sub.get_nowait()) is not None:
            out.append(e)
        return done(out)

    wait_for(pump, timeout, what="the events asserted on")
    return out


def all_workers_up(s: Any, timeout: float = 30.0) -> None:
    """``start()`` returns once the first worker is ready; tests about how work spreads over the whole pool
    wait for the rest too."""
    n = s.settings.workers
    sup = s._supervisor

    def up() -> bool:
        d = sup.dispatcher
        return d is not None and len(d.workers) == n and all(w.alive for w in d.workers)

    wait_for(up, timeout, what="every worker to boot")


def entries(log: str | os.PathLike[str], ev: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    return [e for e in read_log(log) if (ev is None or e["ev"] == ev) and (tag is None or e.get("tag") == tag)]


def intervals(log: str | os.PathLike[str], tags: Iterable[str] | None = None) -> list[tuple[float, float]]:
    """(start, end) wall-clock times per execution, matched by (tag, id, attempt)."""
    wanted = None if tags is None else set(tags)
    starts: dict[tuple[Any, ...], float] = {}
    out: list[tuple[float, float]] = []
    for e in read_log(log):
        if wanted is not None and e.get("tag") not in wanted:
            continue
        k = (e.get("tag"), e.get("id"), e.get("attempt"))
        if e["ev"] == "start":
            starts[k] = e["t"]
        elif e["ev"] == "end" and k in starts:
            out.append((starts.pop(k), e["t"]))
    return out


def max_overlap(spans: Iterable[tuple[float, float]]) -> int:
    """The largest number of intervals open at one instant (an end at t closes before a start at t)."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    best = cur = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def env_for_subprocess() -> dict[str, str]:
    """Environment for a child Python that must import ``taskmill`` and ``tests`` from this checkout."""
    env = dict(os.environ)
    parts = [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env


def run_python(
    script: str | os.PathLike[str], *args: str, timeout: float = 60.0, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python script to completion (its cwd is the script's directory, not the checkout)."""
    env = env_for_subprocess()
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, os.fspath(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=os.path.dirname(os.path.abspath(script)),
    )


SUPERVISOR_SCRIPT = """\
import sys

import taskmill as tm
from tests.integration import domains as D

db, workers = sys.argv[1], int(sys.argv[2])
tm.Scheduler(db, [D.main], workers=workers, shutdown=tm.ShutdownMode.graceful(5)).run()
"""


def start_supervisor(tmp_path: Path, db: str | os.PathLike[str], workers: int = 2) -> subprocess.Popen[bytes]:
    """Run ``Scheduler.run()`` on ``db`` in a child process that leads its own session (for killpg)."""
    script = tmp_path / "supervisor_main.py"
    script.write_text(SUPERVISOR_SCRIPT)
    return subprocess.Popen(
        [sys.executable, str(script), os.fspath(db), str(workers)],
        env=env_for_subprocess(),
        cwd=str(tmp_path),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM (a graceful stop for Scheduler.run) and wait; SIGKILL the group if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return int(proc.returncode)

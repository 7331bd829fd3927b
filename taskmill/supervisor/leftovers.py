"""Before recovery re-queues a crashed supervisor's running tasks, make sure nothing of their old attempts is
still running: the old workers, and every process their tasks started.

Workers die with their supervisor (``PR_SET_PDEATHSIG``), but only they do, and only a moment after the lock
is free. A process a task spawned (``ffmpeg``, ``sleep``) lives on in its worker's session, still doing the
old attempt's work while the task runs again. Each worker leads its own session, and a process can leave its
process group but not, short of ``setsid``, its session. A session id is not reused as a pid while any
process is in that session, so members of a session whose leader is gone belong to the old worker for sure;
a live leader counts only if it is an orphaned taskmill worker of the crashed supervisor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psutil

log = logging.getLogger("taskmill.supervisor")


def _old_session(pid: int, supervisor_pid: int | None) -> bool:
    import psutil  # only after a crash or a worker's death: a clean start does without it (~15 ms of import)

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return True
        cmd = p.cmdline()
        ppid = p.ppid()
    except psutil.NoSuchProcess:
        return True  # leaderless: whatever is left in session ``pid`` is the old worker's
    except psutil.Error:
        return False
    if "taskmill.workers" not in cmd or "--parent-pid" not in cmd:
        return False  # the pid was reused by an unrelated process
    parent = cmd[cmd.index("--parent-pid") + 1] if cmd.index("--parent-pid") + 1 < len(cmd) else ""
    return parent == str(supervisor_pid) and ppid != supervisor_pid  # orphaned, not yet dead


def _running(p: psutil.Process) -> bool:
    """Still alive and not a zombie (whoever reaps orphans may be slow to; a zombie runs nothing)."""
    import psutil

    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def reap(supervisor_pid: int | None, worker_pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGKILL what is left of the crashed supervisor's workers' sessions and wait until it is gone.
    Returns the pids killed (empty after a clean stop, which leaves no worker pids behind)."""
    sessions = {w for w in worker_pids if _old_session(w, supervisor_pid)}
    if not sessions:
        return []
    import psutil

    me = os.getpid()
    targets: list[psutil.Process] = []
    for pid in psutil.pids():
        if pid == me:
            continue
        with contextlib.suppress(OSError, psutil.Error):
            if os.getsid(pid) in sessions and _running(p := psutil.Process(pid)):
                targets.append(p)  # (zombies run nothing: whoever reaps orphans will collect them)
    for p in targets:
        with contextlib.suppress(psutil.Error):
            p.kill()
    deadline = time.monotonic() + timeout
    alive = targets
    while alive and time.monotonic() < deadline:
        time.sleep(0.002)
        alive = [p for p in alive if _running(p)]
    if targets:
        log.warning("killed %d process(es) left running by a crashed supervisor: %s", len(targets),
                    ", ".join(str(p.pid) for p in targets))  # fmt: skip
    if alive:
        log.error("processes of a crashed supervisor survived SIGKILL: %s", [p.pid for p in alive])
    return [p.pid for p in targets]

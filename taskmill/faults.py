"""Named fault points for the reliability tests (docs/reliability.md), compiled out of normal runs.

``TASKMILL_FAULTPOINT=name:n`` makes a process SIGKILL itself the ``n``-th time it passes point ``name``, as
SQLite's crash tests fail the n-th I/O. The variable is read once, at import. When it is unset (always, in
production) :data:`FAULTS` is False and each point costs one ``if FAULTS:`` test at a commit boundary.

Points: ``after_claim_commit``, ``after_send_to_worker``, ``after_result_recv``, ``before_terminal_commit``
and ``after_preempt_signal`` (supervisor), ``after_submit_commit_before_ack`` (any submitting process), and
``mid_checkpoint``: the n-th page write into the main database file, which in WAL mode only a checkpoint
does. That one needs a VFS that sees the writes: :func:`vfs_name` names it, and connections opened while it is
armed also checkpoint every 16 pages so that a short run reaches one.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset({
    "after_claim_commit", "after_send_to_worker", "after_result_recv", "before_terminal_commit",
    "after_preempt_signal", "after_submit_commit_before_ack", "mid_checkpoint",
})  # fmt: skip


def _parse(spec: str) -> tuple[str, int]:
    name, _, count = spec.partition(":")
    if name not in POINTS:
        raise ValueError(f"TASKMILL_FAULTPOINT: unknown point {name!r} (known: {', '.join(sorted(POINTS))})")
    n = int(count or "1")
    if n < 1:
        raise ValueError("TASKMILL_FAULTPOINT: the pass number must be >= 1")
    return name, n


_SPEC = os.environ.get("TASKMILL_FAULTPOINT", "")
_POINT, _AT = _parse(_SPEC) if _SPEC else ("", 0)
FAULTS: bool = bool(_SPEC)
_passes = 0


def arm(spec: str) -> None:
    """What ``TASKMILL_FAULTPOINT=spec`` does at import, for a process forked from one that has imported this
    module already (the tests fork supervisors)."""
    global _POINT, _AT, FAULTS, _passes
    _POINT, _AT = _parse(spec)
    FAULTS, _passes = True, 0


def hit(name: str) -> None:
    """Count a pass of point ``name``; at the armed pass, die as a power cut or the OOM killer would."""
    global _passes
    if name != _POINT:
        return
    _passes += 1
    if _passes == _AT:
        os.kill(os.getpid(), signal.SIGKILL)


def vfs_name() -> str | None:
    """The VFS to open databases with: None (SQLite's default) unless ``mid_checkpoint`` is armed."""
    if _POINT != "mid_checkpoint":
        return None
    global _vfs
    if _vfs is None:
        _vfs = _make_vfs()
    return "taskmill-faults"


_vfs = None


def _make_vfs():  # type: ignore[no-untyped-def]
    import apsw

    class File(apsw.VFSFile):
        def __init__(self, name, flags) -> None:  # type: ignore[no-untyped-def]
            super().__init__("", name, flags)
            self.main = bool(flags[0] & apsw.SQLITE_OPEN_MAIN_DB)

        def xWrite(self, data, offset) -> None:  # type: ignore[no-untyped-def]
            if self.main:
                hit("mid_checkpoint")
            super().xWrite(data, offset)

    class Vfs(apsw.VFS):
        def __init__(self) -> None:
            super().__init__("taskmill-faults", "")

        def xOpen(self, name, flags):  # type: ignore[no-untyped-def]
            return File(name, flags)

    return Vfs()

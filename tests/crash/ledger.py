"""The execution ledger, kept independently of the database under test, and the checker that reads it.

Test executors append one line per event to a per-run file opened ``O_APPEND`` (one ``write`` per line, so
lines from concurrent processes never interleave)::

    S n task_id attempt pid t_ns      an execution started (t_ns: time.monotonic_ns, one clock for every process)
    E n task_id attempt pid t_ns      it returned normally
    I n task_id attempt pid t_ns      it was interrupted (an exception: preempted, cancelled, timed out)
    X n task_id attempt pid t_ns      it started while another execution of ``n`` was still alive

``n`` is the submitter's own unique number for the task (Jepsen's unique-valued enqueues). ``X`` comes from an
open-file-description lock on byte ``n`` of ``<ledger>.locks``, held for the whole execution and released by
the kernel when its process dies however it dies, so an overlap is caught even when one execution was
SIGKILLed and never wrote ``E``.

Submitters write ``T n`` before a submit and ``A n task_id`` once it returned (acknowledged) to their own file.

The checker (:func:`check`) counts, in the categories of Jepsen's total-queue checker:

- *lost*: acknowledged, never completed (no ``E``) and not ended ``failed``/``dead_letter``/``cancelled``;
- *unexpected*: executed but never submitted;
- *duplicated*: executed more than once (allowed only for tasks running at a kill; see ``allowed``);
- *recovered*: the submitter never got an answer, yet the task exists (allowed);
- *overlap*: two executions of one task alive at once (``X`` records, plus intersecting intervals).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import struct
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

_fds: dict[str, int] = {}
_FLOCK = "hhqqi4x"  # struct flock on Linux (x86_64, aarch64): l_type, l_whence, l_start, l_len, l_pid


def _fd(path: str) -> int:
    fd = _fds.get(path)
    if fd is None:
        fd = _fds[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    return fd


def append(path: str, line: str) -> None:
    os.write(_fd(path), line.encode())


def record(path: str, kind: str, n: int, task_id: int, attempt: int) -> None:
    append(path, f"{kind} {n} {task_id} {attempt} {os.getpid()} {time.monotonic_ns()}\n")


def _hold(path: str, n: int) -> tuple[int, bool]:
    """Open ``path`` and try to write-lock byte ``n`` (an OFD lock: per open file, so it also conflicts with
    another execution in the same process). Returns (fd, got it)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, n, 1, 0))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return fd, False
        raise
    return fd, True


@contextlib.contextmanager
def execution(path: str, n: int, task_id: int, attempt: int) -> Iterator[None]:
    """Bracket one execution of task ``n`` in the ledger (used inside executors)."""
    fd, alone = _hold(path + ".locks", n)
    try:
        record(path, "S", n, task_id, attempt)
        if not alone:
            record(path, "X", n, task_id, attempt)
        try:
            yield
        except BaseException:
            record(path, "I", n, task_id, attempt)
            raise
        record(path, "E", n, task_id, attempt)
    finally:
        os.close(fd)


# -- reading ------------------------------------------------------------------------------------------------


@dataclass
class Execution:
    n: int
    task_id: int
    attempt: int
    pid: int
    start: int
    end: int | None = None
    how: str = ""  # "E" returned, "I" interrupted, "" never finished (its process died)


@dataclass
class Ledger:
    executions: list[Execution] = field(default_factory=list)
    overlaps: list[tuple[int, int]] = field(default_factory=list)  # (n, pid) of X records

    def by_task(self) -> dict[int, list[Execution]]:
        out: dict[int, list[Execution]] = defaultdict(list)
        for e in self.executions:
            out[e.n].append(e)
        return out

    def started(self, n: int | None = None) -> list[Execution]:
        return [e for e in self.executions if n is None or e.n == n]


def read(path: str | os.PathLike[str]) -> Ledger:
    p = Path(path)
    out = Ledger()
    if not p.exists():
        return out
    open_: dict[tuple[int, int, int], Execution] = {}
    for line in p.read_text().splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue  # a torn last line of a process killed mid-write (cannot happen for one write(), but cheap)
        kind, n, tid, attempt, pid, t = parts[0], *map(int, parts[1:])
        key = (n, attempt, pid)
        if kind == "S":
            open_[key] = ex = Execution(n, tid, attempt, pid, t)
            out.executions.append(ex)
        elif kind in ("E", "I") and key in open_:
            ex = open_.pop(key)
            ex.end, ex.how = t, kind
        elif kind == "X":
            out.overlaps.append((n, pid))
    return out


def read_acks(paths: Iterable[str | os.PathLike[str]]) -> tuple[dict[int, int], set[int]]:
    """(acknowledged n → task id, n tried but never acknowledged) over every submitter file."""
    acked: dict[int, int] = {}
    tried: set[int] = set()
    for path in paths:
        p = Path(path)
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            parts = line.split()
            if parts and parts[0] == "T":
                tried.update(int(x) for x in parts[1:])
            elif parts and parts[0] == "A" and len(parts) == 3:
                acked[int(parts[1])] = int(parts[2])
    return acked, tried - set(acked)


# -- checking -----------------------------------------------------------------------------------------------


@dataclass
class Report:
    scenario: str
    acked: int = 0
    executions: int = 0
    completed: int = 0  # distinct tasks with at least one execution that returned
    lost: int = 0
    unexpected: int = 0
    duplicated: int = 0  # tasks executed more than once
    duplicated_unexplained: int = 0  # ... that were not running at a kill (must be 0)
    overlap: int = 0
    recovered: int = 0
    ended_unrun: int = 0  # dead_letter/failed/cancelled without a completed execution (expected in some faults)
    extra: dict[str, Any] = field(default_factory=dict)
    examples: dict[str, list[int]] = field(default_factory=dict)

    def figures(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("examples")
        return d

    def assert_ok(self) -> None:
        bad = {k: getattr(self, k) for k in ("lost", "unexpected", "overlap", "duplicated_unexplained")
               if getattr(self, k)}  # fmt: skip
        assert not bad, f"{self.scenario}: {bad}; examples {self.examples}"


def _final_statuses(db: str | os.PathLike[str]) -> dict[int, str]:
    """The last status of every task id (history rows and active rows alike)."""
    import apsw  # here, not at the top: executors import this module, and workers should boot fast

    conn = apsw.Connection(os.fspath(db), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        conn.setbusytimeout(10_000)
        return {int(tid): str(status) for tid, status in conn.execute(
            "SELECT id, status FROM tasks WHERE run_of IS NULL")}  # fmt: skip
    finally:
        conn.close()


def overlapping(execs: list[Execution]) -> bool:
    spans = sorted((e.start, e.end) for e in execs if e.end is not None)
    return any(b[0] < a[1] for a, b in itertools.pairwise(spans))


def check(
    scenario: str,
    ledger: Ledger,
    acked: dict[int, int],
    db: str | os.PathLike[str],
    *,
    unacked: set[int] = frozenset(),  # type: ignore[assignment]
    allowed: set[int] = frozenset(),  # type: ignore[assignment]
    ended_ok: Iterable[str] = ("failed", "dead_letter", "cancelled"),
) -> Report:
    """Compare what was acknowledged (``acked``: n → task id), what ran (``ledger``) and where the database
    says each task ended. ``allowed``: task numbers that may run more than once (running at a kill)."""
    r = Report(scenario, acked=len(acked), executions=len(ledger.executions))
    runs = ledger.by_task()
    statuses = _final_statuses(db)
    ended_ok = set(ended_ok)
    ran_ok = {n for n, ex in runs.items() if any(e.how == "E" for e in ex)}
    r.completed = len(ran_ok)
    lost = [n for n, tid in acked.items() if n not in ran_ok and statuses.get(tid) not in ended_ok]
    r.ended_unrun = sum(1 for n, tid in acked.items() if n not in ran_ok and statuses.get(tid) in ended_ok)
    submitted_ids = {tid for tid in acked.values()}
    recovered = {n for n in unacked if any(e.n == n for e in ledger.executions)}
    unexpected = [n for n in runs if n not in acked and n not in recovered]
    wrong_id = [n for n, ex in runs.items() if n in acked and any(e.task_id != acked[n] for e in ex)]
    dup = [n for n, ex in runs.items() if len(ex) > 1]
    over = sorted({n for n, _ in ledger.overlaps} | {n for n, ex in runs.items() if overlapping(ex)})
    r.lost, r.unexpected = len(lost), len(unexpected) + len(wrong_id)
    r.duplicated, r.overlap, r.recovered = len(dup), len(over), len(recovered)
    unexplained = [n for n in dup if n not in allowed]
    r.duplicated_unexplained = len(unexplained)
    r.extra["executions_per_task_max"] = max((len(ex) for ex in runs.values()), default=0)
    r.extra["tasks_in_db"] = len(submitted_ids & set(statuses))
    r.examples = {k: v[:10] for k, v in (("lost", lost), ("unexpected", unexpected + wrong_id), ("overlap", over),
                                         ("duplicated_unexplained", unexplained)) if v}  # fmt: skip
    return r


def execution_counts(ledger: Ledger) -> Counter[int]:
    return Counter(e.n for e in ledger.executions)

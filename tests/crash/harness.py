"""Test-side helpers of the reliability suite: one run directory (database, ledger, submitter files), real
supervisor and submitter processes, kills, integrity checks, the soak switch and the figures file.

Processes are started either by exec (``python -m tests.crash.procs``, the way a deployment starts them) or,
with ``fork=True``, forked from this process (:class:`Forked`): the child already has taskmill and the test
task types imported, so a supervisor is up in the time its workers take to boot, and scenarios that restart
supervisors over and over stay cheap. Workers are exec'd by the supervisor either way.

Sizes: every scenario has a CI size (small, the default) and a full size, chosen by ``TASKMILL_SOAK=1`` or
``pytest --soak`` (see docs/reliability.md). With ``TASKMILL_RELIABILITY_REPORT=<file>`` each scenario appends
its figures there as one JSON line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import apsw
import psutil

from tests.crash import ledger
from tests.helpers import ROOT, env_for_subprocess

T = TypeVar("T")


def soak() -> bool:
    return os.environ.get("TASKMILL_SOAK", "") not in ("", "0")


def size(ci: T, full: T) -> T:
    """The CI size, or the full one in the long tier."""
    return full if soak() else ci


def publish(report: ledger.Report | dict[str, Any], **extra: Any) -> None:
    """Print a scenario's figures (visible with ``-s``) and append them to the report file if one is set."""
    figures = report.figures() if isinstance(report, ledger.Report) else dict(report)
    figures.update(extra)
    figures["tier"] = "full" if soak() else "ci"
    line = json.dumps(figures, sort_keys=True)
    print(line)
    target = os.environ.get("TASKMILL_RELIABILITY_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(line + "\n")


def integrity(db: str | os.PathLike[str]) -> str:
    """``PRAGMA integrity_check`` (must be ``ok``) and ``foreign_key_check`` (must be empty), read-only."""
    conn = apsw.Connection(os.fspath(db), flags=apsw.SQLITE_OPEN_READWRITE)
    try:
        conn.setbusytimeout(30_000)
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
        fk = list(conn.execute("PRAGMA foreign_key_check"))
    finally:
        conn.close()
    if fk:
        rows.append(f"foreign_key_check: {fk[:5]}")
    return "ok" if rows == ["ok"] else "; ".join(rows)


def worker_pids(pid: int) -> list[int]:
    """Live worker processes started by process ``pid``."""
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for p in kids:
        with contextlib.suppress(psutil.Error):
            if p.status() != psutil.STATUS_ZOMBIE and "taskmill.workers" in " ".join(p.cmdline()):
                out.append(p.pid)
    return out


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Forked:
    """``target(*args)`` in a child forked from this process, leading its own session: the parts of
    :class:`subprocess.Popen` the harness uses. Its return value (JSON) is the child's stdout, read by
    :meth:`communicate`; an exception makes it exit 1 with the traceback as its stderr."""

    def __init__(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the test
            code = 1
            try:
                os.setsid()
                os.close(out_r)
                os.close(err_r)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGCHLD):
                    signal.signal(sig, signal.SIG_DFL)  # not the test runner's handlers (timeouts, ^C)
                result = target(*args, **kwargs)
                os.write(out_w, (json.dumps(result) + "\n").encode())
                code = 0
            except BaseException:
                with contextlib.suppress(BaseException):
                    os.write(err_w, traceback.format_exc().encode())
            finally:
                os._exit(code)
        os.close(out_w)
        os.close(err_w)
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = os.fdopen(out_r, "rb")
        self.stderr = os.fdopen(err_r, "rb")

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"forked {self.pid}", timeout or 0.0)
            time.sleep(0.002)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def communicate(self, timeout: float | None = None) -> tuple[bytes, bytes]:
        out = self.stdout.read()  # until the child exits (it may block on a full pipe until then)
        self.wait(timeout)
        return out, self.stderr.read()


class Run:
    """One scenario's files and processes. Everything it started is killed by :meth:`close`."""

    def __init__(self, root: Path, name: str = "run") -> None:
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.db = str(self.dir / "tasks.db")
        self.ledger = str(self.dir / "ledger")
        self.procs: list[subprocess.Popen[bytes] | Forked] = []
        self.submitters: list[tuple[subprocess.Popen[bytes] | Forked | None, str]] = []
        self.next_n = 1
        self.kills = 0
        self.running_at_kills: set[int] = set()  # task ids left running by a killed supervisor
        self.integrity_checks: list[str] = []
        self._reader: apsw.Connection | None = None  # kept open: scenarios poll the database often
        self._ledger_seen = (0, 0)  # (bytes of the ledger read so far, start records in them)

    # -- processes ---------------------------------------------------------------------------------------
    def _spawn(self, *args: str, env_extra: dict[str, str] | None = None, capture: bool = False,
               session: bool = True, stderr_file: Path | None = None) -> subprocess.Popen[bytes]:  # fmt: skip
        """``stderr_file``: the process writes its stderr there rather than to a pipe, and ``proc.stderr`` reads
        it back. A supervisor logs for as long as it runs; a pipe nobody drains fills up (64 KiB) and blocks it."""
        env = env_for_subprocess()
        env.pop("TASKMILL_FAULTPOINT", None)
        env.update(env_extra or {})
        err: Any = subprocess.PIPE if stderr_file is None else open(stderr_file, "wb")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.crash.procs", *args], env=env, cwd=str(ROOT),
                start_new_session=session, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                stderr=err,
            )  # fmt: skip
        finally:
            if stderr_file is not None:
                err.close()
        if stderr_file is not None:
            proc.stderr = open(stderr_file, "rb")  # closed with the others by close()
        self.procs.append(proc)
        return proc

    def serve(self, *, workers: int = 2, fault: str | None = None, env: dict[str, str] | None = None,
              fork: bool = False, **options: Any) -> Any:  # fmt: skip
        """Start a supervisor process (its own session; its workers each lead their own). ``fork``: forked from
        this process (no extra environment then)."""
        if fork:
            from tests.crash.procs import serve_options, supervise

            assert not env, "a forked supervisor has this process's environment"
            proc = Forked(supervise, serve_options(self.db, workers=workers, **options), fault)
            self.procs.append(proc)
            return proc
        args = ["serve", self.db, "--workers", str(workers)]
        for k, v in options.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        extra = dict(env or {})
        if fault:
            extra["TASKMILL_FAULTPOINT"] = fault
        n = sum(1 for p in self.dir.glob("supervisor-*.stderr"))
        return self._spawn(*args, env_extra=extra, stderr_file=self.dir / f"supervisor-{n}.stderr")

    def submit(self, count: int, *, seed: int = 0, fault: str | None = None, fork: bool = False,
               **options: Any) -> Any:  # fmt: skip
        """Start a submitter for the next ``count`` task numbers; its acknowledgements go to its own file."""
        acks = str(self.dir / f"acks.{len(self.submitters)}")
        if fork:
            from tests.crash.procs import submit_range

            start, self.next_n = self.next_n, self.next_n + count
            proc = Forked(submit_range, self.db, acks, self.ledger, start, count, seed=seed, fault=fault, **options)
            self.procs.append(proc)
            self.submitters.append((proc, acks))
            return proc
        args = ["submit", self.db, acks, self.ledger, "--start", str(self.next_n), "--count", str(count),
                "--seed", str(seed)]  # fmt: skip
        for k, v in options.items():
            args += [f"--{k.replace('_', '-')}", str(v)]
        self.next_n += count
        proc = self._spawn(*args, env_extra={"TASKMILL_FAULTPOINT": fault} if fault else None, capture=True)
        self.submitters.append((proc, acks))
        return proc

    def submit_here(self, count: int, *, seed: int = 0, **options: Any) -> dict[str, Any]:
        """Like :meth:`submit`, in this process (no start-up cost); returns the summary."""
        from tests.crash.procs import submit_range

        acks = str(self.dir / f"acks.{len(self.submitters)}")
        self.submitters.append((None, acks))
        start, self.next_n = self.next_n, self.next_n + count
        return submit_range(self.db, acks, self.ledger, start, count, seed=seed, **options)

    def add(self, tasks: list[Any], priority: int | None = None) -> list[int]:
        """Submit these tasks (each with a unique ``n``) one by one, recording them as acknowledged."""
        import taskmill as tm
        from tests.crash import faulty

        acks = str(self.dir / f"acks.{len(self.submitters)}")
        self.submitters.append((None, acks))
        ids = []
        with tm.connect(self.db) as c:
            for t in tasks:
                domain = faulty.keys if isinstance(t, faulty.Keyed) else faulty.fault
                ids.append(c.domain(domain).submit(t, priority=priority).id)
        ledger.append(acks, "".join(f"A {t.n} {i}\n" for t, i in zip(tasks, ids, strict=True)))
        return ids

    def wait_submitters(self, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait for every submitter; their JSON summaries (a killed one gives ``{"killed": signal}``)."""
        out = []
        for proc, _ in self.submitters:
            if proc is None:
                continue
            stdout, stderr = proc.communicate(timeout=timeout)
            if proc.returncode == 0:
                out.append(json.loads(stdout.decode().strip().splitlines()[-1]))
            elif proc.returncode < 0:
                out.append({"killed": -proc.returncode, "errors": []})
            else:
                raise AssertionError(f"submitter exited {proc.returncode}: {stderr.decode()[-2000:]}")
        return out

    def kill(self, proc: Any) -> list[int]:
        """SIGKILL a supervisor (its process group: the supervisor alone; its workers must die by themselves).
        Returns the pids of the workers it had, and records which tasks it left running."""
        workers = worker_pids(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.kills += 1
        self.running_at_kills |= self.running_ids()
        return workers

    def stop(self, proc: Any, timeout: float = 30.0) -> int:
        """SIGTERM (graceful stop) and wait; returns the exit code. A supervisor that has just been started may
        not have installed its handler yet (SIGTERM would kill it outright): wait until it holds the lock, which
        it takes after installing the handler."""
        from taskmill.supervisor.lock import SupervisorLock

        deadline = time.monotonic() + timeout
        while proc.poll() is None and SupervisorLock(self.db).holder() != proc.pid:
            assert time.monotonic() < deadline, f"supervisor {proc.pid} never took the lock"
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                raise AssertionError(f"supervisor did not stop within {timeout}s") from None
        return int(proc.returncode)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    # -- database ----------------------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._reader is None:
            if not os.path.exists(self.db):
                return []  # killed before anyone created it
            self._reader = apsw.Connection(self.db, flags=apsw.SQLITE_OPEN_READONLY)
            self._reader.setbusytimeout(30_000)
        try:
            return list(self._reader.execute(sql, params))
        except apsw.SQLError as exc:
            if "no such table" in str(exc):
                return []  # killed before the schema was created
            raise

    def running_ids(self) -> set[int]:
        return {int(r[0]) for r in self._query("SELECT id FROM tasks WHERE status = 'running'")}

    def counts(self) -> dict[str, int]:
        return {str(s): int(n) for s, n in self._query("SELECT status, count(*) FROM tasks GROUP BY status")}

    def unfinished(self) -> int:
        rows = self._query("SELECT count(*) FROM tasks WHERE finished_at IS NULL")
        return int(rows[0][0]) if rows else 0

    def check_integrity(self) -> None:
        if not os.path.exists(self.db):
            return
        result = integrity(self.db)
        self.integrity_checks.append(result)
        assert result == "ok", f"integrity_check: {result}"

    def wait_drained(self, timeout: float, proc: Any = None) -> float:
        """Until no task is unfinished; returns how long it took."""
        t0 = time.monotonic()
        while self.unfinished():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"supervisor exited {proc.returncode}: {proc.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"not drained after {timeout}s: {self.counts()}")
            time.sleep(0.02)
        return time.monotonic() - t0

    def wait_ledger(self, executions: int, timeout: float = 30.0) -> None:
        """Until the ledger holds at least ``executions`` start records."""
        deadline = time.monotonic() + timeout
        while self._started() < executions:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {executions} executions after {timeout}s")
            time.sleep(0.005)

    def _started(self) -> int:
        """Start records in the ledger so far (reading only what was appended since the last call)."""
        pos, count = self._ledger_seen
        try:
            with open(self.ledger, "rb") as f:
                f.seek(pos)
                new = f.read()
        except FileNotFoundError:
            return 0
        new = new[: new.rfind(b"\n") + 1]  # whole lines only
        self._ledger_seen = (pos + len(new), count + new.count(b"S "))
        return self._ledger_seen[1]

    # -- checking ----------------------------------------------------------------------------------------
    def acks(self) -> tuple[dict[int, int], set[int]]:
        return ledger.read_acks([a for _, a in self.submitters])

    def check(self, scenario: str, *, extra_allowed: set[int] = frozenset(), **kw: Any) -> ledger.Report:  # type: ignore[assignment]
        acked, unacked = self.acks()
        by_id = {tid: n for n, tid in acked.items()}
        allowed = {by_id[t] for t in self.running_at_kills if t in by_id} | set(extra_allowed)
        report = ledger.check(
            scenario, ledger.read(self.ledger), acked, self.db, unacked=unacked, allowed=allowed, **kw
        )
        report.extra["kills"] = self.kills
        report.extra["running_at_kills"] = len(self.running_at_kills)
        report.extra["integrity_checks"] = len(self.integrity_checks)
        return report

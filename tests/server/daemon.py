"""A real ``taskmill-supervisor`` process for the server tests: a TOML file and a domain module in tmp_path.

The domain module goes on PYTHONPATH (not ``python_path``), as a deployment that installs its package would
have it. Every daemon is stopped (SIGTERM, then SIGKILL of its process group) when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

DOMAIN_MODULE = """
import os
import sys
import time
from typing import ClassVar

import taskmill as tm

if os.environ.get("SRV_FAIL_IN_WORKER") and "--fd" in sys.argv:
    raise RuntimeError("this module refuses to load in a worker")

srv = tm.Domain("srv")
slow = tm.Domain("slow", max_concurrency=3)


class Mark(tm.Task, frozen=True):
    task_type: ClassVar[str] = "mark"
    i: int
    ledger: str
    t_submit: float = 0.0


@srv.executor(Mark)
def mark(task: Mark, ctx: tm.TaskContext) -> None:
    t = time.time()
    with open(task.ledger, "a") as f:
        f.write(f"{task.i} {task.t_submit} {t}\\n")


class Nap(tm.Task, frozen=True):
    task_type: ClassVar[str] = "nap"
    i: int
    seconds: float
    ledger: str


class Boom(tm.Task, frozen=True):
    task_type: ClassVar[str] = "boom"
    i: int

    @classmethod
    def config(cls) -> tm.TaskTypeConfig:
        return tm.TaskTypeConfig(max_retries=0)


@srv.executor(Boom)
def boom(task: Boom, ctx: tm.TaskContext) -> None:
    raise RuntimeError(f"boom {task.i}")


@slow.executor(Nap)
def nap(task: Nap, ctx: tm.TaskContext) -> None:
    with open(task.ledger, "a") as f:
        f.write(f"start {task.i}\\n")
    ctx.progress.report(0.5, "halfway")
    time.sleep(task.seconds)
    with open(task.ledger, "a") as f:
        f.write(f"done {task.i}\\n")
"""

SUBMITTER = """
import sys
import time

import taskmill as tm
import srvtasks as T

db, ledger, n, gap = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
with tm.connect(db) as client:
    h = client.domain(T.srv)
    h.submit(T.Mark(i=-1, ledger=ledger + ".warmup"))
    time.sleep(0.2)
    t0 = time.time()
    for i in range(n):
        delay = t0 + i * gap - time.time()
        if delay > 0:
            time.sleep(delay)
        t = time.time()
        h.submit(T.Mark(i=i, ledger=ledger, t_submit=t))
"""

SUBMIT_MANY = """
import json
import sys

import taskmill as tm
import srvtasks  # noqa: F401  (registers the domains)

with tm.connect(sys.argv[1]) as client:
    out = [client.submit(tm.TaskSubmission(task_type=t, payload=p)) for t, p in json.loads(sys.argv[2])]
print(json.dumps([o.id for o in out]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daemon:
    def __init__(self, root: Path, *, workers: int = 2, http: bool = True, extra: str = "",
                 env: dict[str, str] | None = None) -> None:  # fmt: skip
        self.root = root
        self.db = root / "tasks.db"
        self.config = root / "taskmill.toml"
        self.stdout = root / "daemon.log"  # the daemon's stdout and stderr
        self.log = self.stdout  # where wait_for_log looks (a test using [logging] file points it there)
        self.ledger = str(root / "ledger.txt")
        self.port = free_port()
        self.workers = workers
        self.http = http
        self.extra = extra
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
                    **(env or {})}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "srvtasks.py").write_text(DOMAIN_MODULE)
        (root / "submitter.py").write_text(SUBMITTER)
        (root / "submit_many.py").write_text(SUBMIT_MANY)
        self.write_config()

    @classmethod
    def existing(cls, config: Path, port: int) -> Daemon:
        """A daemon for a config file written elsewhere (e.g. the shipped example), db beside it."""
        d = cls.__new__(cls)
        d.root, d.config, d.db, d.port, d.proc = config.parent, config, config.parent / "tasks.db", port, None
        d.stdout = d.log = config.parent / "daemon.log"
        d.env = dict(os.environ)
        return d

    def write_config(self, body: str | None = None, **top: Any) -> None:
        settings = {"store": "tasks.db", "domains": ["srvtasks:srv", "srvtasks:slow"], "workers": self.workers,
                    "durability": "normal", "poll_interval": 5.0, **top}  # fmt: skip
        lines = [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
        text = "\n".join(lines) + "\n" + textwrap.dedent(body if body is not None else self.extra)
        if self.http:
            text += f'\n[http]\nenabled = true\nlisten = "127.0.0.1:{self.port}"\n'
        self.config.write_text(text)

    # -- process ------------------------------------------------------------------------------------------
    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "taskmill.supervisor", "--config", str(self.config), "--allow-root", *args]

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def start(self, *args: str, wait: bool = True) -> Daemon:
        with open(self.stdout, "ab") as log:
            self.proc = subprocess.Popen(self.command(*args), cwd=self.root, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT)  # fmt: skip
        if wait:
            self.wait_for_log("dispatching:")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_for_log(self, needle: str, timeout: float = 20.0, count: int = 1) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_text()
            if text.count(needle) >= count:
                return text
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode} before {needle!r}:\n{text}")
            time.sleep(0.02)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log_text()}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(5)

    # -- HTTP -----------------------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def snapshot(self) -> dict[str, Any]:
        status, _, body = self.get("/snapshot")
        assert status == 200, body
        return json.loads(body)

    # -- other processes --------------------------------------------------------------------------------------
    def submit_marks(self, n: int, gap: float) -> list[float]:
        """Submit ``n`` marks from another process on a ``gap`` grid; returns submit→start latencies (s)."""
        ledger = str(self.root / f"marks-{time.monotonic_ns()}.txt")
        subprocess.run([sys.executable, str(self.root / "submitter.py"), str(self.db), ledger, str(n), str(gap)],
                       cwd=self.root, env=self.env, check=True, timeout=60)  # fmt: skip
        lines = wait_lines(ledger, n)
        return sorted(float(t_start) - float(t_submit) for _, t_submit, t_start in (ln.split() for ln in lines))

    def submit_many(self, *items: tuple[str, dict[str, Any]]) -> list[int]:
        """Untyped submissions from one other process (cheaper than one ``taskmill submit`` each)."""
        out = subprocess.run([sys.executable, str(self.root / "submit_many.py"), str(self.db), json.dumps(items)],
                             cwd=self.root, env=self.env, capture_output=True, text=True, timeout=30)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        return list(json.loads(out.stdout))

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(active counts by status, history counts by outcome), read in this process."""
        import taskmill as tm

        with tm.connect(self.db) as client:
            return client.status_counts(), client._store().history_status_counts()

    def submit(self, task_type: str, payload: dict[str, Any], *extra: str) -> dict[str, Any]:
        """Submit through ``taskmill submit`` in another process; returns the JSON outcome."""
        out = self.cli("submit", task_type, "--payload", json.dumps(payload), "--domain-module", "srvtasks",
                       "--db", str(self.db), "--json", *extra)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        return dict(json.loads(out.stdout))

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "taskmill", *args], cwd=self.root, env=self.env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip


def wait_lines(path: str, n: int, timeout: float = 20.0, prefix: str = "") -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = [ln for ln in f.read().splitlines() if ln.startswith(prefix)]
            if len(lines) >= n:
                return lines
        time.sleep(0.01)
    raise AssertionError(f"{path}: {len(lines)} of {n} lines after {timeout}s")


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]

"""Shared fixtures: a database path, a ledger file, schedulers that are always stopped, and a leak check.

Every process the suite starts (supervisor scripts, worker processes) inherits ``TASKMILL_TEST_RUN`` from
this process's environment, so the leak check finds exactly our processes, even orphans re-parented to
init, and never anyone else's.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import taskmill as tm
from benchmarks import bytecode
from tests.integration import domains as D

MARK = "TASKMILL_TEST_RUN"
SOAK = "TASKMILL_SOAK"
os.environ.setdefault(MARK, uuid.uuid4().hex)
if "PYTEST_XDIST_WORKER" in os.environ:  # each xdist worker checks for leaks of its own processes only
    os.environ[MARK] += "-" + os.environ["PYTEST_XDIST_WORKER"]
LEAK_GRACE_S = 5.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak", action="store_true", help="reliability suite at full size, plus the long tier (also TASKMILL_SOAK=1)"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: the long reliability tier, run with --soak or TASKMILL_SOAK=1")
    config.addinivalue_line("markers", "alone: no test of another pytest process runs meanwhile (it needs the cores)")
    if config.getoption("--soak"):
        os.environ[SOAK] = "1"  # subprocesses and tests/crash/harness.py read it from the environment
    if not hasattr(config, "workerinput"):  # once, in the controlling process
        # The suite starts hundreds of interpreters (workers, daemons, scripts). Where the environment forbids
        # writing bytecode (PYTHONDONTWRITEBYTECODE) each of them would compile taskmill again: ~15% of the run.
        bytecode.ensure_compiled((*bytecode.PACKAGES, Path(__file__).parent))


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (the default, see pyproject.toml): two pytest processes share the suite; most tests wait on
    worker boots, sleeps and timeouts more than they use a core. One process for the soak tier (its figures
    time one scenario at a time), with ``-s`` (output straight to the terminal) and on one core."""
    soak = config.getoption("--soak") or os.environ.get(SOAK, "") not in ("", "0")
    if soak or config.getoption("capture") == "no" or (os.cpu_count() or 1) < 2:
        return 0
    return 2


# Files whose tests share a module- or session-scoped fixture of ours (a live daemon, the examples' run), by
# group: a group goes to one pytest process as a whole, or each process would pay for its own copy. Every other
# test is handed out on its own, so a long test never holds up a queue of short ones behind it. The list is
# checked at collection (pytest-xdist's own xdist_group marks are not honoured with pytest 9.2).
SHARED_FIXTURE_GROUPS = {
    "tests/docs/test_docs_examples.py": "example_runs",  # session: every example, run once
    "tests/docs/test_examples.py": "example_runs",
    "tests/integration/test_redis_peers.py": "redis_peers",  # redis_url (module)
    "tests/server/test_cli.py": "live_cli",  # live, seeded (module)
    "tests/server/test_daemon.py": "live_daemon",  # live (module)
    "tests/server/test_http.py": "live_http",  # live (module)
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "load":
        return None  # an explicit --dist mode
    from xdist.scheduler import LoadScopeScheduling

    class OneTestOrOneGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return SHARED_FIXTURE_GROUPS.get(nodeid.split("::", 1)[0], nodeid)

    return OneTestOrOneGroup(config, log)


def _shares_a_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info else ():
        fd = defs[-1]
        if fd.scope != "function" and fd.baseid.startswith("tests"):  # ours, not pytest's own (tmp_path_factory)
            return True
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    soak = os.environ.get(SOAK, "") not in ("", "0")
    for item in items:
        file = item.nodeid.split("::", 1)[0]
        if file not in SHARED_FIXTURE_GROUPS and _shares_a_fixture(item):
            raise pytest.UsageError(f"{file} uses a module- or session-scoped fixture: add it to SHARED_FIXTURE_GROUPS")
        if item.get_closest_marker("soak") is not None and not soak:
            item.add_marker(pytest.mark.skip(reason="long tier: run with --soak or TASKMILL_SOAK=1"))
        elif soak and item.nodeid.startswith("tests/crash/"):
            item.add_marker(pytest.mark.timeout(6 * 3600))  # full sizes run for minutes to hours


def marked_processes() -> list[psutil.Process]:
    """Live processes (not zombies) other than this one that inherited our marker.

    Every test calls this twice: reading /proc directly costs well under a millisecond where psutil's
    per-process objects cost ~10 ms. A zombie's environ reads empty, so zombies never match."""
    if not os.path.isdir("/proc/self"):
        return _marked_processes_psutil()
    me, entry = os.getpid(), b"\0" + f"{MARK}={os.environ[MARK]}".encode() + b"\0"
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
            if entry in b"\0" + env:
                found.append(psutil.Process(int(name)))
        except (psutil.Error, OSError):
            continue
    return found


def _marked_processes_psutil() -> list[psutil.Process]:
    me, token = os.getpid(), os.environ[MARK]
    found = []
    for p in psutil.process_iter(["pid"]):
        if p.pid == me:
            continue
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                continue
            if p.environ().get(MARK) == token:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def kill_all(procs: list[psutil.Process]) -> None:
    for p in procs:
        with contextlib.suppress(psutil.Error, OSError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error, OSError):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


@pytest.fixture(autouse=True)
def cores_to_itself(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """With several pytest processes (pytest-xdist), a test marked ``alone`` waits for the others' running tests
    to end, and they start no new one until it is done: a read-write lock over files the processes share.
    A waiting ``alone`` test closes the turnstile, so new tests queue behind it instead of starving it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # pytest-N/, above each process's popen-gwK/
    alone = request.node.get_closest_marker("alone") is not None
    with open(shared / "cores.turnstile", "a") as turnstile, open(shared / "cores.lock", "a") as lock:
        fcntl.flock(turnstile, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    """Fail the test if any supervisor or worker process it started is still alive afterwards."""
    before = {p.pid for p in marked_processes()}
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        left = [p for p in marked_processes() if p.pid not in before]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if left:
        desc = []
        for p in left:
            with contextlib.suppress(psutil.Error):
                desc.append(f"{p.pid}: {' '.join(p.cmdline())}")
        kill_all(left)
        pytest.fail("processes left alive after the test: " + "; ".join(desc), pytrace=False)


@pytest.fixture(autouse=True)
def restore_domain_caps() -> Iterator[None]:
    """``handle.set_max_concurrency`` changes the module-level Domain; put every cap back afterwards."""
    domains = [D.main, D.other, D.capped, D.payloads]
    saved = [d.max_concurrency for d in domains]
    yield
    for d, cap in zip(domains, saved, strict=True):
        d.max_concurrency = cap


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def log(tmp_path: Path) -> str:
    """The ledger executors append to (passed to them in the payload)."""
    return str(tmp_path / "ledger.jsonl")


@pytest.fixture
def make_scheduler(db: Path) -> Iterator[Callable[..., tm.Scheduler]]:
    """``make_scheduler(domains, start=False, path=None, **options)``; every one is stopped and closed."""
    made: list[tm.Scheduler] = []

    def make(domains: Any = (D.main,), *, start: bool = False, path: Any = None, **options: Any) -> tm.Scheduler:
        options.setdefault("workers", 1)
        s = tm.Scheduler(path or db, list(domains), **options)
        made.append(s)
        if start:
            s.start()
        return s

    yield make
    errors = []
    for s in reversed(made):
        try:
            s.stop(hard=True, timeout=30)
        except Exception as exc:  # still close the others; report below
            errors.append(exc)
        finally:
            s.close()
    if errors:
        raise errors[0]

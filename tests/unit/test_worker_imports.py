"""A worker process's imports: start-up time is import time, and every worker (and every replacement after a
crash or a recycle) pays it, so the worker side must not pull in the scheduler's stack."""

from __future__ import annotations

import subprocess
import sys

# What only the supervisor or a client needs: SQLite, process sampling, cron parsing, time zones, hashing.
SCHEDULER_ONLY = ("apsw", "psutil", "cronsim", "zoneinfo", "hashlib", "taskmill.store.core", "taskmill.client",
                  "taskmill.scheduler", "taskmill.supervisor")  # fmt: skip


def _modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_worker_entry_point_imports_nothing_of_the_scheduler_side() -> None:
    loaded = _modules_after("import taskmill.workers.__main__")
    heavy = sorted(m for m in loaded if m in SCHEDULER_ONLY or m.startswith(tuple(p + "." for p in SCHEDULER_ONLY)))
    assert heavy == []


def test_public_names_a_domain_module_uses_stay_light() -> None:
    loaded = _modules_after(
        "import taskmill as tm\n"
        "from taskmill import Domain, Task, TaskContext, Priority, RetryPolicy, RecurringSchedule, IoBudget\n"
        "RecurringSchedule(interval=5.0)"
    )
    assert "apsw" not in loaded and "taskmill.store.core" not in loaded


def test_scheduler_side_still_loads_on_first_use() -> None:
    loaded = _modules_after("import taskmill as tm\ntm.Scheduler\nfrom taskmill.store import Store, dispatch")
    assert {"apsw", "taskmill.store.core", "taskmill.store.dispatch", "taskmill.scheduler"} <= loaded


def test_the_supervisor_stack_starts_without_psutil() -> None:
    """psutil is ~15 ms of import on the daemon's critical path; a clean start (no leftovers to reap, no
    resource sampling configured) does without it."""
    loaded = _modules_after("import taskmill.supervisor.runtime, taskmill.scheduler, taskmill.supervisor.entry")
    assert "taskmill.supervisor.starvation" in loaded and "psutil" not in loaded

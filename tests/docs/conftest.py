"""Every runnable example, run once per session, four at a time, each in a fresh directory and interpreter.

They mostly wait (start-up, sleeps, simulated IO), so four at a time cut the wall time without crowding two
cores. The guides' snippets (examples/docs/) run as they are; the programs of examples/ run with small inputs.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
_spec = importlib.util.spec_from_file_location("docs_run_all", EXAMPLES / "docs" / "run_all.py")
assert _spec is not None and _spec.loader is not None
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)

SNIPPETS = sorted(p for p in (EXAMPLES / "docs").glob("*.py") if p.name not in run_all.MODULES)
# The programs of examples/ with small inputs, slowest first so that the pool finishes early.
PROGRAMS = {
    "demo.py": ["--crunch-seconds", "0.02"],
    "upload_queue.py": ["--big-mb", "3", "--photo-kb", "1024", "--speed-mbps", "2"],  # long enough to pause
    "cpu_batch.py": ["--tasks", "4", "--size", "40000"],
    "multi_domain.py": ["--photos", "2"],
}
Runs = dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Outcome of every example, by file name relative to examples/ (``docs/events.py``, ``demo.py``)."""
    jobs = [(f"{name}", EXAMPLES / name, args) for name, args in PROGRAMS.items()]
    jobs += [(f"docs/{p.name}", p, []) for p in SNIPPETS]

    # Directories are made here, not in the pool's threads: mktemp is not safe to call from several threads.
    cwds = {name: tmp_path_factory.mktemp(script.stem) for name, script, _ in jobs}

    def run(job: tuple[str, Path, list[str]]) -> subprocess.CompletedProcess[str]:
        name, script, args = job
        cwd = cwds[name]
        env = {**os.environ, "TMPDIR": str(cwd)}  # the demo works in $TMPDIR: keep concurrent sessions apart
        return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=180)  # fmt: skip

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip([name for name, _, _ in jobs], pool.map(run, jobs), strict=True))

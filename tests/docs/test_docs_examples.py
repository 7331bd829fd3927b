"""The guides' code is real: every ```python block in README.md and docs/ is a file in examples/docs/, and
every such example runs to a clean exit, as a user would run it (a fresh directory, a new interpreter)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec
import pytest

from taskmill.settings import decode_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "docs"
_spec = importlib.util.spec_from_file_location("docs_run_all", EXAMPLES / "run_all.py")
assert _spec is not None and _spec.loader is not None
run_all = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_all)

SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if p.name not in run_all.MODULES)


def test_every_documented_block_is_a_runnable_example() -> None:
    assert run_all.check_blocks() == []


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every example, each in a fresh directory and interpreter, three at a time: they mostly wait (start-up,
    sleeps), so three at a time cut the wall time without crowding two cores."""

    def run(script: Path) -> subprocess.CompletedProcess[str]:
        cwd = tmp_path_factory.mktemp(script.stem)
        return subprocess.run([sys.executable, str(script)], cwd=cwd, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip([p.name for p in SCRIPTS], pool.map(run, SCRIPTS), strict=True))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_runs_cleanly(script: Path, example_runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    proc = example_runs[script.name]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_the_readme_demo_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--quick"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parallel speed-up" in proc.stdout and "events seen: Completed" in proc.stdout


def test_every_documented_toml_block_is_a_valid_config() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S):
            raw = msgspec.toml.decode(block.encode())
            raw.setdefault("domains", ["examples.docs.x:domain"])  # a fragment: give it the one required key
            decode_config(raw, f"{doc.name} block")

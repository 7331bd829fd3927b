"""The guides' code is real: every ```python block in README.md and docs/ is a file in examples/docs/, and
every such example runs to a clean exit, as a user would run it (a fresh directory, a new interpreter)."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from taskmill.settings import decode_config

from .conftest import ROOT, SNIPPETS, Runs, run_all

# The first test to ask for `example_runs` pays for running every example (conftest.py): a minute or more on a
# loaded machine, beyond the suite's per-test default. Each example has its own timeout there.
pytestmark = pytest.mark.timeout(600)


def test_every_documented_block_is_a_runnable_example() -> None:
    assert run_all.check_blocks() == []


@pytest.mark.parametrize("script", SNIPPETS, ids=[p.name for p in SNIPPETS])
def test_example_runs_cleanly(script: Path, example_runs: Runs) -> None:
    proc = example_runs[f"docs/{script.name}"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


def test_the_readme_demo_runs(example_runs: Runs) -> None:
    proc = example_runs["demo.py"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "parallel speed-up" in proc.stdout and "events seen: Completed" in proc.stdout


def test_every_documented_toml_block_is_a_valid_config() -> None:
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```toml\n(.*?)```", doc.read_text(), re.S):
            raw = msgspec.toml.decode(block.encode())
            raw.setdefault("domains", ["examples.docs.x:domain"])  # a fragment: give it the one required key
            decode_config(raw, f"{doc.name} block")


def test_the_readme_links_every_guide_and_example() -> None:
    readme = (ROOT / "README.md").read_text()
    guides = [f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md"))]
    programs = [f"examples/{p.name}" for p in sorted((ROOT / "examples").glob("*.py"))]
    programs += [
        f"examples/{p.name}/" for p in sorted((ROOT / "examples").iterdir()) if p.is_dir() and p.name[0] not in "_."
    ]
    assert [link for link in guides + programs if f"]({link})" not in readme] == []

"""The benchmark measures taskmill byte-compiled, as a wheel install leaves it, even where the environment
forbids the import system to write bytecode (``PYTHONDONTWRITEBYTECODE``)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import bytecode


def _package(root: Path) -> Path:
    pkg = root / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    return pkg


def _cached(src: Path) -> Path:
    return Path(importlib.util.cache_from_source(os.fspath(src)))


def test_missing_or_stale_bytecode_is_written_once_then_left_alone(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    assert bytecode.ensure_compiled((pkg,)) == "byte-compiled (3 modules compiled now)"
    assert all(_cached(src).exists() for src in pkg.rglob("*.py"))
    assert bytecode.ensure_compiled((pkg,)) == "byte-compiled"

    mod = pkg / "sub" / "mod.py"
    mod.write_text("def f():\n    return 3\n")
    later = time.time() + 10
    os.utime(mod, (later, later))  # an edit after the last compile
    assert bytecode.ensure_compiled((pkg,)) == "byte-compiled (1 modules compiled now)"


def test_an_import_then_reads_the_bytecode_without_writing_any(tmp_path: Path) -> None:
    """What the benchmark relies on: PYTHONDONTWRITEBYTECODE stops writing bytecode, not reading it."""
    pkg = _package(tmp_path)
    bytecode.ensure_compiled((pkg,))
    pyc = _cached(pkg / "sub" / "mod.py")
    before = pyc.stat().st_mtime_ns
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.fspath(tmp_path)}
    run = subprocess.run([sys.executable, "-v", "-c", "import pkg.sub.mod"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"code object from '{pyc}'" in run.stderr
    assert pyc.stat().st_mtime_ns == before

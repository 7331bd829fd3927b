"""Measure taskmill as ``pip install`` leaves it: with its modules already byte-compiled.

A wheel install compiles every module to ``__pycache__``; an editable install (``pip install -e .``) leaves
that to the first import. With ``PYTHONDONTWRITEBYTECODE=1`` (common in container images, and set on some CI
machines) nothing is ever cached, so each process compiles every module it imports from source again: ~40 ms
more per worker start and ~0.1 s more per daemon start here. The peers are measured from their installed
wheels, so without this step the start-up figures (and W3) would compare a compiler run against an import.
"""

from __future__ import annotations

import compileall
import importlib.util
import os
from pathlib import Path

import taskmill

# What a scheduler's processes import from this checkout: the library, and the benchmark's task modules.
PACKAGES = (Path(taskmill.__file__).parent, Path(__file__).parent)


def _current(src: Path) -> bool:
    """Whether the import system would use ``src``'s cached bytecode: this interpreter's magic number, and the
    source's mtime and size as recorded in the header (hash-based files are taken as they are)."""
    try:
        with open(importlib.util.cache_from_source(os.fspath(src)), "rb") as f:
            header = f.read(16)
        st = src.stat()
    except OSError:
        return False
    if len(header) < 16 or header[:4] != importlib.util.MAGIC_NUMBER:
        return False
    if int.from_bytes(header[4:8], "little") != 0:
        return True
    recorded = int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")
    return recorded == (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF)


def _stale(root: Path) -> int:
    return sum(not _current(src) for src in root.rglob("*.py"))


def ensure_compiled(packages: tuple[Path, ...] = PACKAGES) -> str:
    """Byte-compile ``packages`` where their bytecode is missing or stale; say what was found and done.

    ``compileall`` writes the files whatever ``PYTHONDONTWRITEBYTECODE`` says (the variable only stops the
    import system from writing them). A read-only install is reported, not an error: it is measured as it is.
    """
    stale = sum(_stale(p) for p in packages)
    if not stale:
        return "byte-compiled"
    for p in packages:  # every package, even after one failed; what is still stale afterwards is the verdict
        compileall.compile_dir(os.fspath(p), quiet=2, workers=1)
    left = sum(_stale(p) for p in packages)
    if not left:
        return f"byte-compiled ({stale} modules compiled now)"
    return f"NOT byte-compiled: {left} modules left uncompiled (read-only install?); start-ups include compiling"

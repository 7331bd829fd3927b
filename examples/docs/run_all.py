"""Check the documentation's examples: every ```python block in README.md and docs/*.md must appear verbatim
in a file of examples/ (most are in this directory), and every example here must run to exit code 0 (each
in a fresh directory).

    python examples/docs/run_all.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MODULES = {"media_tasks.py", "producer.py", "run_all.py"}  # imported or launched by other examples


def check_blocks() -> list[str]:
    sources = {p: p.read_text() for p in HERE.parent.rglob("*.py")}
    problems = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S):
            if not any(block in src for src in sources.values()):
                first = block.strip().splitlines()[0] if block.strip() else ""
                problems.append(f"{doc.relative_to(ROOT)}: block starting {first!r} is not in examples/")
    return problems


def main() -> int:
    problems = check_blocks()
    for script in sorted(HERE.glob("*.py")):
        if script.name in MODULES:
            continue
        with tempfile.TemporaryDirectory() as cwd:
            t0 = time.monotonic()
            cmd = [sys.executable, str(script)]
            proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        print(f"{script.name:<22} {status:<8} {time.monotonic() - t0:5.1f} s")
        if proc.returncode != 0 or proc.stderr.strip():
            problems.append(f"{script.name}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

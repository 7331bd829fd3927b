"""The programs of examples/ do what their docstrings say, run with small inputs (see conftest.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server.daemon import Daemon, free_port

from .conftest import EXAMPLES, Runs

# The first test to ask for `example_runs` pays for running every example (conftest.py): a minute or more on a
# loaded machine, beyond the suite's per-test default. Each example has its own timeout there.
pytestmark = pytest.mark.timeout(600)


def ok(example_runs: Runs, name: str) -> str:
    proc = example_runs[name]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "", proc.stderr
    return proc.stdout


def test_upload_queue_preempts_pauses_resumes_and_cancels(example_runs: Runs) -> None:
    out = ok(example_runs, "upload_queue.py")
    summary = dict(re.findall(r"^  (\S+) +(\w+) +[\d,]+ of", out, re.M))
    assert summary == {"video.mp4": "completed", "report.pdf": "completed", "photo1.jpg": "completed",
                       "photo2.jpg": "completed", "photo3.jpg": "cancelled"}  # fmt: skip
    events = re.findall(r"^  \[(\w+)\] (\S+)", out, re.M)
    assert ("preempted", "video.mp4") in events and ("taskpaused", "photo1.jpg") in events
    assert events.index(("completed", "report.pdf")) < events.index(("completed", "video.mp4"))
    assert re.search(r"^ +video\.mp4 +\d+\.\d% +\d+\.\d MB/s +eta", out, re.M), "no byte progress shown"
    assert "while paused: photo1 paused" in out


def test_multi_domain_runs_dependencies_across_domains(example_runs: Runs) -> None:
    out = ok(example_runs, "multi_domain.py")
    assert "ingest  download=completed, download=completed, download=failed" in out
    assert "media   thumbnail=completed, thumbnail=completed, thumbnail=dependency_failed" in out
    assert "notify  email=completed" in out
    assert "the email is paused while notify is paused" in out
    assert "2 of 3 thumbnails are ready" in out and out.rstrip().endswith("ok")


def test_cpu_batch_runs_every_task_and_reports_a_speedup(example_runs: Runs) -> None:
    out = ok(example_runs, "cpu_batch.py")
    runs = re.findall(r"^workers=(\d): 4 tasks in [\d.]+ s \((\d+) primes below 40,000\)$", out, re.M)
    assert [w for w, _ in runs] == ["1", "2"]
    assert runs[0][1] == runs[1][1] == "4203"  # both runs counted every range
    assert re.search(r"^speedup with 2 workers: \d+\.\d\dx$", out, re.M)


def test_the_example_service_runs_under_the_daemon(tmp_path: Path) -> None:
    """The shipped config and domain modules, run by a real `taskmill-supervisor`; other processes submit."""
    shutil.copy(EXAMPLES / "taskmill.toml", tmp_path)
    shutil.copytree(EXAMPLES / "service", tmp_path / "service")
    config = tmp_path / "taskmill.toml"
    port = free_port()
    config.write_text(re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", config.read_text()))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_text("hello world\nsecond line\n")
    (inbox / "b.txt").write_text("one two three")
    (inbox / ".c.txt").write_text("still being written")
    d = Daemon.existing(config, port)
    try:
        d.start()
        submit = subprocess.run([sys.executable, str(tmp_path / "service" / "submit.py"), str(d.db)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert submit.returncode == 0, submit.stdout + submit.stderr
        assert submit.stdout.count("completed") == 7
        watch = subprocess.run([sys.executable, str(tmp_path / "service" / "watch.py"), "inbox", "--once", "--db",
                                str(d.db)], cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert watch.returncode == 0, watch.stdout + watch.stderr
        assert "a.txt: 2 lines, 4 words, 24 bytes" in watch.stdout and "b.txt: 1 lines, 3 words" in watch.stdout
        assert d.get("/healthz")[0] == 200
    finally:
        d.stop()  # SIGTERM: a graceful stop
    assert d.proc is not None and d.proc.returncode == 0
    summary = json.loads((tmp_path / "outbox" / "a.txt.json").read_text())
    assert summary["lines"] == 2 and len(summary["sha256"]) == 64
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["a.txt", "b.txt"]
    assert [p.name for p in inbox.iterdir()] == [".c.txt"]  # a dot file is never picked up

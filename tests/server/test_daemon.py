"""The daemon as a real process: cross-process submissions, idle CPU, signals, reload, exit codes."""

from __future__ import annotations

import json
import os
import signal
import stat
import time
from collections.abc import Callable

import psutil

from taskmill.supervisor import daemon as dmn
from taskmill.supervisor import prespawn

from .daemon import Daemon, percentile, wait_lines

MakeDaemon = Callable[..., Daemon]


def test_other_process_submissions_start_within_milliseconds(live: Daemon) -> None:
    lat = live.submit_marks(50, gap=0.01)
    p50, p99 = percentile(lat, 0.5) * 1000, percentile(lat, 0.99) * 1000
    print(f"\ncross-process submit -> start: p50 {p50:.2f} ms, p99 {p99:.2f} ms (n={len(lat)})")
    assert p50 < 50, lat  # the wake-up datagram, not the 5 s data_version poll of this config


def test_idle_daemon_burns_almost_no_cpu(live: Daemon) -> None:
    proc = psutil.Process(live.pid)
    procs = [proc, *proc.children(recursive=True)]
    assert len(procs) == 1 + live.workers
    time.sleep(0.3)  # let the previous test's work settle

    def cpu() -> float:
        total = 0.0
        for p in procs:
            t = p.cpu_times()
            total += t.user + t.system
        return total

    before, t0 = cpu(), time.monotonic()
    time.sleep(1.5)
    share = (cpu() - before) / (time.monotonic() - t0) * 100
    print(f"\nidle daemon + {live.workers} workers: {share:.2f} % of one core")
    assert share < 5.0


def test_a_second_daemon_on_the_same_database_is_refused(live: Daemon) -> None:
    out = live.run()
    assert out.returncode == dmn.EXIT_LOCKED, out.stderr
    assert f"pid {live.pid}" in out.stderr and str(live.db) in out.stderr


def test_sigterm_lets_running_tasks_finish(make_daemon: MakeDaemon) -> None:
    d = make_daemon(http=False).start()
    d.submit_many(*[("slow::nap", {"i": i, "seconds": 0.8, "ledger": d.ledger}) for i in range(2)])
    wait_lines(d.ledger, 2, prefix="start")
    d.signal(signal.SIGTERM)
    assert d.wait(20) == 0, d.log_text()
    assert len(wait_lines(d.ledger, 2, prefix="done", timeout=1)) == 2
    counts, history = d.counts()
    assert counts["pending"] == counts["running"] == 0 and history == {"completed": 2}
    assert "stopped" in d.log_text()


def test_shutdown_timeout_and_second_signal_requeue_running_tasks(make_daemon: MakeDaemon) -> None:
    d = make_daemon(http=False, extra="[shutdown]\ntimeout = 0.3\n").start()
    d.submit_many(("slow::nap", {"i": 1, "seconds": 30, "ledger": d.ledger}))
    wait_lines(d.ledger, 1, prefix="start")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.wait(20) == 0 and time.monotonic() - t0 < 5
    counts, history = d.counts()
    assert counts["pending"] == 1 and history == {}  # back in the queue, not failed

    d.extra = "[shutdown]\ntimeout = 60\n"
    d.write_config()
    d.start()  # the re-queued task runs again at the next start
    wait_lines(d.ledger, 2, prefix="start")
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    time.sleep(0.3)
    assert d.proc is not None and d.proc.poll() is None  # graceful: still waiting for the task
    d.signal(signal.SIGINT)  # the second signal forces the hard stop
    assert d.wait(20) == 0 and time.monotonic() - t0 < 10
    counts, history = d.counts()
    assert counts["pending"] == 1 and history == {}


def test_sighup_reloads_runtime_settings_and_reopens_the_log(make_daemon: MakeDaemon) -> None:
    logging = '[logging]\nfile = "logs/taskmill.log"\n'
    d = make_daemon()
    d.log = d.root / "logs" / "taskmill.log"
    d.write_config(max_concurrency=4, body=logging)
    d.start("--log-format", "json")
    snap = d.snapshot()
    assert snap["max_concurrency"] == 4 and snap["domains"]["slow"]["max_concurrency"] == 3
    assert stat.S_IMODE(os.stat(d.log).st_mode) == 0o640 and stat.S_IMODE(os.stat(d.log.parent).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(d.db).st_mode) == 0o640  # umask 027 before anything was created

    d.write_config(max_concurrency=1, workers=3, body=logging + "[domain_concurrency]\nslow = 1\n")
    d.signal(signal.SIGHUP)
    d.wait_for_log("reloaded")
    snap = d.snapshot()
    assert snap["max_concurrency"] == 1 and snap["domains"]["slow"]["max_concurrency"] == 1
    assert len(snap["workers"]) == 2  # workers only change at restart, and the log says so
    records = [json.loads(line) for line in d.log_text().splitlines() if line.strip()]
    assert any("max_concurrency 4 -> 1" in r["msg"] for r in records)
    assert any(r["level"] == "warning" and "workers" in r["msg"] for r in records)

    d.log.rename(d.log.with_name("taskmill.log.1"))  # logrotate moves the file, then sends SIGHUP
    d.write_config(max_concurrency=2, body=logging)  # no cap for `slow` in the file: back to the module's own
    d.signal(signal.SIGHUP)
    d.wait_for_log("reloaded")  # in the reopened, new file
    snap = d.snapshot()
    assert snap["max_concurrency"] == 2 and snap["domains"]["slow"]["max_concurrency"] == 3

    d.config.write_text("this is = not [toml")
    d.signal(signal.SIGHUP)
    d.wait_for_log("reload failed")
    assert d.snapshot()["max_concurrency"] == 2 and d.get("/healthz")[0] == 200


def test_worker_boot_error_has_its_exit_code(make_daemon: MakeDaemon) -> None:
    d = make_daemon(http=False, env={"SRV_FAIL_IN_WORKER": "1"})
    out = d.run(timeout=60)
    assert out.returncode == dmn.EXIT_BOOT, out.stderr
    assert "refuses to load in a worker" in out.stderr


def test_http_port_in_use_has_its_exit_code(make_daemon: MakeDaemon, live: Daemon) -> None:
    d = make_daemon()
    d.port = live.port
    d.write_config()
    out = d.run()
    assert out.returncode == dmn.EXIT_HTTP and f"127.0.0.1:{live.port}" in out.stderr


def test_sighup_reloads_scheduling_policy_and_top_shows_it(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    d.write_config(body='[group_concurrency]\nuploads = 2\n[rate_limits."srv::mark"]\npermits = 5\n'
                        '[group_weights]\nacme = 3\n')  # fmt: skip
    d.start()
    policy = d.snapshot()["policy"]
    assert policy["group_limits"] == {"uploads": 2}
    assert [(r["scope"], r["permits"]) for r in policy["rate_limits"]] == [("type:srv::mark", 5)]

    d.write_config(body='[group_concurrency]\nuploads = 4\n[rate_limits."srv::mark"]\npermits = 7\nburst = 2\n'
                        '[priority_aging]\ngrace_period = 30\n')  # fmt: skip
    d.signal(signal.SIGHUP)
    d.wait_for_log("reloaded", count=1)
    log = d.log_text()
    assert "group_concurrency.uploads -> 4" in log and "group_weights.acme removed" in log
    assert "priority_aging changed" in log and "only applied at restart" not in log
    policy = d.snapshot()["policy"]
    assert policy["group_limits"] == {"uploads": 4} and policy["aging_config"]["grace_period"] == 30
    assert [(r["scope"], r["permits"], r["burst"]) for r in policy["rate_limits"]] == [("type:srv::mark", 7, 2)]

    d.write_config(body='[rate_limits."mark"]\npermits = 1\n')  # not a qualified type: refused, nothing changes
    d.signal(signal.SIGHUP)
    d.wait_for_log("reload failed")
    assert "unknown task type 'mark'; did you mean 'srv::mark'" in d.log_text()
    assert d.snapshot()["policy"]["group_limits"] == {"uploads": 4}

    from rich.console import Console

    from taskmill.cli_top import pressure_table

    console = Console(width=120, record=True)
    console.print(pressure_table(d.snapshot()["policy"]))
    text = console.export_text()
    assert "pressure 0.00" in text and "rate type:srv::mark" in text and "/2 tokens" in text


def test_workers_are_execd_before_the_daemon_imports_run_with_its_umask_and_are_replaced(
    make_daemon: MakeDaemon,
) -> None:
    d = make_daemon(http=False)
    d.start("--log-level", "debug")
    pids = {p.pid for p in psutil.Process(d.pid).children()}
    early = prespawn.early_count(2)  # as many as leave a core to the daemon's imports; the pool execs the rest
    text = d.wait_for_log(f"adopting {early} worker(s) exec'd at start-up")
    line = next(ln for ln in text.splitlines() if "exec'd at start-up" in ln)
    adopted = {pid for pid in pids if str(pid) in line}
    assert len(pids) == 2 and len(adopted) == early, (pids, line)  # the pool took the early processes
    ledger = d.root / "made-by-a-task.txt"
    d.submit_many(("srv::mark", {"i": 1, "ledger": str(ledger)}))
    wait_lines(str(ledger), 1)
    # the workers were exec'd before the daemon set its umask (027): the file a task creates still follows it
    assert stat.S_IMODE(os.stat(ledger).st_mode) == 0o640
    victim = min(adopted)  # an adopted worker's death is noticed (asyncio did not start it) and it is replaced
    os.kill(victim, signal.SIGKILL)
    d.wait_for_log(f"worker {victim}: worker died")
    deadline = time.monotonic() + 10
    while len({p.pid for p in psutil.Process(d.pid).children()} - {victim}) < 2:
        assert time.monotonic() < deadline, "no replacement worker"
        time.sleep(0.02)
    d.submit_many(("srv::mark", {"i": 2, "ledger": str(ledger)}))
    wait_lines(str(ledger), 2)

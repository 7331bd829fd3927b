"""The config tree: decoding, errors that name the key and the file, overrides, --check, and refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import taskmill as tm
from taskmill.settings import SchedulerConfig, decode_config, load_config, scheduler_kwargs
from taskmill.settings_output import to_toml
from taskmill.supervisor import daemon as dmn

from .daemon import Daemon


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_map_one_to_one_onto_scheduler_keywords() -> None:
    cfg = decode_config({"domains": ["tests.integration.domains:main"]})
    kwargs = scheduler_kwargs(cfg)
    params = set(tm.Scheduler.signature().parameters) - {"self"}
    assert set(kwargs) <= params  # every config key that builds the scheduler is a Scheduler keyword
    assert kwargs["shutdown"] == tm.ShutdownMode.graceful(10.0)
    assert kwargs["retention"] == tm.RetentionPolicy(keep_count=100_000)
    assert cfg.http.enabled is False and cfg.http.listen.startswith("127.0.0.1:")
    assert kwargs["preempt_priority"] == 0
    assert kwargs["switch_interval"] == 0.0005
    off = scheduler_kwargs(decode_config({"domains": ["tests.integration.domains:main"], "preempt_priority": "off",
                                          "timeout": 5, "max_tasks_per_worker": 100,
                                          "worker_memory_limit": 1 << 30, "switch_interval": "off"}))  # fmt: skip
    assert (off["preempt_priority"], off["timeout"], off["max_tasks_per_worker"]) == (None, 5.0, 100)
    assert off["switch_interval"] is None
    assert off["worker_memory_limit"] == 1 << 30
    metrics = scheduler_kwargs(
        decode_config(
            {
                "domains": ["tests.integration.domains:main"],
                "metrics_prefix": "app",
                "metrics_labels": {"env": "prod"},
                "metrics_disabled": ["batch_size"],
            }
        )
    )
    assert (metrics["metrics_prefix"], metrics["metrics_labels"], metrics["metrics_disabled"]) == (
        "app", {"env": "prod"}, ["batch_size"])  # fmt: skip


@pytest.mark.parametrize(
    ("toml", "key", "reason"),
    [
        ('domains = ["a:b"]\nworkerz = 2\n', "workerz", "unknown key"),
        ('domains = ["a:b"]\n[http]\nlisten = "127.0.0.1:1"\nport = 80\n', "http.port", "unknown key"),
        ('domains = ["a:b"]\nworkers = "two"\n', "workers", "Expected `int | null`, got `str`"),
        ('domains = ["a:b"]\nworkers = 0\n', "workers", ">= 1"),
        ('domains = ["a:b"]\ndurability = "fast"\n', "durability", "Invalid enum value 'fast'"),
        ('domains = ["a:b"]\n[retry]\nmax_retries = -1\n', "retry", "max_retries must be >= 0"),
        ('domains = ["a:b"]\n[shutdown]\nkind = "soon"\n', "shutdown.kind", "Invalid enum value"),
        ('domains = ["nocolon"]\n', "domains[0]", "package.module:attribute"),
        ("workers = 2\n", "domains", "at least one"),
        ('domains = ["a:b"]\n[http]\nlisten = "0.0.0.0:9465"\n', "http.listen", "not a loopback address"),
        ('domains = ["a:b"]\n[domain_concurrency]\nmedia = -1\n', "domain_concurrency.media", ">= 0"),
        ('domains = ["a:b"]\npreempt_priority = 256\n', "preempt_priority", "<= 255"),
        ('domains = ["a:b"]\ntimeout = 0\n', "timeout", "> 0"),
        ('domains = ["a:b"]\n[rate_limits."m::t"]\npermits = 0\n', "rate_limits[...].permits", ">= 1"),
        ('domains = ["a:b"]\n[rate_limits."m::t"]\nper = 1\n', "rate_limits[...].per", "unknown key"),
        ('domains = ["a:b"]\n[priority_aging]\nurgent_threshold = 10\n', "priority_aging", "could never reach"),
        ('domains = ["a:b"]\n[group_weights]\nacme = 0\n', "group_weights[...]", ">= 1"),
        ('domains = ["a:b"]\nthrottle_policy = [[192, 1.5]]\n', "throttle_policy[0][1]", "<= 1"),
        ('domains = ["a:b"]\nmetrics_disabled = ["tasks_done_total"]\n', "metrics_disabled", "unknown metric"),
        ('domains = ["a:b"]\nmetrics_prefix = "my-app"\n', "metrics_prefix", "must match"),
        ('domains = ["a:b"]\n[metrics_labels]\ngroup = "x"\n', "metrics_labels", "taskmill's own labels"),
    ],
)
def test_errors_name_the_key_and_the_file(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    path = write(tmp_path / "taskmill.toml", toml)
    with pytest.raises(tm.ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and f"`{key}`" in msg and reason in msg, msg


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tm.ConfigError, match="not valid TOML"):
        load_config(write(tmp_path / "bad.toml", "domains = [\n"))
    with pytest.raises(tm.ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_relative_paths_follow_the_file_and_overrides_win(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = write(tmp_path / "etc" / "t.toml",
                 'store = "data/q.db"\ndomains = ["a:b"]\npython_path = ["src"]\nworkers = 3\n'
                 '[logging]\nfile = "log/d.log"\n')  # fmt: skip
    cfg = load_config(path)
    assert cfg.store == str(tmp_path / "etc" / "data" / "q.db")
    assert cfg.python_path == [str(tmp_path / "etc" / "src")]
    assert cfg.logging.file == str(tmp_path / "etc" / "log" / "d.log")
    cfg = load_config(path, {"workers": 5, "store": "x.db", "logging.level": "debug", "max_concurrency": None})
    assert (cfg.workers, cfg.store, cfg.logging.level) == (5, os.path.abspath("x.db"), "debug")
    with pytest.raises(tm.ConfigError, match=r"command line: key `workers`"):
        load_config(path, {"workers": 0})


def test_effective_toml_round_trips(tmp_path: Path) -> None:
    cfg = decode_config({"store": str(tmp_path / "t.db"), "domains": ["a:b"], "retry": {"strategy": "exponential", "max_retries": 2, "delay": 1.0,
                         "max_delay": 30.0}, "domain_concurrency": {"x": 2}, "default_ttl": 60.0,
                         "preempt_priority": "off", "hang_timeout": 60.0})  # fmt: skip
    again = load_config(write(tmp_path / "t.toml", to_toml(cfg)))
    assert again == cfg


def test_scheduling_policy_from_toml(tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.toml",
        """
store = "t.db"
domains = ["tests.integration.domains:main"]
workers = 1
default_group_concurrency = 2
throttle_policy = [[192, 0.4]]
[group_concurrency]
uploads = 1
[rate_limits."tm_main::note"]
permits = 30
interval = 60
[priority_aging]
grace_period = 10
aging_interval = 5
[group_weights]
acme = 3
""",
    )
    cfg = load_config(path)
    assert load_config(write(tmp_path / "again.toml", to_toml(cfg))) == cfg
    with tm.Scheduler.from_config(cfg) as s:
        p = s.policy
        assert (p.group_limits, p.default_group_limit, p.weights) == ({"uploads": 1}, 2, {"acme": 3})
        assert p.type_buckets["tm_main::note"].limit == tm.RateLimit.per_minute(30)
        assert p.aging == tm.AgingConfig(grace_period=10, aging_interval=5)
        assert p.throttle.tiers == [(192, 0.4)]
    bad = decode_config({"store": str(tmp_path / "t.db"), "domains": ["tests.integration.domains:main"],
                         "rate_limits": {"note": {"permits": 1}}})  # fmt: skip
    with pytest.raises(tm.ConfigError, match="unknown task type 'note'; did you mean 'tm_main::note'"):
        tm.Scheduler.from_config(bad)


def test_from_config_imports_domains_and_applies_caps(tmp_path: Path) -> None:
    from tests.integration import domains as D

    cfg = SchedulerConfig(store=str(tmp_path / "t.db"), domains=["tests.integration.domains:main"], workers=1,
                          domain_concurrency={"tm_main": 3}, max_concurrency=5)  # fmt: skip
    with tm.Scheduler.from_config(cfg) as s:  # starts and stops the workers
        assert s.max_concurrency == 5 and s.settings.workers == 1
        assert s.domain(D.main).max_concurrency == 3
    bad = SchedulerConfig(domains=["tests.integration.domains:nothing_here"])
    with pytest.raises(tm.ConfigError, match="has no attribute 'nothing_here'"):
        tm.Scheduler.from_config(bad)


# -- the daemon's command line --------------------------------------------------------------------------------
def test_check_prints_the_effective_config(tmp_path: Path) -> None:
    d = Daemon(tmp_path, http=False)
    out = d.run("--check", "--workers", "3")
    assert out.returncode == 0, out.stderr
    assert "workers = 3" in out.stdout and f'store = "{d.db}"' in out.stdout
    js = d.run("--check", "--format", "json", "--durability", "full")
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    assert doc["durability"] == "full" and doc["domains"] == ["srvtasks:srv", "srvtasks:slow"]
    assert not d.db.exists()  # --check never opens the database


def test_bad_configs_exit_with_documented_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = Daemon(tmp_path, http=False)
    d.write_config(body='[logging]\nlevel = "loud"\n')
    assert dmn.main(str(d.config), {}) == dmn.EXIT_CONFIG  # fails before any side effect: safe in-process
    err = capsys.readouterr().err
    assert str(d.config) in err and "`logging.level`" in err
    d.write_config(typo_key=1)
    assert dmn.check_only(str(d.config), {}, "toml") == dmn.EXIT_CONFIG
    assert "`typo_key`: unknown key" in capsys.readouterr().err
    d.write_config()
    assert dmn.main(str(d.config), {"workers": 0}) == dmn.EXIT_CONFIG
    assert "command line: key `workers`" in capsys.readouterr().err
    d.write_config(domains=["srvtasks_missing:srv"])
    assert dmn.check_only(str(d.config), {}, "toml") == dmn.EXIT_IMPORT
    assert "srvtasks_missing" in capsys.readouterr().err
    out = d.run()  # the real daemon path
    assert out.returncode == dmn.EXIT_IMPORT, out.stderr
    assert "srvtasks_missing" in out.stderr and str(d.config) in out.stderr


def test_a_domain_string_must_name_a_domain() -> None:
    cfg = decode_config({"domains": ["tests.integration.domains:Note"]})
    with pytest.raises(tm.ConfigError, match=r"not a taskmill\.Domain"):
        scheduler_kwargs(cfg)


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = Daemon(tmp_path, http=False)
    if os.geteuid() == 0:  # the helper passes --allow-root (CI runs as root); without it root is refused
        assert dmn.main(str(d.config), {}) == dmn.EXIT_UNSAFE  # refused before any side effect
        assert "--allow-root" in capsys.readouterr().err
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    out = d.run("--db", str(shared / "tasks.db"))
    assert out.returncode == dmn.EXIT_UNSAFE and "world-writable" in out.stderr
    d.config.chmod(0o666)
    out = d.run()
    assert out.returncode == dmn.EXIT_UNSAFE and "writable by other users" in out.stderr

"""``taskmill-supervisor --config taskmill.toml``: the scheduler as a server daemon.

Startup order: validate the config, refuse unsafe setups, set the umask, configure logging, fail fast if
another supervisor holds the database, build the scheduler (importing the domain modules), bind the HTTP
port, then dispatch until SIGTERM/SIGINT. SIGHUP reopens the log file and re-reads the settings that
can change at runtime. Each failure class has its own exit code (``EXIT_*``), documented in docs/server.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, StoreError, SupervisorRunning, WorkerBootError
from ..policy_controls import qualify
from ..settings import (
    DomainImportError,
    SchedulerConfig,
    import_domains,
    load_config,
    policy_kwargs,
)  # fmt: skip
from ..settings_output import to_json, to_toml
from . import hardening, logs
from .lock import SupervisorLock
from .runtime import Supervisor

if TYPE_CHECKING:
    from ..scheduler import Scheduler
    from .http import HttpEndpoints

log = logging.getLogger("taskmill.daemon")

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure while running (logged with a traceback)
EXIT_USAGE = 2  # bad command line (typer/click)
EXIT_CONFIG = 3  # config file unreadable, not TOML, unknown key, wrong type or value
EXIT_IMPORT = 4  # a domain or app_state module failed to import
EXIT_LOCKED = 5  # another supervisor is running on the database
EXIT_BOOT = 6  # worker processes could not start
EXIT_UNSAFE = 7  # refused: root without --allow-root, unsafe permissions, network filesystem
EXIT_STORE = 8  # the database could not be opened or written
EXIT_HTTP = 9  # the HTTP listen address could not be bound
POLICY_RELOADABLE = (
    "group_concurrency", "default_group_concurrency", "rate_limits", "group_rate_limits", "priority_aging",
    "group_weights", "default_group_weight", "group_minimum_slots",
)  # fmt: skip
RELOADABLE = ("max_concurrency", "domain_concurrency", "logging", *POLICY_RELOADABLE)  # applied by SIGHUP


def _err(message: str) -> None:
    print(f"taskmill-supervisor: {message}", file=sys.stderr, flush=True)


class Daemon:
    """The running daemon's state: config path, command-line overrides, and what SIGHUP may change."""

    def __init__(self, config_path: str, overrides: Mapping[str, Any], cfg: SchedulerConfig, scheduler: Scheduler,
                 http: HttpEndpoints | None, base_caps: dict[str, int]) -> None:  # fmt: skip
        """``base_caps``: domain caps as their modules define them, restored when the file drops a cap."""
        self.config_path = config_path
        self.overrides = dict(overrides)
        self.cfg = cfg
        self.scheduler = scheduler
        self.http = http
        self.base_caps = base_caps

    async def companion(self, sup: Supervisor) -> None:
        """Runs on the supervisor's loop: announce readiness, then serve HTTP until dispatch stops."""
        while not sup.started.is_set():
            await asyncio.sleep(0.01)
        if sup.error is not None:
            return
        workers = sum(1 for w in sup.dispatcher.workers if w.alive) if sup.dispatcher else 0
        where = f", http on {self.http.address[0]}:{self.http.address[1]}" if self.http is not None else ""
        log.info("dispatching: pid %d, %d worker(s), max_concurrency %d, recovered %d task(s)%s",
                 os.getpid(), workers, sup.settings.max_concurrency, sup.recovered, where)  # fmt: skip
        if self.http is not None:
            await self.http.serve(sup)

    def reload(self) -> None:
        """SIGHUP: reopen the log file and apply the runtime-adjustable settings; a bad file changes nothing."""
        try:
            new = load_config(self.config_path, self.overrides)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        try:
            logs.configure(new.logging)
        except OSError as exc:
            log.error("reload: cannot open the log file (%s); keeping the running configuration", exc)
            return
        old, s = self.cfg, self.scheduler
        unknown = [n for n in new.domain_concurrency if n not in s.registry.domains]
        if unknown:
            log.error("reload failed, keeping the running configuration: domain_concurrency names unknown "
                      "domain(s) %s", unknown)  # fmt: skip
            return
        try:
            changes = reload_policy(s, new)
        except ConfigError as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            return
        limit = new.max_concurrency
        if limit is None:  # the scheduler's default for the running pool
            limit = s.settings.workers * s.settings.async_concurrency
        if limit != s.max_concurrency:
            changes.append(f"max_concurrency {s.max_concurrency} -> {limit}")
            s.set_max_concurrency(limit)
        for name, domain in s.registry.domains.items():
            cap = new.domain_concurrency.get(name, self.base_caps.get(name, 0))
            if cap != domain.max_concurrency:
                changes.append(f"domain_concurrency.{name} {domain.max_concurrency} -> {cap}")
                s.domain(domain).set_max_concurrency(cap)
        if new.logging != old.logging:
            changes.append("logging")
        fixed = [f for f in SchedulerConfig.__struct_fields__
                 if f not in RELOADABLE and getattr(new, f) != getattr(old, f)]  # fmt: skip
        self.cfg = new
        log.info("reloaded %s: %s", self.config_path, "; ".join(changes) if changes else "no runtime changes")
        if fixed:
            log.warning("changed in the file but only applied at restart: %s", ", ".join(fixed))


def _sync(current: dict[str, Any], wanted: dict[str, Any], name: str, set_: Any, remove: Any) -> list[str]:
    """Make a keyed setting match the file: set what differs, remove what the file no longer has."""
    changes = []
    for key in sorted(set(current) - set(wanted)):
        remove(key)
        changes.append(f"{name}.{key} removed")
    for key, value in sorted(wanted.items()):
        if current.get(key) != value:
            set_(key, value)
            changes.append(f"{name}.{key} -> {value}")
    return changes


def reload_policy(s: Scheduler, new: SchedulerConfig) -> list[str]:
    """Apply the file's scheduling policy to the running scheduler: limits, rate limits, weights, aging.
    Every name is checked before anything changes, so a bad file leaves the running policy as it was."""
    kw = policy_kwargs(new)  # validates (qualified task types are checked below)
    p = s.policy
    types = {qualify(s.registry, t): r for t, r in kw["rate_limits"].items()}
    changes = _sync(dict(p.group_limits), kw["group_concurrency"], "group_concurrency", p.set_group_limit,
                    p.remove_group_limit)  # fmt: skip
    if p.default_group_limit != new.default_group_concurrency:
        changes.append(f"default_group_concurrency -> {new.default_group_concurrency}")
        p.set_default_group_limit(new.default_group_concurrency)
    with p.lock:
        current_types = {t: b.limit for t, b in p.type_buckets.items()}
        current_groups = {g: b.limit for g, b in p.group_buckets.items()}
    changes += _sync(current_types, types, "rate_limits", p.set_rate_limit, p.remove_rate_limit)
    changes += _sync(current_groups, kw["group_rate_limits"], "group_rate_limits", p.set_group_rate_limit,
                     p.remove_group_rate_limit)  # fmt: skip
    changes += _sync(dict(p.weights), kw["group_weights"], "group_weights", s.set_group_weight, p.remove_group_weight)
    if p.default_weight != new.default_group_weight:
        changes.append(f"default_group_weight -> {new.default_group_weight}")
        p.set_default_group_weight(new.default_group_weight)
    changes += _sync(dict(p.min_slots), kw["group_minimum_slots"], "group_minimum_slots",
                     p.set_group_minimum_slots, p.remove_group_minimum_slots)  # fmt: skip
    if p.aging != kw["priority_aging"]:
        changes.append("priority_aging " + ("off" if kw["priority_aging"] is None else "changed"))
        p.set_priority_aging(kw["priority_aging"])
    return changes


def check_only(config_path: str, overrides: Mapping[str, Any], fmt: str) -> int:
    """``--check``: validate the file and import its domains; print the effective configuration."""
    try:
        cfg = load_config(config_path, overrides)
    except ConfigError as exc:
        _err(f"config error: {exc}")
        return EXIT_CONFIG
    try:
        import_domains(cfg)
    except DomainImportError as exc:
        _err(f"import error: {os.path.abspath(config_path)}: {exc}")
        return EXIT_IMPORT
    except ConfigError as exc:
        _err(f"config error: {os.path.abspath(config_path)}: {exc}")
        return EXIT_CONFIG
    print(to_json(cfg) if fmt == "json" else to_toml(cfg), end="" if fmt == "toml" else "\n")
    return EXIT_OK


def main(config_path: str, overrides: Mapping[str, Any], *, allow_root: bool = False) -> int:
    """Run the daemon; returns the process exit code."""
    try:
        cfg = load_config(config_path, overrides)
    except ConfigError as exc:
        _err(f"config error: {exc}")
        return EXIT_CONFIG
    step = "log file"
    try:
        hardening.check_user(allow_root)
        os.umask(int(cfg.umask, 8))  # before the log file, database, WAL or lock file exist
        hardening.check_config_file(config_path)
        logs.configure(cfg.logging)
        step = "database directory"
        hardening.prepare_store_path(cfg.store)
    except hardening.UnsafeEnvironment as exc:
        _err(f"refused: {exc}")
        return EXIT_UNSAFE
    except OSError as exc:
        _err(f"cannot prepare the {step} {exc.filename or ''}: {exc.strerror or exc}")
        return EXIT_CONFIG if step == "log file" else EXIT_STORE
    holder = SupervisorLock(cfg.store).holder()
    if holder is not None:
        _err(str(SupervisorRunning(cfg.store, holder if holder > 0 else None)))
        return EXIT_LOCKED
    return _run(os.path.abspath(config_path), overrides, cfg)


def _run(config_path: str, overrides: Mapping[str, Any], cfg: SchedulerConfig) -> int:
    from ..scheduler import Scheduler
    from .http import HttpEndpoints, bind

    try:
        base_caps = {d.name: d.max_concurrency for d in import_domains(cfg)}
        scheduler = Scheduler.from_config(cfg)
    except DomainImportError as exc:
        log.debug("domain import failed", exc_info=True)
        _err(f"import error: {config_path}: {exc}")
        return EXIT_IMPORT
    except ConfigError as exc:
        _err(f"config error: {config_path}: {exc}")
        return EXIT_CONFIG
    except StoreError as exc:
        _err(f"database error: {exc}")
        return EXIT_STORE
    http = None
    try:
        if cfg.http.enabled:
            host, port = cfg.http.address()
            try:
                http = HttpEndpoints(bind(host, port))
            except OSError as exc:
                _err(f"cannot listen on {cfg.http.listen}: {exc.strerror or exc}")
                return EXIT_HTTP
        daemon = Daemon(config_path, overrides, cfg, scheduler, http, base_caps)
        log.info("starting: config %s, database %s (durability %s)", config_path, cfg.store, cfg.durability)
        scheduler.run(on_hangup=daemon.reload, companion=daemon.companion)
    except SupervisorRunning as exc:
        _err(str(exc))
        return EXIT_LOCKED
    except WorkerBootError as exc:
        _err(f"worker boot error: {exc}")
        return EXIT_BOOT
    except StoreError as exc:
        _err(f"database error: {exc}")
        return EXIT_STORE
    except Exception:
        log.exception("supervisor failed")
        return EXIT_ERROR
    finally:
        if http is not None:
            http.sock.close()
        scheduler.close()
    log.info("stopped")
    return EXIT_OK

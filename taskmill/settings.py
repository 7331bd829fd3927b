"""The configuration tree shared by ``Scheduler.from_config()`` and the ``taskmill-supervisor`` daemon.

Field names are ``Scheduler.__init__``'s keyword names, so a TOML file, the Python API and the docs use one
vocabulary. Decoding forbids unknown keys and checks types and ranges, and every error names the key path
and the file it came from, because a daemon that silently ignores a misspelt key is worse than one that
refuses to start.
"""

from __future__ import annotations

import copy
import importlib
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from .config import DEFAULT_RETENTION, RetentionPolicy, ShutdownMode
from .domain import Domain
from .errors import ConfigError
from .metrics import options as metrics_options
from .policy.aging import AgingConfig
from .policy.pressure import ThrottlePolicy
from .policy.ratelimit import RateLimit
from .policy.retry import RetryPolicy
from .resources import SamplerConfig
from .supervisor.gil import DEFAULT_S as DEFAULT_SWITCH_S

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
DEFAULT_HTTP_LISTEN = "127.0.0.1:9465"


class DomainImportError(ConfigError):
    """A ``"package.module:attribute"`` string in ``domains`` or ``app_state`` could not be imported."""


class ShutdownConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mirror of :class:`taskmill.ShutdownMode`, with unknown keys refused."""

    kind: Literal["graceful", "hard"] = "graceful"
    timeout: Annotated[float, msgspec.Meta(ge=0)] = 10.0

    def mode(self) -> ShutdownMode:
        return ShutdownMode.hard() if self.kind == "hard" else ShutdownMode.graceful(self.timeout)


class RetentionConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """History retention; a table that sets neither key keeps all history."""

    keep_count: NonNegInt | None = None
    keep_days: PositiveFloat | None = None

    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(keep_count=self.keep_count, keep_days=self.keep_days)


class HttpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Read-only HTTP endpoints of the daemon (off unless ``enabled``; loopback unless explicitly allowed)."""

    enabled: bool = False
    listen: str = DEFAULT_HTTP_LISTEN
    allow_non_loopback: bool = False

    def address(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"listen must be 'HOST:PORT' (e.g. {DEFAULT_HTTP_LISTEN!r}), got {self.listen!r}")
        return host, int(port)


class RateLimitConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mirror of :class:`taskmill.RateLimit`: ``permits`` starts per ``interval`` seconds, ``burst`` at once
    (0: the same as permits)."""

    permits: PositiveInt
    interval: PositiveFloat = 1.0
    burst: NonNegInt = 0

    def limit(self) -> RateLimit:
        return RateLimit(self.permits, self.interval, self.burst)


Prio = Annotated[int, msgspec.Meta(ge=0, le=255)]


class AgingTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Mirror of :class:`taskmill.AgingConfig` (seconds and 0..255 priorities)."""

    grace_period: Annotated[float, msgspec.Meta(ge=0)] = 300.0
    aging_interval: PositiveFloat = 60.0
    max_effective_priority: Prio = 64
    urgent_threshold: Prio | None = None


class SamplerTable(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    interval: PositiveFloat = 1.0
    ewma_alpha: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.3


class LoggingConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["human", "json"] = "human"
    file: str | None = None  # None: standard error (the journal under systemd)


class SchedulerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Everything needed to build a :class:`taskmill.Scheduler`, plus the daemon's own settings.

    Keys from ``store`` to ``app_state`` are Scheduler keywords (import strings where Scheduler takes
    objects); ``domain_concurrency`` applies domain caps; the rest are read by the daemon only.
    """

    store: str = "tasks.db"
    domains: list[str] = []
    durability: Literal["full", "normal"] = "full"
    workers: PositiveInt | None = None
    max_concurrency: NonNegInt | None = None
    async_concurrency: PositiveInt = 16
    poll_interval: PositiveFloat = 0.5
    max_retries: NonNegInt = 3
    retry: RetryPolicy | None = None
    shutdown: ShutdownConfig = ShutdownConfig()
    retention: RetentionConfig = RetentionConfig(keep_count=DEFAULT_RETENTION.keep_count)
    max_payload_bytes: PositiveInt = 1024 * 1024
    default_ttl: PositiveFloat | None = None
    prefetch: bool = True
    preempt_priority: Annotated[int, msgspec.Meta(ge=0, le=255)] | Literal["off"] = 0
    preempt_grace: PositiveFloat = 3.0
    cancel_hook_timeout: PositiveFloat = 30.0
    timeout: PositiveFloat | None = None
    max_tasks_per_worker: PositiveInt | None = None
    max_worker_memory: PositiveInt | None = None
    worker_memory_limit: PositiveInt | None = None
    hang_timeout: PositiveFloat | None = None
    heartbeat_interval: PositiveFloat = 1.0
    expiry_sweep_interval: PositiveFloat | Literal["off"] = 30.0
    switch_interval: PositiveFloat | Literal["off"] = DEFAULT_SWITCH_S
    app_state: list[str] = []
    group_concurrency: dict[str, NonNegInt] = {}
    default_group_concurrency: NonNegInt = 0
    rate_limits: dict[str, RateLimitConfig] = {}  # qualified task type -> limit
    group_rate_limits: dict[str, RateLimitConfig] = {}
    priority_aging: AgingTable | None = None
    group_weights: dict[str, PositiveInt] = {}
    default_group_weight: PositiveInt = 1
    group_minimum_slots: dict[str, NonNegInt] = {}
    resource_monitoring: bool = False
    sampler: SamplerTable = SamplerTable()
    pressure_sources: list[str] = []  # "package.module:attribute": a source, or a class built with no arguments
    throttle_policy: list[tuple[Prio, Annotated[float, msgspec.Meta(ge=0, le=1)]]] | None = None
    bandwidth_limit: PositiveFloat | None = None
    metrics_prefix: str | None = None  # metric names become <prefix>_taskmill_<name>
    metrics_labels: dict[str, str] = {}  # added to every metric
    metrics_disabled: list[str] = []  # metric names (docs/metrics.md) not to export
    domain_concurrency: dict[str, int] = {}  # domain name -> cap (DomainHandle.set_max_concurrency)
    python_path: list[str] = []
    umask: str = "0027"  # the daemon's; "0007" lets a submitter group write the database
    http: HttpConfig = HttpConfig()
    logging: LoggingConfig = LoggingConfig()


# -- loading ---------------------------------------------------------------------------------------------
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`")


def _describe(exc: msgspec.ValidationError) -> tuple[str, str]:
    """``(key path, reason)`` from msgspec's ``"reason - at `$.a.b`"`` message."""
    m = _AT.match(str(exc))
    msg, path = (m.group("msg"), (m.group("path") or "").lstrip(".")) if m else (str(exc), "")
    unknown = _UNKNOWN.match(msg)
    if unknown:
        name = unknown.group("name")
        return (f"{path}.{name}" if path else name), "unknown key"
    return path or "(top level)", msg


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, last = dotted.split(".")
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[last] = value


def _resolve(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else (base / p).resolve())


def decode_config(raw: Mapping[str, Any], source: str = "<config>", overrides: Mapping[str, Any] | None = None,
                  ) -> SchedulerConfig:  # fmt: skip
    """Validate a decoded TOML document (plus ``overrides`` by dotted key) into a :class:`SchedulerConfig`."""
    data: dict[str, Any] = copy.deepcopy(dict(raw))
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in given.items():
        _set_path(data, key, value)
    try:
        cfg = msgspec.convert(data, SchedulerConfig)
    except msgspec.ValidationError as exc:
        path, reason = _describe(exc)
        origin = "command line" if path in given else source
        raise ConfigError(f"{origin}: key `{path}`: {reason}") from None
    check(cfg, source)
    return cfg


def load_config(path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> SchedulerConfig:
    """Read a TOML file. Relative paths in it (store, python_path, logging.file) are relative to the file;
    relative paths in ``overrides`` are relative to the current directory."""
    file = Path(path).expanduser().absolute()
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        raw = msgspec.toml.decode(text)
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}") from None
    if not isinstance(raw, dict):  # pragma: no cover - a TOML document is always a table
        raise ConfigError(f"{file}: expected a TOML table")
    base = file.parent
    if isinstance(raw.get("store"), str):
        raw["store"] = _resolve(base, raw["store"])
    if isinstance(raw.get("python_path"), list):
        raw["python_path"] = [_resolve(base, p) if isinstance(p, str) else p for p in raw["python_path"]]
    log_cfg = raw.get("logging")
    if isinstance(log_cfg, dict) and isinstance(log_cfg.get("file"), str):
        log_cfg["file"] = _resolve(base, log_cfg["file"])
    ov = dict(overrides or {})
    if isinstance(ov.get("store"), str):
        ov["store"] = os.path.abspath(ov["store"])
    return decode_config(raw, str(file), ov)


def check(cfg: SchedulerConfig, source: str = "<config>") -> None:
    """Rules the type system cannot say: import-string shapes, caps, a loopback HTTP bind."""
    if cfg.priority_aging is not None:
        try:
            aging_config(cfg.priority_aging)
        except ConfigError as exc:
            raise ConfigError(f"{source}: key `priority_aging`: {exc}") from None
    for name, items in (("domains", cfg.domains), ("app_state", cfg.app_state),
                        ("pressure_sources", cfg.pressure_sources)):  # fmt: skip
        for i, item in enumerate(items):
            if not re.fullmatch(r"[\w.]+:[\w.]+", item):
                raise ConfigError(f"{source}: key `{name}[{i}]`: expected 'package.module:attribute', got {item!r}")
    if not re.fullmatch(r"0?[0-7]{3}", cfg.umask) or int(cfg.umask, 8) & 0o007 != 0o007:
        raise ConfigError(f"{source}: key `umask`: an octal mask that denies all access to others (\"0027\" or "
                          f"\"0007\"), got {cfg.umask!r}")  # fmt: skip
    if not cfg.domains:
        raise ConfigError(f"{source}: key `domains`: list at least one 'package.module:attribute' domain")
    for key, args in (("metrics_prefix", (cfg.metrics_prefix, None, ())),
                      ("metrics_labels", (None, cfg.metrics_labels, ())),
                      ("metrics_disabled", (None, None, cfg.metrics_disabled))):  # fmt: skip
        try:
            metrics_options(*args)
        except ConfigError as exc:
            raise ConfigError(f"{source}: key `{key}`: {str(exc).partition(': ')[2]}") from None
    for name, cap in cfg.domain_concurrency.items():
        if cap < 0:
            raise ConfigError(f"{source}: key `domain_concurrency.{name}`: must be >= 0 (0 = no cap), got {cap}")
    try:
        host, _ = cfg.http.address()
    except ValueError as exc:
        raise ConfigError(f"{source}: key `http.listen`: {exc}") from None
    if not cfg.http.allow_non_loopback and not is_loopback(host):
        raise ConfigError(
            f"{source}: key `http.listen`: {host!r} is not a loopback address; the endpoints have no "
            "authentication, so set http.allow_non_loopback = true only behind a firewall or proxy"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# -- building ---------------------------------------------------------------------------------------------
def import_object(spec: str, key: str = "domains") -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted; without one, the module)."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise DomainImportError(
            f"key `{key}`: cannot import module {module_name!r} ({type(exc).__name__}: {exc})"
        ) from exc
    for part in attr.split(".") if attr else ():
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise DomainImportError(f"key `{key}`: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def extend_sys_path(entries: Iterable[str]) -> None:
    for entry in reversed(list(entries)):
        if entry not in sys.path:
            sys.path.insert(0, entry)


def import_domains(cfg: SchedulerConfig) -> list[Domain]:
    """The Domain objects named by ``cfg.domains`` (an attribute may also be a list of domains)."""
    extend_sys_path(cfg.python_path)
    found: list[Domain] = []
    for i, spec in enumerate(cfg.domains):
        obj = import_object(spec, f"domains[{i}]")
        items = list(obj) if isinstance(obj, list | tuple) else [obj]
        for item in items:
            if not isinstance(item, Domain):
                raise DomainImportError(f"key `domains[{i}]`: {spec!r} is {type(item).__name__}, not a taskmill.Domain")
            if item not in found:
                found.append(item)
    names = {d.name for d in found}
    for name in cfg.domain_concurrency:
        if name not in names:
            raise ConfigError(f"key `domain_concurrency.{name}`: no such domain (loaded: {sorted(names)})")
    return found


def aging_config(t: AgingTable) -> AgingConfig:
    return AgingConfig(
        grace_period=t.grace_period, aging_interval=t.aging_interval,
        max_effective_priority=t.max_effective_priority, urgent_threshold=t.urgent_threshold,
    )  # fmt: skip


def _pressure_source(spec: str, key: str) -> Any:
    obj = import_object(spec, key)
    return obj() if isinstance(obj, type) else obj


def policy_kwargs(cfg: SchedulerConfig) -> dict[str, Any]:
    """The scheduling-policy keywords of ``Scheduler``."""
    return dict(
        group_concurrency=dict(cfg.group_concurrency), default_group_concurrency=cfg.default_group_concurrency,
        rate_limits={t: r.limit() for t, r in cfg.rate_limits.items()},
        group_rate_limits={g: r.limit() for g, r in cfg.group_rate_limits.items()},
        priority_aging=None if cfg.priority_aging is None else aging_config(cfg.priority_aging),
        group_weights=dict(cfg.group_weights), default_group_weight=cfg.default_group_weight,
        group_minimum_slots=dict(cfg.group_minimum_slots), resource_monitoring=cfg.resource_monitoring,
        sampler_config=SamplerConfig(interval=cfg.sampler.interval, ewma_alpha=cfg.sampler.ewma_alpha),
        pressure_sources=[_pressure_source(s, f"pressure_sources[{i}]") for i, s in enumerate(cfg.pressure_sources)],
        throttle_policy=None if cfg.throttle_policy is None else ThrottlePolicy(cfg.throttle_policy),
        bandwidth_limit=cfg.bandwidth_limit,
    )  # fmt: skip


def scheduler_kwargs(cfg: SchedulerConfig) -> dict[str, Any]:
    """Keyword arguments for ``Scheduler(**kwargs)``: one entry per Scheduler keyword."""
    return dict(
        store=cfg.store, domains=import_domains(cfg), max_concurrency=cfg.max_concurrency, workers=cfg.workers,
        async_concurrency=cfg.async_concurrency, poll_interval=cfg.poll_interval, max_retries=cfg.max_retries,
        retry=cfg.retry, shutdown=cfg.shutdown.mode(), durability=cfg.durability,
        retention=cfg.retention.policy(), max_payload_bytes=cfg.max_payload_bytes, default_ttl=cfg.default_ttl,
        prefetch=cfg.prefetch,
        preempt_priority=None if cfg.preempt_priority == "off" else cfg.preempt_priority,
        preempt_grace=cfg.preempt_grace, cancel_hook_timeout=cfg.cancel_hook_timeout, timeout=cfg.timeout,
        max_tasks_per_worker=cfg.max_tasks_per_worker, max_worker_memory=cfg.max_worker_memory,
        worker_memory_limit=cfg.worker_memory_limit,
        hang_timeout=cfg.hang_timeout, heartbeat_interval=cfg.heartbeat_interval,
        expiry_sweep_interval=None if cfg.expiry_sweep_interval == "off" else cfg.expiry_sweep_interval,
        switch_interval=None if cfg.switch_interval == "off" else cfg.switch_interval,
        app_state=[import_object(s, f"app_state[{i}]") for i, s in enumerate(cfg.app_state)],
        **policy_kwargs(cfg),
        metrics_prefix=cfg.metrics_prefix, metrics_labels=cfg.metrics_labels, metrics_disabled=cfg.metrics_disabled,
    )  # fmt: skip

"""Live scheduling policy: group caps, rate limits, aging, fair-share weights and backpressure.

One object per scheduler, shared by the application's threads (which change it at runtime) and the
supervisor's loop (which reads it every dispatch turn), hence the lock. The decisions themselves are pure
functions in :mod:`taskmill.policy`; this holds their inputs and the state that outlives a turn (token buckets,
smoothed resource rates, the last allocation, denial counts).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping

import msgspec

from .errors import ConfigError
from .policy.aging import AgingConfig
from .policy.io import ResourceSnapshot
from .policy.pressure import CompositePressure, NetworkPressure, PressureSource, ThrottlePolicy
from .policy.ratelimit import RateLimit, TokenBucket
from .resources import PsutilSampler, ResourceMonitor, ResourceSampler, SamplerConfig


class RateLimitInfo(msgspec.Struct, frozen=True):
    scope: str  # "type:<qualified type>" or "group:<group>"
    scope_kind: str  # "type" | "group"
    permits: int
    interval: float
    burst: int
    available_tokens: float


class GroupAllocationInfo(msgspec.Struct, frozen=True):
    group: str | None  # None: ungrouped tasks
    weight: int
    allocated_slots: int
    running: int
    pending: int
    min_slots: int
    cap: int | None


class PolicyView(msgspec.Struct, frozen=True):
    """What a dashboard shows about scheduling policy (part of the scheduler snapshot)."""

    pressure: float = 0.0
    pressure_breakdown: list[tuple[str, float]] = []
    aging_config: AgingConfig | None = None
    group_allocations: list[GroupAllocationInfo] = []
    rate_limits: list[RateLimitInfo] = []
    group_limits: dict[str, int] = {}
    default_group_limit: int = 0
    resources: ResourceSnapshot | None = None
    gate_denials: dict[str, int] = {}


def _count(name: str, n: int, minimum: int = 0) -> int:
    if not isinstance(n, int) or n < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return n


class SchedulingPolicy:
    def __init__(
        self,
        *,
        group_concurrency: Mapping[str, int] | None = None,
        default_group_concurrency: int = 0,
        rate_limits: Mapping[str, RateLimit] | None = None,
        group_rate_limits: Mapping[str, RateLimit] | None = None,
        priority_aging: AgingConfig | None = None,
        group_weights: Mapping[str, int] | None = None,
        default_group_weight: int = 1,
        group_minimum_slots: Mapping[str, int] | None = None,
        resource_monitoring: bool = False,
        resource_sampler: ResourceSampler | None = None,
        sampler_config: SamplerConfig | None = None,
        pressure_sources: Iterable[PressureSource] = (),
        throttle_policy: ThrottlePolicy | None = None,
        bandwidth_limit: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.on_change: Callable[[], None] | None = None  # set by the supervisor: look at the queue again
        self.group_limits = {g: _count(f"group_concurrency[{g!r}]", n) for g, n in (group_concurrency or {}).items()}
        self.default_group_limit = _count("default_group_concurrency", default_group_concurrency)
        now = clock()
        self.type_buckets = {t: TokenBucket(r, now) for t, r in (rate_limits or {}).items()}
        self.group_buckets = {g: TokenBucket(r, now) for g, r in (group_rate_limits or {}).items()}
        self.aging = priority_aging
        self.weights = {g: _count(f"group_weight[{g!r}]", w, 1) for g, w in (group_weights or {}).items()}
        self.default_weight = _count("default_group_weight", default_group_weight, 1)
        self.min_slots = {g: _count(f"group_minimum_slots[{g!r}]", n) for g, n in (group_minimum_slots or {}).items()}
        self.composite = CompositePressure(pressure_sources)
        for s in self.composite.sources:
            if not isinstance(s, PressureSource):
                raise ConfigError(f"pressure source {s!r} needs a `name` and a `pressure()` method")
        monitoring = resource_monitoring or resource_sampler is not None or bandwidth_limit is not None
        self.monitor: ResourceMonitor | None = None
        if monitoring:
            self.monitor = ResourceMonitor(resource_sampler or PsutilSampler(), sampler_config or SamplerConfig())
        if bandwidth_limit is not None:
            assert self.monitor is not None
            self.composite.add_source(NetworkPressure(bandwidth_limit, self.monitor.net_rates))
        self.throttle = throttle_policy or ThrottlePolicy.default_three_tier()
        self.pressure = 0.0
        self.breakdown: list[tuple[str, float]] = []
        self.allocation: list[GroupAllocationInfo] = []
        self.denials: Counter[str] = Counter()
        self.rate_limit_throttles = 0
        self.effective: dict[int, int] = {}  # task id -> aged priority, for the Dispatched event of this turn
        self._ungrouped: tuple[float, int] = (-1.0, 0)

    UNGROUPED_TTL = 0.2

    def ungrouped_ready(self, count: Callable[[], int]) -> int:
        """Runnable ungrouped tasks for fair shares, recounted at most every 200 ms: finding them means
        scanning past grouped ones, so the count is cached rather than paid every turn."""
        now = self.clock()
        at, n = self._ungrouped
        if now - at >= self.UNGROUPED_TTL or at < 0:
            n = count()
            self._ungrouped = (now, n)
        return n

    # -- what is on ---------------------------------------------------------------------------------------
    @property
    def fair(self) -> bool:
        return bool(self.weights or self.min_slots)

    @property
    def active(self) -> bool:
        """Anything to check per candidate; when False dispatch takes the plain path (zero cost)."""
        return bool(
            self.group_limits
            or self.default_group_limit
            or self.type_buckets
            or self.group_buckets
            or self.aging is not None
            or self.fair
            or self.monitor is not None
            or self.composite.sources
        )

    @property
    def ticking(self) -> bool:
        """Whether the supervisor should sample resources and pressure on an interval."""
        return self.monitor is not None or bool(self.composite.sources)

    @property
    def interval(self) -> float:
        return self.monitor.config.interval if self.monitor is not None else 1.0

    def throttle_ceiling(self) -> int | None:
        return self.throttle.ceiling(self.pressure) if self.composite.sources else None

    def tick(self) -> bool:
        """Sample resources and pressure (on a worker thread: samplers may block). True if anything moved."""
        before = (self.pressure, self.monitor.rates if self.monitor else None)
        if self.monitor is not None:
            self.monitor.sample()
        breakdown = self.composite.breakdown()
        with self.lock:
            self.breakdown = breakdown
            self.pressure = max((v for _, v in breakdown), default=0.0)
        return before != (self.pressure, self.monitor.rates if self.monitor else None)

    def _changed(self) -> None:
        cb = self.on_change
        if cb is not None:
            cb()

    # -- runtime changes (any thread) ---------------------------------------------------------------------
    def set_group_limit(self, group: str, n: int) -> None:
        with self.lock:
            self.group_limits[group] = _count("group limit", n)
        self._changed()

    def remove_group_limit(self, group: str) -> None:
        with self.lock:
            self.group_limits.pop(group, None)
        self._changed()

    def set_default_group_limit(self, n: int) -> None:
        with self.lock:
            self.default_group_limit = _count("default_group_concurrency", n)
        self._changed()

    @staticmethod
    def _set_bucket(buckets: dict[str, TokenBucket], key: str, limit: RateLimit, now: float) -> None:
        if not isinstance(limit, RateLimit):
            raise ConfigError(f"expected a RateLimit, got {limit!r}")
        if key in buckets:
            buckets[key].retune(limit, now)
        else:
            buckets[key] = TokenBucket(limit, now)

    def set_rate_limit(self, task_type: str, limit: RateLimit) -> None:
        with self.lock:
            self._set_bucket(self.type_buckets, task_type, limit, self.clock())
        self._changed()

    def remove_rate_limit(self, task_type: str) -> None:
        with self.lock:
            self.type_buckets.pop(task_type, None)
        self._changed()

    def set_group_rate_limit(self, group: str, limit: RateLimit) -> None:
        with self.lock:
            self._set_bucket(self.group_buckets, group, limit, self.clock())
        self._changed()

    def remove_group_rate_limit(self, group: str) -> None:
        with self.lock:
            self.group_buckets.pop(group, None)
        self._changed()

    def set_group_weight(self, group: str, weight: int) -> int:
        """Returns the previous weight."""
        with self.lock:
            previous = self.weights.get(group, self.default_weight)
            self.weights[group] = _count("group weight", weight, 1)
        self._changed()
        return previous

    def remove_group_weight(self, group: str) -> None:
        with self.lock:
            self.weights.pop(group, None)
        self._changed()

    def set_default_group_weight(self, weight: int) -> None:
        with self.lock:
            self.default_weight = _count("default_group_weight", weight, 1)
        self._changed()

    def reset_group_weights(self) -> None:
        """Clear every weight and minimum and set the default weight back to 1 (fair scheduling off)."""
        with self.lock:
            self.weights.clear()
            self.min_slots.clear()
            self.default_weight = 1
            self.allocation = []
        self._changed()

    def set_group_minimum_slots(self, group: str, n: int) -> None:
        with self.lock:
            self.min_slots[group] = _count("group minimum slots", n)
        self._changed()

    def set_priority_aging(self, config: AgingConfig | None) -> None:
        if config is not None and not isinstance(config, AgingConfig):
            raise ConfigError(f"expected an AgingConfig or None, got {config!r}")
        with self.lock:
            self.aging = config
        self._changed()

    def remove_group_minimum_slots(self, group: str) -> None:
        with self.lock:
            self.min_slots.pop(group, None)
        self._changed()

    def add_pressure_source(self, source: PressureSource) -> None:
        if not isinstance(source, PressureSource):
            raise ConfigError(f"pressure source {source!r} needs a `name` and a `pressure()` method")
        with self.lock:
            self.composite.add_source(source)
        self._changed()

    # -- diagnostics --------------------------------------------------------------------------------------
    def rate_limit_info(self) -> list[RateLimitInfo]:
        now = self.clock()

        def info(kind: str, key: str, b: TokenBucket) -> RateLimitInfo:
            lim = b.limit
            tokens = round(b.available(now), 3)
            return RateLimitInfo(f"{kind}:{key}", kind, lim.permits, lim.interval, lim.burst, tokens)

        with self.lock:
            out = [info("type", t, b) for t, b in sorted(self.type_buckets.items())]
            return out + [info("group", g, b) for g, b in sorted(self.group_buckets.items())]

    def view(self) -> PolicyView:
        with self.lock:
            return PolicyView(
                pressure=self.pressure, pressure_breakdown=list(self.breakdown), aging_config=self.aging,
                group_allocations=list(self.allocation) if self.fair else [], rate_limits=self.rate_limit_info(),
                group_limits=dict(self.group_limits), default_group_limit=self.default_group_limit,
                resources=self.monitor.rates if self.monitor else None, gate_denials=dict(self.denials),
            )  # fmt: skip

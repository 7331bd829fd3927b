"""The registered domains of one scheduler, and per-type lookups the dispatcher needs on its hot path."""

from __future__ import annotations

from collections.abc import Iterable

from .domain import Domain, ExecutorSpec
from .errors import ConfigError, UnknownDomain
from .policy.retry import RetryPolicy


class Registry:
    def __init__(self, domains: Iterable[Domain], *, retry: RetryPolicy) -> None:
        self.domains: dict[str, Domain] = {}
        for d in domains:
            if not isinstance(d, Domain):
                raise ConfigError(f"domains=[...] takes taskmill.Domain objects, got {d!r}")
            if d.name in self.domains and self.domains[d.name] is not d:
                raise ConfigError(f"duplicate domain name {d.name!r}")
            self.domains[d.name] = d
        self.retry = retry
        self.has_async = any(spec.is_async for d in self.domains.values() for spec in d.executors.values())
        self._retry_cache: dict[str, tuple[RetryPolicy, int]] = {}

    def domain(self, domain: Domain | str) -> Domain:
        name = domain if isinstance(domain, str) else domain.name
        found = self.domains.get(name)
        if found is None:
            raise UnknownDomain(f"domain {name!r} is not registered with this scheduler")
        if not isinstance(domain, str) and found is not domain:
            raise UnknownDomain(f"a different Domain object named {name!r} is registered with this scheduler")
        return found

    def spec(self, task_type: str) -> ExecutorSpec | None:
        name, _, _ = task_type.partition("::")
        d = self.domains.get(name)
        return d.executors.get(task_type) if d else None

    def task_types(self) -> set[str]:
        return {t for d in self.domains.values() for t in d.executors}

    def origins(self) -> list[str]:
        seen: list[str] = []
        for d in self.domains.values():
            for o in d.origins:
                if o not in seen:
                    seen.append(o)
        return seen

    def retry_for(self, task_type: str) -> tuple[RetryPolicy, int]:
        """The backoff policy and default max_retries of a type: type config > domain > scheduler."""
        hit = self._retry_cache.get(task_type)
        if hit is not None:
            return hit
        spec = self.spec(task_type)
        policy = self.retry
        max_retries = self.retry.max_retries
        if spec is not None:
            cfg = spec.type_config
            dom = spec.domain.default_retry
            policy = cfg.retry or dom or self.retry
            max_retries = cfg.max_retries if cfg.max_retries is not None else policy.max_retries
        self._retry_cache[task_type] = (policy, max_retries)
        return policy, max_retries

    def timeout_for(self, task_type: str, default: float | None) -> float | None:
        """The time limit of a type: type config > domain > scheduler default."""
        spec = self.spec(task_type)
        if spec is None:
            return default
        if spec.type_config.timeout is not None:
            return spec.type_config.timeout
        return spec.domain.timeout if spec.domain.timeout is not None else default

    def domain_caps(self) -> dict[str, int]:
        return {n: d.max_concurrency for n, d in self.domains.items() if d.max_concurrency > 0}

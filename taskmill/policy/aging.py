"""Priority aging: a task waiting long enough is promoted one level per interval, up to a ceiling.

The stored priority never changes; the effective one is computed at dispatch from the task's age, not
counting time it spent paused.
"""

from __future__ import annotations

import msgspec

from ..errors import ConfigError
from ..priority import Priority


class AgingConfig(msgspec.Struct, frozen=True, kw_only=True):
    grace_period: float = 300.0
    aging_interval: float = 60.0
    max_effective_priority: int = int(Priority.HIGH)
    urgent_threshold: int | None = None

    def __post_init__(self) -> None:
        if not self.aging_interval > 0 or self.grace_period < 0:
            raise ConfigError("priority aging needs aging_interval > 0 and grace_period >= 0")
        Priority(self.max_effective_priority)
        if self.urgent_threshold is not None:
            Priority(self.urgent_threshold)
            if self.urgent_threshold < self.max_effective_priority:
                raise ConfigError(
                    f"urgent_threshold ({self.urgent_threshold}) is more urgent than max_effective_priority "
                    f"({self.max_effective_priority}): aging could never reach it"
                )


def effective_priority(base: int, created_ms: int, paused_ms: int, now_ms: int, cfg: AgingConfig) -> int:
    """``base`` minus one per ``aging_interval`` waited past ``grace_period``, never beyond the ceiling — and
    never demoting a task already more urgent than the ceiling."""
    ceiling = cfg.max_effective_priority
    if base <= ceiling:
        return base
    waited = now_ms - created_ms - paused_ms - int(cfg.grace_period * 1000)
    if waited <= 0:
        return base
    return max(base - waited // int(cfg.aging_interval * 1000), ceiling)


def is_urgent(effective: int, cfg: AgingConfig | None) -> bool:
    return cfg is not None and cfg.urgent_threshold is not None and effective <= cfg.urgent_threshold

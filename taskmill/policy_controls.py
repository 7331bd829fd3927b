"""The scheduler's runtime controls for scheduling policy (a mixin of :class:`taskmill.Scheduler`).

Changes apply from the next dispatch turn and are not persisted: the configuration (keyword arguments or
TOML) is the durable form. Task types are named qualified (``"media::resize"``) or by their Task class; an
unknown type is an error rather than a limit that silently never matches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import events as ev
from .errors import ConfigError
from .policy.aging import AgingConfig
from .policy.pressure import PressureSource
from .policy.ratelimit import RateLimit
from .scheduling import PolicyView, SchedulingPolicy

if TYPE_CHECKING:
    from .registry import Registry


def qualify(registry: Registry, task_type: Any, domain: str | None = None) -> str:
    """A registered qualified task type from a name, a short name within ``domain``, or a Task class."""
    if isinstance(task_type, type):
        name = getattr(task_type, "task_type", "")
        owner = getattr(task_type, "__taskmill_domain__", None)
        task_type = f"{owner.name}::{name}" if owner is not None else name
    if not isinstance(task_type, str) or not task_type:
        raise ConfigError(f"expected a task type name or Task class, got {task_type!r}")
    if domain is not None and "::" not in task_type:
        task_type = f"{domain}::{task_type}"
    if registry.spec(task_type) is None:
        known = sorted(registry.task_types())
        hint = [t for t in known if t.endswith(f"::{task_type}")]
        raise ConfigError(
            f"unknown task type {task_type!r}" + (f"; did you mean {hint[0]!r}?" if hint else f"; known: {known}")
        )
    return task_type


class PolicyControls:
    policy: SchedulingPolicy
    registry: Registry

    if TYPE_CHECKING:

        def _publish(self, event: ev.Event) -> None: ...  # the client's

    # -- group concurrency --------------------------------------------------------------------------------
    def set_group_limit(self, group: str, max_concurrency: int) -> None:
        """At most ``max_concurrency`` tasks of ``group`` run at once (0: no limit)."""
        self.policy.set_group_limit(group, max_concurrency)

    def remove_group_limit(self, group: str) -> None:
        self.policy.remove_group_limit(group)

    def set_default_group_limit(self, max_concurrency: int) -> None:
        """The limit of every group without its own (0: none)."""
        self.policy.set_default_group_limit(max_concurrency)

    # -- rate limits --------------------------------------------------------------------------------------
    def set_rate_limit(self, task_type: Any, limit: RateLimit) -> None:
        """Limit how often tasks of one type start (a token bucket; changing it keeps the tokens left)."""
        self.policy.set_rate_limit(qualify(self.registry, task_type), limit)

    def remove_rate_limit(self, task_type: Any) -> None:
        self.policy.remove_rate_limit(qualify(self.registry, task_type))

    def set_group_rate_limit(self, group: str, limit: RateLimit) -> None:
        self.policy.set_group_rate_limit(group, limit)

    def remove_group_rate_limit(self, group: str) -> None:
        self.policy.remove_group_rate_limit(group)

    # -- fair scheduling ----------------------------------------------------------------------------------
    def set_group_weight(self, group: str, weight: int) -> None:
        """A group's share of the slots relative to the others (turns fair scheduling on)."""
        previous = self.policy.set_group_weight(group, weight)
        self._publish(ev.GroupWeightChanged(None, group, previous, weight))

    def remove_group_weight(self, group: str) -> None:
        self.policy.remove_group_weight(group)

    def set_default_group_weight(self, weight: int) -> None:
        self.policy.set_default_group_weight(weight)

    def reset_group_weights(self) -> None:
        """Clear every weight and minimum (fair scheduling off unless set again)."""
        self.policy.reset_group_weights()

    def set_group_minimum_slots(self, group: str, slots: int) -> None:
        """Slots ``group`` gets before weights split the rest, whenever it has the work."""
        self.policy.set_group_minimum_slots(group, slots)

    def set_priority_aging(self, config: AgingConfig | None) -> None:
        """Turn aging on (or off with None) or change it; effective priorities follow from the next turn."""
        self.policy.set_priority_aging(config)

    # -- backpressure -------------------------------------------------------------------------------------
    def add_pressure_source(self, source: PressureSource) -> None:
        """Sampled on the resource-monitor interval; the highest pressure throttles less urgent work."""
        self.policy.add_pressure_source(source)

    def why_not_running(self, task_id: int, timeout: float = 5.0) -> str | None:
        """Why a task is not running, in words (None: it is running, or nothing holds it back and it starts at
        the next dispatch turn). For debugging a queue that does not move."""
        from .supervisor.diagnose import describe

        return describe(self, task_id, timeout)

    @property
    def pressure(self) -> float:
        return self.policy.pressure

    def policy_view(self) -> PolicyView:
        """Pressure and its breakdown, aging, group allocations, rate limits, gate denial counts."""
        return self.policy.view()

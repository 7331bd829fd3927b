"""Backpressure: sources report pressure in [0, 1]; a throttle policy holds back less urgent work under load."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..priority import Priority


@runtime_checkable
class PressureSource(Protocol):
    """Anything with a ``name`` and a ``pressure()`` in [0, 1] (a queue depth, a battery, a remote API)."""

    name: str

    def pressure(self) -> float: ...


def _clamp(value: float) -> float:
    return 0.0 if value != value else min(max(float(value), 0.0), 1.0)  # NaN counts as no pressure


class CompositePressure:
    """The pressure of several sources: the maximum, with each source's value for diagnostics."""

    def __init__(self, sources: Iterable[PressureSource] = ()) -> None:
        self.sources: list[PressureSource] = list(sources)

    def add_source(self, source: PressureSource) -> None:
        self.sources.append(source)

    def breakdown(self) -> list[tuple[str, float]]:
        return [(s.name, _clamp(s.pressure())) for s in self.sources]

    def pressure(self) -> float:
        return max((v for _, v in self.breakdown()), default=0.0)


class ThrottlePolicy:
    """Tiers of (priority, limit): a task at or below a tier's priority waits while pressure exceeds its limit."""

    def __init__(self, tiers: Sequence[tuple[int, float]]) -> None:
        for prio, limit in tiers:
            Priority(prio)
            if not 0.0 <= limit <= 1.0:
                raise ConfigError(f"throttle limit must be in [0, 1], got {limit!r}")
        self.tiers = sorted((int(p), float(v)) for p, v in tiers)

    @classmethod
    def default_three_tier(cls) -> ThrottlePolicy:
        """BACKGROUND and below wait over 0.5, NORMAL and below over 0.75; HIGH and REALTIME never wait."""
        return cls([(int(Priority.BACKGROUND), 0.5), (int(Priority.NORMAL), 0.75)])

    def throttled(self, priority: int, pressure: float) -> bool:
        return any(priority >= p and pressure > limit for p, limit in self.tiers)

    def ceiling(self, pressure: float) -> int | None:
        """The most urgent priority held back at this pressure: everything ``>=`` it waits (None: nothing)."""
        held = [p for p, limit in self.tiers if pressure > limit]
        return min(held) if held else None


class NetworkPressure:
    """Network throughput against a bandwidth budget, from the resource monitor's smoothed rates."""

    name = "network"

    def __init__(self, max_bytes_per_sec: float, read: Callable[[], tuple[float, float]]) -> None:
        if not max_bytes_per_sec > 0:
            raise ConfigError(f"bandwidth_limit must be > 0 bytes/s, got {max_bytes_per_sec!r}")
        self.max_bps = float(max_bytes_per_sec)
        self._read = read

    def pressure(self) -> float:
        rx, tx = self._read()
        return min((rx + tx) / self.max_bps, 1.0)

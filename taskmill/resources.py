"""Resource monitoring: a sampler reports machine-wide rates; the monitor smooths them (EWMA).

The default sampler reads psutil's cumulative disk and network counters and turns them into per-second
rates. A custom :class:`ResourceSampler` (a test double, a container's cgroup stats) can stand in.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import msgspec

from .errors import ConfigError
from .policy.io import ResourceSnapshot, smooth

__all__ = ["PsutilSampler", "ResourceMonitor", "ResourceSampler", "ResourceSnapshot", "SamplerConfig"]


class SamplerConfig(msgspec.Struct, frozen=True, kw_only=True):
    interval: float = 1.0  # seconds between samples
    ewma_alpha: float = 0.3  # weight of the newest sample

    def __post_init__(self) -> None:
        if not self.interval > 0 or not 0 < self.ewma_alpha <= 1:
            raise ConfigError("sampler needs interval > 0 and 0 < ewma_alpha <= 1")


@runtime_checkable
class ResourceSampler(Protocol):
    def sample(self) -> ResourceSnapshot:
        """Current rates (bytes per second, CPU in [0, 1]). Called on the supervisor's monitor thread."""
        ...


class PsutilSampler:
    """Disk and network rates summed over all devices, from deltas of psutil's counters."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._last: tuple[float, tuple[int, int, int, int]] | None = None
        psutil.cpu_percent(None)  # prime: the first call has nothing to compare against

    def _counters(self) -> tuple[int, int, int, int]:
        disk = self._psutil.disk_io_counters()
        net = self._psutil.net_io_counters()
        return (
            disk.read_bytes if disk else 0, disk.write_bytes if disk else 0,
            net.bytes_recv if net else 0, net.bytes_sent if net else 0,
        )  # fmt: skip

    def sample(self) -> ResourceSnapshot:
        now, counters = time.monotonic(), self._counters()
        last, self._last = self._last, (now, counters)
        cpu = self._psutil.cpu_percent(None) / 100.0
        if last is None or now <= last[0]:
            return ResourceSnapshot(cpu_usage=cpu)
        dt = now - last[0]
        r, w, rx, tx = (max(0, a - b) / dt for a, b in zip(counters, last[1], strict=True))
        return ResourceSnapshot(cpu_usage=cpu, io_read_bytes_per_sec=r, io_write_bytes_per_sec=w,
                                net_rx_bytes_per_sec=rx, net_tx_bytes_per_sec=tx)  # fmt: skip


class ResourceMonitor:
    def __init__(self, sampler: ResourceSampler, config: SamplerConfig) -> None:
        self.sampler = sampler
        self.config = config
        self.rates: ResourceSnapshot | None = None

    def sample(self) -> ResourceSnapshot:
        self.rates = smooth(self.rates, self.sampler.sample(), self.config.ewma_alpha)
        return self.rates

    def net_rates(self) -> tuple[float, float]:
        r = self.rates
        return (0.0, 0.0) if r is None else (r.net_rx_bytes_per_sec, r.net_tx_bytes_per_sec)

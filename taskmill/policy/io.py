"""The IO budget gate and resource-rate smoothing (pure: the samples come from outside)."""

from __future__ import annotations

import msgspec

from .dispatch import ewma

WINDOW_S = 2.0  # capacity = smoothed throughput over this window
HEADROOM = 0.8  # admit while expected IO stays within this share of the capacity


class ResourceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Rates observed on the machine: CPU use in [0, 1], bytes per second on each IO axis."""

    cpu_usage: float = 0.0
    io_read_bytes_per_sec: float = 0.0
    io_write_bytes_per_sec: float = 0.0
    net_rx_bytes_per_sec: float = 0.0
    net_tx_bytes_per_sec: float = 0.0


def smooth(previous: ResourceSnapshot | None, raw: ResourceSnapshot, alpha: float) -> ResourceSnapshot:
    """EWMA per field; the first sample is taken as is."""
    if previous is None:
        return raw
    f = msgspec.structs.asdict
    p, r = f(previous), f(raw)
    return ResourceSnapshot(**{k: ewma(p[k], r[k], alpha) for k in r})


IoVector = tuple[int, int, int, int]  # expected bytes: disk read, disk write, net rx, net tx


def _axis_ok(running: int, own: int, rate: float) -> bool:
    # Nothing else expected on this axis: the task runs alone, however big — the gate spreads IO-heavy work
    # out, it never starves it (observed throughput is low precisely while nothing runs).
    return rate <= 0 or running <= 0 or running + own <= HEADROOM * rate * WINDOW_S


def io_admits(running: IoVector, task: IoVector, rates: ResourceSnapshot | None) -> bool:
    """Whether a task's expected IO fits beside what running tasks expect, on every observed axis: their sum
    must stay within 80 % of what the machine moved in a 2-second window (smoothed).

    An axis with no observed throughput, or with nothing running on it, imposes nothing; the network axes
    apply only to tasks that declare network IO.
    """
    if rates is None or not any(task):
        return True
    r = rates
    if task[0] or task[1]:
        if not (_axis_ok(running[0], task[0], r.io_read_bytes_per_sec)
                and _axis_ok(running[1], task[1], r.io_write_bytes_per_sec)):  # fmt: skip
            return False
    if task[2] or task[3]:
        if not (_axis_ok(running[2], task[2], r.net_rx_bytes_per_sec)
                and _axis_ok(running[3], task[3], r.net_tx_bytes_per_sec)):  # fmt: skip
            return False
    return True

"""Progress as the scheduler reports it: byte-level progress of running tasks and estimated progress."""

from __future__ import annotations

import msgspec

from .events import EventHeader


class TaskProgress(msgspec.Struct, frozen=True):
    """Byte-level progress of one running task (``scheduler.byte_progress()``, ``subscribe_progress()``).

    ``throughput_bps`` is a moving average of recent reports (weight 0.3 for the newest); ``eta`` is the
    seconds left at that rate, when the total is known. ``elapsed``: seconds since the attempt started.
    """

    task_id: int
    task_type: str
    key: str
    label: str
    bytes_completed: int
    bytes_total: int | None
    throughput_bps: float
    elapsed: float
    eta: float | None = None


class EstimatedProgress(msgspec.Struct, frozen=True):
    """How far a running task is. ``reported``: the executor's own figure (``ctx.progress.report()``, or its
    byte count over its byte total), None if it reports nothing. ``extrapolated``: a guess from the average
    duration of the type's recent completed runs, never above 0.99; None without history. ``percent``: the
    reported figure if any, else the extrapolated one, else 0 — a fraction in [0, 1] despite the name."""

    header: EventHeader
    reported: float | None
    extrapolated: float | None
    percent: float
    message: str | None = None

"""Progress arithmetic: byte throughput, time left, and progress extrapolated from past runs. Pure functions
over explicit times (seconds), so they are tested with made-up clocks."""

from __future__ import annotations

ALPHA = 0.3  # weight of the newest throughput sample
MIN_SAMPLE_GAP = 0.010  # seconds: closer samples are ignored (a burst of frames read in one go)
EXTRAPOLATION_CAP = 0.99  # a guess never claims a task is done; only its completion does


class Throughput:
    """Bytes per second as an exponentially weighted moving average of the rate between samples.

    The first sample only sets the baseline (rate 0); a sample less than :data:`MIN_SAMPLE_GAP` after the
    previous one is ignored, so a backlog of reports read at once does not count as an infinite rate.
    """

    __slots__ = ("_done", "_t", "bps")

    def __init__(self) -> None:
        self.bps = 0.0
        self._t: float | None = None
        self._done = 0

    def sample(self, done: int, t: float) -> None:
        if self._t is None:
            self._t, self._done = t, done
            return
        dt = t - self._t
        if dt < MIN_SAMPLE_GAP:
            return
        rate = max(done - self._done, 0) / dt
        self.bps = ALPHA * rate + (1.0 - ALPHA) * self.bps
        self._t, self._done = t, done


def eta(done: int, total: int | None, bps: float) -> float | None:
    """Seconds left at the current rate, when the total is known, the rate is positive and work remains."""
    if total is None or bps <= 0 or done >= total:
        return None
    return (total - done) / bps


def extrapolate(
    avg_duration: float | None, started: float | None, now: float, reported: float | None = None,
    reported_at: float | None = None,
) -> float | None:  # fmt: skip
    """How far a running task probably is, from the average duration of recent runs of its type.

    Without a report: elapsed time over the average. With a report ``reported`` at ``reported_at``: move on
    from it at the mean of the historical rate (1 / average) and the rate the task showed up to its report.
    Capped at :data:`EXTRAPOLATION_CAP`. None without history (or without a start time).
    """
    if avg_duration is None or avg_duration <= 0 or started is None:
        return None
    if reported is None or reported_at is None:
        return min(max(now - started, 0.0) / avg_duration, EXTRAPOLATION_CAP)
    own_rate = reported / max(reported_at - started, 0.001)
    blended = (1.0 / avg_duration + own_rate) / 2.0
    return min(reported + blended * max(now - reported_at, 0.0), EXTRAPOLATION_CAP)

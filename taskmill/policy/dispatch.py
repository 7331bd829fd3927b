"""Pure dispatch decisions: how deep to prefetch, and when to send a worker its next task ahead of time, from
the recent durations of each task type."""

from __future__ import annotations

import time
from collections.abc import Callable

PREFETCH_BUDGET_MS = 2.0
MAX_PREFETCH = 256
AHEAD_MAX_MS = 50.0  # longer tasks gain < 2% from hiding the round trip: they keep waiting for their worker
AHEAD_MAX_SPREAD = 0.5  # ... and so do types whose durations stray more than this share of their mean


def prefetch_depth(avg_duration_ms: float | None) -> int:
    """Tasks to hand one worker at once. Only sub-millisecond work is batched, so a more urgent task never
    waits more than about ``PREFETCH_BUDGET_MS`` behind prefetched ones; anything slower goes one at a time."""
    if avg_duration_ms is None:
        return 1
    return max(
        1,
        min(MAX_PREFETCH, int(PREFETCH_BUDGET_MS / max(avg_duration_ms, PREFETCH_BUDGET_MS / MAX_PREFETCH))),
    )


def ahead_at(head_since: float, expected_ms: float | None, spread_ms: float | None) -> float | None:
    """When (monotonic seconds) to send a worker the next task to queue behind the one it runs, which started
    at ``head_since``: once that one is expected to end within ``PREFETCH_BUDGET_MS``, the same promise prefetch
    keeps (work queued ahead of a task is expected to take at most the budget). The task then arrives before
    the worker is free, and the dispatch round trip (result to the supervisor, claim, frame back: ~0.7 ms on a
    2-core VM) no longer idles it between tasks of a few milliseconds. A type shorter than the budget may have
    its next task at once (prefetch, when it is on, batches those deeper). None: never, for a type of unknown
    duration, one longer than ``AHEAD_MAX_MS``, or one whose durations vary (mean deviation over
    ``AHEAD_MAX_SPREAD`` of the mean): a task queued behind one that overruns waits for it, even if another
    worker goes idle."""
    if expected_ms is None or spread_ms is None or expected_ms > AHEAD_MAX_MS:
        return None
    if spread_ms > AHEAD_MAX_SPREAD * expected_ms:
        return None
    return head_since + max(0.0, expected_ms - PREFETCH_BUDGET_MS) / 1000.0


def ewma(previous: float | None, sample: float, alpha: float = 0.1) -> float:
    return sample if previous is None else previous + alpha * (sample - previous)


class DurationTracker:
    """Recent executor durations per task type, to size prefetch by the slowest type still in play.

    A slow type seen within ``window`` seconds keeps prefetch off, so slow tasks never queue behind one
    another on one worker while another worker idles; a type never seen yet counts as slow.
    """

    def __init__(self, window: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._avg: dict[str, float] = {}
        self._spread: dict[str, float] = {}  # mean absolute deviation from _avg, same smoothing
        self._seen: dict[str, float] = {}
        self._depth = 1
        self._checked = 0.0

    def observe(self, task_type: str, elapsed_us: int) -> None:
        prev = self._avg.get(task_type)
        sample = elapsed_us / 1000.0
        if prev is None:
            self._avg[task_type] = sample
            self._spread[task_type] = sample  # unproven: a type is taken as steady only after a few samples
            self._checked = float("-inf")  # a type just became known: size prefetch now, not up to 50 ms later
        else:
            self._avg[task_type] = prev + 0.3 * (sample - prev)
            self._spread[task_type] += 0.3 * (abs(sample - prev) - self._spread[task_type])
        self._seen[task_type] = self.clock()

    def observe_many(self, samples: list[tuple[str, int]]) -> None:
        """``observe`` for one results message: ``(task_type, elapsed_us)`` in the order they ran."""
        avg, spread = self._avg, self._spread
        for task_type, elapsed_us in samples:
            prev = avg.get(task_type)
            if prev is None:
                self.observe(task_type, elapsed_us)
            else:
                delta = elapsed_us / 1000.0 - prev
                avg[task_type] = prev + 0.3 * delta
                spread[task_type] += 0.3 * ((delta if delta >= 0 else -delta) - spread[task_type])
        now = self.clock()
        for task_type in {t for t, _ in samples}:
            self._seen[task_type] = now

    def known(self, task_type: str) -> bool:
        return task_type in self._avg

    def ahead_at(self, task_type: str, head_since: float) -> float | None:
        """:func:`ahead_at` for a running task of ``task_type`` that started at ``head_since``."""
        return ahead_at(head_since, self._avg.get(task_type), self._spread.get(task_type))

    def depth(self) -> int:
        now = self.clock()
        if now - self._checked >= 0.05:  # recomputed at most 20 times a second
            self._checked = now
            recent = [a for t, a in self._avg.items() if now - self._seen[t] <= self.window]
            self._depth = prefetch_depth(max(recent)) if recent else 1
        return self._depth

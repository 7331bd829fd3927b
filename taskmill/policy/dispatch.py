"""Pure dispatch decisions: how deep to prefetch, from the recent durations of each task type."""

from __future__ import annotations

import time
from collections.abc import Callable

PREFETCH_BUDGET_MS = 2.0
MAX_PREFETCH = 256


def prefetch_depth(avg_duration_ms: float | None) -> int:
    """Tasks to hand one worker at once. Only sub-millisecond work is batched, so a more urgent task never
    waits more than about ``PREFETCH_BUDGET_MS`` behind prefetched ones; anything slower goes one at a time."""
    if avg_duration_ms is None:
        return 1
    return max(
        1,
        min(MAX_PREFETCH, int(PREFETCH_BUDGET_MS / max(avg_duration_ms, PREFETCH_BUDGET_MS / MAX_PREFETCH))),
    )


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
        self._seen: dict[str, float] = {}
        self._depth = 1
        self._checked = 0.0

    def observe(self, task_type: str, elapsed_us: int) -> None:
        prev = self._avg.get(task_type)
        sample = elapsed_us / 1000.0
        if prev is None:
            self._avg[task_type] = sample
            self._checked = float("-inf")  # a type just became known: size prefetch now, not up to 50 ms later
        else:
            self._avg[task_type] = prev + 0.3 * (sample - prev)
        self._seen[task_type] = self.clock()

    def observe_many(self, samples: list[tuple[str, int]]) -> None:
        """``observe`` for one results message: ``(task_type, elapsed_us)`` in the order they ran."""
        avg = self._avg
        for task_type, elapsed_us in samples:
            prev = avg.get(task_type)
            if prev is None:
                self.observe(task_type, elapsed_us)
            else:
                avg[task_type] = prev + 0.3 * (elapsed_us / 1000.0 - prev)
        now = self.clock()
        for task_type in {t for t, _ in samples}:
            self._seen[task_type] = now

    def known(self, task_type: str) -> bool:
        return task_type in self._avg

    def depth(self) -> int:
        now = self.clock()
        if now - self._checked >= 0.05:  # recomputed at most 20 times a second
            self._checked = now
            recent = [a for t, a in self._avg.items() if now - self._seen[t] <= self.window]
            self._depth = prefetch_depth(max(recent)) if recent else 1
        return self._depth

"""Pure decisions for preemption and worker recycling."""

from __future__ import annotations

import random
from collections.abc import Iterable


def urgent_priority(priorities: Iterable[int | None], preempt_priority: int | None) -> int | None:
    """The most urgent active priority that is allowed to preempt (<= ``preempt_priority``), if any."""
    if preempt_priority is None:
        return None
    best: int | None = None
    for p in priorities:
        if p is not None and p <= preempt_priority and (best is None or p < best):
            best = p
    return best


def preemption_victims(urgent: int | None, running: Iterable[tuple[tuple[int, int], int]]) -> list[tuple[int, int]]:
    """Every running attempt strictly less urgent than ``urgent`` is preempted, whatever the free capacity."""
    if urgent is None:
        return []
    return [key for key, priority in running if priority > urgent]


def resume_bound(urgent: int | None) -> int:
    """Preempted tasks resume once no active preemptor outranks them: those at or above ``urgent`` priority
    (numerically <=) may go, all of them when no preemptor is active."""
    return 255 if urgent is None else urgent


def task_limit(max_tasks: int | None, rng: random.Random | None = None) -> int | None:
    """A worker's recycling threshold, jittered ±10% so workers started together do not restart together."""
    if not max_tasks:
        return None
    jitter = (rng or random).uniform(0.9, 1.1)
    return max(1, round(max_tasks * jitter))


def should_recycle(tasks_done: int, limit: int | None, rss: int, max_rss: int | None) -> bool:
    return (limit is not None and tasks_done >= limit) or (max_rss is not None and rss > max_rss)

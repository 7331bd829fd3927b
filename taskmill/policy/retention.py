"""How often the supervisor prunes history under a retention policy.

Pruning by count finds the cut-off by skipping the newest ``keep_count`` rows of the finished-at index, which
costs O(keep_count) however few rows it then deletes. Checking every 1,000 finished tasks made that ~7 µs per
task at the default 100,000 — more than recording the task's outcome. Checking every ``keep_count / 10``
finished tasks (never more often than every 1,000) bounds the cost at ~10 index steps per task; history then
exceeds ``keep_count`` by at most a tenth between checks.
"""

from __future__ import annotations

PRUNE_EVERY_MIN = 1000


def prune_interval(keep_count: int | None) -> int:
    """Finished tasks between two pruning passes."""
    if keep_count is None:
        return PRUNE_EVERY_MIN
    return max(PRUNE_EVERY_MIN, keep_count // 10)

"""Pure dispatch decisions: how deep to prefetch, and which peeked candidates pass the caps."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..store.records import Candidate

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


def select_within_caps(
    candidates: Iterable[Candidate],
    limit: int,
    running_by_domain: Mapping[str, int],
    domain_caps: Mapping[str, int],
) -> list[int]:
    """Pick up to ``limit`` candidates in the given (priority) order, skipping any whose domain is at its cap.

    A capped candidate never blocks the ones behind it (no head-of-line blocking).
    """
    chosen: list[int] = []
    taken: dict[str, int] = {}
    for c in candidates:
        if len(chosen) >= limit:
            break
        cap = domain_caps.get(c.domain, 0)
        if cap:
            used = running_by_domain.get(c.domain, 0) + taken.get(c.domain, 0)
            if used >= cap:
                continue
            taken[c.domain] = taken.get(c.domain, 0) + 1
        chosen.append(c.id)
    return chosen

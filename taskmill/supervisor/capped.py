"""Choosing what to claim when domain caps (or async-only room) rule some runnable tasks out.

Runnable tasks are paged in priority order past the ones that cannot run now; domains already at their cap
are left out inside SQLite, so a saturated domain's backlog costs nothing. Work per turn is bounded, and a
denied task never blocks the ones behind it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import apsw

from ..policy.dispatch import select_within_caps
from ..store import dispatch
from ..store.records import Candidate
from .pool import WorkerHandle

PEEK_PAGE = 256
PEEK_MAX_PAGES = 8


def running_by_domain(workers: Sequence[WorkerHandle]) -> Counter[str]:
    """Tasks handed to workers per domain (queued ones included: caps are counted on claims)."""
    counts: Counter[str] = Counter()
    for w in workers:
        for c in w.sync:
            counts[c.domain] += 1
        for c in w.asyncs.values():
            counts[c.domain] += 1
    return counts


def select_capped(
    conn: apsw.Connection,
    workers: Sequence[WorkerHandle],
    want: int,
    caps: dict[str, int],
    accept: Callable[[Candidate], bool] | None,
) -> tuple[list[int], bool]:
    """Up to ``want`` ids to claim, and whether the runnable queue is empty (not merely capped)."""
    chosen: list[int] = []
    after = (-1, -1)
    running = dict(running_by_domain(workers))
    exhausted = False
    for _ in range(PEEK_MAX_PAGES):
        full = [d for d, n in caps.items() if running.get(d, 0) >= n]
        page = dispatch.peek_ready(conn, after, PEEK_PAGE, full)
        picked = set(select_within_caps(page, want - len(chosen), running, caps, accept))
        for c in page:
            if c.id in picked:
                chosen.append(c.id)
                running[c.domain] = running.get(c.domain, 0) + 1
        if len(page) < PEEK_PAGE:
            exhausted = True
            break
        if len(chosen) >= want:
            break
        after = (page[-1].priority, page[-1].id)
    capped = any(running.get(d, 0) >= n for d, n in caps.items())
    return chosen, exhausted and len(chosen) < want and not capped

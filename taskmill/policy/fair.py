"""Weighted fair shares of dispatch slots between groups.

Ungrouped tasks compete as one group (key None). Step 1 grants minimum slots; step 2 splits the rest by
weight (largest remainder, ties by key), bounded by each group's need and cap; what a group cannot use is
offered to the others, so the allocation is work-conserving.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class GroupDemand(msgspec.Struct, frozen=True):
    weight: int = 1
    demand: int = 0  # running + runnable
    min_slots: int = 0
    cap: int | None = None  # the group's concurrency limit


def _order(key: str | None) -> tuple[int, str]:
    return (0, "") if key is None else (1, key)


def compute_allocation(total: int, groups: Mapping[str | None, GroupDemand]) -> dict[str | None, int]:
    alloc: dict[str | None, int] = {g: 0 for g in groups}
    keys = sorted(groups, key=_order)
    limit = {g: min(d.demand, d.cap if d.cap is not None else d.demand) for g, d in groups.items()}
    remaining = total
    for g in keys:  # step 1: minimum slots
        grant = min(groups[g].min_slots, limit[g], remaining)
        if grant > 0:
            alloc[g] = grant
            remaining -= grant
    for _ in range(16):  # step 2: weighted shares, re-offering what a group cannot use
        hungry = [g for g in keys if alloc[g] < limit[g] and groups[g].weight > 0]
        if remaining <= 0 or not hungry:
            break
        weight = sum(groups[g].weight for g in hungry)
        exact = {g: remaining * groups[g].weight / weight for g in hungry}
        shares = {g: min(int(exact[g]), limit[g] - alloc[g]) for g in hungry}
        left = remaining - sum(shares.values())
        by_remainder = sorted(hungry, key=lambda g: (-(exact[g] - int(exact[g])), _order(g)))
        for g in by_remainder:
            if left <= 0:
                break
            if shares[g] < limit[g] - alloc[g]:
                shares[g] += 1
                left -= 1
        given = sum(shares.values())
        if given == 0:
            break
        for g, n in shares.items():
            alloc[g] += n
        remaining -= given
    return alloc

"""Choosing what to claim when something rules runnable tasks out: domain and group caps, rate limits,
backpressure, IO budgets — and ordering by aged priority or fair shares between groups.

Runnable tasks are read in (effective) priority order, page by page, and each passes the gate or is skipped;
what is known to be blocked (a capped domain, a full group, a type out of tokens, throttled priorities) is
left out inside SQLite. A denied task never blocks the ones behind it, and the work per turn is bounded.

With fair scheduling, slots are split between groups by weight first (pass 1), the rest goes to whatever is
most urgent (pass 2, so no slot idles while work waits), and tasks aged past the urgent threshold go before
both.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

import apsw
import msgspec

from ..policy.aging import effective_priority
from ..policy.fair import GroupDemand, compute_allocation
from ..policy.gate import THROTTLED, Gate
from ..scheduling import GroupAllocationInfo, SchedulingPolicy
from ..store import dispatch
from ..store.records import Candidate, Claimed
from .pool import WorkerHandle

PEEK_PAGE = 256
PEEK_MAX_PAGES = 8


class Selection(msgspec.Struct):
    ids: list[int]
    empty: bool  # nothing runnable at all (not merely held back)
    wake_at: float | None = None  # monotonic time a rate-limited task can start
    denials: dict[str, int] = {}  # gate reason -> tasks held back this turn


class Inflight(msgspec.Struct):
    """What workers hold. Caps limit how many tasks of a domain or group can *execute* at once: a worker runs
    its queue of sync tasks one after another, so however many of a domain it holds count as one slot; each
    async task is a slot of its own. ``group_tasks`` counts tasks (fair shares are in tasks)."""

    domain_slots: Counter[str]
    group_slots: Counter[str | None]
    group_tasks: Counter[str | None]
    total: int


def inflight(workers: Sequence[WorkerHandle]) -> Inflight:
    out = Inflight(Counter(), Counter(), Counter(), 0)
    for w in workers:
        if w.sync:
            out.domain_slots.update({c.domain for c in w.sync})
            out.group_slots.update({c.group_key for c in w.sync})
            out.group_tasks.update(c.group_key for c in w.sync)
        for c in w.asyncs.values():
            out.domain_slots[c.domain] += 1
            out.group_slots[c.group_key] += 1
            out.group_tasks[c.group_key] += 1
        out.total += len(w.sync) + len(w.asyncs)
    return out


class CapSlots:
    """Placement's side of the caps: a worker takes a task of a capped domain or group only if it already holds
    one (the task queues behind it: no new slot) or a slot is free. The gate admitted tasks on that assumption
    (:func:`queue_room`); what cannot be placed this way goes back to the queue."""

    def __init__(self, workers: Sequence[WorkerHandle], domain_caps: dict[str, int],
                 group_cap: Callable[[str | None], int]) -> None:  # fmt: skip
        self.domain_caps = domain_caps
        self.group_cap = group_cap
        self.holders: dict[tuple[str, str | None], set[int]] = {}
        self.used: Counter[tuple[str, str | None]] = Counter()
        for w in workers:
            for key in {k for c in w.sync for k, _ in self._keys(c)}:
                self.holders.setdefault(key, set()).add(w.index)
                self.used[key] += 1
            for c in w.asyncs.values():
                for key, _ in self._keys(c):
                    self.used[key] += 1

    def _keys(self, c: Candidate | Claimed) -> list[tuple[tuple[str, str | None], int]]:
        out: list[tuple[tuple[str, str | None], int]] = []
        cap = self.domain_caps.get(c.domain, 0)
        if cap:
            out.append((("d", c.domain), cap))
        if c.group_key is not None:
            gcap = self.group_cap(c.group_key)
            if gcap:
                out.append((("g", c.group_key), gcap))
        return out

    def admits(self, c: Claimed, worker: WorkerHandle | None) -> bool:
        """``worker``: the sync worker it would queue on; None for an async task (always a slot of its own)."""
        for key, cap in self._keys(c):
            if worker is not None and worker.index in self.holders.get(key, ()):
                continue
            if self.used[key] >= cap:
                return False
        return True

    def place(self, c: Claimed, worker: WorkerHandle | None) -> None:
        for key, _ in self._keys(c):
            if worker is None:
                self.used[key] += 1
            elif worker.index not in self.holders.setdefault(key, set()):
                self.holders[key].add(worker.index)
                self.used[key] += 1


def queue_room(targets: Mapping[WorkerHandle, int]) -> tuple[Counter[str], Counter[str | None]]:
    """Tasks of each domain and group that may still queue behind the workers of ``targets`` (those about to be
    refilled, or sent a task ahead, each up to its queue length) that already hold one: they take no new slot,
    so a cap does not stop them (``Claiming._assign`` places them only there)."""
    domains: Counter[str] = Counter()
    groups: Counter[str | None] = Counter()
    for w, length in targets.items():
        room = length - len(w.sync)
        if room > 0 and w.sync:
            for d in {c.domain for c in w.sync}:
                domains[d] += room
            for g in {c.group_key for c in w.sync}:
                groups[g] += room
    return domains, groups


class _Selector:
    def __init__(self, conn: apsw.Connection, gate: Gate, policy: SchedulingPolicy | None, now_ms: int,
                 accept: Callable[[Candidate], bool] | None, ceiling: int) -> None:  # fmt: skip
        self.conn = conn
        self.gate = gate
        self.aging = policy.aging if policy is not None else None
        self.now_ms = now_ms
        self.accept = accept
        self.ceiling = ceiling
        self.chosen: list[int] = []
        self.seen: set[int] = set()
        self.effective: dict[int, int] = {}
        self.denied = False
        self.exhausted = True

    def _skips(self) -> dict[str, list[str]]:
        g = self.gate
        return {"skip_domains": g.full_domains(), "skip_types": g.blocked_types(), "skip_groups": g.blocked_groups()}

    def _pages(self, group: str | None, level: int | None, size: int) -> Iterator[Candidate]:
        after = (-1, -1) if level is None else (level, -1)
        ceiling = self.ceiling if level is None else level + 1
        for _ in range(PEEK_MAX_PAGES):
            skips = self._skips()
            if any(skips.values()):
                self.denied = True  # something is held back: the queue is not empty even if this page is
            page = dispatch.peek_ready(self.conn, after, size, ceiling=ceiling, group=group, **skips)
            yield from page
            if len(page) < size:
                return
            after = (page[-1].priority, page[-1].id)
            size = PEEK_PAGE  # the first page is sized to the need; past denied tasks, read more at once
        self.exhausted = False

    def stream(self, group: str | None = dispatch.ALL, need: int = PEEK_PAGE) -> Iterator[tuple[int, Candidate]]:
        """(effective priority, candidate) in dispatch order; ``need``: how many are likely to be taken."""
        size = min(PEEK_PAGE, max(16, 2 * need))
        if self.aging is None:
            return ((c.priority, c) for c in self._pages(group, None, size))
        cfg, now = self.aging, self.now_ms
        levels = [p for p in dispatch.ready_levels(self.conn, group) if p < self.ceiling]

        def level(p: int) -> Iterator[tuple[int, int, Candidate]]:
            for c in self._pages(group, p, size):
                yield effective_priority(c.priority, c.created_at, c.pause_duration_ms, now, cfg), c.id, c

        if len(levels) == 1:
            return ((e, c) for e, _, c in level(levels[0]))
        return ((e, c) for e, _, c in heapq.merge(*(level(p) for p in levels)))

    def fill(self, stream: Iterator[tuple[int, Candidate]], limit: int,
             stop: Callable[[int], bool] | None = None) -> None:  # fmt: skip
        target = len(self.chosen) + limit
        if limit <= 0:
            self.exhausted = False
            return
        for eff, c in stream:
            if len(self.chosen) >= target:
                self.exhausted = False
                return
            if stop is not None and stop(eff):
                return
            if c.id in self.seen or (self.accept is not None and not self.accept(c)):
                continue
            if self.gate.check(c) is not None:
                self.denied = True
                continue
            self.chosen.append(c.id)
            self.seen.add(c.id)
            if eff != c.priority:
                self.effective[c.id] = eff


def build_gate(conn: apsw.Connection, policy: SchedulingPolicy | None, domain_caps: dict[str, int],
               in_domain: Counter[str], in_group: Counter[str | None],
               room: tuple[Counter[str], Counter[str | None]] | None = None) -> Gate:  # fmt: skip
    extra_domain, extra_group = room if room is not None else (Counter(), Counter())
    if policy is None:
        return Gate(now=0.0, domain_caps=domain_caps, group_caps={}, default_group_cap=0, in_domain=in_domain,
                    in_group=in_group, extra_domain=extra_domain, extra_group=extra_group)  # fmt: skip
    rates = policy.monitor.rates if policy.monitor is not None else None
    return Gate(
        now=policy.clock(), domain_caps=domain_caps, group_caps=policy.group_limits,
        default_group_cap=policy.default_group_limit, in_domain=in_domain, in_group=in_group,
        throttle_ceiling=policy.throttle_ceiling(), io_rates=rates,
        io_running=dispatch.running_expected_io(conn) if rates is not None else (0, 0, 0, 0),
        type_buckets=policy.type_buckets, group_buckets=policy.group_buckets,
        extra_domain=extra_domain, extra_group=extra_group,
    )  # fmt: skip


def select(
    conn: apsw.Connection,
    workers: Sequence[WorkerHandle],
    want: int,
    domain_caps: dict[str, int],
    policy: SchedulingPolicy | None,
    now_ms: int,
    accept: Callable[[Candidate], bool] | None = None,
    room: tuple[Counter[str], Counter[str | None]] | None = None,
) -> Selection:
    """Up to ``want`` task ids to claim now, in dispatch order. ``room``: see :func:`queue_room`."""
    f = inflight(workers)
    if policy is None:
        gate = build_gate(conn, None, domain_caps, f.domain_slots, f.group_slots, room)
        return _select(conn, gate, None, want, now_ms, accept, f.group_tasks, f.total)
    with policy.lock:
        gate = build_gate(conn, policy, domain_caps, f.domain_slots, f.group_slots, room)
        sel = _select(conn, gate, policy, want, now_ms, accept, f.group_tasks, f.total)
        policy.denials.update(gate.denials)
        policy.rate_limit_throttles += gate.denials.get("rate_limited", 0)
    return sel


def _select(
    conn: apsw.Connection, gate: Gate, policy: SchedulingPolicy | None, want: int, now_ms: int,
    accept: Callable[[Candidate], bool] | None, in_group: Counter[str | None], total: int,
) -> Selection:  # fmt: skip
    ceiling = 256
    if gate.ceiling is not None:
        ceiling = gate.ceiling
        if any(p >= ceiling for p in dispatch.ready_levels(conn)):
            gate.denials[THROTTLED] += 1  # held back by pressure: counted once per turn, not per task
    s = _Selector(conn, gate, policy, now_ms, accept, ceiling)
    if ceiling < 256:
        s.denied = s.denied or gate.denials[THROTTLED] > 0
    if policy is not None and policy.fair:
        _fair(s, policy, want, in_group, total)
    else:
        s.fill(s.stream(need=want), want)
    if policy is not None:
        policy.effective = s.effective
    return Selection(s.chosen, s.exhausted and not s.denied and len(s.chosen) < want, gate.wake_at,
                     dict(gate.denials))  # fmt: skip


def _fair(s: _Selector, policy: SchedulingPolicy, want: int, in_group: Counter[str | None], total: int) -> None:
    conn = s.conn
    capacity = total + want
    groups: set[str | None] = set(dispatch.ready_groups(conn))
    groups.update(g for g, n in in_group.items() if n)
    pending = {g: dispatch.ready_count(conn, g, capacity) for g in groups}
    ungrouped = policy.ungrouped_ready(lambda: dispatch.ready_count(conn, None, capacity))
    if ungrouped:
        groups.add(None)
        pending[None] = ungrouped
    demands = {
        g: GroupDemand(
            weight=policy.default_weight if g is None else policy.weights.get(g, policy.default_weight),
            demand=in_group[g] + pending[g],
            min_slots=0 if g is None else policy.min_slots.get(g, 0),
            cap=(s.gate.group_cap(g) or None),
        )
        for g in groups
    }
    alloc = compute_allocation(capacity, demands)
    policy.allocation = [
        GroupAllocationInfo(g, d.weight, alloc[g], in_group[g], pending[g], d.min_slots, d.cap)
        for g, d in sorted(demands.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
    ]
    aging = policy.aging
    if aging is not None and aging.urgent_threshold is not None:  # pass 0: aged past the threshold go first
        threshold = aging.urgent_threshold
        s.fill(s.stream(need=want), want, stop=lambda eff: eff > threshold)
    for g in sorted(groups, key=lambda k: (k is not None, k or "")):  # pass 1: fair shares
        room = min(alloc[g] - in_group[g], want - len(s.chosen))
        if room > 0:
            s.fill(s.stream(g, room), room)
    s.exhausted = True
    left = want - len(s.chosen)
    s.fill(s.stream(need=left), left)  # pass 2: leftover slots to the most urgent (work-conserving)


def explain(conn: apsw.Connection, workers: Sequence[WorkerHandle], domain_caps: dict[str, int],
            policy: SchedulingPolicy | None, candidate: Candidate) -> str | None:  # fmt: skip
    """Why a runnable task would not start now (a gate reason), or None if nothing holds it back."""
    f = inflight(workers)
    if policy is None:
        return build_gate(conn, None, domain_caps, f.domain_slots, f.group_slots).check(candidate, dry=True)
    with policy.lock:
        gate = build_gate(conn, policy, domain_caps, f.domain_slots, f.group_slots)
        return gate.check(candidate, dry=True)

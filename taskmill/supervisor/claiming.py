"""Claiming and handing out work within a dispatch turn (a mixin of the :class:`Dispatcher`).

How much to claim (free slots, prefetch depth, async room), which tasks (the plain ``claim_next`` path, or the
gated selection when caps, scheduling policy or async-only room rule some out), and which worker gets each.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..scheduling import SchedulingPolicy
from ..store import dispatch
from ..store.records import Claimed
from .pool import WorkerHandle
from .selection import CapSlots, queue_room, select

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..policy.dispatch import DurationTracker
    from ..registry import Registry
    from ..store import Store
    from .workflow import Workflow

REFILL_HEAD_AGE_S = 0.01
header = ev.header_of


AHEAD_QUEUE = 2  # a worker sent a task ahead holds the one it runs and that one


class Claiming:
    if TYPE_CHECKING:
        store: Store
        registry: Registry
        bus: ev.EventBus
        settings: Any
        policy: SchedulingPolicy | None
        policy_wake: float | None
        metrics: Metrics
        workers: list[WorkerHandle]
        durations: DurationTracker
        queue_maybe_nonempty: bool
        claiming: bool
        paused: bool
        pending_events: list[ev.Event]
        dispatched_now: list[Claimed]
        flow: Workflow
        _types: dict[str, bool]

    def _claim_and_assign(self, now: int, sends: dict[WorkerHandle, list[Claimed]]) -> list[Claimed]:
        """Claim as much as the workers can take now, then hand it out.

        A sync worker runs one task at a time; for sub-millisecond work it also holds a short queue
        (``depth``, refilled at half) so it never waits for the next turn. Only executing tasks count
        against ``max_concurrency``.
        """
        if not self.queue_maybe_nonempty:
            return []
        workers = [w for w in self.workers if w.alive and not w.retiring]
        cap = self.settings.async_concurrency
        active = sum(1 for w in workers if w.sync) + sum(len(w.asyncs) for w in workers)
        free = self.settings.max_concurrency - active
        depth = self.durations.depth() if self.settings.prefetch else 1
        idle = [w for w in workers if w.idle][: max(free, 0)]  # each can start one sync or `cap` async tasks
        # Refill a queue only behind a head that started just now: never queue work behind a long task.
        fresh = time.monotonic() - REFILL_HEAD_AGE_S
        refill = [w for w in workers if w.sync and len(w.sync) <= depth // 2 and w.head_since >= fresh]
        if depth <= 1:
            refill = []
        ahead = self._ahead(workers, depth)
        async_hosts = [w for w in workers if w.asyncs and not w.sync and len(w.asyncs) < cap]
        async_room = min(max(free, 0), sum(cap - len(w.asyncs) for w in async_hosts))
        fair = self.policy is not None and self.policy.fair
        # An idle worker may take many async tasks; fair shares are computed over what can start now instead.
        per_idle = max(depth, cap) if self.registry.has_async and not fair else depth
        want = len(idle) * per_idle + sum(depth - len(w.sync) for w in refill) + len(ahead) + async_room
        if want <= 0:
            return []
        caps = self.registry.domain_caps()
        only_async = not idle and not refill and not ahead  # room only on async hosts: claim nothing else
        policy = self.policy if self.policy is not None and self.policy.active else None
        slots: CapSlots | None = None
        if caps or only_async or policy is not None:
            room = queue_room({**dict.fromkeys(refill, depth), **dict.fromkeys(ahead, AHEAD_QUEUE)})
            ids = self._select(want, caps, only_async, policy, now, room)
            claimed = dispatch.claim_ids(self.store.conn, ids, now)
            group_cap = self._group_cap_of(policy)
            if caps or group_cap is not None:
                slots = CapSlots(self.workers, caps, group_cap or (lambda g: 0))
            if policy is not None and policy.effective:
                eff = policy.effective
                claimed.sort(key=lambda c: (eff.get(c.id, c.priority), c.id))
        else:
            claimed = dispatch.claim_next(self.store.conn, want, now)
            if len(claimed) < want:
                self.queue_maybe_nonempty = False
        claimed = self.flow.on_claimed(claimed, now)  # TTL: expire instead of running, start first-attempt clocks
        if claimed:
            self._assign(claimed, idle, refill, async_hosts, free, depth, sends, slots, ahead)
            self.flow.start_ttl(sends, now)
        return claimed

    def _ahead(self, workers: list[WorkerHandle], depth: int) -> list[WorkerHandle]:
        """Workers running one sync task that is about to end, each of which may have its next task now
        (:func:`~taskmill.policy.dispatch.ahead_at`). Only while prefetch is on and batches nothing deeper: a
        worker's next task then waits for a round trip after each one. Each head is tried once."""
        if depth > 1 or not self.settings.prefetch:
            return []
        now = time.monotonic()
        out = []
        for w in workers:
            at = self._ahead_at(w)
            if at is not None and now >= at:
                head = w.sync[0]
                w.ahead_tried = (head.id, head.attempt)
                out.append(w)
        return out

    def _ahead_at(self, w: WorkerHandle) -> float | None:
        if len(w.sync) != 1 or w.asyncs or not w.alive or w.retiring:
            return None
        head = w.sync[0]
        if w.ahead_tried == (head.id, head.attempt):
            return None
        return self.durations.ahead_at(head.task_type, w.head_since)

    def next_ahead(self) -> float | None:
        """When the loop should wake to send a busy worker its next task ahead (monotonic); None if no worker
        will be due, or the turn would claim nothing (an empty queue, a global pause, a stop): a due worker is
        marked only by a claim, so waking for it then would spin the loop."""
        if not (self.queue_maybe_nonempty and self.claiming and self.settings.prefetch) or self.paused:
            return None
        if self.durations.depth() > 1:
            return None
        due = [at for at in map(self._ahead_at, self.workers) if at is not None]
        return min(due) if due else None

    @staticmethod
    def _group_cap_of(policy: SchedulingPolicy | None) -> Callable[[str | None], int] | None:
        if policy is None or not (policy.group_limits or policy.default_group_limit):
            return None
        limits, default = dict(policy.group_limits), policy.default_group_limit
        return lambda g: 0 if g is None else limits.get(g, default)

    def _select(self, want: int, caps: dict[str, int], only_async: bool, policy: SchedulingPolicy | None,
                now: int, room: tuple[Counter[str], Counter[str | None]]) -> list[int]:  # fmt: skip
        accept = (lambda c: self._is_async(c.task_type)) if only_async else None
        sel = select(self.store.conn, self.workers, want, caps, policy, now, accept, room)
        if sel.empty and not only_async:
            self.queue_maybe_nonempty = False  # truly empty, not just held back
        self.policy_wake = sel.wake_at
        for reason, n in sel.denials.items():
            self.metrics.inc_gate_denial(reason, n)
        return sel.ids

    def _is_async(self, task_type: str) -> bool:
        found = self._types.get(task_type)
        if found is None:
            spec = self.registry.spec(task_type)
            found = self._types[task_type] = bool(spec and spec.is_async)
        return found

    def _assign(self, claimed: list[Claimed], idle: list[WorkerHandle], refill: list[WorkerHandle],
                async_hosts: list[WorkerHandle], free: int, depth: int,
                sends: dict[WorkerHandle, list[Claimed]], slots: CapSlots | None = None,
                ahead: Sequence[WorkerHandle] = ()) -> None:  # fmt: skip
        """Sync tasks go round-robin over idle and refillable workers (each up to ``depth`` queued) and those
        due for a task ahead (one behind the one they run); async tasks share workers up to
        ``async_concurrency``; ``slots`` keeps capped domains and groups within their caps. What cannot be
        placed goes back unstarted."""
        cap = self.settings.async_concurrency
        sync_targets = [*refill, *ahead]
        behind = set(ahead)
        publish = self.bus.active
        placed: list[Claimed] = []
        unplaced: list[tuple[int, int]] = []  # (self.releases holds earlier ones, cleared only after commit)
        rr = 0
        for c in claimed:
            target: WorkerHandle | None = None
            if self._is_async(c.task_type):
                if free > 0 and (slots is None or slots.admits(c, None)):
                    target = next((w for w in async_hosts if len(w.asyncs) < cap), None)
                    if target is None and idle:
                        target = idle.pop()
                        async_hosts.append(target)
                    if target is not None:
                        free -= 1
                        target.asyncs[(c.id, c.attempt)] = c
                        if slots is not None:
                            slots.place(c, None)
            else:
                if idle and free > 0:  # spread over idle workers before queueing behind busy ones
                    free -= 1
                    sync_targets.append(idle.pop())
                    sync_targets[-1].head_since = time.monotonic()
                    rr = len(sync_targets) - 1
                limit = depth if self.durations.known(c.task_type) else 1  # never queue behind the unknown
                for _ in range(len(sync_targets)):
                    w = sync_targets[rr % len(sync_targets)]
                    rr += 1
                    if len(w.sync) < (AHEAD_QUEUE if w in behind else limit) \
                            and (w.task_limit is None or w.tasks_done + len(w.sync) < w.task_limit) \
                            and (slots is None or slots.admits(c, w)):  # fmt: skip
                        target = w
                        w.sync.append(c)
                        if slots is not None:
                            slots.place(c, w)
                        break
            if target is None:
                unplaced.append((c.id, c.attempt))
                continue
            sends.setdefault(target, []).append(c)
            placed.append(c)
            if publish:
                eff = self.policy.effective.get(c.id) if self.policy is not None else None
                self.pending_events.append(ev.Dispatched(header(c, eff), target.pid, c.attempt))
        self.dispatched_now.extend(placed)  # counted by the turn after its frames are sent
        if unplaced:
            dispatch.release(self.store.conn, unplaced)
            self.queue_maybe_nonempty = True

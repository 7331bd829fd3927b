"""One dispatch turn: record what finished, promote due tasks, claim and hand out work — one transaction.

Worker callbacks only classify results into the pending lists below and wake the loop; ``turn()`` then
writes all of them, plus the next claims, in a single ``BEGIN IMMEDIATE``. Events are published after the
commit, so a subscriber never hears of a state the database does not hold.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

import msgspec

from .. import events as ev
from ..policy.dispatch import ewma, prefetch_depth, select_within_caps
from ..policy.retry import decide_failure
from ..protocol import Result, Run, TaskSpec
from ..registry import Registry
from ..store import Store, dispatch
from ..store.records import Claimed
from .pool import Inflight, WorkerHandle

log = logging.getLogger("taskmill.supervisor")
_tags = msgspec.json.Decoder(dict[str, str])
PEEK_PAGE = 256
PEEK_MAX_PAGES = 8
PRUNE_EVERY = 1000


def now_ms() -> int:
    return int(time.time() * 1000)


def header(c: Claimed) -> ev.EventHeader:
    return ev.EventHeader(c.id, c.task_type, c.key, c.label, c.priority, c.priority,
                          _tags.decode(c.tags) if c.tags else {})  # fmt: skip


class Dispatcher:
    def __init__(self, store: Store, registry: Registry, bus: ev.EventBus, settings: Any) -> None:
        self.store = store
        self.registry = registry
        self.bus = bus
        self.settings = settings  # max_concurrency, async_concurrency, prefetch, retention
        self.workers: list[WorkerHandle] = []
        self.finished: dict[str, list[list[Any]]] = {
            "completed": [],
            "failed": [],
            "dead_letter": [],
            "cancelled": [],
        }
        self.finished_tags = False
        self.retry_later: list[tuple[str, int | None, int, int]] = []
        self.inline: list[tuple[WorkerHandle | None, Inflight, str]] = []
        self.releases: list[tuple[int, int]] = []
        self.pending_events: list[ev.Event] = []
        self.running_by_domain: Counter[str] = Counter()
        self.avg_ms: float | None = None
        self.queue_maybe_nonempty = True
        self.next_due_ms: int | None = None
        self.check_due = True
        self.claiming = True
        self.shutting_down = False
        self.since_prune = 0
        self.stats: Counter[str] = Counter()

    # -- classification (called from worker callbacks) ----------------------------------------------------
    def _pop(self, worker: WorkerHandle, r: Result) -> Inflight | None:
        key = (r.id, r.attempt)
        f = worker.asyncs.pop(key, None)
        if f is None:
            for i, g in enumerate(worker.sync):
                if g.claimed.id == r.id and g.claimed.attempt == r.attempt:
                    f = g
                    del worker.sync[i]
                    break
        if f is None:
            log.warning("stale result for task %s attempt %s ignored", r.id, r.attempt)
            return None
        self.running_by_domain[f.claimed.domain] -= 1
        return f

    def on_results(self, worker: WorkerHandle, results: list[Result]) -> None:
        for r in results:
            f = self._pop(worker, r)
            if f is not None:
                self.classify(f, r, worker if worker.alive else None)

    def classify(self, f: Inflight, r: Result, worker: WorkerHandle | None) -> None:
        c = f.claimed
        row = [c.id, r.started_ms, r.finished_ms, r.read_bytes, r.write_bytes, r.net_rx_bytes, r.net_tx_bytes,
               c.attempt, None]  # fmt: skip
        self.finished_tags = self.finished_tags or c.tags is not None
        publish = self.bus.active
        if r.status == "ok":
            self.finished["completed"].append(row)
            self.avg_ms = ewma(self.avg_ms, float(r.finished_ms - r.started_ms))
            self.stats["completed"] += 1
            if publish:
                self.pending_events.append(ev.Completed(header(c), (r.finished_ms - r.started_ms) / 1000.0))
            return
        error = r.error or r.status
        row[8] = error
        if r.status == "cancelled":
            self.finished["cancelled"].append(row)
            if publish:
                self.pending_events.append(ev.Cancelled(header(c)))
            return
        d = decide_failure(retryable=r.retryable, retry_count=c.retry_count, max_retries=f.max_retries,
                           policy=f.policy, retry_after=r.retry_after)  # fmt: skip
        self.stats[d.kind] += 1
        if d.kind == "fail":
            self.finished["failed"].append(row)
            if publish:
                self.pending_events.append(ev.Failed(header(c), error, False, None, c.retry_count + 1))
        elif d.kind == "dead_letter":
            self.finished["dead_letter"].append(row)
            if publish:
                self.pending_events.append(ev.DeadLettered(header(c), error, c.retry_count + 1))
        elif d.delay <= 0 and worker is not None and not self.shutting_down:
            self.inline.append((worker, f, error))
            self.running_by_domain[c.domain] += 1
            if not f.is_async:
                worker.sync.append(f)  # keep the worker's slot while the retry is recorded
            if publish:
                self.pending_events.append(ev.Failed(header(c), error, True, None, c.retry_count + 1))
        else:
            due = now_ms() + int(d.delay * 1000) if d.delay > 0 else None
            self.retry_later.append((error, due, c.id, c.attempt))
            self.check_due = True
            self.queue_maybe_nonempty = True
            if publish:
                self.pending_events.append(
                    ev.Failed(header(c), error, True, d.delay or None, c.retry_count + 1)
                )

    def on_worker_exit(self, worker: WorkerHandle, reason: str) -> None:
        """A worker died: its running attempt counts as failed, prefetched ones go back unstarted."""
        retrying = {id(f) for w, f, _ in self.inline if w is worker}
        self.inline = [(None if w is worker else w, f, e) for (w, f, e) in self.inline]
        lost_sync = [f for f in worker.sync if id(f) not in retrying]
        lost_async = list(worker.asyncs.values())
        worker.sync.clear()
        worker.asyncs.clear()
        for i, f in enumerate(lost_sync):
            self.running_by_domain[f.claimed.domain] -= 1
            if i == 0 and not self.shutting_down:
                now = now_ms()
                self.classify(f, Result(f.claimed.id, f.claimed.attempt, "error", now, now, reason), None)
            else:
                self.releases.append((f.claimed.id, f.claimed.attempt))
        for f in lost_async:
            self.running_by_domain[f.claimed.domain] -= 1
            if self.shutting_down:
                self.releases.append((f.claimed.id, f.claimed.attempt))
            else:
                now = now_ms()
                self.classify(f, Result(f.claimed.id, f.claimed.attempt, "error", now, now, reason), None)
        self.queue_maybe_nonempty = True
        if self.bus.active and not self.shutting_down:
            self.pending_events.append(ev.WorkerDied(None, worker.pid, reason))

    # -- the turn -----------------------------------------------------------------------------------------
    @property
    def has_pending_writes(self) -> bool:
        return bool(any(self.finished.values()) or self.retry_later or self.inline or self.releases)

    def turn(self) -> None:
        now = now_ms()
        sends: dict[WorkerHandle, list[TaskSpec]] = {}
        with self.store.write():
            self._write_outcomes(now, sends)
            if self.check_due or (self.next_due_ms is not None and now >= self.next_due_ms):
                if dispatch.promote_due(self.store.conn, now):
                    self.queue_maybe_nonempty = True
                self.next_due_ms = dispatch.next_run_after(self.store.conn)
                self.check_due = False
            if self.claiming:
                self._claim_and_assign(now, sends)
            if self.since_prune >= PRUNE_EVERY:
                self._prune(now)
        self._clear_outcomes()
        for worker, specs in sends.items():
            worker.send(Run(specs))
        if self.pending_events:
            events, self.pending_events = self.pending_events, []
            for e in events:
                self.bus.publish(e)

    def _write_outcomes(self, now: int, sends: dict[WorkerHandle, list[TaskSpec]]) -> None:
        conn = self.store.conn
        for status, rows in self.finished.items():
            if rows:
                dispatch.finish(conn, rows, status, had_tags=self.finished_tags)
                self.since_prune += len(rows)
                if status == "completed":
                    self.queue_maybe_nonempty = True  # a requeued task may be pending again
        if self.retry_later:
            dispatch.retry_later(conn, self.retry_later)
        for worker, f, error in self.inline:
            res = dispatch.retry_inline(conn, error, now, f.claimed.id, f.claimed.attempt)
            if res is None or worker is None or not worker.alive:
                if worker is not None and f in worker.sync:
                    worker.sync.remove(f)
                self.running_by_domain[f.claimed.domain] -= 1
                if res is not None:
                    self.releases.append((f.claimed.id, res[0]))
                continue
            f.claimed = msgspec.structs.replace(f.claimed, attempt=res[0], retry_count=res[1])
            if f.is_async:
                worker.asyncs[(f.claimed.id, f.claimed.attempt)] = f
            sends.setdefault(worker, []).append(self._spec(f))
        if self.releases:
            dispatch.release(conn, self.releases)

    def _clear_outcomes(self) -> None:
        for rows in self.finished.values():
            rows.clear()
        self.finished_tags = False
        self.retry_later.clear()
        self.inline.clear()
        self.releases.clear()

    def _spec(self, f: Inflight) -> TaskSpec:
        c = f.claimed
        return TaskSpec(c.id, c.attempt, c.task_type, c.payload, c.priority, c.retry_count, f.max_retries, c.key,
                        c.label, c.created_at, c.group_key, c.parent_id, c.tags)  # fmt: skip

    def _claim_and_assign(self, now: int, sends: dict[WorkerHandle, list[TaskSpec]]) -> None:
        if not self.queue_maybe_nonempty:
            return
        workers = [w for w in self.workers if w.alive and not w.retiring]
        cap = self.settings.async_concurrency
        active = sum(1 for w in workers if w.sync) + sum(len(w.asyncs) for w in workers)
        free = self.settings.max_concurrency - active
        idle = [w for w in workers if w.idle]
        async_hosts = [w for w in workers if w.asyncs and not w.sync and len(w.asyncs) < cap]
        slots = min(free, len(idle) + sum(cap - len(w.asyncs) for w in async_hosts))
        if slots <= 0:
            return
        depth = prefetch_depth(self.avg_ms) if self.settings.prefetch else 1
        want = slots * depth
        caps = self.registry.domain_caps()
        if caps:
            claimed = dispatch.claim_ids(self.store.conn, self._select_capped(want, caps), now)
        else:
            claimed = dispatch.claim_next(self.store.conn, want, now)
            if len(claimed) < want:
                self.queue_maybe_nonempty = False
        if claimed:
            self._assign(claimed, idle, async_hosts, slots, depth, sends)

    def _select_capped(self, want: int, caps: dict[str, int]) -> list[int]:
        chosen: list[int] = []
        after = (-1, -1)
        running = dict(self.running_by_domain)
        for _ in range(PEEK_MAX_PAGES):
            page = dispatch.peek_ready(self.store.conn, after, PEEK_PAGE)
            picked = select_within_caps(page, want - len(chosen), running, caps)
            for tid in picked:
                dom = next(c.domain for c in page if c.id == tid)
                running[dom] = running.get(dom, 0) + 1
            chosen.extend(picked)
            if len(page) < PEEK_PAGE:
                self.queue_maybe_nonempty = bool(chosen) and len(chosen) >= want
                break
            if len(chosen) >= want:
                break
            after = (page[-1].priority, page[-1].id)
        return chosen

    def _assign(self, claimed: list[Claimed], idle: list[WorkerHandle], async_hosts: list[WorkerHandle],
                slots: int, depth: int, sends: dict[WorkerHandle, list[TaskSpec]]) -> None:  # fmt: skip
        cap = self.settings.async_concurrency
        sync_rr: list[WorkerHandle] = []
        rr = 0
        publish = self.bus.active
        for c in claimed:
            spec = self.registry.spec(c.task_type)
            is_async = bool(spec and spec.is_async)
            target: WorkerHandle | None = None
            if is_async:
                target = next((w for w in async_hosts if len(w.asyncs) < cap), None)
                if target is None and idle and slots > 0:
                    target = idle.pop(0)
                    async_hosts.append(target)
                    slots -= 1
                elif target is not None and slots > 0:
                    slots -= 1
                else:
                    target = None
            else:
                if idle and slots > 0:
                    target = idle.pop(0)
                    sync_rr.append(target)
                    slots -= 1
                elif sync_rr:
                    for _ in range(len(sync_rr)):
                        w = sync_rr[rr % len(sync_rr)]
                        rr += 1
                        if len(w.sync) < depth:
                            target = w
                            break
            if target is None:
                self.releases.append((c.id, c.attempt))
                continue
            policy, default_max = self.registry.retry_for(c.task_type)
            f = Inflight(c, is_async, c.max_retries if c.max_retries is not None else default_max, policy)
            if is_async:
                target.asyncs[(c.id, c.attempt)] = f
            else:
                target.sync.append(f)
            self.running_by_domain[c.domain] += 1
            sends.setdefault(target, []).append(self._spec(f))
            if publish:
                self.pending_events.append(ev.Dispatched(header(c), target.pid, c.attempt))
        if self.releases:
            dispatch.release(self.store.conn, self.releases)
            self.releases.clear()
            self.queue_maybe_nonempty = True

    def _prune(self, now: int) -> None:
        self.since_prune = 0
        retention = self.settings.retention
        if retention is None:
            return
        if retention.keep_count is not None:
            dispatch.prune_by_count(self.store.conn, retention.keep_count)
        if retention.keep_days is not None:
            dispatch.prune_by_age(self.store.conn, now - int(retention.keep_days * 86_400_000))

    def inflight_count(self) -> int:
        return sum(len(w.sync) + len(w.asyncs) for w in self.workers)

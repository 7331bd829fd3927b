"""The supervisor's control duties, run inside each dispatch turn's transaction: honour stop requests
(cancel, supersede, pause), preempt for urgent work, resume preempted tasks, resume timed group pauses,
and watch time limits and hung workers between turns.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..policy.preempt import preemption_victims, resume_bound, urgent_priority
from ..store import control as store_control
from ..store import flow
from ..store.records import Claimed
from .pool import WorkerHandle
from .stopper import Stopper

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

log = logging.getLogger("taskmill.supervisor")


class Controller:
    def __init__(self, dispatcher: Dispatcher, settings: Any) -> None:
        self.d = dispatcher
        self.settings = settings
        self.stopper = Stopper(settings.preempt_grace, settings.cancel_hook_timeout)
        self.stopped: list[tuple[Claimed, str]] = []  # runs that stopped on request: (task, how)
        self.preempting: set[tuple[int, int]] = set()
        self.preempted_outstanding = 0
        self.next_group_resume_ms: int | None = None
        self.urgent_finished = False
        self.seen_id = 0

    def start(self) -> None:
        conn = self.d.store.conn
        self.preempted_outstanding = store_control.preempted_count(conn)
        self.seen_id = store_control.max_id(conn)
        self.next_group_resume_ms = store_control.next_group_resume(conn)

    def _inflight_keys(self) -> Iterator[tuple[int, int]]:
        for w in self.d.workers:
            for c in w.sync:
                yield (c.id, c.attempt)
            yield from w.asyncs

    def inflight(self) -> dict[tuple[int, int], tuple[WorkerHandle, Claimed]]:
        out: dict[tuple[int, int], tuple[WorkerHandle, Claimed]] = {}
        for w in self.d.workers:
            for c in w.sync:
                out[(c.id, c.attempt)] = (w, c)
            for key, c in w.asyncs.items():
                out[key] = (w, c)
        return out

    # -- inside the turn's transaction ------------------------------------------------------------------
    def apply_stopped(self, now_ms: int) -> None:
        conn = self.d.store.conn
        publish = self.d.bus.active
        for c, _ in self.stopped:
            landed = store_control.stop_applied(conn, now_ms, c.id, c.attempt)
            status, reasons = landed if landed is not None else (None, 0)
            key = (c.id, c.attempt)
            preempted = key in self.preempting
            if status == "paused" and preempted:
                self.preempted_outstanding += 1
                self.urgent_finished = True  # the urgent task may have ended already: look at resuming now
            if status is not None:
                self.d.metrics.stopped(c, status, preempted)
            if c.flags and status in ("cancelled", "superseded", "failed") and c.id not in self.d.flow.ended:
                self.d.flow.ended.append(c.id)  # its children, dependents, parent and schedule follow
            if publish and status is not None:
                h = ev.header_of(c)
                if status == "cancelled":
                    self.d.pending_events.append(ev.Cancelled(h))
                elif status == "superseded":
                    self.d.pending_events.append(ev.Superseded(h, flow.replacement_of(conn, c.key, c.id)))
                elif status == "paused":
                    self.d.pending_events.append(ev.Preempted(h) if preempted else ev.TaskPaused(h, reasons))
                elif status == "failed":
                    error = "a child task failed (fail_fast)"
                    self.d.pending_events.append(ev.Failed(h, error, False, None, c.retry_count + 1))

    def after_commit(self) -> None:
        """The turn that applied :attr:`stopped` committed (until then a rollback has it applied again)."""
        for c, _ in self.stopped:
            self.preempting.discard((c.id, c.attempt))
        self.stopped.clear()

    def on_change(self, now_ms: int) -> None:
        """Someone changed the database: pick up stop requests and timed group pauses."""
        conn = self.d.store.conn
        requests = store_control.stop_requests(conn)
        if requests:
            live = self.inflight()
            for tid, attempt, cancel_req, _reasons in requests:
                found = live.get((tid, attempt))
                if found is not None:
                    self.stopper.stop(found[0], found[1], "request", hook=cancel_req != 0)
        self.next_group_resume_ms = store_control.next_group_resume(conn)

    def resume_due_groups(self, now_ms: int) -> None:
        if self.next_group_resume_ms is None or now_ms < self.next_group_resume_ms:
            return
        conn = self.d.store.conn
        for group in store_control.due_group_resumes(conn, now_ms):
            n = store_control.resume_group(conn, group, now_ms)
            if n is not None and self.d.bus.active:
                self.d.pending_events.append(ev.GroupResumed(None, group, n))
        self.next_group_resume_ms = store_control.next_group_resume(conn)
        self.d.queue_maybe_nonempty = True

    def preempt(self, claimed: list[Claimed], changed: bool) -> None:
        """A task at or above ``preempt_priority`` that was just submitted, or that waits for a slot, preempts
        every less urgent running task. Tasks claimed in this very turn are not preempted: there was room."""
        pp = self.settings.preempt_priority
        if pp is None:
            return
        conn = self.d.store.conn
        fresh = None
        if changed:  # every turn that saw submissions, so that each scan covers only the rows since the last
            fresh, self.seen_id, more = store_control.new_urgent(conn, self.seen_id, pp)
            if more:  # a large batch: the next turn, right away, looks at the next slice
                self.d.check_submits = self.d.urgent_scan_behind = True
            else:
                self.d.urgent_scan_behind = False
        now_claimed = {(c.id, c.attempt) for c in claimed}
        if not any(key not in now_claimed for key in self._inflight_keys()):
            return  # nothing else runs: nothing to preempt (stops at the first other task, the oldest)
        head = store_control.ready_head_priority(conn)
        urgent = urgent_priority([fresh, head, *(c.priority for c in claimed)], pp)
        if urgent is None:
            return  # the usual turn: nothing urgent anywhere, so no need to look at what runs
        live = self.inflight()
        running = [(k, c.priority) for k, (_, c) in live.items() if k not in self.stopper and k not in now_claimed]
        victims = preemption_victims(urgent, running)
        if not victims:
            return
        store_control.mark_preempted(conn, victims)
        for key in victims:
            worker, c = live[key]
            self.preempting.add(key)
            self.stopper.stop(worker, c, "request")

    def resume_preempted(self, now_ms: int) -> None:
        if not self.preempted_outstanding:
            return
        live = self.inflight()
        head = store_control.ready_head_priority(self.d.store.conn)
        pp = self.settings.preempt_priority
        urgent = urgent_priority([head, *(c.priority for _, c in live.values())], pp)
        if store_control.resume_preempted(self.d.store.conn, now_ms, resume_bound(urgent)):
            self.d.queue_maybe_nonempty = True
        self.preempted_outstanding = store_control.preempted_count(self.d.store.conn)

    # -- between turns ----------------------------------------------------------------------------------
    def tick(self) -> float | None:
        """Escalate stops, enforce time limits and hang detection; returns the next deadline (monotonic)."""
        now = time.monotonic()
        nxt = self.stopper.tick(now)
        hang = self.settings.hang_timeout
        for w in self.d.workers:
            if not w.alive or w.idle or w.killed:
                continue
            if hang and now - w.last_seen > hang:
                victim = w.sync[0] if w.sync else next(iter(w.asyncs.values()))
                log.warning("worker %s sent nothing for %.1fs: killing it", w.pid, now - w.last_seen)
                self.stopper.kill_now(w, victim, "hang")
                continue
            if w.sync and (w.sync[0].id, w.sync[0].attempt) not in self.stopper:
                limit = self.d.registry.timeout_for(w.sync[0].task_type, self.settings.default_timeout)
                if limit is not None:
                    deadline = w.head_since + limit + self.settings.preempt_grace
                    if now >= deadline:
                        log.warning("task %s ignored its %ss time limit: killing worker %s", w.sync[0].id, limit, w.pid)
                        self.stopper.kill_now(w, w.sync[0], "timeout")
                    elif nxt is None or deadline < nxt:
                        nxt = deadline
            if hang:
                t = w.last_seen + hang
                nxt = t if nxt is None or t < nxt else nxt
        return nxt

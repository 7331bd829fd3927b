"""Sorting what workers report into the turn's pending lists (a mixin of the :class:`Dispatcher`).

Results from a worker's callback, and the attempts of a worker that died: completions, failures with their
retry decision, stops that landed. Nothing here writes to the database; the next turn does, in one
transaction, and only then are the events published.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..policy.preempt import should_recycle
from ..policy.retry import RetryPolicy, decide_failure
from ..protocol import Result
from ..slot import ExecutingSlot
from ..store import now_ms
from ..store.records import Claimed
from .pool import WorkerHandle

if TYPE_CHECKING:
    from ..metrics import Metrics
    from ..policy.dispatch import DurationTracker
    from ..registry import Registry
    from .control import Controller
    from .workflow import Workflow

log = logging.getLogger("taskmill.supervisor")
header = ev.header_of


class Outcomes:
    if TYPE_CHECKING:
        registry: Registry
        bus: ev.EventBus
        settings: Any
        metrics: Metrics
        durations: DurationTracker
        finished: dict[str, list[tuple[Any, ...]]]
        retry_later: list[tuple[str, int | None, int, int]]
        inline: list[tuple[WorkerHandle | None, Claimed, str]]
        releases: list[tuple[int, int]]
        pending_events: list[ev.Event]
        untag: list[int]
        queue_maybe_nonempty: bool
        check_due: bool
        shutting_down: bool
        control: Controller
        flow: Workflow

        def _is_async(self, task_type: str) -> bool: ...

    def on_results(self, worker: WorkerHandle, results: list[Result]) -> None:
        sync = worker.sync
        done = self.finished["completed"]
        publish = self.bus.active
        orders = self.control.stopper.orders
        pp = -1 if self.settings.preempt_priority is None else self.settings.preempt_priority
        ok: list[Claimed] = []
        ok_us: list[int] = []
        timed: list[tuple[str, int]] = []
        preempting = self.control.preempting
        for r in results:
            if sync and sync[0].id == r.id and sync[0].attempt == r.attempt:
                c = sync.popleft()  # the common case: results arrive in the order the worker ran them
            else:
                found = worker.asyncs.pop((r.id, r.attempt), None) or self._pop_out_of_order(worker, r)
                if found is None:
                    log.warning("stale result for task %s attempt %s ignored", r.id, r.attempt)
                    continue
                c = found
            order = orders.pop((r.id, r.attempt), None) if orders else None
            if r.elapsed_us:
                timed.append((c.task_type, r.elapsed_us))  # failures too: they size prefetch as well
            if r.status == "ok":
                if preempting:
                    preempting.discard((c.id, c.attempt))
                if not (c.flags and self.flow.took(c, r)):  # took: a parent leaving execute, the turn decides
                    if c.tags:
                        self.untag.append(c.id)  # its tags leave the index with the finished row
                    done.append((c.id, r.finished_ms, r.started_ms, r.read_bytes, r.write_bytes, r.net_rx_bytes,
                                 r.net_tx_bytes, c.attempt))  # fmt: skip
                    ok.append(c)
                    ok_us.append(r.elapsed_us)
                    if publish:
                        self.pending_events.append(ev.Completed(header(c), r.elapsed_us / 1e6))
            elif order is not None and order.reason == "request":
                self.control.stopped.append((c, r.status))
            else:
                self.classify_failure(c, r, worker if worker.alive else None)
            if c.priority <= pp:
                self.control.urgent_finished = True
        if timed:
            self.durations.observe_many(timed)
        if ok:
            self.metrics.completed_many(ok, ok_us)
        worker.tasks_done += len(results)
        if should_recycle(worker.tasks_done, worker.task_limit, worker.rss, self.settings.max_worker_memory):
            worker.retiring = True  # no new work from now on; replaced once idle
        if sync:
            worker.head_since = time.monotonic()
            if orders:
                self.control.stopper.promoted(worker)

    def _row(self, status: str, r: Result, c: Claimed, error: str | None) -> tuple[Any, ...]:
        if c.tags:
            self.untag.append(c.id)  # its tags leave the index with the finished row
        return (status, r.finished_ms, r.started_ms, r.finished_ms - r.started_ms, r.read_bytes, r.write_bytes,
                r.net_rx_bytes, r.net_tx_bytes, 1, error, c.id, c.attempt)  # fmt: skip

    @staticmethod
    def _pop_out_of_order(worker: WorkerHandle, r: Result) -> Claimed | None:
        for i, c in enumerate(worker.sync):
            if c.id == r.id and c.attempt == r.attempt:
                del worker.sync[i]
                return c
        return None

    def retry_policy(self, c: Claimed) -> tuple[RetryPolicy, int]:
        policy, default_max = self.registry.retry_for(c.task_type)
        return policy, c.max_retries if c.max_retries is not None else default_max

    def classify_failure(self, c: Claimed, r: Result, worker: WorkerHandle | None) -> None:
        publish = self.bus.active
        error = r.error or r.status
        if r.status == "cancelled":
            if c.flags:
                self.flow.ended.append(c.id)  # settled once the turn has recorded it
            self.finished["cancelled"].append(self._row("cancelled", r, c, error))
            self.metrics.cancelled += 1
            if publish:
                self.pending_events.append(ev.Cancelled(header(c)))
            return
        policy, max_retries = self.retry_policy(c)
        d = decide_failure(retryable=r.retryable, retry_count=c.retry_count, max_retries=max_retries,
                           policy=policy, retry_after=r.retry_after)  # fmt: skip
        self.metrics.failed_one(c, d.kind, r.retryable, r.elapsed_us / 1e6 if r.elapsed_us else None)
        if d.kind in ("fail", "dead_letter"):
            status = "failed" if d.kind == "fail" else "dead_letter"
            if c.flags:
                self.flow.ended.append(c.id)
            self.finished[status].append(self._row(status, r, c, error))
            if publish:
                e = ev.Failed(header(c), error, False, None, c.retry_count + 1) if d.kind == "fail" else \
                    ev.DeadLettered(header(c), error, c.retry_count + 1)  # fmt: skip
                self.pending_events.append(e)
        elif d.delay <= 0 and worker is not None and not self.shutting_down:
            self.inline.append((worker, c, error))
            if not self._is_async(c.task_type):
                worker.sync.append(c)  # keeps the worker's slot while the failed attempt is recorded
            if publish:
                self.pending_events.append(ev.Failed(header(c), error, True, None, c.retry_count + 1))
        else:
            due = now_ms() + int(d.delay * 1000) if d.delay > 0 else None
            self.retry_later.append((error, due, c.id, c.attempt))
            self.check_due = True
            self.queue_maybe_nonempty = True
            if publish:
                self.pending_events.append(ev.Failed(header(c), error, True, d.delay or None, c.retry_count + 1))

    def on_worker_exit(
        self, worker: WorkerHandle, reason: str, executing: tuple[int, int] | None = ExecutingSlot.UNKNOWN
    ) -> None:
        """A worker died: the attempt it was executing counts as failed (``executing``, read from its slot;
        between tasks, the one it had just finished if its result never arrived; if unknown, the head of its
        queue); the others go back uncounted, finished ones whose results it had not sent yet included.
        Attempts we were stopping land where their stop says (a kill after the grace period is not a
        failure)."""
        orders = self.control.stopper.forget_worker(worker)
        retrying = {id(c) for w, c, _ in self.inline if w is worker}
        self.inline = [(None if w is worker else w, c, e) for (w, c, e) in self.inline]
        lost_sync = [c for c in worker.sync if id(c) not in retrying]
        lost_async = list(worker.asyncs.values())
        worker.sync.clear()
        worker.asyncs.clear()
        now = now_ms()
        for i, c in enumerate([*lost_async, *lost_sync]):
            order = orders.get((c.id, c.attempt))
            if i < len(lost_async):
                running = True  # async ones all count
            elif executing == ExecutingSlot.UNKNOWN:
                running = i == len(lost_async)  # unsure: the head of its queue
            elif executing is None:
                running = False  # it never ran anything
            else:  # executing it, or just finished it and its result never arrived
                running = (abs(executing[0]), executing[1]) == (c.id, c.attempt)
            if order is not None and order.reason == "request":
                self.control.stopped.append((c, "killed"))
            elif order is not None:
                why = "TaskTimeout: exceeded its time limit; worker killed" if order.reason == "timeout" else \
                    f"worker hung (no heartbeat for {self.settings.hang_timeout}s); worker killed"  # fmt: skip
                self.classify_failure(c, Result(c.id, c.attempt, "error", 0, now, 0, why), None)
            elif running and not self.shutting_down:
                self.classify_failure(c, Result(c.id, c.attempt, "error", 0, now, 0, reason), None)
            else:
                self.releases.append((c.id, c.attempt))
        self.queue_maybe_nonempty = True
        if self.bus.active and not self.shutting_down:
            self.pending_events.append(ev.WorkerDied(None, worker.pid, reason))

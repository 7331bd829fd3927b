"""One dispatch turn: record what finished, promote due tasks, claim and hand out work — one transaction.

Worker callbacks only sort results into the pending lists below (:mod:`.outcomes`) and wake the loop;
``turn()`` then writes all of them, plus the next claims, in a single ``BEGIN IMMEDIATE``. Events are
published after the commit, so a subscriber never hears of a state the database does not hold. This is the
hot path: per task it does a deque pop and a tuple append; everything else is per batch.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from .. import events as ev
from .. import faults
from ..errors import StoreError
from ..metrics import Metrics
from ..policy.dispatch import DurationTracker
from ..policy.retention import prune_interval
from ..protocol import Run
from ..registry import Registry
from ..scheduling import SchedulingPolicy
from ..store import Store, dispatch, now_ms
from ..store import control as store_control
from ..store.records import Claimed
from .claiming import Claiming
from .control import Controller
from .outcomes import Outcomes
from .pool import WorkerHandle
from .workflow import Workflow

log = logging.getLogger("taskmill.supervisor")
TERMINAL = ("completed", "failed", "dead_letter", "cancelled")


header = ev.header_of


class Dispatcher(Claiming, Outcomes):
    def __init__(
        self, store: Store, registry: Registry, bus: ev.EventBus, settings: Any,
        policy: SchedulingPolicy | None = None, metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        self.store = store
        self.policy = policy  # groups, rate limits, aging, fair shares, backpressure (None: plain dispatch)
        self.policy_wake: float | None = None  # monotonic time a rate-limited task can next start
        self.registry = registry
        self.bus = bus
        self.settings = settings  # max_concurrency, async_concurrency, prefetch, retention
        self.workers: list[WorkerHandle] = []
        # Rows for dispatch.complete ("completed") and dispatch.finish (the other outcomes).
        self.finished: dict[str, list[tuple[Any, ...]]] = {s: [] for s in TERMINAL}
        self.retry_later: list[tuple[str, int | None, int, int]] = []
        self.inline: list[tuple[WorkerHandle | None, Claimed, str]] = []
        self.releases: list[tuple[int, int]] = []
        self.pending_events: list[ev.Event] = []
        self.durations = DurationTracker()
        self.queue_maybe_nonempty = True
        self.next_due_ms: int | None = None
        self.check_due = True
        self.claiming = True
        self.paused = False  # everything paused, as the last turn read it: no claims, nothing to send ahead
        self.shutting_down = False
        self.since_prune = 0
        retention = settings.retention
        self.prune_every = prune_interval(None if retention is None else retention.keep_count)
        self.metrics = metrics if metrics is not None else Metrics()
        self.untag: list[int] = []  # tasks with tags that this turn finishes (their tags leave the index)
        self._types: dict[str, bool] = {}
        self.check_control = True  # the database changed under us: look for stop requests and pauses
        self.check_submits = False  # new tasks arrived: look for urgent ones that should preempt
        self._replaced: list[tuple[WorkerHandle, Claimed, Claimed]] = []  # inline retries of this turn
        self.dispatched_now: list[Claimed] = []  # handed out this turn: counted once the frames are out
        self._counted_at: tuple[int, int] = (-1, -1)  # (data version, last insert rowid) of the last count
        # New rows remain past a bounded scan (submissions to count, urgent rows to look for): the loop runs
        # another turn at once rather than stall one turn on a large batch.
        self.counting_behind = False
        self.urgent_scan_behind = False
        self.control = Controller(self, settings)
        self.flow = Workflow(self, settings)  # children, dependencies, schedules, TTL: flagged rows only

    # -- the turn -----------------------------------------------------------------------------------------
    @property
    def has_pending_writes(self) -> bool:
        return bool(
            any(self.finished.values())
            or self.retry_later
            or self.inline
            or self.releases
            or self.control.stopped
            or self.flow.busy
        )

    def turn(self) -> None:
        now = now_ms()
        sends: dict[WorkerHandle, list[Claimed]] = {}
        finishing = faults.FAULTS and any(self.finished.values())
        mark = len(self.pending_events)
        try:
            self._turn(now, sends, finishing)
        except BaseException:
            self._roll_back(sends, mark)
            raise
        self._clear_outcomes()
        self.flow.after_commit()
        for worker, specs in sends.items():
            worker.send(Run(specs))  # type: ignore[arg-type]  # Claimed has TaskSpec's wire layout
        if faults.FAULTS and sends:
            faults.hit("after_send_to_worker")
        if self.dispatched_now:  # metrics after the frames: off the path from a claim to the executor's start
            self.metrics.dispatched_many(self.dispatched_now, now)
            self.dispatched_now = []
        self._count_submissions()
        if self.pending_events:
            events, self.pending_events = self.pending_events, []
            for e in events:
                self.bus.publish(e)

    def _turn(self, now: int, sends: dict[WorkerHandle, list[Claimed]], finishing: bool) -> None:
        control = self.control
        self._replaced.clear()
        # A turn with nothing to record but claims commits without waiting for the disk under "full": a power
        # loss that undoes a claim leaves the task pending, as recovery would have made it anyway. Outcomes and
        # control changes wait for the disk; so does an expiry met while claiming (``flow.expired``, below).
        durable = self.check_control or finishing or self.has_pending_writes or self.flow.sweep_due(now)
        self.flow.expired = False
        with self.store.write(durable):
            # The global pause as this transaction sees it: a turn can run before the wake-up that reported a
            # pause was handled, yet see tasks submitted after it; reading it here keeps them unclaimed.
            version, epoch, paused = store_control.turn_state(self.store.conn)
            self.paused = paused
            self.flow.refresh(version, epoch)
            self._write_outcomes(now, sends)
            self.flow.write(now)
            changed, self.check_control = self.check_control, False
            if changed:
                control.on_change(now)
            if changed or control.urgent_finished:
                control.resume_preempted(now)
                control.urgent_finished = False
            control.resume_due_groups(now)
            if self.check_due or (self.next_due_ms is not None and now >= self.next_due_ms):
                if dispatch.promote_due(self.store.conn, now):
                    self.queue_maybe_nonempty = True
                self.next_due_ms = dispatch.next_run_after(self.store.conn)
                self.check_due = False
            fresh, self.check_submits = self.check_submits, False
            claimed: list[Claimed] = []
            if self.claiming and self.queue_maybe_nonempty and not paused:
                claimed = self._claim_and_assign(now, sends)
            if changed or fresh or claimed:
                control.preempt(claimed, changed or fresh)
            if self.since_prune >= self.prune_every:
                self._prune(now)
            if finishing:
                faults.hit("before_terminal_commit")
        if not durable and self.flow.expired:
            try:
                dispatch.sync(self.store.conn)
            except StoreError as exc:  # the turn did commit: keep it; the next synced commit flushes the WAL
                log.warning("could not sync a turn that expired tasks (the next commit will): %s", exc)
        if faults.FAULTS and claimed:
            faults.hit("after_claim_commit")

    @property
    def rows_behind(self) -> bool:
        return self.counting_behind or self.urgent_scan_behind

    def _count_submissions(self) -> None:
        """The ``submitted`` metric, counted once the turn's frames are out: a read of its own, off the path from
        a submit to its start. Nothing is missed outside the turn's transaction: committed rows are final and
        row ids only grow. Skipped while no other connection has committed (the data version this turn read)
        and this one inserted nothing since the last count, as in a drain. A failed read is retried next turn
        (the watermark stays)."""
        mark = (self.flow.data_version, self.store.last_insert_rowid())
        if mark == self._counted_at:
            return
        try:
            self.counting_behind = self.metrics.scan_submitted(self.store.conn)
        except StoreError as exc:
            log.warning("could not count new submissions (retried next turn): %s", exc)
            return
        if not self.counting_behind:  # a large batch is counted a bounded slice per turn, not in one stall
            self._counted_at = mark

    def _roll_back(self, sends: dict[WorkerHandle, list[Claimed]], mark: int) -> None:
        """The turn's transaction rolled back (disk full, write lock held too long). Its outcomes are still
        pending and are written again next turn; undo what it handed to workers (nothing was sent), so no
        worker waits for a task it will never get, and look at everything again."""
        del self.pending_events[mark:]
        self.dispatched_now = []
        for worker, old, new in reversed(self._replaced):  # inline retries: back to the attempt the db holds
            i = next((i for i, c in enumerate(worker.sync) if c is new), None)
            if i is not None:
                worker.sync[i] = old
            else:
                worker.asyncs.pop((new.id, new.attempt), None)
        self._replaced.clear()
        for worker, specs in sends.items():
            gone = {id(c) for c in specs}
            kept = [c for c in worker.sync if id(c) not in gone]
            if len(kept) != len(worker.sync):
                worker.sync.clear()
                worker.sync.extend(kept)
            for key in [k for k, c in worker.asyncs.items() if id(c) in gone]:
                del worker.asyncs[key]
        self.queue_maybe_nonempty = self.check_due = self.check_control = True

    def _write_outcomes(self, now: int, sends: dict[WorkerHandle, list[Claimed]]) -> None:
        conn = self.store.conn
        for status, rows in self.finished.items():
            if rows:
                if status != "completed":
                    dispatch.finish(conn, rows)
                elif dispatch.complete(conn, rows):
                    self.queue_maybe_nonempty = True  # a requeued task is pending again
                self.since_prune += len(rows)
        if self.untag:
            dispatch.drop_finished_tags(conn, self.untag)
        if self.retry_later:
            dispatch.retry_later(conn, self.retry_later)
        for worker, c, error in self.inline:
            res = dispatch.retry_inline(conn, error, now, c.id, c.attempt)
            if res is None or worker is None or not worker.alive:
                if worker is not None and c in worker.sync:
                    worker.sync.remove(c)
                if res is not None:
                    self.releases.append((c.id, res[0]))
                continue
            again = msgspec.structs.replace(c, attempt=res[0], retry_count=res[1])
            self._replaced.append((worker, c, again))
            if c in worker.sync:
                worker.sync[worker.sync.index(c)] = again
            else:
                worker.asyncs[(again.id, again.attempt)] = again
            sends.setdefault(worker, []).append(again)
        if self.releases:
            dispatch.release(conn, self.releases)
        if self.control.stopped:
            self.control.apply_stopped(now)
            self.queue_maybe_nonempty = True

    def _clear_outcomes(self) -> None:
        for rows in self.finished.values():
            rows.clear()
        self.untag.clear()
        self.retry_later.clear()
        self.inline.clear()
        self.releases.clear()
        self.control.after_commit()

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

"""The supervisor's workflow duties inside each dispatch turn: spawn requests from workers, parents leaving
``execute``, settling tasks that ended (dependents, parents, children, schedules), TTL expiry.

None of this runs for plain tasks: the dispatcher hands a finished attempt here only when its row had
``flags`` set at claim time, so the no-op hot path pays one integer test per task. Another process can add
a dependent to a task that is already running; it then bumps ``dep_epoch`` in ``meta`` and the next turn
refreshes the flags it holds for running tasks (one ``PRAGMA data_version`` per turn tells whether anyone
else wrote at all).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from .. import events as ev
from ..errors import InvalidState, StoreError, SubmitError, TaskmillError
from ..protocol import ChildrenQuery, Reply, Result, Spawn
from ..store import flow
from ..store import sql_flow as q
from ..store.connection import savepoint
from ..store.records import F_CHILDREN, F_FINALIZE, F_PARENT, F_TTL, F_TTL_FIRST, Claimed, NewTask
from ..store.submit import submit_many
from ..submission import check_tags
from .pool import WorkerHandle

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

log = logging.getLogger("taskmill.supervisor")
SWEEP_BATCH = 1000
_tags = msgspec.json.Decoder(dict[str, str])


def _ms() -> int:
    return int(time.time() * 1000)


class Workflow:
    def __init__(self, dispatcher: Dispatcher, settings: Any) -> None:
        self.d = dispatcher
        self.requests: list[tuple[WorkerHandle, Spawn | ChildrenQuery]] = []
        self.replies: list[tuple[WorkerHandle, Reply]] = []
        self.events: list[ev.Event] = []  # published after the commit
        self.leaving: list[tuple[Claimed, Result]] = []  # parents whose execute returned
        self.ended: list[int] = []  # flagged tasks that ended in this turn
        self.sweep_every_ms = None if settings.expiry_sweep_interval is None else \
            int(settings.expiry_sweep_interval * 1000)  # fmt: skip
        self.next_sweep_ms: int | None = None
        self.data_version = -1
        self._epoch = -1
        self.refresh_now = False
        self.expired = False  # this turn's claims met a task past its TTL and ended it (on_claimed)
        self.ttl_first: list[Claimed] = []

    @property
    def busy(self) -> bool:
        return bool(self.requests or self.leaving or self.ended)

    def start(self, now_ms: int, ended: list[int]) -> None:
        """At supervisor start (after recovery): settle what a crash left half done."""
        conn = self.d.store.conn
        fx = flow.Effects()
        with self.d.store.write():
            flow.settle(conn, now_ms, ended, fx)
            flow.recover(conn, now_ms, fx)
        self._apply(fx)
        self.d.pending_events.extend(self.events)
        self.events.clear()
        if self.sweep_every_ms is not None:
            self.next_sweep_ms = now_ms  # expire what ran out while nobody was dispatching

    # -- worker results (callbacks, no I/O) -----------------------------------------------------------------
    def took(self, c: Claimed, r: Result) -> bool:
        """A flagged attempt completed. True if it is a parent leaving ``execute`` (the turn decides where it
        goes: waiting, finalize, or done); otherwise it completes normally and is settled after."""
        if c.flags & F_CHILDREN and not c.flags & F_FINALIZE:
            self.leaving.append((c, r))
            return True
        self.ended.append(c.id)
        return False

    # -- inside the turn's transaction ------------------------------------------------------------------
    def refresh(self, version: int, epoch: int) -> None:
        """Pick up dependents that other processes added to tasks we are running (see the module doc), given the
        turn's data version and dependency epoch."""
        conn = self.d.store.conn
        if version == self.data_version and not self.refresh_now:
            return
        self.data_version = version
        if epoch == self._epoch and not self.refresh_now:
            return
        self._epoch, self.refresh_now = epoch, False
        live = self.d.control.inflight()
        for tid, attempt, flags in conn.execute(q.RUNNING_DEPENDED_ON):
            found = live.get((tid, attempt))
            if found is not None:
                found[1].flags |= flags
            else:
                self.ended.append(int(tid))  # finished in this turn (or is about to): settle it

    def sweep_due(self, now_ms: int) -> bool:
        """The next turn expires pending tasks past their TTL (:meth:`write`)."""
        return self.next_sweep_ms is not None and now_ms >= self.next_sweep_ms

    def write(self, now_ms: int) -> None:
        """Everything gathered since the last turn. The lists are cleared only once the turn has committed
        (:meth:`after_commit`): if it rolls back, the next turn does the same work again."""
        if self.replies or self.events:  # left by a turn that rolled back: it is all done again below
            self.replies, self.events = [], []
        sweep = self.sweep_due(now_ms)
        if not (self.requests or self.leaving or self.ended or sweep):
            return  # the common case: a turn of plain tasks
        conn = self.d.store.conn
        fx = flow.Effects()
        for worker, msg in self.requests:
            reply = self._spawn(worker, msg, now_ms) if isinstance(msg, Spawn) else self._children(msg)
            self.replies.append((worker, reply))
        for c, r in self.leaving:
            spec = self.d.registry.spec(c.task_type)
            flow.leave_execute(conn, now_ms, c.id, c.attempt, r.memo, bool(spec and spec.has_finalize), fx)
        if self.ended:
            flow.settle(conn, now_ms, self.ended, fx)
        if sweep:
            if flow.expire_due(conn, now_ms, SWEEP_BATCH, fx) >= SWEEP_BATCH:
                self.next_sweep_ms = now_ms  # more to do: again next turn
            else:
                self.next_sweep_ms = now_ms + (self.sweep_every_ms or 0)
        self._apply(fx)

    def _apply(self, fx: flow.Effects) -> None:
        if fx.stop:
            self.d.check_control = True  # this turn's control pass sends the stop requests
        if fx.queued:
            self.d.queue_maybe_nonempty = True
            self.d.check_due = True
        if fx.events and self.d.bus.active:
            self.events.extend(fx.events)

    def on_claimed(self, claimed: list[Claimed], now_ms: int) -> list[Claimed]:
        """Claims past their TTL expire instead of running; first-attempt TTL clocks start once handed out
        (:meth:`start_ttl`). Returns the claims to hand out (the same list when none is flagged)."""
        if not any(c.flags for c in claimed):
            return claimed
        conn = self.d.store.conn
        keep: list[Claimed] = []
        fx = flow.Effects()
        for c in claimed:
            if not c.flags & (F_TTL | F_TTL_FIRST):
                pass
            elif c.flags & F_TTL_FIRST:
                self.ttl_first.append(c)  # its clock starts once it is handed to a worker (start_ttl)
            elif c.flags & F_TTL and c.expires_at is not None and c.expires_at <= now_ms:
                flow.expire_claimed(conn, now_ms, c.id, c.attempt, fx)
                self.expired = True  # an outcome: the turn's commit must reach the disk (Dispatcher._turn)
                continue
            keep.append(c)
        self._apply(fx)
        return keep

    def start_ttl(self, sends: dict[WorkerHandle, list[Claimed]], now_ms: int) -> None:
        """First-attempt TTL clocks start for the claims that went to a worker (not those released unplaced)."""
        if not self.ttl_first:
            return
        sent = {id(c) for batch in sends.values() for c in batch}
        for c in self.ttl_first:
            if id(c) in sent:
                self.d.store.conn.execute(q.SET_FIRST_EXPIRY, (c.id, now_ms))
                c.flags &= ~F_TTL_FIRST
        self.ttl_first.clear()

    def after_commit(self) -> None:
        if not (self.replies or self.events or self.requests or self.leaving or self.ended):
            return
        for worker, reply in self.replies:
            worker.send_urgent(reply)
        self.d.pending_events.extend(self.events)
        for done in (self.replies, self.events, self.requests, self.leaving, self.ended):
            done.clear()

    # -- requests -----------------------------------------------------------------------------------------
    def _spawn(self, worker: WorkerHandle, msg: Spawn, now_ms: int) -> Reply:
        conn = self.d.store.conn
        live = self.d.control.inflight()
        me = live.get((msg.task_id, msg.attempt))
        row = next(iter(conn.execute(q.SPAWN_PARENT, (msg.task_id,))), None)
        if me is None or row is None or row[0] != "running" or row[1] != msg.attempt or row[2] != 0:
            return Reply(msg.request_id, error="the task is no longer running (cancelled or stopped)",
                         error_kind="TaskCancelled")  # fmt: skip
        parent_id = msg.task_id
        parent = row
        if msg.sibling:
            if row[3] is None:
                return _error(msg, InvalidState(f"task {msg.task_id} has no parent: spawn_sibling needs one "
                                                "(use spawn_child, or submit a root task)"))  # fmt: skip
            parent_id = int(row[3])
            parent = next(iter(conn.execute(q.SPAWN_PARENT, (parent_id,))), None)
            if parent is None or parent[7] is not None:
                return _error(msg, InvalidState(f"parent task {parent_id} has already ended"))
        try:
            rows = [self._inherit(r, parent_id, parent, now_ms) for r in msg.rows]
        except TaskmillError as exc:
            return _error(msg, exc)
        fx = flow.Effects()
        try:
            with savepoint(conn, "spawn"):  # a refused spawn must not undo the rest of the turn
                outcomes = submit_many(conn, rows, now_ms, fx)
        except Exception as exc:
            if not isinstance(exc, SubmitError | StoreError):
                log.exception("spawn request from task %s refused", msg.task_id)
            return _error(msg, exc)
        self._apply(fx)
        if any(o.kind == "superseded" for o in outcomes):
            self.d.check_control = True  # a superseded running task must be stopped: this turn sends it
        conn.execute(q.MARK_PARENT, (parent_id,))
        found = me if parent_id == msg.task_id else next((v for k, v in live.items() if k[0] == parent_id), None)
        if found is not None:
            found[1].flags |= F_CHILDREN
        if any(r.depends_on for r in rows):
            self.refresh_now = True  # our own edges to running tasks: data_version does not show them
        self.d.queue_maybe_nonempty = True
        self.d.check_due = True
        if self.d.bus.active:
            ids = [o.id for o in outcomes if o.kind == "inserted" and o.id is not None]
            self.events.append(ev.BatchSubmitted(None, len(rows), ids, sorted({r.domain for r in rows})))
        return Reply(msg.request_id, outcomes=list(outcomes))

    def _inherit(self, r: NewTask, parent_id: int, parent: tuple[Any, ...], now_ms: int) -> NewTask:
        """A child takes the more urgent of its own and its parent's priority, the parent's remaining TTL when it
        has none of its own, and the parent's tags under its own."""
        if self.d.registry.spec(r.task_type) is None:
            raise SubmitError(f"task type {r.task_type!r} is not registered with this scheduler")
        if r.recurring_interval is not None or r.recurring_cron is not None:
            raise SubmitError("a child task cannot be recurring (its parent would wait for it forever)")
        # shape None: a worker's template stamps mean nothing here, so the store compares the rows' fields.
        changes: dict[str, Any] = {"parent_id": parent_id, "flags": r.flags | F_PARENT, "shape": None}
        changes["priority"] = min(r.priority, int(parent[4]))
        expires = parent[5]
        if r.ttl_seconds is None and expires is not None and expires > now_ms:
            changes.update(ttl_seconds=(expires - now_ms) / 1000.0, expires_at=int(expires), ttl_from="submission")
            changes["flags"] |= F_TTL
        if parent[6]:
            changes["tags"] = check_tags({**_tags.decode(parent[6]), **r.tags})
        return msgspec.structs.replace(r, **changes)

    def _children(self, msg: ChildrenQuery) -> Reply:
        return Reply(msg.request_id, children=self.d.store.children(msg.task_id))


def _error(msg: Spawn, exc: BaseException) -> Reply:
    return Reply(msg.request_id, error=str(exc), error_kind=type(exc).__name__)

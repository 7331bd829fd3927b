"""Settling what follows when tasks end: dependents, parents, children, recurring schedules.

:func:`settle` runs inside the transaction that ended the tasks (a dispatch turn, a cancel, a supersede), so
no other process ever sees a finished dependency with its dependents still blocked, or a parent whose last
child finished still ``waiting``. It only looks at rows whose ``flags`` are set, clears them once settled (a
duplicate report of the same end changes nothing), and works through a queue: ending one task can end others.

Rules (see docs/workflows.md):

- **Dependents**: a completed dependency unblocks each dependent whose last edge it was. Any other end applies
  each dependent's ``on_dependency_failure``: ``cancel`` ends it ``dependency_failed`` and takes everything
  downstream of it down the same way, whatever their own policies; ``fail`` ends it ``dependency_failed`` and
  lets its own dependents apply their policies; ``ignore`` treats the dependency as done.
- **Parents**: a child that ends ``failed``, ``dead_letter``, ``expired`` or ``dependency_failed`` under a
  ``fail_fast`` parent cancels its siblings and fails the parent (a parent still running is stopped and lands
  ``failed``). A waiting parent whose last child ended goes back to the queue for ``finalize`` (or completes
  at once if its executor has none; under ``fail_fast=False`` it then fails if any child failed).
- **Children**: a parent that ends without completing ends its unfinished children: expired with it if it
  expired, cancelled otherwise (running ones are asked to stop).
- **Recurring**: see :mod:`taskmill.store.recurring`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import apsw
import msgspec

from .. import events as ev
from . import recurring, sql, sql_control, stats
from . import sql_flow as q
from .records import F_CHILDREN, F_DEPENDENTS, F_DEPENDS, F_HAS_FINALIZE, F_PARENT, F_RECURRING

FAILURES = frozenset({"failed", "dead_letter", "expired", "dependency_failed"})


class FlowRow(msgspec.Struct, array_like=True):
    id: int
    status: str
    finished_at: int | None
    flags: int
    parent_id: int | None
    task_type: str
    key: str
    label: str
    priority: int
    tags: str | None
    created_at: int
    started_at: int | None
    last_error: str | None
    fail_fast: int
    on_dep_failure: str
    attempt: int
    cancel_requested: int


class Effects:
    """What a settle run produced: events to publish after commit, running tasks asked to stop, and whether
    anything became runnable (the dispatcher then looks at the queue and the delayed set again)."""

    __slots__ = ("events", "queued", "stop")

    def __init__(self) -> None:
        self.events: list[ev.Event] = []
        self.stop: list[int] = []
        self.queued = False


def flow_row(conn: apsw.Connection, task_id: int) -> FlowRow | None:
    row = next(iter(conn.execute(q.FLOW_ROW, (task_id,))), None)
    return None if row is None else FlowRow(*row)


def header(row: FlowRow) -> ev.EventHeader:
    return ev.header_of(row)


def replacement_of(conn: apsw.Connection, key: str, task_id: int) -> int | None:
    """The task that superseded ``task_id`` (a newer row holding its key), if it is still there."""
    row = next(iter(conn.execute(sql.REPLACEMENT_OF, (key, task_id))), None)
    return None if row is None else int(row[0])


def settle(conn: apsw.Connection, now_ms: int, ids: Iterable[int], fx: Effects) -> None:
    """Apply the consequences of the tasks ``ids`` having ended (rows not ended, or already settled, are
    skipped). Runs in the caller's write transaction."""
    _Settler(conn, now_ms, fx).run([(i, False) for i in ids])


def end_queued(conn: apsw.Connection, r: FlowRow, status: str, error: str, now_ms: int) -> bool:
    conn.execute(q.END_QUEUED, (r.id, status, now_ms, error))
    if not conn.changes():
        return False
    stats.ended(conn, r.id, status, r.task_type)
    return True


class _Settler:
    def __init__(self, conn: apsw.Connection, now_ms: int, fx: Effects) -> None:
        self.conn = conn
        self.now = now_ms
        self.fx = fx
        self.work: deque[tuple[int, bool]] = deque()  # (task id, hard cascade to its dependents)
        self.parents: dict[int, tuple[int, str, str] | None] = {}  # parent -> its first failed child, if any

    def run(self, items: Iterable[tuple[int, bool]]) -> None:
        self.work.extend(items)
        while self.work or self.parents:
            while self.work:
                self._ended(*self.work.popleft())
            if self.parents:
                pid = next(iter(self.parents))
                self._parent(pid, self.parents.pop(pid))

    # -- one task that ended ---------------------------------------------------------------------------
    def _ended(self, task_id: int, hard: bool) -> None:
        r = flow_row(self.conn, task_id)
        if r is None or r.finished_at is None or r.flags == 0:
            return
        self.conn.execute(q.CLEAR_FLAGS, (task_id,))
        if r.flags & F_DEPENDS:
            self.conn.execute(q.DELETE_EDGES_OF, (task_id,))
        if r.flags & F_CHILDREN and r.status != "completed":
            self._end_children(r)
        if r.flags & F_DEPENDENTS:
            self.dependents(task_id, r.status, hard)
        if r.flags & F_PARENT and r.parent_id is not None:
            failed = self.parents.get(r.parent_id)
            if failed is None and r.status in FAILURES:
                failed = (r.id, r.status, (r.last_error or r.status).strip().splitlines()[-1][:500])
            self.parents[r.parent_id] = failed
        if r.flags & F_RECURRING:
            recurring.after_occurrence(self.conn, self.now, r.id, r.status, header(r), self.fx)

    def _end_children(self, parent: FlowRow) -> None:
        status = "expired" if parent.status == "expired" else "cancelled"
        why = f"{status}: its parent task {parent.id} ended {parent.status}"
        for (cid,) in list(self.conn.execute(q.ACTIVE_CHILDREN, (parent.id,))):
            self.end_child(int(cid), status, why)

    def end_child(self, child_id: int, status: str, why: str) -> None:
        c = flow_row(self.conn, child_id)
        if c is None or c.finished_at is not None:
            return
        if c.status == "running":
            self.conn.execute(sql_control.REQUEST_STOP, (child_id, 1))  # a cancel request (control.CANCEL)
            self.fx.stop.append(child_id)
        elif end_queued(self.conn, c, status, why, self.now):
            e: ev.Event = ev.TaskExpired(header(c), (self.now - c.created_at) / 1000.0) if status == "expired" \
                else ev.Cancelled(header(c))  # fmt: skip
            self.fx.events.append(e)
            self.work.append((child_id, False))

    # -- dependents ------------------------------------------------------------------------------------
    def dependents(self, dep_id: int, status: str, hard: bool) -> None:
        for (did,) in list(self.conn.execute(q.DEPENDENTS_OF, (dep_id,))):
            self.conn.execute(q.DELETE_EDGE, (did, dep_id))
            d = flow_row(self.conn, int(did))
            if d is None or d.finished_at is not None:
                continue
            policy = "cancel" if hard else d.on_dep_failure
            if status == "completed" or policy == "ignore":
                self.maybe_unblock(d)
                continue
            if end_queued(self.conn, d, "dependency_failed", f"dependency task {dep_id} ended {status}", self.now):
                self.conn.execute(q.DELETE_EDGES_OF, (d.id,))
                self.fx.events.append(ev.DependencyFailed(header(d), dep_id, status, policy))
                self.work.append((d.id, policy == "cancel"))

    def maybe_unblock(self, d: FlowRow) -> None:
        if next(iter(self.conn.execute(q.HAS_EDGES, (d.id,))), None) is not None:
            return
        if next(iter(self.conn.execute(q.UNBLOCK, (d.id, self.now))), None) is not None:
            self.fx.events.append(ev.TaskUnblocked(header(d)))
            self.fx.queued = True

    # -- parents ---------------------------------------------------------------------------------------
    def _parent(self, pid: int, failed: tuple[int, str, str] | None) -> None:
        p = flow_row(self.conn, pid)
        if p is None or p.finished_at is not None:
            return
        if failed is not None and p.fail_fast:
            self.fail_parent(p, f"child task {failed[0]} {failed[1]}: {failed[2]}")
            return
        if p.status != "waiting" or next(iter(self.conn.execute(q.HAS_ACTIVE_CHILD, (pid,))), None):
            return  # still running execute (it checks when it returns), or children are still at work
        self.resolve_waiting(p)

    def fail_parent(self, p: FlowRow, error: str) -> None:
        for (cid,) in list(self.conn.execute(q.ACTIVE_CHILDREN, (p.id,))):
            self.end_child(int(cid), "cancelled", f"cancelled: a sibling failed under fail_fast ({error})")
        if p.status == "running":
            self.conn.execute(q.REQUEST_FAIL, (p.id, error))
            self.fx.stop.append(p.id)
        elif end_queued(self.conn, p, "failed", error, self.now):
            self.fx.events.append(ev.Failed(header(p), error, False, None, 0))
            self.work.append((p.id, False))

    def resolve_waiting(self, p: FlowRow) -> None:
        """Every child of a waiting parent has ended: finalize it, or end it here if there is nothing to run."""
        failed = int(next(iter(self.conn.execute(q.COUNT_FAILED_CHILDREN, (p.id,))))[0])
        if failed and (p.fail_fast or not p.flags & F_HAS_FINALIZE):
            self.fail_parent(p, f"{failed} child task(s) failed")
        elif p.flags & F_HAS_FINALIZE:
            self.conn.execute(q.TO_FINALIZE, (p.id, self.now))
            self.fx.queued = True
        else:
            self.conn.execute(q.COMPLETE_WAITING, (p.id, self.now))
            stats.ended(self.conn, p.id, "completed", p.task_type)
            self.fx.events.append(ev.Completed(header(p), 0.0))
            self.work.append((p.id, False))


def leave_execute(
    conn: apsw.Connection, now_ms: int, task_id: int, attempt: int, memo: bytes | None, has_finalize: bool,
    fx: Effects,
) -> None:  # fmt: skip
    """A parent's ``execute`` returned: wait for its children, or (none left) finalize or end it now."""
    conn.execute(q.TO_WAITING, (task_id, attempt, memo, F_HAS_FINALIZE if has_finalize else 0))
    if not conn.changes():  # a stop was asked for meanwhile (cancel, supersede, a child failed): it wins
        landed = next(iter(conn.execute(sql_control.STOP_APPLIED, (now_ms, task_id, attempt))), None)
        r = flow_row(conn, task_id)
        if landed is not None and r is not None and r.finished_at is not None:
            stats.ended(conn, r.id, r.status, r.task_type)
            h = header(r)
            e: ev.Event = ev.Cancelled(h) if r.status == "cancelled" else \
                ev.Superseded(h, replacement_of(conn, r.key, r.id)) if r.status == "superseded" else \
                ev.Failed(h, r.last_error or r.status, False, None, 0)  # fmt: skip
            fx.events.append(e)
            settle(conn, now_ms, [task_id], fx)
        return
    p = flow_row(conn, task_id)
    assert p is not None
    active = int(next(iter(conn.execute(q.COUNT_ACTIVE_CHILDREN, (task_id,))))[0])
    if active:
        fx.events.append(ev.Waiting(header(p), active))
        return
    s = _Settler(conn, now_ms, fx)
    s.resolve_waiting(p)
    s.run([])


def expire_claimed(conn: apsw.Connection, now_ms: int, task_id: int, attempt: int, fx: Effects) -> None:
    """A claimed task turned out to be past its TTL: it ends ``expired`` instead of running."""
    conn.execute(q.EXPIRE_CLAIMED, (task_id, now_ms, attempt))
    if conn.changes():
        _expired(conn, now_ms, [task_id], fx)


def expire_due(conn: apsw.Connection, now_ms: int, limit: int, fx: Effects) -> int:
    """The periodic sweep: queued, paused and blocked tasks past their TTL end ``expired``. Returns how many."""
    ids = [int(r[0]) for r in conn.execute(q.DUE_EXPIRIES, (now_ms, limit))]
    ended = []
    for tid in ids:
        conn.execute(q.END_QUEUED, (tid, "expired", now_ms, "expired: its TTL ran out before it could start"))
        if conn.changes():
            ended.append(tid)
    _expired(conn, now_ms, ended, fx)
    return len(ids)


def _expired(conn: apsw.Connection, now_ms: int, ids: list[int], fx: Effects) -> None:
    for tid in ids:
        r = flow_row(conn, tid)
        if r is not None:
            stats.ended(conn, tid, "expired", r.task_type)
            fx.events.append(ev.TaskExpired(header(r), (now_ms - r.created_at) / 1000.0))
    settle(conn, now_ms, ids, fx)


def recover(conn: apsw.Connection, now_ms: int, fx: Effects) -> None:
    """At supervisor start: drop edges of tasks no longer blocked, settle edges to tasks that ended (or vanished),
    unblock tasks with nothing left to wait for, and resolve waiting parents whose children are all done."""
    s = _Settler(conn, now_ms, fx)
    conn.execute(q.DELETE_STALE_EDGES)
    for dep, missing in list(conn.execute(q.EDGES_TO_ENDED)):
        r = None if missing else flow_row(conn, int(dep))
        s.dependents(int(dep), "missing" if r is None else r.status, False)
    for (bid,) in list(conn.execute(q.BLOCKED_WITHOUT_EDGES)):
        b = flow_row(conn, int(bid))
        if b is not None:
            s.maybe_unblock(b)
    for (wid,) in list(conn.execute(q.WAITING_IDS)):
        s.parents.setdefault(int(wid), None)
    s.run([])

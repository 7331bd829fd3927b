"""Inserting tasks with dedup: the key is occupied while a task is active (pending/running/paused/...).

Uniqueness is enforced here, inside the caller's ``BEGIN IMMEDIATE``, rather than by a UNIQUE index: the
newest non-copy row of a key is the only one that can be active, so one index seek answers "is it taken".

Duplicate strategies: ``skip`` (default; a strictly more urgent resubmission of a queued task upgrades its
priority, resubmitting a running task requeues it to run once more after it finishes), ``supersede`` (the
queued task is replaced in place, same id) and ``reject``.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import apsw
import msgspec

from .. import events as ev
from ..outcome import SubmitOutcome
from ..policy.dedup import skip_action
from . import deps, flow, recurring, sql, sql_control, stats
from . import sql_flow as q
from .connection import write_one
from .records import F_DEPENDS, NewTask

_json = msgspec.json.encode
_DUPLICATE = SubmitOutcome("duplicate")
_REJECTED = SubmitOutcome("rejected")


PAUSE_PREEMPTION, PAUSE_DOMAIN, PAUSE_GLOBAL, PAUSE_GROUP = 1, 2, 4, 8


class PausedScopes:
    """Paused domains and groups, read once per submitting transaction: a task submitted into a paused scope
    is stored paused (with that scope's reason bit) instead of pending."""

    __slots__ = ("domains", "groups")

    def __init__(self, conn: apsw.Connection | None = None) -> None:
        self.domains: set[str] = set()
        self.groups: set[str] = set()
        if conn is not None:
            for kind, name in conn.execute(sql.PAUSED_SCOPES):
                self.add(kind, name)

    def add(self, kind: str, name: str) -> None:
        (self.domains if kind == "domain" else self.groups).add(name)

    def reasons(self, t: NewTask) -> int:
        if not (self.domains or self.groups):
            return 0
        bits = PAUSE_DOMAIN if t.domain in self.domains else 0
        return bits | (PAUSE_GROUP if t.group_key is not None and t.group_key in self.groups else 0)


_NO_SCOPES = PausedScopes()  # nothing paused (shared: never added to)


def _row_params(t: NewTask, reasons: int = 0, now_ms: int = 0, blocked: bool = False) -> tuple:  # type: ignore[type-arg]
    if blocked:
        return (
            t.task_type, t.domain, t.key, t.label, t.priority, t.payload, t.created_at,
            t.expected_read_bytes, t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
            t.max_retries, t.run_after, t.parent_id, int(t.fail_fast), t.group_key, t.on_dep_failure,
            t.ttl_seconds, t.ttl_from, t.expires_at, _json(t.tags).decode() if t.tags else None,
            "blocked", 0, None, t.flags | F_DEPENDS,
        )  # fmt: skip
    return (
        t.task_type, t.domain, t.key, t.label, t.priority, t.payload, t.created_at,
        t.expected_read_bytes, t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
        t.max_retries, t.run_after, t.parent_id, int(t.fail_fast), t.group_key, t.on_dep_failure,
        t.ttl_seconds, t.ttl_from, t.expires_at, _json(t.tags).decode() if t.tags else None,
        "paused" if reasons else "pending", reasons, now_ms if reasons else None, t.flags,
    )  # fmt: skip


def _inserted(tid: int, reasons: int, blocked: bool = False) -> SubmitOutcome:
    if not (reasons or blocked):
        return SubmitOutcome("inserted", tid)
    return SubmitOutcome("inserted", tid, group_paused=bool(reasons & PAUSE_GROUP), paused=bool(reasons),
                         blocked=blocked)  # fmt: skip


def _special(t: NewTask) -> bool:
    """Rows that need more than one INSERT: dependency edges, a recurring schedule."""
    return bool(t.depends_on) or t.recurring_interval is not None or t.recurring_cron is not None


def _after_insert(conn: apsw.Connection, t: NewTask, tid: int, waits: list[tuple[int, str]]) -> None:
    if waits:
        deps.add_edges(conn, tid, waits)
    if t.recurring_interval is not None or t.recurring_cron is not None:
        recurring.set_schedule(conn, tid, t.recurring_interval, t.recurring_cron, t.recurring_tz, t.recurring_max,
                               t.run_after if t.run_after is not None else t.created_at)  # fmt: skip


def _on_conflict(
    conn: apsw.Connection,
    t: NewTask,
    existing: tuple,  # type: ignore[type-arg]
    now_ms: int,
    fx: flow.Effects | None,
) -> SubmitOutcome:
    settled = _settled(t, existing)
    if settled is not None:
        return settled
    _key, tid, status, priority, requeue, requeue_priority = existing
    strategy = t.on_duplicate
    if strategy == "supersede":
        if status in ("pending", "paused", "blocked"):
            waits = deps.active_dependencies(conn, t.depends_on, t.on_dep_failure, parent_id=t.parent_id,
                                             replacing=tid) if t.depends_on else []  # fmt: skip
            if fx is not None:
                old = flow.flow_row(conn, tid)
                if old is not None:
                    fx.events.append(ev.Superseded(flow.header(old), tid))  # replaced in place: same id
            conn.execute(sql.SUPERSEDE_COPY, (tid, now_ms))
            stats.bump(conn, "superseded", t.task_type)
            recurring.end(conn, tid)
            conn.execute(q.DELETE_EDGES_OF, (tid,))  # the replacement brings its own dependencies
            conn.execute(
                sql.SUPERSEDE_IN_PLACE,
                (
                    t.label, t.priority, t.payload, t.created_at, t.expected_read_bytes,
                    t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
                    t.max_retries, t.run_after, t.group_key, t.ttl_seconds, t.expires_at,
                    _json(t.tags).decode() if t.tags else None, tid, 0 if waits else PausedScopes(conn).reasons(t),
                    int(bool(waits)), t.flags | (F_DEPENDS if waits else 0), t.on_dep_failure, t.ttl_from,
                ),
            )  # fmt: skip
            _replace_tags(conn, tid, t.tags)
            _after_insert(conn, t, tid, waits)
            return SubmitOutcome("superseded", tid, tid, blocked=bool(waits))
        # Running (or waiting on children): ask the supervisor to stop it; its run will be recorded as
        # superseded. The new submission takes the key at once.
        conn.execute(sql_control.REQUEST_STOP, (tid, 2))
        conn.execute(sql.SUPERSEDE_WAITING, (tid, now_ms))
        ended = flow.flow_row(conn, tid) if conn.changes() else None
        if ended is not None:
            stats.ended(conn, tid, "superseded", t.task_type)
            flow.settle(conn, now_ms, [tid], fx if fx is not None else flow.Effects())  # its children end with it
        outcome = _insert(conn, t, now_ms)
        if ended is not None and fx is not None:
            fx.events.append(ev.Superseded(flow.header(ended), outcome.id))  # a running one: when it stops
        conn.execute(q.MOVE_EDGES, (tid, outcome.id))  # whatever waited for the old task waits for the new one
        if conn.changes():
            conn.execute(q.MARK_DEPENDED_ON, (outcome.id,))
        return SubmitOutcome("superseded", outcome.id, tid, outcome.group_paused, outcome.paused, outcome.blocked)
    action = skip_action(status, priority, requeue, requeue_priority, t.priority)
    if action == "upgrade":
        conn.execute(sql.UPGRADE_PRIORITY, (t.priority, tid))
        return SubmitOutcome("upgraded", tid)
    if action == "requeue":
        conn.execute(sql.SET_REQUEUE, (t.priority, tid))
        return SubmitOutcome("requeued", tid)
    return _DUPLICATE


def _replace_tags(conn: apsw.Connection, tid: int, tags: dict[str, str]) -> None:
    conn.execute(sql.DELETE_TAGS_OF, (tid,))
    if tags:
        conn.executemany(sql.INSERT_TAG, [(tid, k, v) for k, v in tags.items()])


def _active(row: tuple | None) -> tuple | None:  # type: ignore[type-arg]
    return row if row is not None and row[2] in sql.ACTIVE else None


def _insert(conn: apsw.Connection, t: NewTask, now_ms: int, scopes: PausedScopes | None = None) -> SubmitOutcome:
    waits = deps.active_dependencies(conn, t.depends_on, t.on_dep_failure, parent_id=t.parent_id) \
        if t.depends_on else []  # fmt: skip
    reasons = 0 if waits else (scopes or PausedScopes(conn)).reasons(t)
    conn.execute(sql.INSERT_TASK, _row_params(t, reasons, now_ms, bool(waits)))
    tid = conn.last_insert_rowid()
    if t.tags:
        conn.executemany(sql.INSERT_TAG, [(tid, k, v) for k, v in t.tags.items()])
    if waits or t.flags:
        _after_insert(conn, t, tid, waits)
    return _inserted(tid, reasons, bool(waits))


def _settled(t: NewTask, existing: tuple) -> SubmitOutcome | None:  # type: ignore[type-arg]
    """What a submission over the active row ``existing`` answers without writing anything: a rejection, or a
    plain duplicate under ``skip``. None: it writes (supersede, upgrade, requeue)."""
    if t.on_duplicate == "reject":
        return _REJECTED
    if t.on_duplicate == "supersede":
        return None
    _key, _tid, status, priority, requeue, requeue_priority = existing
    return _DUPLICATE if skip_action(status, priority, requeue, requeue_priority, t.priority) is None else None


def probe(conn: apsw.Connection, t: NewTask) -> SubmitOutcome | None:
    """The outcome of submitting ``t`` if a read alone settles it (:func:`_settled` over its key's active row).
    None: the write path decides. One statement in autocommit, a snapshot of committed data: it never waits for
    the write lock, and the answer is the one a write transaction would have given at that moment."""
    if t.on_duplicate == "supersede":
        return None
    existing = _active(next(iter(conn.execute(sql.EXISTING_BY_KEY, (t.key,))), None))
    return None if existing is None else _settled(t, existing)


def plain(t: NewTask) -> bool:
    """A row that is the whole task (no tags, dependencies or schedule): :func:`insert_free` can take it."""
    return not t.tags and not _special(t)


def insert_free(conn: apsw.Connection, t: NewTask) -> SubmitOutcome | None:
    """The common submit as one autocommit statement (~10% less time than :func:`submit_one`'s transaction): a
    :func:`plain` row whose key is free, while nothing is paused. None: nothing was written (the statement still
    committed, empty), and :func:`submit_one` decides in a transaction (a duplicate strategy, a pause)."""
    if not write_one(conn, sql.INSERT_FREE, _row_params(t)):
        return None
    return SubmitOutcome("inserted", conn.last_insert_rowid())


def read_epoch(conn: apsw.Connection, commits: int) -> None:
    """After a single submit that made ``commits`` commits: the supervisor epoch (client.py), read only if
    another connection wrote since the last one. The connection's data version grows by one with each of its
    own commits, written or empty, and by more once one of its transactions begins after another connection
    committed. Read after the commit: a supervisor start whose bump this misses came after the row committed,
    and that supervisor's first turn reads the row."""
    version = conn.data_version()
    if version != conn.written_version + commits:  # type: ignore[attr-defined]
        row = next(iter(conn.execute(sql.SUPERVISOR_EPOCH)), None)
        conn.supervisor_epoch = "0" if row is None else str(row[0])  # type: ignore[attr-defined]
        version = conn.data_version()
    conn.written_version = version  # type: ignore[attr-defined]


def submit_one(conn: apsw.Connection, t: NewTask, now_ms: int, fx: flow.Effects | None = None) -> SubmitOutcome:
    """Insert one task; the caller holds a write transaction (so the key check and insert are atomic)."""
    existing = None
    scopes = _NO_SCOPES
    for row in conn.execute(sql.SUBMIT_CONTEXT, (t.key,)):
        if row[0] == "task":
            existing = _active(row[1:])
        else:
            if scopes is _NO_SCOPES:
                scopes = PausedScopes()
            scopes.add(row[0], row[1])
    if existing is not None:
        return _on_conflict(conn, t, existing, now_ms, fx)
    return _insert(conn, t, now_ms, scopes)


def submit_many(
    conn: apsw.Connection, tasks: Sequence[NewTask], now_ms: int, fx: flow.Effects | None = None
) -> list[SubmitOutcome]:
    """Insert a batch in the caller's write transaction. Intra-batch duplicates: the last item wins.
    ``fx`` collects the events of supersedes (and of what they settle)."""
    if tasks:
        stats.batch(conn, len(tasks))
    last_index: dict[str, int] = {}
    for i, t in enumerate(tasks):
        last_index[t.key] = i
    existing = {
        row[0]: row
        for row in conn.execute(sql.EXISTING_BY_KEYS, (_json(list(last_index)).decode(),))
        if row[2] in sql.ACTIVE
    }
    outcomes: list[SubmitOutcome] = [_DUPLICATE] * len(tasks)
    fresh: list[int] = []
    for key, i in last_index.items():
        hit = existing.get(key)
        if hit is None:
            fresh.append(i)
        else:
            outcomes[i] = _on_conflict(conn, tasks[i], hit, now_ms, fx)
    if fresh and any(_special(tasks[i]) for i in fresh):
        fresh.sort()
        scopes = PausedScopes(conn)
        for i in fresh:  # one at a time: each may add edges or a schedule under its own new id
            outcomes[i] = _insert(conn, tasks[i], now_ms, scopes)
    elif fresh:
        fresh.sort()
        _insert_plain(conn, [tasks[i] for i in fresh], fresh, now_ms, outcomes)
    return outcomes


# NewTask fields that a run of rows inserted by one statement must share: all but key (2), label (3), payload (5)
# and tags (20). The first 20 fields are INSERT_TASK's first 20 columns, in the same order.
_shape = operator.itemgetter(0, 1, 4, *range(6, 20), 23)
_astuple = msgspec.structs.astuple
_FIELDS = [f.name for f in msgspec.structs.fields(NewTask)]
if _FIELDS[:20] != [c.strip() for c in sql.INSERT_TASK.split("(")[1].split(")")[0].split(",")][:20] or (
    _FIELDS[20], _FIELDS[23]) != ("tags", "flags"):  # fmt: skip
    raise ImportError("NewTask's fields no longer match INSERT_TASK's columns (see _shape)")
BULK_MIN = 8  # a run at least this long is inserted by INSERT_TASKS_JSON, shorter ones by executemany
# One statement's share of a batch: the JSON text carries payloads in hex and must stay far below SQLite's
# string limit (1e9 bytes); a payload larger than this goes alone, bound as a blob.
BULK_MAX_ROWS = 4096
BULK_MAX_BYTES = 1 << 20


def _insert_plain(
    conn: apsw.Connection, rows: list[NewTask], where: list[int], now_ms: int, outcomes: list[SubmitOutcome]
) -> None:
    """Insert rows without dependencies or schedules, in order, and set ``outcomes[where[k]]`` for ``rows[k]``.

    Consecutive rows of one shape (one task type's template: only key, label, payload and tags differ) go in one
    ``INSERT ... SELECT FROM json_each``: ~2 µs a row less than binding 25 parameters per row. Rows between such
    runs go in one ``executemany``."""
    scopes = PausedScopes(conn)
    shapes = [t.shape or _shape(_astuple(t)) for t in rows]  # a template's stamp, else the fields themselves
    reasons = [0] * len(rows)
    loose: list[int] = []  # rows waiting for the next executemany
    ids: list[int] = []

    def flush() -> None:
        if loose:
            conn.executemany(sql.INSERT_TASK, [_row_params(rows[k], reasons[k], now_ms) for k in loose])
            last = conn.last_insert_rowid()  # inside BEGIN IMMEDIATE, ids are consecutive
            ids.extend(range(last - len(loose) + 1, last + 1))
            loose.clear()

    start, n = 0, len(rows)
    while start < n:
        end, size = start + 1, len(rows[start].payload)
        while end < n and end - start < BULK_MAX_ROWS and shapes[end] == shapes[start]:
            size += len(rows[end].payload)
            if size > BULK_MAX_BYTES:
                break
            end += 1
        bits = scopes.reasons(rows[start])  # domain and group are part of the shape
        reasons[start:end] = [bits] * (end - start)
        if end - start >= BULK_MIN:
            flush()
            ids.extend(_insert_run(conn, rows[start:end], bits, now_ms))
        else:
            loose.extend(range(start, end))
        start = end
    flush()
    tag_rows: list[tuple[int, str, str]] = []
    for k, tid in enumerate(ids):
        outcomes[where[k]] = _inserted(tid, reasons[k])
        if rows[k].tags:
            tag_rows.extend((tid, key, value) for key, value in rows[k].tags.items())
    if tag_rows:
        conn.executemany(sql.INSERT_TAG, tag_rows)


def _insert_run(conn: apsw.Connection, run: list[NewTask], reasons: int, now_ms: int) -> Sequence[int]:
    """One statement for rows of one shape; their ids, in order."""
    first = _astuple(run[0])
    common = (first[0], first[1], first[4], *first[6:20], "paused" if reasons else "pending", reasons,
              now_ms if reasons else None, first[23])  # fmt: skip
    width, label, tags = len(first[2]), first[3], first[20]
    if all(len(t.key) == width and t.label == label and t.tags == tags for t in run):
        doc = _json([t.key + t.payload.hex() for t in run])
        conn.execute(sql.INSERT_TASKS_FLAT, (*common, doc.decode(), width, label,
                                             _json(tags).decode() if tags else None))  # fmt: skip
    else:
        doc = _json([(t.key, t.label, t.payload.hex(), _json(t.tags).decode() if t.tags else None) for t in run])
        conn.execute(sql.INSERT_TASKS_JSON, (*common, doc.decode()))
    last = conn.last_insert_rowid()
    lo = last - len(run) + 1
    ids: Sequence[int] = range(lo, last + 1)
    key_of = sql.KEY_OF
    if (next(iter(conn.execute(key_of, (lo,))), (None,))[0] != run[0].key
            or next(iter(conn.execute(key_of, (last,))), (None,))[0] != run[-1].key):  # fmt: skip
        # Not in order after all: look each id up by its key (keys of new rows are unique within a batch).
        by_key = dict(conn.execute(sql.KEYS_IN_RANGE, (lo, last)))
        ids = [by_key[t.key] for t in run]
    return ids

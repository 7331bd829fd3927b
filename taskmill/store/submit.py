"""Inserting tasks with dedup: the key is occupied while a task is active (pending/running/paused/...).

Uniqueness is enforced here, inside the caller's ``BEGIN IMMEDIATE``, rather than by a UNIQUE index: the
newest non-copy row of a key is the only one that can be active, so one index seek answers "is it taken".

Duplicate strategies: ``skip`` (default; a strictly more urgent resubmission of a queued task upgrades its
priority, resubmitting a running task requeues it to run once more after it finishes), ``supersede`` (the
queued task is replaced in place, same id) and ``reject``.
"""

from __future__ import annotations

from collections.abc import Sequence

import apsw
import msgspec

from ..errors import InvalidState
from ..outcome import SubmitOutcome
from . import sql
from .records import NewTask

_json = msgspec.json.encode
_DUPLICATE = SubmitOutcome("duplicate")
_REJECTED = SubmitOutcome("rejected")


def _row_params(t: NewTask) -> tuple:  # type: ignore[type-arg]
    return (
        t.task_type, t.domain, t.key, t.label, t.priority, t.payload, t.created_at,
        t.expected_read_bytes, t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
        t.max_retries, t.run_after, t.parent_id, int(t.fail_fast), t.group_key, t.on_dep_failure,
        t.ttl_seconds, t.ttl_from, t.expires_at, _json(t.tags).decode() if t.tags else None,
    )  # fmt: skip


def _on_conflict(conn: apsw.Connection, t: NewTask, existing: tuple, now_ms: int) -> SubmitOutcome:  # type: ignore[type-arg]
    _key, tid, status, priority, requeue, requeue_priority = existing
    strategy = t.on_duplicate
    if strategy == "reject":
        return _REJECTED
    if strategy == "supersede":
        if status in ("pending", "paused", "blocked"):
            conn.execute(sql.SUPERSEDE_COPY, (tid, now_ms))
            conn.execute(
                sql.SUPERSEDE_IN_PLACE,
                (
                    t.label, t.priority, t.payload, t.created_at, t.expected_read_bytes,
                    t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
                    t.max_retries, t.run_after, t.group_key, t.ttl_seconds, t.expires_at,
                    _json(t.tags).decode() if t.tags else None, tid,
                ),
            )  # fmt: skip
            _replace_tags(conn, tid, t.tags)
            return SubmitOutcome("superseded", tid, tid)
        raise InvalidState(
            f"task {tid} holding this key is {status}; superseding a running or waiting task is not supported "
            "yet — use on_duplicate='skip' to run it again after it finishes"
        )
    # skip
    if status in ("pending", "paused") and t.priority < priority:
        conn.execute(sql.UPGRADE_PRIORITY, (t.priority, tid))
        return SubmitOutcome("upgraded", tid)
    if status in ("running", "paused") and (
        not requeue or (255 if requeue_priority is None else requeue_priority) > t.priority
    ):
        conn.execute(sql.SET_REQUEUE, (t.priority, tid))
        return SubmitOutcome("requeued", tid)
    return _DUPLICATE


def _replace_tags(conn: apsw.Connection, tid: int, tags: dict[str, str]) -> None:
    conn.execute(sql.DELETE_TAGS_OF, (tid,))
    if tags:
        conn.executemany(sql.INSERT_TAG, [(tid, k, v) for k, v in tags.items()])


def _active(row: tuple | None) -> tuple | None:  # type: ignore[type-arg]
    return row if row is not None and row[2] in sql.ACTIVE else None


def submit_one(conn: apsw.Connection, t: NewTask, now_ms: int) -> SubmitOutcome:
    """Insert one task; the caller holds a write transaction (so the key check and insert are atomic)."""
    existing = _active(next(iter(conn.execute(sql.EXISTING_BY_KEY, (t.key,))), None))
    if existing is not None:
        return _on_conflict(conn, t, existing, now_ms)
    conn.execute(sql.INSERT_TASK, _row_params(t))
    tid = conn.last_insert_rowid()
    if t.tags:
        conn.executemany(sql.INSERT_TAG, [(tid, k, v) for k, v in t.tags.items()])
    return SubmitOutcome("inserted", tid)


def submit_many(conn: apsw.Connection, tasks: Sequence[NewTask], now_ms: int) -> list[SubmitOutcome]:
    """Insert a batch in the caller's write transaction. Intra-batch duplicates: the last item wins."""
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
            outcomes[i] = _on_conflict(conn, tasks[i], hit, now_ms)
    if fresh:
        fresh.sort()
        conn.executemany(sql.INSERT_TASK, [_row_params(tasks[i]) for i in fresh])
        # Inside BEGIN IMMEDIATE nobody else can insert, and AUTOINCREMENT hands out consecutive ids.
        last = conn.last_insert_rowid()
        first = last - len(fresh) + 1
        tag_rows = []
        for offset, i in enumerate(fresh):
            tid = first + offset
            outcomes[i] = SubmitOutcome("inserted", tid)
            if tasks[i].tags:
                tag_rows.extend((tid, k, v) for k, v in tasks[i].tags.items())
        if tag_rows:
            conn.executemany(sql.INSERT_TAG, tag_rows)
    return outcomes

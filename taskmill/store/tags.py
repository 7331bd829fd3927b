"""Tag queries over active tasks, and keeping ``task_tags`` to active tasks only.

Tags are immutable key/value pairs on a task (see ``submission.check_tags`` for the limits). ``task_tags`` has a
row per tag of every *active* task (pending, running, paused, waiting, blocked): a statement that ends a task calls
:func:`drop` and a recurring task's next occurrence calls :func:`restore`. Finished tasks keep their tags in the
row's ``tags`` column, so history records carry them; they are simply not indexed.

Without a status or domain filter a query reads ``idx_task_tags_kv`` alone; with one, each matching tag row also
looks up its task (about 1 µs each). Prefix matching is an exact, case-sensitive range on the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import apsw
import msgspec

from . import sql, sql_obs

_json = msgspec.json.encode
_SAMPLE = 1000  # to pick the most selective filter, count up to this many matches of each


def check_status(status: str | None, what: str = "tag queries cover active tasks") -> None:
    if status is not None and status not in sql.ACTIVE:
        raise ValueError(f"{what}: status must be one of {sql.ACTIVE} or None, got {status!r}")


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """``[low, high)`` holding exactly the strings that start with ``prefix`` (binary, i.e. code point, order)."""
    chars = list(prefix)
    while chars:
        nxt = ord(chars[-1]) + 1
        if nxt <= 0x10FFFF:
            chars[-1] = chr(0xE000 if 0xD800 <= nxt <= 0xDFFF else nxt)
            return prefix, "".join(chars)
        chars.pop()
    # No string is above every string with this prefix; keys are at most 64 bytes, all below this one.
    return prefix, "\U0010ffff" * 17


def _scoped(head: Sequence[Any], status: str | None, domain: str | None) -> tuple[tuple[Any, ...], int]:
    if status is None and domain is None:
        return tuple(head), 0
    return (*head, *([None] * (8 - len(head))), status, domain), 1


def drop(conn: apsw.Connection, task_id: int) -> None:
    """The task ended: its tags leave the index (the ``tags`` column keeps them)."""
    conn.execute(sql_obs.DROP_TAGS, (task_id,))


def drop_finished(conn: apsw.Connection, ids: Sequence[int]) -> None:
    """Batch form for the dispatcher: ids whose FINISH may not have applied (a requeued run) keep their tags."""
    conn.execute(sql_obs.DROP_FINISHED_TAGS, (_json(list(ids)).decode(),))


def restore(conn: apsw.Connection, task_id: int) -> None:
    conn.execute(sql_obs.RESTORE_TAGS, (task_id,))


def _order(conn: apsw.Connection, filters: Mapping[str, str]) -> list[tuple[str, str]]:
    pairs = list(filters.items())
    for k, v in pairs:
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"tag filters are str -> str, got {k!r}: {v!r}")
    if len(pairs) > sql_obs.MAX_FILTERS:
        raise ValueError(f"at most {sql_obs.MAX_FILTERS} tag filters, got {len(pairs)}")
    if len(pairs) > 1:  # drive with the rarest pair; the others are index probes
        pairs.sort(key=lambda p: int(next(iter(conn.execute(sql_obs.SAMPLE_PAIR, (p[0], p[1], _SAMPLE))))[0]))
    return pairs


def ids_by_tags(
    conn: apsw.Connection, filters: Mapping[str, str], status: str | None = None, domain: str | None = None
) -> list[int]:
    """Ids of active tasks having every ``key: value`` of ``filters`` (AND), ascending. Empty filters: []."""
    check_status(status)
    if not filters:
        return []
    pairs = _order(conn, filters)
    args, scoped = _scoped([x for p in pairs for x in p], status, domain)
    return [int(r[0]) for r in conn.execute(sql_obs.IDS_BY_TAGS[scoped][len(pairs)], args)]


def count_by_tags(
    conn: apsw.Connection, filters: Mapping[str, str], status: str | None = None, domain: str | None = None
) -> int:
    check_status(status)
    if not filters:
        return 0
    pairs = _order(conn, filters)
    args, scoped = _scoped([x for p in pairs for x in p], status, domain)
    return int(next(iter(conn.execute(sql_obs.COUNT_BY_TAGS[scoped][len(pairs)], args)))[0])


def count_by_tag(
    conn: apsw.Connection, key: str, status: str | None = None, domain: str | None = None
) -> list[tuple[str, int]]:
    """``(value, active tasks)`` for one key, most common first (ties by value)."""
    check_status(status)
    args, scoped = _scoped([key], status, domain)
    return [(str(v), int(n)) for v, n in conn.execute(sql_obs.COUNT_BY_TAG[scoped], args)]


def keys_by_prefix(
    conn: apsw.Connection, prefix: str, status: str | None = None, domain: str | None = None
) -> list[str]:
    check_status(status)
    low, high = prefix_bounds(prefix)
    if status is None and domain is None:
        return [str(r[0]) for r in conn.execute(sql_obs.TAG_KEYS_BY_PREFIX, (low, high))]
    args, _ = _scoped([low, high], status, domain)
    return [str(r[0]) for r in conn.execute(sql_obs.TAG_KEYS_BY_PREFIX_SCOPED, args)]


def ids_by_key_prefix(
    conn: apsw.Connection, prefix: str, status: str | None = None, domain: str | None = None
) -> list[int]:
    check_status(status)
    args, scoped = _scoped(prefix_bounds(prefix), status, domain)
    return [int(r[0]) for r in conn.execute(sql_obs.IDS_BY_KEY_PREFIX[scoped], args)]


def count_by_key_prefix(
    conn: apsw.Connection, prefix: str, status: str | None = None, domain: str | None = None
) -> int:
    check_status(status)
    args, scoped = _scoped(prefix_bounds(prefix), status, domain)
    return int(next(iter(conn.execute(sql_obs.COUNT_BY_KEY_PREFIX[scoped], args)))[0])

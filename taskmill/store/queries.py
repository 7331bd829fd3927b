"""Read-side queries and row → record mapping."""

from __future__ import annotations

from typing import Any

import apsw
import msgspec

from . import sql_queries
from .records import HistoryRecord, TaskRecord, ms_to_s

_tags_decoder = msgspec.json.Decoder(dict[str, str])


def _tags(raw: str | None) -> dict[str, str]:
    return _tags_decoder.decode(raw) if raw else {}


def task_from_row(r: tuple[Any, ...]) -> TaskRecord:
    return TaskRecord(
        id=r[0], task_type=r[1], domain=r[2], key=r[3], label=r[4], priority=r[5], status=r[6],
        payload=r[7], retry_count=r[8], max_retries=r[9], last_error=r[10], attempt=r[11],
        created_at=r[12] / 1000.0, started_at=ms_to_s(r[13]), run_after=ms_to_s(r[14]), parent_id=r[15],
        group_key=r[16], expected_read_bytes=r[17], expected_write_bytes=r[18], expected_net_rx_bytes=r[19],
        expected_net_tx_bytes=r[20], requeue=bool(r[21]), expires_at=ms_to_s(r[22]), tags=_tags(r[23]),
    )  # fmt: skip


def history_from_row(r: tuple[Any, ...]) -> HistoryRecord:
    return HistoryRecord(
        hid=r[0], task_id=r[1], task_type=r[2], domain=r[3], key=r[4], label=r[5], priority=r[6],
        status=r[7], payload=r[8], retry_count=r[9], max_retries=r[10], last_error=r[11],
        created_at=r[12] / 1000.0, started_at=ms_to_s(r[13]), completed_at=r[14] / 1000.0,
        duration=ms_to_s(r[15]), parent_id=r[16], group_key=r[17], actual_read_bytes=r[18],
        actual_write_bytes=r[19], actual_net_rx_bytes=r[20], actual_net_tx_bytes=r[21], tags=_tags(r[22]),
    )  # fmt: skip


def one_task(conn: apsw.Connection, query: str, args: tuple[Any, ...]) -> TaskRecord | None:
    row = next(iter(conn.execute(query, args)), None)
    return None if row is None else task_from_row(row)


def tasks(conn: apsw.Connection, query: str, args: tuple[Any, ...]) -> list[TaskRecord]:
    return [task_from_row(r) for r in conn.execute(query, args)]


def histories(conn: apsw.Connection, query: str, args: tuple[Any, ...]) -> list[HistoryRecord]:
    return [history_from_row(r) for r in conn.execute(query, args)]


def scalar(conn: apsw.Connection, query: str, args: tuple[Any, ...] = ()) -> int:
    row = next(iter(conn.execute(query, args)), None)
    return 0 if row is None or row[0] is None else int(row[0])


def status_counts(conn: apsw.Connection) -> dict[str, int]:
    counts = {"pending": 0, "running": 0, "paused": 0, "waiting": 0, "blocked": 0}
    for status, n in conn.execute(sql_queries.COUNTS):
        counts[status] = int(n)
    counts["pending"] = scalar(conn, sql_queries.COUNT_PENDING, (None,))
    return counts

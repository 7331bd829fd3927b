"""The SQLite store: every byte of SQL in taskmill lives in this package.

The names below are loaded on first use. Worker processes import this package for its plain records
(``taskmill.store.records``) and must not pay for apsw and the SQL modules they never run: that import is
most of a worker's start-up time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_getattr

_LAZY = {
    "Store": "core", "now_ms": "core", "Durability": "connection",
    "Candidate": "records", "ChildRecord": "records", "Claimed": "records", "HistoryRecord": "records",
    "NewTask": "records", "TaskRecord": "records", "TypeStats": "records",
}  # fmt: skip


__getattr__ = lazy_getattr(__name__, globals(), _LAZY)


if TYPE_CHECKING:
    from .connection import Durability
    from .core import Store, now_ms
    from .records import Candidate, ChildRecord, Claimed, HistoryRecord, NewTask, TaskRecord, TypeStats

__all__ = [
    "Candidate", "ChildRecord", "Claimed", "Durability", "HistoryRecord", "NewTask", "Store", "TaskRecord",
    "TypeStats", "now_ms",
]  # fmt: skip

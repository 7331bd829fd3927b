"""The SQLite store: every byte of SQL in taskmill lives in this package.

The names below are loaded on first use. Worker processes import this package for its plain records
(``taskmill.store.records``) and must not pay for apsw and the SQL modules they never run: that import is
most of a worker's start-up time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

_LAZY = {
    "Store": "core", "now_ms": "core", "Durability": "connection",
    "Candidate": "records", "ChildRecord": "records", "Claimed": "records", "HistoryRecord": "records",
    "NewTask": "records", "TaskRecord": "records", "TypeStats": "records",
}  # fmt: skip


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskmill.store' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .connection import Durability
    from .core import Store, now_ms
    from .records import Candidate, ChildRecord, Claimed, HistoryRecord, NewTask, TaskRecord, TypeStats

__all__ = [
    "Candidate", "ChildRecord", "Claimed", "Durability", "HistoryRecord", "NewTask", "Store", "TaskRecord",
    "TypeStats", "now_ms",
]  # fmt: skip

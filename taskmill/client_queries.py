"""Read-only queries of a client (and so of a scheduler): active tasks, history, statistics, tags.

A mixin of :class:`taskmill.Client`; every method reads through the calling thread's own connection.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from . import submission
from .store import HistoryRecord, Store, TaskRecord
from .store.records import ChildRecord, RecurringScheduleInfo, TypeStats
from .task import IoBudget

if TYPE_CHECKING:
    from .client import TaskLookup


class ClientQueries:
    if TYPE_CHECKING:

        def _store(self) -> Store: ...
        def _lookup_key(self, key: str) -> TaskLookup: ...
        def cancel_many(self, ids: Iterable[int]) -> list[int]: ...

    def task(self, task_id: int) -> TaskRecord | None:
        return self._store().task(task_id)

    def task_by_key(self, key: str) -> TaskRecord | None:
        """The active task holding the (hashed) dedup key."""
        return self._store().task_by_key(key)

    def task_lookup(self, task_type: str, key: str | None = None, payload: bytes | None = None) -> TaskLookup:
        """Find a task by qualified type and its explicit key (or its encoded payload)."""
        return self._lookup_key(submission.dedup_key(task_type, key, payload or b""))

    def pending_count(self) -> int:
        """Queued tasks, delayed ones (``run_after`` in the future) included."""
        return self._store().count("pending")

    def running_count(self) -> int:
        return self._store().count("running")

    def paused_count(self) -> int:
        return self._store().count("paused")

    def waiting_count(self) -> int:
        """Parents whose ``execute`` returned while their children are still at work."""
        return self._store().count("waiting")

    def status_counts(self) -> dict[str, int]:
        return self._store().status_counts()

    def pending_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """Queued tasks in dispatch order (priority, then submission)."""
        return self._store().tasks_by_status("pending", limit, offset)

    def running_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """Tasks claimed by the supervisor: executing, or handed to a worker to start next."""
        return self._store().tasks_by_status("running", limit, offset)

    def paused_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._store().tasks_by_status("paused", limit, offset)

    def pending_by_type(self) -> dict[str, int]:
        return self._store().pending_by_type()

    def running_io_totals(self) -> IoBudget:
        """The summed ``expected_io`` of the running tasks (what the IO budget has committed)."""
        return self._store().running_io_totals()

    def history(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        """Finished runs, newest first, with their tags and the IO their executors recorded."""
        return self._store().history(limit, offset)

    def history_by_type(self, task_type: str, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._store().history_by_type(task_type, limit, offset)

    def history_by_key(self, key: str, limit: int = 50) -> list[HistoryRecord]:
        """Finished runs holding a stored dedup key (``TaskRecord.key``), newest first."""
        return self._store().history_by_key(key, limit)

    def history_of(self, task_id: int) -> list[HistoryRecord]:
        """Every terminal record of one task id, newest first."""
        return self._store().history_of_task(task_id)

    def failed_tasks(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._store().history_by_status("failed", limit, offset)

    def dead_letter_tasks(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._store().history_by_status("dead_letter", limit, offset)

    def history_stats(self, task_type: str) -> TypeStats:
        """Counts, failure rate and average duration and IO of a type's retained history (see :class:`TypeStats`).
        Reads every retained run of the type."""
        return self._store().history_stats(task_type)

    def avg_throughput(self, task_type: str, n: int = 20) -> tuple[float, float]:
        """``(read, write)`` bytes per second, averaged over the type's last ``n`` completed runs that took
        measurable time (duration > 0); ``(0.0, 0.0)`` without any."""
        return self._store().avg_throughput(task_type, n)

    # -- tags -------------------------------------------------------------------------------------------
    # Tag queries cover active tasks (pending, running, paused, waiting, blocked); ``status`` narrows them to
    # one of those. Finished tasks keep their tags in history records. Results are sorted.
    def task_ids_by_tags(self, filters: Mapping[str, str], status: str | None = None) -> list[int]:
        """Ids of the active tasks carrying every ``key: value`` of ``filters`` (AND; up to 4 pairs). {} gives []."""
        return self._store().task_ids_by_tags(filters, status)

    def count_by_tags(self, filters: Mapping[str, str], status: str | None = None) -> int:
        return self._store().count_by_tags(filters, status)

    def count_by_tag(self, key: str, status: str | None = None) -> list[tuple[str, int]]:
        """``[(value, n)]`` of one tag key over active tasks, most common first."""
        return self._store().count_by_tag(key, status)

    def tag_values(self, key: str) -> list[tuple[str, int]]:
        """The values of a tag key among active tasks, with their counts, most common first."""
        return self._store().count_by_tag(key)

    def tag_keys_by_prefix(self, prefix: str) -> list[str]:
        """Distinct tag keys of active tasks that start with ``prefix`` (exact, case-sensitive), sorted."""
        return self._store().tag_keys_by_prefix(prefix)

    def task_ids_by_tag_key_prefix(self, prefix: str, status: str | None = None) -> list[int]:
        """Ids of active tasks with at least one tag key starting with ``prefix``."""
        return self._store().task_ids_by_tag_key_prefix(prefix, status)

    def count_by_tag_key_prefix(self, prefix: str, status: str | None = None) -> int:
        return self._store().count_by_tag_key_prefix(prefix, status)

    def cancel_by_tag_key_prefix(self, prefix: str) -> list[int]:
        """Cancel every active task with a tag key starting with ``prefix``, as :meth:`cancel` does (running
        ones are stopped); returns the ids cancelled."""
        return self.cancel_many(self.task_ids_by_tag_key_prefix(prefix))

    def task_dependencies(self, task_id: int) -> list[int]:
        """Ids of the tasks ``task_id`` still waits for (edges disappear as dependencies complete)."""
        return self._store().task_dependencies(task_id)

    def task_dependents(self, task_id: int) -> list[int]:
        """Ids of the blocked tasks still waiting for ``task_id``."""
        return self._store().task_dependents(task_id)

    def blocked_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._store().blocked(limit, offset)

    def blocked_count(self) -> int:
        return self._store().count("blocked")

    def waiting_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """Parents whose ``execute`` returned and whose children are still at work."""
        return self._store().tasks_by_status("waiting", limit, offset)

    def children(self, task_id: int) -> list[ChildRecord]:
        """The children of a task (active and ended), oldest first."""
        return self._store().children(task_id)

    def next_run_after(self) -> float | None:
        """When the next delayed task falls due (epoch seconds), or None if nothing is delayed."""
        due = self._store().next_run_after()
        return None if due is None else due / 1000.0

    def recurring_schedules(self) -> list[RecurringScheduleInfo]:
        """Every live recurring schedule (one row each, whatever occurrence it is at)."""
        return self._store().recurring_schedules()

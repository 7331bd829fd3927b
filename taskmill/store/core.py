""":class:`Store`: one apsw connection to the task database, with the operations every process needs.

It is not shared between threads: the scheduler gives each thread its own (see ``taskmill.scheduler``), and
worker processes never open one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

import apsw

from .. import faults
from ..errors import InvalidState, NotFound
from ..outcome import SubmitOutcome
from ..task import IoBudget
from . import control, deps, dispatch, flow, queries, recurring, sql, sql_obs, sql_queries, stats, tags
from . import sql_flow as q
from .connection import Durability, open_connection, read_tx, translate_errors, write_tx
from .records import Candidate, ChildRecord, Claimed, HistoryRecord, NewTask, TaskRecord, TypeStats, ms_to_s
from .schema import migrate
from .submit import insert_free, plain, read_epoch, submit_many, submit_one
from .submit import probe as probe_submit

__all__ = [
    "Candidate", "Claimed", "Durability", "HistoryRecord", "NewTask", "Store", "TaskRecord", "TypeStats", "dispatch",
]  # fmt: skip


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """One connection to the task database, with the operations every process needs."""

    def __init__(self, path: str | os.PathLike[str], durability: Durability = "full") -> None:
        self.path = os.fspath(path)
        self.durability = durability
        self.conn: apsw.Connection = open_connection(self.path, durability)
        migrate(self.conn)

    def close(self) -> None:
        self.conn.close()

    def write(self, durable: bool = True):  # type: ignore[no-untyped-def]
        """Context manager for one ``BEGIN IMMEDIATE`` transaction (``durable=False``: see ``write_tx``)."""
        return write_tx(self.conn, durable)

    # -- submission ------------------------------------------------------------------------------------
    def submit(self, task: NewTask, fx: flow.Effects | None = None, probe: bool = False) -> SubmitOutcome:
        """One task, committed on its own: a plain new row in one statement (``insert_free``), anything else in a
        transaction. ``probe``: first look its key up with a plain read, which settles a duplicate or a
        rejection without taking the write lock (see ``policy.dedup.probe_pays``)."""
        if probe:
            try:
                settled = probe_submit(self.conn, task)
            except apsw.BusyError:  # a read that cannot start now (WAL recovery): the write path waits its turn
                settled = None
            if settled is not None:
                return settled
        conn = self.conn
        free = plain(task)
        outcome = insert_free(conn, task) if free else None
        commits = 1
        if outcome is None:
            commits += free  # an insert_free that wrote nothing committed all the same
            with write_tx(conn):
                outcome = submit_one(conn, task, now_ms(), fx)
        read_epoch(conn, commits)
        if faults.FAULTS:
            faults.hit("after_submit_commit_before_ack")
        return outcome

    @property
    def supervisor_epoch(self) -> str:
        """How many supervisors had started on this file, as of the last :meth:`submit` (``read_epoch``)."""
        return self.conn.supervisor_epoch  # type: ignore[no-any-return, attr-defined]

    def submit_batch(self, tasks: Sequence[NewTask], fx: flow.Effects | None = None) -> list[SubmitOutcome]:
        """One transaction: a batch is all or nothing, and the last of several equal keys wins."""
        with write_tx(self.conn):
            outcomes = submit_many(self.conn, tasks, now_ms(), fx)
        if faults.FAULTS:
            faults.hit("after_submit_commit_before_ack")
        return outcomes

    # -- queries ---------------------------------------------------------------------------------------
    def task(self, task_id: int) -> TaskRecord | None:
        return queries.one_task(self.conn, sql_queries.TASK_BY_ID, (task_id,))

    def task_by_key(self, key: str) -> TaskRecord | None:
        return queries.one_task(self.conn, sql_queries.TASK_BY_KEY, (key,))

    def tasks_by_status(
        self, status: str, limit: int = 100, offset: int = 0, domain: str | None = None
    ) -> list[TaskRecord]:
        """Active tasks in one status, in dispatch order (priority, then id)."""
        tags.check_status(status, "active tasks")
        if domain is not None:
            if status == "pending":
                return queries.tasks(self.conn, sql_obs.PENDING_TASKS_DOMAIN, (domain, limit, offset))
            query = q.TASKS_BY_STATUS_DOMAIN.format(cols=sql.TASK_COLUMNS)
            return queries.tasks(self.conn, query, (status, domain, limit, offset))
        if status == "pending":
            return queries.tasks(self.conn, sql_queries.PENDING_TASKS, (limit, offset))
        return queries.tasks(self.conn, sql_queries.TASKS_BY_STATUS, (status, limit, offset))

    def count(self, status: str, domain: str | None = None) -> int:
        if status == "pending":
            return queries.scalar(self.conn, sql_queries.COUNT_PENDING, (domain,))
        if domain is None:
            return queries.scalar(self.conn, sql_queries.COUNT_BY_STATUS, (status,))
        return queries.scalar(self.conn, sql_queries.COUNT_BY_STATUS_DOMAIN, (status, domain))

    def busy(self) -> bool:
        """Whether anything is pending (due or delayed) or running: cheap enough to poll during a drain."""
        return bool(queries.scalar(self.conn, sql_queries.BUSY))

    def status_counts(self) -> dict[str, int]:
        with read_tx(self.conn):
            return queries.status_counts(self.conn)

    def pending_by_domain_priority(self) -> list[tuple[str, int, int]]:
        """(domain, priority, pending count), queue depth for dashboards."""
        return [(str(d), int(p), int(n)) for d, p, n in self.conn.execute(sql_queries.PENDING_BY_DOMAIN_PRIORITY)]

    def pending_by_type(self, domain: str | None = None) -> dict[str, int]:
        if domain is not None:
            return {t: int(n) for t, n in self.conn.execute(sql_obs.PENDING_BY_TYPE_DOMAIN, (domain,))}
        return {t: int(n) for t, n in self.conn.execute(sql_queries.PENDING_BY_TYPE)}

    def running_io_totals(self, domain: str | None = None) -> IoBudget:
        """The expected IO (``expected_io``) of the running tasks, summed."""
        return stats.running_io(self.conn, domain)

    def history(self, limit: int = 50, offset: int = 0, domain: str | None = None) -> list[HistoryRecord]:
        if domain is not None:
            return queries.histories(self.conn, sql_obs.HISTORY_PAGE_DOMAIN, (domain, limit, offset))
        return queries.histories(self.conn, sql_queries.HISTORY_PAGE, (limit, offset))

    def history_by_type(self, task_type: str, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return queries.histories(self.conn, sql_queries.HISTORY_BY_TYPE, (task_type, limit, offset))

    def history_by_key(self, key: str, limit: int = 50) -> list[HistoryRecord]:
        return queries.histories(self.conn, sql_queries.HISTORY_BY_KEY, (key, limit))

    def history_of_task(self, task_id: int) -> list[HistoryRecord]:
        """Every finished run of a task id (a requeued task has several), newest first."""
        return queries.histories(self.conn, sql_queries.HISTORY_OF_TASK, (task_id,))

    def history_by_status(
        self, status: str, limit: int = 50, offset: int = 0, domain: str | None = None
    ) -> list[HistoryRecord]:
        if status == "completed":
            return queries.histories(self.conn, sql_queries.HISTORY_COMPLETED, (domain, limit, offset))
        return queries.histories(self.conn, sql_queries.HISTORY_BY_STATUS, (status, domain, limit, offset))

    def history_count(self) -> int:
        return queries.scalar(self.conn, sql_queries.HISTORY_COUNT)

    def history_status_counts(self) -> dict[str, int]:
        return {s: int(n) for s, n in self.conn.execute(sql_queries.HISTORY_STATUS_COUNTS)}

    # -- observability --------------------------------------------------------------------------------
    def recent_avg_duration(self, task_type: str, sample: int = 20, scan: int = 200) -> tuple[float | None, int]:
        """(mean seconds, runs averaged) over the newest ``sample`` completed runs of ``task_type`` found among
        its newest ``scan`` finished rows; (None, 0) without any."""
        row = next(iter(self.conn.execute(sql_queries.RECENT_DURATION, (task_type, sample, scan))), None)
        if row is None or not row[1] or row[0] is None:
            return None, 0
        return float(row[0]) / 1000.0, int(row[1])

    def paused_group_info(self) -> list[tuple[str, int, int | None, int]]:
        """(group, paused_at ms, resume_at ms or None, tasks held by the group pause) per paused group."""
        with read_tx(self.conn):
            return [(g, at, resume, queries.scalar(self.conn, sql_queries.GROUP_PAUSED_COUNT, (g,)))
                    for g, at, resume in control.paused_groups(self.conn)]  # fmt: skip

    def latest_history_of_task(self, task_id: int) -> HistoryRecord | None:
        found = queries.histories(self.conn, sql_queries.LATEST_HISTORY_OF_TASK, (task_id,))
        return found[0] if found else None

    def tasks_of_domain(self, status: str, domain: str, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """Active tasks of one domain in a non-pending status (running, paused, waiting, blocked)."""
        query = q.TASKS_BY_STATUS_DOMAIN.format(cols=sql.TASK_COLUMNS)
        return queries.tasks(self.conn, query, (status, domain, limit, offset))

    def data_version(self) -> int:
        return queries.scalar(self.conn, sql.DATA_VERSION)

    def last_insert_rowid(self) -> int:
        """Changes whenever this connection inserts a row (into any table): with :meth:`data_version`, which
        changes when another connection commits, it tells whether anything new can have been submitted."""
        return int(self.conn.last_insert_rowid())

    def history_stats(self, task_type: str) -> TypeStats:
        return stats.history_stats(self.conn, task_type)

    def avg_throughput(self, task_type: str, n: int = 20) -> tuple[float, float]:
        return stats.avg_throughput(self.conn, task_type, n)

    # -- tags (active tasks) -----------------------------------------------------------------------------
    def task_ids_by_tags(self, filters: Mapping[str, str], status: str | None = None,
                         domain: str | None = None) -> list[int]:  # fmt: skip
        return tags.ids_by_tags(self.conn, filters, status, domain)

    def count_by_tags(self, filters: Mapping[str, str], status: str | None = None, domain: str | None = None) -> int:
        return tags.count_by_tags(self.conn, filters, status, domain)

    def count_by_tag(self, key: str, status: str | None = None, domain: str | None = None) -> list[tuple[str, int]]:
        return tags.count_by_tag(self.conn, key, status, domain)

    def tag_keys_by_prefix(self, prefix: str, status: str | None = None, domain: str | None = None) -> list[str]:
        return tags.keys_by_prefix(self.conn, prefix, status, domain)

    def task_ids_by_tag_key_prefix(self, prefix: str, status: str | None = None,
                                   domain: str | None = None) -> list[int]:  # fmt: skip
        return tags.ids_by_key_prefix(self.conn, prefix, status, domain)

    def count_by_tag_key_prefix(self, prefix: str, status: str | None = None, domain: str | None = None) -> int:
        return tags.count_by_key_prefix(self.conn, prefix, status, domain)

    # -- metrics -----------------------------------------------------------------------------------------
    def counters(self) -> dict[tuple[str, str], int]:
        """The database's metric counters: ``{(name, label): value}`` (see ``stats``)."""
        return stats.counters(self.conn)

    def max_task_id(self) -> int:
        return stats.max_id(self.conn)

    def paused_group_count(self) -> int:
        return stats.paused_group_count(self.conn)

    # -- dead letters ----------------------------------------------------------------------------------
    def retry_dead_letter(self, task_id: int, *, domain: str | None = None) -> SubmitOutcome:
        """Queue a dead-lettered task again with a fresh retry count (a new task id, same key).

        The dead-letter row is removed only if the task was queued again, so a failed re-submit loses nothing.
        """
        with write_tx(self.conn):
            found = queries.histories(self.conn, sql_queries.HISTORY_ROW, (task_id,))
            if not found:
                if self.task(task_id) is not None:
                    raise InvalidState(f"task {task_id} is still active, not dead-lettered")
                raise NotFound(f"no finished task with id {task_id}")
            rec = found[0]
            if rec.status != "dead_letter":
                raise InvalidState(f"task {task_id} is {rec.status}, not dead-lettered")
            if domain is not None and rec.domain != domain:
                raise InvalidState(f"task {task_id} belongs to domain {rec.domain!r}, not {domain!r}")
            row = next(iter(self.conn.execute(sql_queries.RESUBMIT_SOURCE, (task_id,))))
            new = NewTask(
                task_type=row[0], domain=row[1], key=row[2], label=row[3], priority=row[4], payload=row[5],
                created_at=now_ms(), expected_read_bytes=row[6], expected_write_bytes=row[7],
                expected_net_rx_bytes=row[8], expected_net_tx_bytes=row[9], max_retries=row[10],
                parent_id=row[11], fail_fast=bool(row[12]), group_key=row[13],
                tags=queries._tags(row[14]), on_duplicate="reject",
            )  # fmt: skip
            outcome = submit_one(self.conn, new, now_ms())
            if outcome.is_inserted:
                dispatch._delete(self.conn, [task_id])
            return outcome

    # -- workflows -------------------------------------------------------------------------------------
    def task_dependencies(self, task_id: int) -> list[int]:
        return deps.dependencies_of(self.conn, task_id)

    def task_dependents(self, task_id: int) -> list[int]:
        return deps.dependents_of(self.conn, task_id)

    def blocked(self, limit: int = 100, offset: int = 0, domain: str | None = None) -> list[TaskRecord]:
        if domain is None:
            return queries.tasks(self.conn, sql_queries.TASKS_BY_STATUS, ("blocked", limit, offset))
        query = q.TASKS_BY_STATUS_DOMAIN.format(cols=sql.TASK_COLUMNS)
        return queries.tasks(self.conn, query, ("blocked", domain, limit, offset))

    def children(self, task_id: int) -> list[ChildRecord]:
        rows = self.conn.execute(q.CHILDREN_OF, (task_id,))
        return [ChildRecord(id=a, task_type=b, key=c, label=d, status=e, error=f, finished_at=ms_to_s(g))
                for a, b, c, d, e, f, g in rows]  # fmt: skip

    def next_run_after(self) -> int | None:
        return dispatch.next_run_after(self.conn)

    def recurring_schedules(self) -> list[recurring.RecurringScheduleInfo]:
        return recurring.schedules(self.conn)

    def set_recurring(self, task_id: int, action: str, *, domain: str | None = None,
                      fx: flow.Effects | None = None) -> bool:  # fmt: skip
        """``action``: pause, resume or cancel the schedule on ``task_id``. False if there is no live schedule."""
        with write_tx(self.conn):
            found = recurring.target(self.conn, task_id, domain)
            if found is None:
                return False
            now = now_ms()
            if action == "pause":
                recurring.pause(self.conn, task_id, now)
            elif action == "resume":
                recurring.resume(self.conn, task_id, now)
            elif found[1] == "running":
                recurring.end(self.conn, task_id)  # the running occurrence finishes; nothing follows it
            else:
                control.cancel(self.conn, task_id, now, fx=fx)
            return True

    # -- control ---------------------------------------------------------------------------------------
    def cancel(
        self, task_id: int, *, domain: str | None = None, fx: flow.Effects | None = None
    ) -> tuple[bool, list[int]]:
        """Cancel a task (and its children). Returns (found, running ids the supervisor must stop)."""
        with write_tx(self.conn):
            if domain is not None:
                rec = self.task(task_id)
                if rec is None or rec.domain != domain:
                    return False, []
            return control.cancel(self.conn, task_id, now_ms(), fx=fx)

    def cancel_many(self, ids: Sequence[int], fx: flow.Effects | None = None) -> tuple[list[int], list[int]]:
        """Cancel several tasks in one transaction: (cancelled ids, running ids asked to stop)."""
        done: list[int] = []
        running: list[int] = []
        with write_tx(self.conn):
            now = now_ms()
            for tid in ids:
                found, req = control.cancel(self.conn, tid, now, fx=fx)
                if found:
                    done.append(tid)
                    running.extend(req)
        return done, running

    def domain_task_ids(self, domain: str) -> list[int]:
        return control.domain_task_ids(self.conn, domain)

    def pause_domain(self, domain: str) -> int:
        with write_tx(self.conn):
            return control.pause_domain(self.conn, domain, now_ms())

    def resume_domain(self, domain: str) -> int:
        with write_tx(self.conn):
            return control.resume_domain(self.conn, domain, now_ms())

    def is_domain_paused(self, domain: str) -> bool:
        return control.is_domain_paused(self.conn, domain)

    def pause_group(self, group: str, resume_at_ms: int | None = None) -> tuple[int, int]:
        with write_tx(self.conn):
            return control.pause_group(self.conn, group, now_ms(), resume_at_ms)

    def resume_group(self, group: str) -> int | None:
        with write_tx(self.conn):
            return control.resume_group(self.conn, group, now_ms())

    def paused_groups(self) -> list[tuple[str, int, int | None]]:
        return control.paused_groups(self.conn)

    def pause_all(self) -> int:
        with write_tx(self.conn):
            return control.pause_all(self.conn, now_ms())

    def resume_all(self) -> int:
        with write_tx(self.conn):
            return control.resume_all(self.conn, now_ms())

    def is_paused(self) -> bool:
        return control.is_paused(self.conn)

    # -- maintenance -----------------------------------------------------------------------------------
    def prune_history_by_count(self, keep: int) -> int:
        with write_tx(self.conn):
            return dispatch.prune_by_count(self.conn, keep)

    def prune_history_by_age(self, days: float) -> int:
        with write_tx(self.conn):
            return dispatch.prune_by_age(self.conn, now_ms() - int(days * 86_400_000))

    def checkpoint(self) -> None:
        """Copy the whole WAL into the database and empty it (at shutdown). A failure changes nothing committed."""
        try:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except (apsw.FullError, apsw.IOError, apsw.BusyError) as exc:
            raise translate_errors(exc) from exc

    def integrity_check(self) -> list[str]:
        return [str(r[0]) for r in self.conn.execute("PRAGMA integrity_check")]

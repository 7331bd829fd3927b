"""DomainHandle: submit and query the tasks of one domain (``scheduler.domain(d)`` / ``client.domain(d)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from . import events as ev
from . import submission, task_events
from .domain import Domain
from .errors import ConfigError, InvalidState, UnknownTaskType
from .outcome import BatchOutcome, SubmitOutcome
from .policy.ratelimit import RateLimit
from .policy.recurrence import RecurringSchedule
from .progress import EstimatedProgress, TaskProgress
from .store.records import HistoryRecord, NewTask, RecurringScheduleInfo, TaskRecord, TypeStats
from .task import IoBudget, Task

if TYPE_CHECKING:
    from .client import Client, TaskLookup
    from .policy_controls import PolicyControls
    from .snapshot import DomainSnapshot

T = TypeVar("T", bound=Task)


class DomainHandle:
    """Submissions through a handle get the domain's prefix ("media::resize") and defaults."""

    def __init__(self, client: Client, domain: Domain) -> None:
        self._client = client
        self.domain = domain
        self.name = domain.name

    def _spec(self, task: Task):  # type: ignore[no-untyped-def]
        spec = self.domain.executors.get(f"{self.name}::{type(task).task_type}")
        if spec is None or spec.task_cls is not type(task):
            raise UnknownTaskType(
                f"{type(task).__qualname__} has no executor in domain {self.name!r}; "
                f"register one with @{self.name}.executor({type(task).__qualname__})"
            )
        return spec

    def submit(
        self,
        task: Task,
        *,
        priority: int | None = None,
        key: str | None = None,
        label: str | None = None,
        group: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_after: float | timedelta | None = None,
        run_at: datetime | None = None,
        ttl: float | None = None,
        max_retries: int | None = None,
        on_duplicate: str | None = None,
        ttl_from: str | None = None,
        depends_on: Iterable[int] | None = None,
        on_dependency_failure: str | None = None,
        fail_fast: bool | None = None,
        recurring: RecurringSchedule | float | timedelta | None = None,
        expected_io: IoBudget | None = None,
    ) -> SubmitOutcome:
        """Queue ``task``. Returns once the row is committed (durably, with ``durability="full"``).

        Workflows: ``depends_on`` (task ids; the task is ``blocked`` until they complete, see
        ``on_dependency_failure``), ``fail_fast`` (for a parent: a failed child fails it), ``recurring`` (a
        :class:`RecurringSchedule`, or an interval in seconds), ``ttl_from`` ("submission" or "first_attempt").
        """
        client = self._client
        spec = self._spec(task)
        if (
            priority is None and key is None and label is None and group is None and run_after is None
            and run_at is None and ttl is None and max_retries is None and on_duplicate is None and ttl_from is None
            and depends_on is None and on_dependency_failure is None and fail_fast is None and recurring is None
            and expected_io is None
        ):  # fmt: skip
            # The common call: the type's defaults alone (and per-call tags), from a template kept per type.
            template = client._template(self.domain, spec)
            payload = submission.encode_payload(spec, task, client._defaults.max_payload_bytes)
            row = template.row(task, payload, submission.now_ms(), tags)
        else:
            row = submission.build(
                self.domain, spec, task, client._defaults, priority=priority, key=key, label=label,
                group=group, tags=tags, run_after=run_after, run_at=run_at, ttl=ttl, max_retries=max_retries,
                on_duplicate=on_duplicate, ttl_from=ttl_from, depends_on=depends_on,
                on_dependency_failure=on_dependency_failure, fail_fast=fail_fast, recurring=recurring,
                expected_io=expected_io,
            )  # fmt: skip
        return client._submit_one(row)

    def submit_batch(
        self, tasks: Iterable[Task], *, priority: int | None = None, depends_on: Iterable[int] | None = None,
        on_dependency_failure: str | None = None, group: str | None = None,
    ) -> BatchOutcome:  # fmt: skip
        """Queue many tasks in one transaction (all or nothing); within the batch the last duplicate wins.
        ``depends_on`` and ``group`` apply to every task of the batch."""
        client = self._client
        defaults = client._defaults
        limit = defaults.max_payload_bytes
        plain = priority is None and depends_on is None and on_dependency_failure is None and group is None
        templates: dict[type, submission.Template] = {}
        deps = None if depends_on is None else list(depends_on)
        now = submission.now_ms()
        encode = submission.encode_payload
        rows: list[NewTask] = []
        append = rows.append
        for t in tasks:
            template = templates.get(type(t))
            if template is None:
                spec = self._spec(t)
                template = templates[type(t)] = client._template(self.domain, spec) if plain else submission.Template(
                    self.domain, spec, defaults, priority=priority, depends_on=deps,
                    on_dependency_failure=on_dependency_failure, group=group, now_ms=now,
                )  # fmt: skip
            append(template.row(t, encode(template.spec, t, limit), now))
        return BatchOutcome(client._submit_batch(rows))

    # -- queries ----------------------------------------------------------------------------------------
    def lookup(self, task: Task) -> TaskLookup:
        """Where a task with this payload's dedup key is: active, in history, or not found."""
        spec = self._spec(task)
        payload = submission.encode_payload(spec, task, self._client._defaults.max_payload_bytes)
        return self._client._lookup_key(submission.dedup_key(spec.qualified_type, task.key(), payload))

    def _type(self, task_type: type[Task] | str) -> str:
        """A qualified type name of this domain, from a Task class or a bare or qualified name."""
        if isinstance(task_type, type):
            return self.domain.spec_for(task_type).qualified_type
        return task_type if "::" in task_type else f"{self.name}::{task_type}"

    def pending_count(self) -> int:
        return self._client._store().count("pending", self.name)

    def running_count(self) -> int:
        return self._client._store().count("running", self.name)

    def paused_count(self) -> int:
        return self._client._store().count("paused", self.name)

    def waiting_count(self) -> int:
        return self._client._store().count("waiting", self.name)

    def pending_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._client._store().tasks_by_status("pending", limit, offset, self.name)

    def running_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._client._store().tasks_by_status("running", limit, offset, self.name)

    def paused_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._client._store().tasks_by_status("paused", limit, offset, self.name)

    def waiting_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        return self._client._store().tasks_by_status("waiting", limit, offset, self.name)

    def pending_by_type(self) -> dict[str, int]:
        return self._client._store().pending_by_type(self.name)

    def running_io_totals(self) -> IoBudget:
        return self._client._store().running_io_totals(self.name)

    def task_by_key(self, key: str) -> TaskRecord | None:
        rec = self._client.task_by_key(key)
        return rec if rec is not None and rec.domain == self.name else None

    def history(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._client._store().history(limit, offset, self.name)

    def history_by_type(self, task_type: type[Task] | str, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        """``task_type``: a Task class of this domain, or its name (bare or qualified)."""
        return self._client.history_by_type(self._type(task_type), limit, offset)

    def history_by_key(self, key: str, limit: int = 50) -> list[HistoryRecord]:
        return [h for h in self._client.history_by_key(key, limit) if h.domain == self.name]

    def failed_tasks(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._client._store().history_by_status("failed", limit, offset, domain=self.name)

    def dead_letter_tasks(self, limit: int = 50, offset: int = 0) -> list[HistoryRecord]:
        return self._client._store().history_by_status("dead_letter", limit, offset, domain=self.name)

    def history_stats(self, task_type: type[Task] | str) -> TypeStats:
        return self._client.history_stats(self._type(task_type))

    def avg_throughput(self, task_type: type[Task] | str, n: int = 20) -> tuple[float, float]:
        return self._client.avg_throughput(self._type(task_type), n)

    # -- tags (this domain's active tasks) ----------------------------------------------------------------
    def task_ids_by_tags(self, filters: Mapping[str, str], status: str | None = None) -> list[int]:
        return self._client._store().task_ids_by_tags(filters, status, self.name)

    def count_by_tags(self, filters: Mapping[str, str], status: str | None = None) -> int:
        return self._client._store().count_by_tags(filters, status, self.name)

    def count_by_tag(self, key: str, status: str | None = None) -> list[tuple[str, int]]:
        return self._client._store().count_by_tag(key, status, self.name)

    def tag_values(self, key: str) -> list[tuple[str, int]]:
        return self._client._store().count_by_tag(key, None, self.name)

    def tag_keys_by_prefix(self, prefix: str) -> list[str]:
        return self._client._store().tag_keys_by_prefix(prefix, None, self.name)

    def task_ids_by_tag_key_prefix(self, prefix: str, status: str | None = None) -> list[int]:
        return self._client._store().task_ids_by_tag_key_prefix(prefix, status, self.name)

    def count_by_tag_key_prefix(self, prefix: str, status: str | None = None) -> int:
        return self._client._store().count_by_tag_key_prefix(prefix, status, self.name)

    def cancel_by_tag_key_prefix(self, prefix: str) -> list[int]:
        """Cancel this domain's active tasks with a tag key starting with ``prefix``; returns their ids."""
        return self._client.cancel_many(self.task_ids_by_tag_key_prefix(prefix))

    def retry_dead_letter(self, task_id: int) -> SubmitOutcome:
        outcome = self._client._store().retry_dead_letter(task_id, domain=self.name)
        self._client._notify()
        return outcome

    def task(self, task_id: int) -> TaskRecord | None:
        rec = self._client.task(task_id)
        return rec if rec is not None and rec.domain == self.name else None

    def blocked_tasks(self, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """This domain's tasks waiting for dependencies."""
        return self._client._store().blocked(limit, offset, domain=self.name)

    def blocked_count(self) -> int:
        return self._client._store().count("blocked", self.name)

    # -- events, progress and snapshots -----------------------------------------------------------------
    def _event_bus(self) -> ev.EventBus[ev.Event]:
        bus = self._client._bus()
        if bus is None:
            raise InvalidState("events are published in the process that runs the Scheduler; a client made "
                               "with tm.connect() has none (use the daemon's /events endpoint)")  # fmt: skip
        return bus

    def events(self, maxsize: int = 10_000) -> ev.Subscription[ev.Event]:
        """This domain's events (sync or async iteration): every event about its tasks, the scheduler-wide
        ``Paused``/``Resumed``, its own pause and resume, group events, and batches that include its tasks."""
        return self._event_bus().subscribe(maxsize, task_events.domain_filter(self.name))

    def task_events(self, task_cls: type[T], maxsize: int = 10_000) -> task_events.TaskEvents[T]:
        """The events of one task type of this domain; terminal ones carry the history record (see
        :class:`taskmill.task_events.TaskEvents`)."""
        spec = self.domain.executors.get(f"{self.name}::{getattr(task_cls, 'task_type', '')}")
        if spec is None or spec.task_cls is not task_cls:
            name = getattr(task_cls, "__qualname__", task_cls)
            raise UnknownTaskType(f"{name} has no executor in domain {self.name!r}")
        sub = self._event_bus().subscribe(maxsize, task_events.type_filter(spec.qualified_type))
        return task_events.TaskEvents(sub, self._client._store, task_cls)

    def subscribe_progress(self, interval: float = 1.0, maxsize: int = 1000) -> ev.Subscription[TaskProgress]:
        """Byte-level progress of this domain's running tasks, every ``interval`` seconds."""
        subscribe = getattr(self._client, "_subscribe_progress", None)
        if subscribe is None:
            raise InvalidState("progress is reported in the process that runs the Scheduler")
        return subscribe(interval, maxsize, self.name)  # type: ignore[no-any-return]

    def snapshot(self) -> DomainSnapshot:
        """This domain's running tasks (with progress), counts and pause state, JSON-encodable."""
        return self._client._builder(self.name).domain_snapshot()

    def estimated_progress(self) -> list[EstimatedProgress]:
        b = self._client._builder(self.name)
        return b.estimated(b.running_records())

    def byte_progress(self) -> list[TaskProgress]:
        return self._client._builder(self.name).byte_progress()

    # -- recurring schedules ----------------------------------------------------------------------------
    def _schedule_id(self, target: int | Task) -> int | None:
        if isinstance(target, Task):
            found = self.lookup(target).record
            return found.id if isinstance(found, TaskRecord) else None
        return target

    def pause_recurring(self, target: int | Task) -> bool:
        """Hold this domain's schedule (by task id, or by a task equal to the scheduled one). False if none."""
        return self._client._recurring(self._schedule_id(target), "pause", self.name)

    def resume_recurring(self, target: int | Task) -> bool:
        return self._client._recurring(self._schedule_id(target), "resume", self.name)

    def cancel_recurring(self, target: int | Task) -> bool:
        """End the schedule: a queued occurrence is cancelled, a running one finishes and nothing follows it."""
        return self._client._recurring(self._schedule_id(target), "cancel", self.name)

    def recurring_schedules(self) -> list[RecurringScheduleInfo]:
        return [s for s in self._client.recurring_schedules() if s.domain == self.name]

    # -- control ----------------------------------------------------------------------------------------
    def cancel(self, task_id: int) -> bool:
        """Cancel one of this domain's tasks (False if unknown, finished, or in another domain)."""
        return self._client._cancel(task_id, self.name)

    def cancel_all(self) -> list[int]:
        """Cancel every active task of this domain; returns their ids."""
        return self._client.cancel_many(self._client._store().domain_task_ids(self.name))

    def cancel_where(self, predicate: Callable[[TaskRecord], bool]) -> list[int]:
        """Cancel this domain's active tasks for which ``predicate(record)`` is true; returns their ids."""
        store = self._client._store()
        chosen = []
        for tid in store.domain_task_ids(self.name):
            rec = store.task(tid)
            if rec is not None and predicate(rec):
                chosen.append(tid)
        return self._client.cancel_many(chosen)

    def pause(self) -> int:
        """Pause this domain: queued tasks wait, running ones are stopped and paused, new submissions are
        stored paused. Returns how many tasks it affected."""
        n = self._client._store().pause_domain(self.name)
        self._client._notify()
        self._client._publish(ev.Paused(None, "domain", self.name, n))
        return n

    def resume(self) -> int:
        """Resume this domain; returns how many tasks became pending (others may be paused for other reasons)."""
        n = self._client._store().resume_domain(self.name)
        self._client._notify()
        self._client._publish(ev.Resumed(None, "domain", self.name, n))
        return n

    def is_paused(self) -> bool:
        return self._client._store().is_domain_paused(self.name)

    def pause_group(self, group: str) -> int:
        return self._client.pause_group(group)

    def pause_group_until(self, group: str, when: datetime | float) -> int:
        return self._client.pause_group_until(group, when)

    def resume_group(self, group: str) -> int:
        return self._client.resume_group(group)

    def is_group_paused(self, group: str) -> bool:
        return self._client.is_group_paused(group)

    def paused_groups(self) -> list[str]:
        return self._client.paused_groups()

    def set_max_concurrency(self, n: int) -> None:
        """Cap how many of this domain's tasks run at once (0 = no cap). Applies from the next dispatch turn."""
        if n < 0:
            raise ValueError("max_concurrency must be >= 0")
        self.domain.max_concurrency = n
        self._client._notify()

    @property
    def max_concurrency(self) -> int:
        return self.domain.max_concurrency

    # -- scheduling policy (a running Scheduler's, not a plain client's) ---------------------------------
    def _controls(self) -> PolicyControls:
        from .policy_controls import PolicyControls

        if not isinstance(self._client, PolicyControls):
            raise ConfigError("rate limits and group weights are set on a Scheduler, not a taskmill.connect() client")
        return self._client

    def set_rate_limit(self, task_type: str | type[Task], limit: RateLimit) -> None:
        """Rate-limit one of this domain's types: ``"resize"`` means ``"<domain>::resize"``."""
        from .policy_controls import qualify

        c = self._controls()
        c.policy.set_rate_limit(qualify(c.registry, task_type, self.name), limit)

    def remove_rate_limit(self, task_type: str | type[Task]) -> None:
        from .policy_controls import qualify

        c = self._controls()
        c.policy.remove_rate_limit(qualify(c.registry, task_type, self.name))

    def set_group_rate_limit(self, group: str, limit: RateLimit) -> None:
        self._controls().set_group_rate_limit(group, limit)

    def remove_group_rate_limit(self, group: str) -> None:
        self._controls().remove_group_rate_limit(group)

    def set_group_limit(self, group: str, max_concurrency: int) -> None:
        self._controls().set_group_limit(group, max_concurrency)

    def remove_group_limit(self, group: str) -> None:
        self._controls().remove_group_limit(group)

    def set_group_weight(self, group: str, weight: int) -> None:
        self._controls().set_group_weight(group, weight)

    def remove_group_weight(self, group: str) -> None:
        self._controls().remove_group_weight(group)

    def reset_group_weights(self) -> None:
        self._controls().reset_group_weights()

    def set_group_minimum_slots(self, group: str, slots: int) -> None:
        self._controls().set_group_minimum_slots(group, slots)

    def __repr__(self) -> str:
        return f"DomainHandle({self.name!r})"

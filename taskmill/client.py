"""Submitting and querying from any process: ``taskmill.connect(path)``. A client never dispatches.

Each thread gets its own SQLite connection (apsw connections must not be shared between threads without
care, and must never cross a fork). After each commit the client pings the supervisor's wake-up socket so
the task starts within milliseconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import msgspec

from . import events as ev
from . import snapshot, submission
from .client_queries import ClientQueries
from .domain import DOMAINS, Domain, ExecutorSpec
from .events import Event, EventBus
from .handle import DomainHandle
from .outcome import BatchOutcome, SubmitOutcome
from .policy import dedup
from .progress import EstimatedProgress, TaskProgress
from .store import HistoryRecord, NewTask, Store, TaskRecord, flow
from .store.connection import Durability
from .supervisor.wakeup import WakeupSender

if TYPE_CHECKING:
    from .supervisor.progress import LiveView


UNHEARD_RETRY_S = 1.0
_forks = 0  # forks of this process so far: a connection opened before a fork is never used after it


def _forked() -> None:
    global _forks
    _forks += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


class TaskLookup(msgspec.Struct, frozen=True):
    location: Literal["active", "history", "not_found"]
    record: TaskRecord | HistoryRecord | None = None


class Client(ClientQueries):
    """Submit, query and manage tasks in a taskmill database."""

    def __init__(
        self,
        path: str | os.PathLike[str] = "tasks.db",
        *,
        domains: Iterable[Domain] | None = None,
        durability: Durability = "full",
        max_payload_bytes: int = submission.DEFAULT_MAX_PAYLOAD,
        default_ttl: float | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.durability = durability
        self._defaults = submission.Defaults(ttl=default_ttl, max_payload_bytes=max_payload_bytes)
        self._domains: dict[str, Domain] | None = None if domains is None else {d.name: d for d in domains}
        self._local = threading.local()
        self._stores: list[Store] = []
        self._stores_lock = threading.Lock()
        self._sender: WakeupSender | None = None
        self._closed = False
        self._durations = snapshot.Durations()  # recent average duration per task type (estimated progress)
        # Per executor: the domain's defaults it was made with, and the submission template of plain calls.
        self._templates: dict[ExecutorSpec, tuple[tuple[object, ...], submission.Template]] = {}
        self._duplicates = 0.0  # recent share of single submits that were duplicates: probe first when high
        self._unheard = ""  # the supervisor epoch at which a ping found nobody listening ("": none did)
        self._unheard_at = 0.0  # when (monotonic): pings are tried again after UNHEARD_RETRY_S all the same
        self._store()  # open (and migrate) now so a bad path fails here, not at first submit

    # -- plumbing ---------------------------------------------------------------------------------------
    def _store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None or store.forks != _forks:  # type: ignore[attr-defined]
            store = Store(self.path, self.durability)
            store.forks = _forks  # type: ignore[attr-defined]
            self._local.store = store
            with self._stores_lock:
                self._stores.append(store)
        return store

    def _notify(self, submitted: bool = False) -> bool:
        """Wake the supervisor. ``submitted``: only new runnable tasks were added (no control change), so it
        need not look for stop requests, pauses or due tasks: a shorter turn, a lower submit-to-start latency.
        False if no supervisor listens on this host."""
        if self._sender is None:
            self._sender = WakeupSender(self.path)
        return self._sender.ping(submitted)

    def _notify_submitted(self, store: Store, submitted: bool) -> None:
        """Ping after a single submit, unless a ping already found nobody listening and no supervisor has started
        since, as read after the submit's commit (``store.submit.read_epoch``). A supervisor bumps the epoch after
        binding its socket and before its first turn, so a row committed before the bump is one that turn reads.
        Saves a refused ``sendto`` (~10 µs, a sixth of a submit) per call while no supervisor runs. A ping is tried
        again after :data:`UNHEARD_RETRY_S` whatever the epoch: a supervisor of an earlier version does not bump
        it."""
        epoch = store.supervisor_epoch
        if epoch == self._unheard and time.monotonic() - self._unheard_at < UNHEARD_RETRY_S:
            return
        if self._notify(submitted):
            self._unheard = ""
        else:
            self._unheard, self._unheard_at = epoch, time.monotonic()

    def _template(self, domain: Domain, spec: ExecutorSpec) -> submission.Template:
        """The template of calls without overrides, made once per type (and again if the domain's or the
        client's defaults were changed since)."""
        made = (self._defaults, domain.default_priority, domain.default_ttl, domain.default_group, domain.default_tags)
        hit = self._templates.get(spec)
        if hit is not None and hit[0] == made:
            return hit[1]
        template = submission.Template(domain, spec, self._defaults)
        self._templates[spec] = ((*made[:4], dict(domain.default_tags)), template)
        return template

    def _submit_one(self, row: NewTask) -> SubmitOutcome:
        """One row in its own transaction: the path of every single submit."""
        store = self._store()
        bus = self._bus()
        fx = flow.Effects() if bus is not None and bus.active else None  # events only if someone listens
        outcome = store.submit(row, fx, probe=dedup.probe_pays(self._duplicates))
        kind = outcome.kind
        wrote = kind != "duplicate" and kind != "rejected"
        self._duplicates = dedup.duplicate_share(self._duplicates, not wrote)
        if wrote:
            self._notify_submitted(store, kind == "inserted" and row.run_after is None)
        if fx is not None and bus is not None:
            for e in fx.events:
                bus.publish(e)
        return outcome

    def _submit_batch(self, rows: Sequence[NewTask]) -> list[SubmitOutcome]:
        """One transaction for all ``rows`` (see :meth:`_submit_one` for a single row)."""
        store = self._store()
        bus = self._bus()
        fx = flow.Effects() if bus is not None and bus.active else None  # events only if someone listens
        outcomes = store.submit_batch(rows, fx)
        kinds = {o.kind for o in outcomes} - {"duplicate", "rejected"}
        if kinds:
            self._notify(submitted=kinds == {"inserted"} and all(r.run_after is None for r in rows))
        if fx is not None and bus is not None:
            for e in fx.events:
                bus.publish(e)
            ids = [o.id for o in outcomes if o.kind == "inserted" and o.id is not None]
            bus.publish(ev.BatchSubmitted(None, len(rows), ids, sorted({r.domain for r in rows})))
        return outcomes

    def _known_domains(self) -> dict[str, Domain]:
        return self._domains if self._domains is not None else DOMAINS

    def _lookup_key(self, key: str) -> TaskLookup:
        store = self._store()
        active = store.task_by_key(key)
        if active is not None:
            return TaskLookup("active", active)
        past = store.history_by_key(key, 1)
        return TaskLookup("history", past[0]) if past else TaskLookup("not_found")

    def close(self) -> None:
        with self._stores_lock:
            for store in self._stores:
                if getattr(store, "forks", None) == _forks:  # opened in this process, not inherited by a fork
                    store.close()
            self._stores.clear()
        self._local = threading.local()
        if self._sender is not None:
            self._sender.close()
        self._closed = True

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- submission -------------------------------------------------------------------------------------
    def domain(self, domain: Domain) -> DomainHandle:
        return DomainHandle(self, domain)

    def submit(self, sub: submission.TaskSubmission) -> SubmitOutcome:
        """Untyped submission of a qualified ``task_type`` ("domain::type"), validated against its class."""
        return self._submit_one(self._build_untyped(sub))

    def submit_batch(self, subs: Iterable[submission.TaskSubmission]) -> BatchOutcome:
        now = submission.now_ms()  # one submission time: rows alike but for their payload are inserted together
        return BatchOutcome(self._submit_batch([self._build_untyped(s, now) for s in subs]))

    def _build_untyped(self, sub: submission.TaskSubmission, now: int | None = None) -> NewTask:
        domain, spec, payload = submission.resolve_untyped(self._known_domains(), sub, self._defaults.max_payload_bytes)
        return submission.build(
            domain, spec, None, self._defaults, payload=payload, priority=sub.priority, key=sub.key,
            label=sub.label, group=sub.group, tags=sub.tags, run_after=sub.run_after, run_at=sub.run_at,
            ttl=sub.ttl, max_retries=sub.max_retries, on_duplicate=sub.on_duplicate, ttl_from=sub.ttl_from,
            depends_on=sub.depends_on, on_dependency_failure=sub.on_dependency_failure, fail_fast=sub.fail_fast,
            recurring=sub.recurring, expected_io=sub.expected_io, now_ms=now,
        )  # fmt: skip

    # -- queries ----------------------------------------------------------------------------------------
    def retry_dead_letter(self, task_id: int) -> SubmitOutcome:
        """Queue a dead-lettered task again with a fresh retry count."""
        outcome = self._store().retry_dead_letter(task_id)
        self._notify()
        return outcome

    # -- workflows --------------------------------------------------------------------------------------
    def _recurring(self, task_id: int | None, action: str, domain: str | None = None) -> bool:
        if task_id is None:
            return False
        fx = flow.Effects()
        found = self._store().set_recurring(task_id, action, domain=domain, fx=fx)
        if found:
            self._notify()
            for e in fx.events:
                self._publish(e)
        return found

    def _schedule_id(self, target: int | str) -> int | None:
        if isinstance(target, str):  # a stored dedup key (TaskRecord.key)
            rec = self._store().task_by_key(target)
            return None if rec is None else rec.id
        return target

    def pause_recurring(self, target: int | str) -> bool:
        """Hold a schedule (by task id or stored key): no occurrence starts until it is resumed. A running
        occurrence finishes; the next one is queued paused. False if there is no live schedule."""
        return self._recurring(self._schedule_id(target), "pause")

    def resume_recurring(self, target: int | str) -> bool:
        """Let a held schedule run again; an occurrence whose time passed meanwhile runs at once."""
        return self._recurring(self._schedule_id(target), "resume")

    def cancel_recurring(self, target: int | str) -> bool:
        """End a schedule: a queued occurrence is cancelled, a running one finishes and nothing follows it."""
        return self._recurring(self._schedule_id(target), "cancel")

    # -- snapshots and progress -------------------------------------------------------------------------
    def _live_view(self) -> LiveView | None:
        """A copy of a running supervisor's memory (a Scheduler's); a plain client has none."""
        return None

    def _max_concurrency(self) -> int | None:
        return None

    def _builder(self, domain: str | None = None) -> snapshot.Builder:
        return snapshot.Builder(self._store(), self._durations, self._live_view(), domain)

    def snapshot(self) -> snapshot.SchedulerSnapshot:
        """The whole scheduler in one JSON-encodable struct (see :mod:`taskmill.snapshot`). From a plain client
        it is read from the database alone (``live`` is False): no live progress, no byte progress."""
        return self._builder().scheduler_snapshot(self._max_concurrency())

    def estimated_progress(self) -> list[EstimatedProgress]:
        """How far each running task is: its own report, else a guess from its type's recent durations."""
        b = self._builder()
        return b.estimated(b.running_records())

    def byte_progress(self) -> list[TaskProgress]:
        """Byte-level progress of running tasks that report bytes (empty without a running scheduler)."""
        return self._builder().byte_progress()

    # -- control ----------------------------------------------------------------------------------------
    def _bus(self) -> EventBus[Event] | None:
        """The in-process event bus (a Scheduler's); a plain client publishes nothing."""
        return None

    def _publish(self, event: Event) -> None:
        """Scheduler-wide events go to in-process subscribers; a plain client has none."""
        bus = self._bus()
        if bus is not None and bus.active:
            bus.publish(event)

    def cancel(self, task_id: int) -> bool:
        """Cancel a task in any active state (and its children). A running task is stopped: a cancel
        message, then a signal, then its worker is killed after the grace period; its ``on_cancel`` runs.
        Its dependents apply their ``on_dependency_failure`` policy. False if the task is unknown or finished."""
        return self._cancel(task_id, None)

    def _cancel(self, task_id: int, domain: str | None) -> bool:
        fx = flow.Effects()
        found, _ = self._store().cancel(task_id, domain=domain, fx=fx)
        if found:
            self._notify()
            for e in fx.events:
                self._publish(e)
        return found

    def cancel_many(self, ids: Iterable[int]) -> list[int]:
        """Cancel several tasks in one transaction; returns the ids that were active."""
        fx = flow.Effects()
        done, _ = self._store().cancel_many(list(ids), fx)
        if done:
            self._notify()
            for e in fx.events:
                self._publish(e)
        return done

    def pause_all(self) -> int:
        """Stop dispatching everywhere; running tasks are stopped and paused. Returns how many were running."""
        n = self._store().pause_all()
        self._notify()
        self._publish(ev.Paused(None, "all", None, n))
        return n

    def resume_all(self) -> int:
        n = self._store().resume_all()
        self._notify()
        self._publish(ev.Resumed(None, "all", None, n))
        return n

    def is_paused(self) -> bool:
        return self._store().is_paused()

    def pause_group(self, group: str) -> int:
        """Pause a group until resumed: its queued tasks wait, its running ones are stopped and paused, and
        new submissions into it are stored paused. Returns how many tasks it affected."""
        return self._pause_group(group, None)

    def pause_group_until(self, group: str, when: datetime | float) -> int:
        """Pause a group until ``when`` (an aware datetime or seconds from now); it resumes on its own."""
        if isinstance(when, datetime):
            if when.tzinfo is None:
                raise ValueError("pause_group_until needs a timezone-aware datetime")
            at = when.timestamp()
        else:
            at = time.time() + float(when)
        return self._pause_group(group, int(at * 1000))

    def _pause_group(self, group: str, resume_at_ms: int | None) -> int:
        queued, running = self._store().pause_group(group, resume_at_ms)
        self._notify()
        at = None if resume_at_ms is None else resume_at_ms / 1000.0
        self._publish(ev.GroupPaused(None, group, queued, running, at))
        return queued + running

    def resume_group(self, group: str) -> int:
        """Resume a paused group; returns how many tasks became pending (0 if it was not paused)."""
        n = self._store().resume_group(group)
        if n is None:
            return 0
        self._notify()
        self._publish(ev.GroupResumed(None, group, n))
        return n

    def is_group_paused(self, group: str) -> bool:
        return group in self.paused_groups()

    def paused_groups(self) -> list[str]:
        return [g for g, _, _ in self._store().paused_groups()]

    def prune_history_by_count(self, keep: int) -> int:
        return self._store().prune_history_by_count(keep)

    def prune_history_by_age(self, days: float) -> int:
        return self._store().prune_history_by_age(days)


def connect(path: str | os.PathLike[str] = "tasks.db", **options: object) -> Client:
    """A client for another process (a web app, a cron job): submit, query, manage; never dispatch."""
    return Client(path, **options)  # type: ignore[arg-type]

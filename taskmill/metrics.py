"""The scheduler's metrics: counters and histograms kept where the work happens, and a typed snapshot.

Three sources, each counting a transition exactly once, whichever process caused it:

- **In memory, in the supervisor** (:class:`Metrics`): everything the supervisor does itself — dispatches, the
  results workers send back (completed, failed, retried, dead-lettered, cancelled), stops it applies (cancel or
  supersede of a running task, preemption, a parent failed by its child), and the policy's gate denials. Plain int
  and dict increments on the dispatch loop: per task, a dict update and a histogram bucket.
- **In the database** (``counters`` table, see ``store.stats``): transitions any process can make — a cancel of a
  queued task from ``taskmill.connect()``, a supersede, a dependency cascade, an expiry, group pauses, batches —
  written in the transaction that makes them. Reported as the change since this :class:`Metrics` was created.
- **Derived from new rows**: ``submitted``. After each dispatch turn the supervisor reads the rows created since
  it last counted (one rowid range, a bounded slice at a time), so submissions from every process (clients, the
  embedding app, workers spawning children) count, and a submitter pays nothing.

Counters start at zero when the :class:`~taskmill.Scheduler` is created, and survive its stop/start.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import msgspec

from .errors import ConfigError
from .store import stats

if TYPE_CHECKING:
    import apsw

    from .store import Store
    from .store.records import Claimed

Key = tuple[str, "str | None"]  # (qualified task type, group)

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10000)  # the same as store.stats.BATCH_BUCKETS

# Exposition names (without the "taskmill_" part and the optional prefix): what ``metrics_disabled`` accepts.
METRIC_NAMES = (
    "tasks_submitted_total", "tasks_dispatched_total", "tasks_completed_total", "tasks_failed_total",
    "tasks_retried_total", "tasks_dead_lettered_total", "tasks_superseded_total", "tasks_cancelled_total",
    "tasks_expired_total", "tasks_preempted_total", "batches_submitted_total", "gate_denials_total",
    "rate_limit_throttles_total", "group_pauses_total", "group_resumes_total", "dependency_failures_total",
    "recurring_skipped_total", "task_duration_seconds", "task_queue_wait_seconds", "batch_size", "tasks_pending",
    "tasks_running", "tasks_blocked", "tasks_paused", "tasks_waiting", "max_concurrency", "pressure",
    "groups_paused_count",
    # the daemon's own
    "up", "workers", "workers_alive", "start_time_seconds", "pending_tasks", "running_tasks", "history_tasks",
)  # fmt: skip
RESERVED_LABELS = frozenset({"type", "module", "group", "retryable", "status", "reason", "le", "quantile"})
_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Histogram:
    """Bucket counts (not cumulative; the last bucket is +Inf) and the sum of observations.

    Observations are in ``unit``s of the exposed value (µs for a duration in seconds: unit 1e6), so the hot path
    bins raw integers without converting each one; ``bounds`` and :attr:`total` are in exposed units.
    """

    __slots__ = ("bounds", "counts", "keys", "sum", "unit")

    def __init__(self, bounds: tuple[float, ...], unit: float = 1.0) -> None:
        self.bounds = bounds
        self.unit = unit
        self.keys = [b * unit for b in bounds]
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.keys, value)] += 1
        self.sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        """One sort and a bisect per bucket bound, rather than a bisect per value."""
        ordered = sorted(values)
        counts, below = self.counts, 0
        for i, key in enumerate(self.keys):
            upto = bisect_right(ordered, key)  # values <= this bound
            counts[i] += upto - below
            below = upto
        counts[-1] += len(ordered) - below
        self.sum += sum(ordered)

    @property
    def total(self) -> float:
        return self.sum / self.unit


def _observe_by_type(
    hists: dict[Any, Histogram], key: Any, types: list[str], values: Sequence[float], unit: float
) -> None:
    """Add ``values`` (paired with ``types``) to ``hists[key(type)]``; a turn usually holds one type."""
    kinds = set(types)
    for t in kinds:
        mine = values if len(kinds) == 1 else [v for tt, v in zip(types, values, strict=True) if tt == t]
        h = hists.get(key(t))
        if h is None:
            h = hists[key(t)] = Histogram(DURATION_BUCKETS, unit)
        h.observe_many(mine)


class MetricsSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Counters since the scheduler was created, and gauges now. JSON-encodable (``msgspec.json.encode``).

    Counters: ``submitted`` (tasks inserted or superseded in place, by any process), ``dispatched`` (attempts
    handed to a worker; immediate retries are not re-dispatched), ``completed``, ``failed`` (failed attempts, and
    parents failed by a child), ``failed_retryable`` (failed attempts whose error was retryable: retried or
    dead-lettered), ``retried``, ``dead_lettered``, ``superseded``, ``cancelled``, ``expired``, ``preempted``,
    ``batches_submitted``, ``gate_denials`` (``gate_denials_by_reason``), ``rate_limit_throttles``,
    ``group_pauses``, ``group_resumes``, ``dependency_failures`` (tasks ended ``dependency_failed``),
    ``recurring_skipped`` (fire times dropped because the previous occurrence was still running).

    Gauges: ``pending`` (delayed included), ``running`` (executing now), ``blocked``, ``paused``, ``waiting``,
    ``pressure`` (0..1), ``max_concurrency``, ``groups_paused``.
    """

    submitted: int = 0
    dispatched: int = 0
    completed: int = 0
    failed: int = 0
    failed_retryable: int = 0
    retried: int = 0
    dead_lettered: int = 0
    superseded: int = 0
    cancelled: int = 0
    expired: int = 0
    preempted: int = 0
    batches_submitted: int = 0
    gate_denials: int = 0
    rate_limit_throttles: int = 0
    group_pauses: int = 0
    group_resumes: int = 0
    dependency_failures: int = 0
    recurring_skipped: int = 0
    pending: int = 0
    running: int = 0
    blocked: int = 0
    paused: int = 0
    waiting: int = 0
    pressure: float = 0.0
    max_concurrency: int = 0
    groups_paused: int = 0
    gate_denials_by_reason: dict[str, int] = {}


def _add(d: dict[Any, int], key: Any, n: int = 1) -> None:
    d[key] = d.get(key, 0) + n


_TYPE = attrgetter("task_type")
_GROUP = attrgetter("group_key")


class LabelCounter:
    """Counts per (task type, group) in two disjoint maps, so a batch without groups (the usual case) costs one
    ``Counter.update`` that iterates in C, and every series only grows, even for a reader on another thread."""

    __slots__ = ("grouped", "plain")

    def __init__(self) -> None:
        self.plain: Counter[str] = Counter()
        self.grouped: Counter[Key] = Counter()

    def add_claims(self, cs: list[Claimed]) -> None:
        if any(map(_GROUP, cs)):
            self.plain.update([c.task_type for c in cs if c.group_key is None])
            self.grouped.update([(c.task_type, c.group_key) for c in cs if c.group_key is not None])
        else:
            self.plain.update(map(_TYPE, cs))

    def add(self, task_type: str, group: str | None, n: int = 1) -> None:
        if group is None:
            self.plain[task_type] += n
        else:
            self.grouped[(task_type, group)] += n

    def snapshot(self) -> dict[Key, int]:
        out: dict[Key, int] = {(t, None): n for t, n in dict(self.plain).items()}
        out.update(dict(self.grouped))
        return out

    def total(self) -> int:
        return sum(dict(self.plain).values()) + sum(dict(self.grouped).values())


def _same(t: str) -> str:
    return t


def _completed(t: str) -> tuple[str, str]:
    return (t, "completed")


class Metrics:
    """The supervisor's in-memory counters (``supervisor.metrics``). Mutated only on the dispatch loop.

    The dispatch gate calls :meth:`inc_gate_denial` with each turn's denials by reason ("domain_cap", "group_cap",
    "throttled", "io_budget", "rate_limited"; a rate-limit denial also counts as a throttle), and the resource
    monitor sets :attr:`pressure` (0..1) for the gauge.
    """

    def __init__(self, *, durations: bool = True, queue_wait: bool = True) -> None:
        self.submitted = LabelCounter()
        self.dispatched = LabelCounter()
        self.completed = LabelCounter()
        self.failed: dict[tuple[str, str | None, bool], int] = {}  # (type, group, retryable)
        self.retried = 0
        self.dead_lettered = 0
        self.superseded = 0
        self.cancelled = 0
        self.preempted = 0
        self.rate_limit_throttles = 0
        self.gate_denials: dict[str, int] = {}
        self.pressure = 0.0
        self.durations: dict[tuple[str, str], Histogram] | None = {} if durations else None
        self.queue_wait: dict[str, Histogram] | None = {} if queue_wait else None
        self.watermark = 0  # the newest task row already counted in ``submitted``
        self.baseline: dict[tuple[str, str], int] = {}  # database counters when this object was created

    def start(self, max_task_id: int, db_counters: Mapping[tuple[str, str], int]) -> None:
        """Count from now: rows up to ``max_task_id`` exist already; database counters are taken as zero."""
        self.watermark = max_task_id
        self.baseline = dict(db_counters)

    # -- the dispatch loop --------------------------------------------------------------------------------
    def scan_submitted(self, conn: apsw.Connection) -> bool:
        """Count rows created since the last call (ids only grow, so nothing is missed or counted twice), a
        bounded number at a time; True if more may remain."""
        rows, self.watermark, more = stats.new_rows(conn, self.watermark)
        for task_type, group, n in rows:
            self.submitted.add(task_type, group, n)
        return more

    # Per turn or per results message, not per task: Counter.update and map() iterate in C.
    def dispatched_many(self, cs: list[Claimed], now_ms: int) -> None:
        self.dispatched.add_claims(cs)
        if self.queue_wait is not None:
            firsts = [c for c in cs if c.attempt == 1]  # time to the first start
            if firsts:
                waits = [now_ms - c.created_at for c in firsts]
                _observe_by_type(self.queue_wait, _same, list(map(_TYPE, firsts)), waits, 1000.0)

    def completed_many(self, cs: list[Claimed], elapsed_us: list[int]) -> None:
        self.completed.add_claims(cs)
        if self.durations is not None:
            _observe_by_type(self.durations, _completed, list(map(_TYPE, cs)), elapsed_us, 1e6)

    def failed_one(self, c: Claimed, decision: str, retryable: bool, seconds: float | None) -> None:
        """A failed attempt and what follows: ``decision`` is retry, fail or dead_letter."""
        _add(self.failed, (c.task_type, c.group_key, retryable))
        if decision == "retry":
            self.retried += 1
        elif decision == "dead_letter":
            self.dead_lettered += 1
        if seconds is not None:
            self._duration(c.task_type, "failed", seconds)

    def stopped(self, c: Claimed, status: str, preempted: bool) -> None:
        """A run the supervisor stopped landed in ``status`` (cancelled, superseded, failed, paused, pending)."""
        if status == "cancelled":
            self.cancelled += 1
        elif status == "superseded":
            self.superseded += 1
        elif status == "failed":
            _add(self.failed, (c.task_type, c.group_key, False))
        elif status == "paused" and preempted:
            self.preempted += 1

    def _duration(self, task_type: str, status: str, seconds: float) -> None:
        if self.durations is None:
            return
        h = self.durations.get((task_type, status))
        if h is None:
            h = self.durations[(task_type, status)] = Histogram(DURATION_BUCKETS, 1e6)
        h.observe(seconds * 1e6)

    # -- policy ---------------------------------------------------------------------------------------------
    def inc_gate_denial(self, reason: str, n: int = 1) -> None:
        """``reason``: one of :data:`taskmill.policy.gate.REASONS`; a rate-limit denial is also a throttle."""
        _add(self.gate_denials, reason, n)
        if reason == "rate_limited":
            self.rate_limit_throttles += n

    def inc_rate_limit_throttle(self) -> None:
        self.inc_gate_denial("rate_limited")

    # -- reading (any thread) ----------------------------------------------------------------------------------
    def db_delta(self, db_counters: Mapping[tuple[str, str], int]) -> dict[tuple[str, str], int]:
        base = self.baseline
        return {k: v - base.get(k, 0) for k, v in db_counters.items() if v != base.get(k, 0)}


class Gauges(msgspec.Struct, frozen=True, kw_only=True):
    pending: int = 0
    running: int = 0
    blocked: int = 0
    paused: int = 0
    waiting: int = 0
    pressure: float = 0.0
    max_concurrency: int = 0
    groups_paused: int = 0


def read_gauges(store: Store, running: int | None, max_concurrency: int, pressure: float) -> Gauges:
    """``running``: tasks executing now, from the supervisor's memory (None: use the database's running rows)."""
    counts = store.status_counts()
    return Gauges(
        pending=counts["pending"], running=counts["running"] if running is None else running,
        blocked=counts["blocked"], paused=counts["paused"], waiting=counts["waiting"], pressure=pressure,
        max_concurrency=max_concurrency, groups_paused=store.paused_group_count(),
    )  # fmt: skip


def _sum_name(db: Mapping[tuple[str, str], int], name: str) -> int:
    return sum(v for (n, _), v in db.items() if n == name)


def snapshot(m: Metrics, db_counters: Mapping[tuple[str, str], int], g: Gauges) -> MetricsSnapshot:
    db = m.db_delta(db_counters)
    failed = dict(m.failed)
    denials = dict(m.gate_denials)
    return MetricsSnapshot(
        submitted=m.submitted.total(), dispatched=m.dispatched.total(),
        completed=m.completed.total() + _sum_name(db, "completed"),
        failed=sum(failed.values()) + _sum_name(db, "failed"),
        failed_retryable=sum(n for (_, _, retryable), n in failed.items() if retryable),
        retried=m.retried, dead_lettered=m.dead_lettered + _sum_name(db, "dead_lettered"),
        superseded=m.superseded + _sum_name(db, "superseded"), cancelled=m.cancelled + _sum_name(db, "cancelled"),
        expired=_sum_name(db, "expired"), preempted=m.preempted,
        batches_submitted=_sum_name(db, "batches_submitted"), gate_denials=sum(denials.values()),
        rate_limit_throttles=m.rate_limit_throttles, group_pauses=_sum_name(db, "group_pauses"),
        group_resumes=_sum_name(db, "group_resumes"), dependency_failures=_sum_name(db, "dependency_failures"),
        recurring_skipped=_sum_name(db, "recurring_skipped"), pending=g.pending, running=g.running,
        blocked=g.blocked, paused=g.paused, waiting=g.waiting, pressure=g.pressure,
        max_concurrency=g.max_concurrency, groups_paused=g.groups_paused, gate_denials_by_reason=denials,
    )  # fmt: skip


class MetricsOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Exposition options: ``prefix`` gives ``{prefix}_taskmill_<name>``; ``labels`` are added to every sample;
    ``disabled`` names (as in :data:`METRIC_NAMES`) are neither exported nor, for histograms, observed."""

    prefix: str | None = None
    labels: dict[str, str] = {}
    disabled: frozenset[str] = frozenset()


def options(prefix: str | None, labels: Mapping[str, str] | None, disabled: Iterable[str]) -> MetricsOptions:
    """Validate the Scheduler's ``metrics_*`` keywords."""
    if prefix is not None and (not isinstance(prefix, str) or not _NAME.match(prefix)):
        raise ConfigError(f"metrics_prefix: must match [a-zA-Z_][a-zA-Z0-9_]*, got {prefix!r}")
    out: dict[str, str] = {}
    for k, v in (labels or {}).items():
        if not isinstance(k, str) or not _NAME.match(k) or k.startswith("__"):
            raise ConfigError(f"metrics_labels: {k!r} is not a valid Prometheus label name")
        if k in RESERVED_LABELS:
            raise ConfigError(f"metrics_labels: {k!r} is used by taskmill's own labels; choose another name")
        if not isinstance(v, str):
            raise ConfigError(f"metrics_labels: the value of {k!r} must be a string, got {v!r}")
        out[k] = v
    names = set()
    for name in disabled:
        short = name.removeprefix("taskmill_") if isinstance(name, str) else name
        if short not in METRIC_NAMES:
            raise ConfigError(f"metrics_disabled: unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
        names.add(short)
    return MetricsOptions(prefix=prefix or None, labels=out, disabled=frozenset(names))

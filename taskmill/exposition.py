"""Prometheus exposition of the scheduler's metrics, with prometheus-client.

Each scheduler has its own :class:`prometheus_client.CollectorRegistry` (never the process-wide default one), so
two schedulers in one process, or an application's own metrics, never clash. The registry holds one collector
that reads the supervisor's in-memory counters and the database when scraped: nothing is recorded through
prometheus-client on the dispatch path.

Names are ``taskmill_<name>`` (``<prefix>_taskmill_<name>`` with a prefix); see docs/metrics.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from .metrics import BATCH_BUCKETS, Gauges, Histogram, Metrics, MetricsOptions

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# (name, help, [(labels, value)]): a gauge the daemon adds (workers, uptime, ...)
Extra = tuple[str, str, Sequence[tuple[dict[str, str], float]]]


class Inputs:
    """What a scrape reads besides the in-memory counters: the database counters and the gauges."""

    __slots__ = ("db_counters", "gauges")

    def __init__(self, db_counters: dict[tuple[str, str], int], gauges: Gauges) -> None:
        self.db_counters = db_counters
        self.gauges = gauges


def _module(task_type: str) -> str:
    return task_type.partition("::")[0]


def _le(bound: float) -> str:
    return repr(float(bound))


class MetricsExporter:
    """The registry and its collector. ``inputs`` is called at each scrape (on the scraping thread)."""

    def __init__(self, metrics: Metrics, inputs: Callable[[], Inputs], options: MetricsOptions) -> None:
        self.metrics = metrics
        self._inputs = inputs
        self.options = options
        self._base = f"{options.prefix}_taskmill_" if options.prefix else "taskmill_"
        self._label_names = list(options.labels)
        self._label_values = list(options.labels.values())
        self._lock = threading.Lock()
        self._override: Inputs | None = None
        self._extra: Iterable[Extra] = ()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)  # type: ignore[arg-type]

    def text(self, inputs: Inputs | None = None, extra: Iterable[Extra] = ()) -> bytes:
        """The exposition (format 0.0.4). ``inputs``/``extra``: the daemon passes its own reads and gauges."""
        with self._lock:
            self._override, self._extra = inputs, extra
            try:
                return generate_latest(self.registry)
            finally:
                self._override, self._extra = None, ()

    # -- the collector ---------------------------------------------------------------------------------------
    def _on(self, name: str) -> bool:
        return name not in self.options.disabled

    def _family(self, kind: Callable[..., Any], name: str, help_: str, labels: Sequence[str] = ()) -> Any:
        return kind(self._base + name, help_, labels=[*self._label_names, *labels])

    def _add(self, fam: Any, labels: Sequence[str], value: float) -> None:
        fam.add_metric([*self._label_values, *labels], value)

    def collect(self) -> Iterator[Metric]:
        inputs = self._override if self._override is not None else self._inputs()
        m = self.metrics
        db = m.db_delta(inputs.db_counters)
        by_type = _by_type(db)
        yield from self._typed_counters(m, by_type)
        yield from self._plain_counters(m, db)
        yield from self._histograms(m, db)
        yield from self._gauges(inputs.gauges)
        for name, help_, samples in self._extra:
            if self._on(name):
                labels = sorted({k for lab, _ in samples for k in lab})
                fam = self._family(GaugeMetricFamily, name, help_, labels)
                for lab, value in samples:
                    self._add(fam, [lab.get(k, "") for k in labels], value)
                yield fam

    def _typed_counters(self, m: Metrics, by_type: dict[str, dict[str, int]]) -> Iterator[Metric]:
        tgm = ["type", "module", "group"]
        for name, help_, mem in (
            ("tasks_submitted_total", "Tasks submitted (inserted, or superseding a queued one), by any process.",
             m.submitted),
            ("tasks_dispatched_total", "Attempts handed to a worker.", m.dispatched),
            ("tasks_completed_total", "Tasks completed.", m.completed),
        ):  # fmt: skip
            if not self._on(name):
                continue
            fam = self._family(CounterMetricFamily, name, help_, tgm)
            values = mem.snapshot()
            for task_type, n in by_type.get(name.removeprefix("tasks_").removesuffix("_total"), {}).items():
                values[(task_type, None)] = values.get((task_type, None), 0) + n
            for (task_type, group), n in sorted(values.items(), key=_sort_key):
                self._add(fam, [task_type, _module(task_type), group or ""], n)
            yield fam
        if self._on("tasks_failed_total"):
            fam = self._family(CounterMetricFamily, "tasks_failed_total",
                               "Failed attempts (retryable: the error allowed a retry), and parents failed by a child.",
                               [*tgm, "retryable"])  # fmt: skip
            failed = dict(m.failed)
            for task_type, n in by_type.get("failed", {}).items():
                failed[(task_type, None, False)] = failed.get((task_type, None, False), 0) + n
            for (task_type, group, retryable), n in sorted(failed.items(), key=_sort_key):
                self._add(fam, [task_type, _module(task_type), group or "", "true" if retryable else "false"], n)
            yield fam

    def _plain_counters(self, m: Metrics, db: dict[tuple[str, str], int]) -> Iterator[Metric]:
        def total(name: str) -> int:
            return sum(v for (n, _), v in db.items() if n == name)

        for name, help_, value in (
            ("tasks_retried_total", "Retries scheduled after a failed attempt.", m.retried),
            ("tasks_dead_lettered_total", "Tasks out of retries, moved to the dead letters.",
             m.dead_lettered + total("dead_lettered")),
            ("tasks_superseded_total", "Tasks replaced by a newer submission with the same key.",
             m.superseded + total("superseded")),
            ("tasks_cancelled_total", "Tasks cancelled (queued or running, children included).",
             m.cancelled + total("cancelled")),
            ("tasks_expired_total", "Tasks whose TTL ran out before they started.", total("expired")),
            ("tasks_preempted_total", "Running tasks stopped for a more urgent one.", m.preempted),
            ("batches_submitted_total", "Batches submitted (submit_batch, child spawns).", total("batches_submitted")),
            ("rate_limit_throttles_total", "Tasks held back by a rate limit.", m.rate_limit_throttles),
            ("dependency_failures_total", "Tasks ended dependency_failed.", total("dependency_failures")),
            ("recurring_skipped_total", "Recurring fire times skipped while the previous occurrence ran.",
             total("recurring_skipped")),
        ):  # fmt: skip
            if self._on(name):
                fam = self._family(CounterMetricFamily, name, help_)
                self._add(fam, [], value)
                yield fam
        if self._on("gate_denials_total"):
            fam = self._family(CounterMetricFamily, "gate_denials_total", "Tasks the dispatch gate turned away.",
                               ["reason"])  # fmt: skip
            for reason, n in sorted(dict(m.gate_denials).items()):
                self._add(fam, [reason], n)
            yield fam
        for name, counter, help_ in (("group_pauses_total", "group_pauses", "Groups paused."),
                                     ("group_resumes_total", "group_resumes", "Groups resumed.")):  # fmt: skip
            if self._on(name):
                fam = self._family(CounterMetricFamily, name, help_, ["group"])
                for (counter_name, group), v in sorted(db.items()):
                    if counter_name == counter:
                        self._add(fam, [group], v)
                yield fam

    def _histograms(self, m: Metrics, db: dict[tuple[str, str], int]) -> Iterator[Metric]:
        if self._on("task_duration_seconds") and m.durations is not None:
            fam = self._family(HistogramMetricFamily, "task_duration_seconds",
                               "Execution time of attempts, by outcome (completed or failed).",
                               ["type", "module", "status"])  # fmt: skip
            for (task_type, status), h in sorted(dict(m.durations).items()):
                self._histogram(fam, [task_type, _module(task_type), status], h)
            yield fam
        if self._on("task_queue_wait_seconds") and m.queue_wait is not None:
            fam = self._family(HistogramMetricFamily, "task_queue_wait_seconds",
                               "Time from submission to the first start (any requested delay included).",
                               ["type", "module"])  # fmt: skip
            for task_type, h in sorted(dict(m.queue_wait).items()):
                self._histogram(fam, [task_type, _module(task_type)], h)
            yield fam
        if self._on("batch_size"):
            fam = self._family(HistogramMetricFamily, "batch_size", "Items per submitted batch.")
            counts, cumulative = [], 0
            for bound in [*map(str, BATCH_BUCKETS), "+Inf"]:
                cumulative += db.get(("batch_size", bound), 0)
                counts.append((bound if bound == "+Inf" else _le(float(bound)), cumulative))
            fam.add_metric(self._label_values, buckets=counts, sum_value=db.get(("batch_size_sum", ""), 0))
            yield fam

    def _histogram(self, fam: Any, labels: list[str], h: Histogram) -> None:
        counts = list(h.counts)
        buckets, cumulative = [], 0
        for bound, n in zip([*map(_le, h.bounds), "+Inf"], counts, strict=True):
            cumulative += n
            buckets.append((bound, cumulative))
        fam.add_metric([*self._label_values, *labels], buckets=buckets, sum_value=h.total)

    def _gauges(self, g: Gauges) -> Iterator[Metric]:
        for name, help_, value in (
            ("tasks_pending", "Queued tasks (delayed ones included).", g.pending),
            ("tasks_running", "Tasks executing now.", g.running),
            ("tasks_blocked", "Tasks waiting for dependencies.", g.blocked),
            ("tasks_paused", "Paused tasks.", g.paused),
            ("tasks_waiting", "Parents waiting for their children.", g.waiting),
            ("max_concurrency", "Current global concurrency limit.", g.max_concurrency),
            ("pressure", "Backpressure, 0 to 1.", g.pressure),
            ("groups_paused_count", "Paused groups.", g.groups_paused),
        ):
            if self._on(name):
                fam = self._family(GaugeMetricFamily, name, help_)
                self._add(fam, [], value)
                yield fam


def _by_type(db: dict[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    """Database counters labelled by task type: {counter name: {task type: n}}."""
    out: dict[str, dict[str, int]] = {}
    for (name, label), v in db.items():
        if name in ("completed", "failed"):
            out.setdefault(name, {})[label] = v
    return out


def _sort_key(item: tuple[tuple[Any, ...], int]) -> tuple[str, ...]:
    return tuple("" if x is None else str(x) for x in item[0])

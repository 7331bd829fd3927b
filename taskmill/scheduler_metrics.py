"""A scheduler's metrics, read on demand (a mixin of :class:`taskmill.Scheduler`).

Counters live in memory on the dispatch loop and, for transitions any process can make, in the database; the
gauges are read from the database when asked for. Without a running supervisor the numbers come from the
database alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .exposition import Inputs, MetricsExporter
    from .metrics import Metrics, MetricsOptions, MetricsSnapshot
    from .store import Store
    from .supervisor.runtime import Settings, Supervisor


class SchedulerMetrics:
    if TYPE_CHECKING:
        _supervisor: Supervisor | None
        _exporter: MetricsExporter | None
        settings: Settings
        metrics: Metrics
        metrics_options: MetricsOptions

        def _store(self) -> Store: ...

    def metrics_snapshot(self) -> MetricsSnapshot:
        """Counters since this scheduler was created (whichever process caused them) and gauges now; see
        :class:`taskmill.MetricsSnapshot`."""
        sup, store = self._supervisor, self._store()
        if sup is not None:
            return sup.metrics_snapshot(store)
        gauges = metrics.read_gauges(store, None, self.settings.max_concurrency, self.metrics.pressure)
        return metrics.snapshot(self.metrics, store.counters(), gauges)

    def metrics_exporter(self) -> MetricsExporter:
        """The Prometheus exporter: ``.registry`` is this scheduler's own ``CollectorRegistry``."""
        if self._exporter is None:
            from .exposition import MetricsExporter

            self._exporter = MetricsExporter(self.metrics, self._metrics_inputs, self.metrics_options)
        return self._exporter

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """A private ``prometheus_client.CollectorRegistry`` with this scheduler's metrics, to serve with
        prometheus-client's own helpers (``make_wsgi_app(registry)``, ``start_http_server(port, registry=...)``)."""
        return self.metrics_exporter().registry

    def metrics_text(self) -> bytes:
        """Prometheus text exposition (format 0.0.4) of this scheduler's metrics, for an app's /metrics route."""
        return self.metrics_exporter().text()

    def _metrics_inputs(self) -> Inputs:
        from .exposition import Inputs

        store = self._store()
        sup = self._supervisor
        running = sup.executing_count() if sup is not None else None
        gauges = metrics.read_gauges(store, running, self.settings.max_concurrency, self.metrics.pressure)
        return Inputs(store.counters(), gauges)

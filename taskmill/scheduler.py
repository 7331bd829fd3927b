"""The Scheduler: a client that also runs the supervisor (embedded) — ``run()``, ``start()``/``stop()``, ``with``.

The supervisor runs on its own thread and event loop (uvloop) inside the application's process and spawns
the worker processes; submissions from application threads commit through their own connections and wake
the loop directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from . import metrics
from .client import Client
from .config import DEFAULT_RETENTION, RetentionPolicy, ShutdownMode
from .domain import Domain, is_factory
from .errors import ConfigError, TaskmillError
from .events import Event, EventBus, Subscription
from .handle import DomainHandle
from .policy.aging import AgingConfig
from .policy.pressure import PressureSource, ThrottlePolicy
from .policy.ratelimit import RateLimit
from .policy.retry import RetryPolicy
from .policy_controls import PolicyControls, qualify
from .priority import as_priority
from .progress import TaskProgress
from .protocol import StateRef
from .registry import Registry
from .resources import ResourceSampler, SamplerConfig
from .scheduler_metrics import SchedulerMetrics
from .scheduling import SchedulingPolicy
from .snapshot import policy_view
from .store.connection import Durability
from .supervisor.gil import DEFAULT_S as DEFAULT_SWITCH_S
from .supervisor.progress import LiveView, capture_threadsafe
from .supervisor.runtime import Settings, Supervisor

if TYPE_CHECKING:
    from .exposition import MetricsExporter
    from .settings import SchedulerConfig

log = logging.getLogger("taskmill")


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}")
    return float(value)


def _state_ref(item: Any) -> StateRef:
    """Describe app state so a worker can rebuild it: a factory by import path, or an encodable instance."""
    target = item if is_factory(item) else type(item)
    module, qualname = getattr(target, "__module__", None), getattr(target, "__qualname__", "")
    if module is None or "<locals>" in qualname or "<lambda>" in qualname:
        raise ConfigError(f"app_state item {item!r} must be importable (defined at module level)")
    if module == "__main__":
        main = importlib.import_module("__main__")
        module = "__main__" if getattr(main, "__file__", None) else None
        if module is None:
            raise ConfigError(f"app_state item {item!r} is defined in an interactive session; workers cannot see it")
    if is_factory(item):
        return StateRef(f"{module}:{qualname}")
    try:
        return StateRef(f"{module}:{qualname}", msgspec.msgpack.encode(item))
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise ConfigError(
            f"app_state instance of {qualname} cannot be sent to worker processes ({exc}); pass a factory "
            "(a class or function defined at module level) that builds it in each worker"
        ) from exc


class Scheduler(PolicyControls, SchedulerMetrics, Client):
    """Owns dispatch for one database: a supervisor thread and a pool of worker processes."""

    def __init__(
        self,
        store: str | os.PathLike[str] = "tasks.db",
        domains: Iterable[Domain] = (),
        *,
        max_concurrency: int | None = None,
        workers: int | None = None,
        async_concurrency: int = 16,
        poll_interval: float = 0.5,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        shutdown: ShutdownMode | None = None,
        app_state: Iterable[Any] = (),
        durability: Durability = "full",
        retention: RetentionPolicy | None = DEFAULT_RETENTION,
        max_payload_bytes: int = 1024 * 1024,
        default_ttl: float | None = None,
        prefetch: bool = True,
        resource_monitoring: bool = False,
        preempt_priority: int | None = 0,
        preempt_grace: float = 3.0,
        cancel_hook_timeout: float = 30.0,
        timeout: float | None = None,
        max_tasks_per_worker: int | None = None,
        max_worker_memory: int | None = None,
        worker_memory_limit: int | None = None,
        hang_timeout: float | None = None,
        heartbeat_interval: float = 1.0,
        expiry_sweep_interval: float | None = 30.0,
        group_concurrency: Mapping[str, int] | None = None,
        default_group_concurrency: int = 0,
        rate_limits: Mapping[Any, RateLimit] | None = None,
        group_rate_limits: Mapping[str, RateLimit] | None = None,
        priority_aging: AgingConfig | None = None,
        group_weights: Mapping[str, int] | None = None,
        default_group_weight: int = 1,
        group_minimum_slots: Mapping[str, int] | None = None,
        resource_sampler: ResourceSampler | None = None,
        sampler_config: SamplerConfig | None = None,
        pressure_sources: Iterable[PressureSource] = (),
        throttle_policy: ThrottlePolicy | None = None,
        bandwidth_limit: float | None = None,
        metrics_prefix: str | None = None,
        metrics_labels: Mapping[str, str] | None = None,
        metrics_disabled: Iterable[str] = (),
        switch_interval: float | None = DEFAULT_SWITCH_S,
    ) -> None:
        domains = list(domains)
        if not domains:
            raise ConfigError("Scheduler needs at least one Domain (domains=[...])")
        n_workers = workers if workers is not None else (os.cpu_count() or 2)
        if n_workers < 1:
            raise ConfigError("workers must be >= 1")
        # Default: no cap beyond capacity — each worker runs one sync task or up to async_concurrency async ones.
        concurrency = max_concurrency if max_concurrency is not None else n_workers * async_concurrency
        if concurrency < 0 or async_concurrency < 1 or poll_interval <= 0 or max_retries < 0:
            raise ConfigError("max_concurrency >= 0, async_concurrency >= 1, poll_interval > 0, max_retries >= 0")
        super().__init__(store, domains=domains, durability=durability, max_payload_bytes=max_payload_bytes,
                         default_ttl=default_ttl)  # fmt: skip
        base_retry = retry or RetryPolicy.constant(max_retries)
        self.registry = Registry(domains, retry=base_retry)
        self.shutdown_mode = shutdown or ShutdownMode.graceful(10.0)
        self.resource_monitoring = resource_monitoring
        self.bus: EventBus[Event] = EventBus()
        self.progress_bus: EventBus[TaskProgress] = EventBus(self._on_progress_subscribers)
        self.settings = Settings(
            store_path=self.path, durability=durability, workers=n_workers, max_concurrency=concurrency,
            async_concurrency=async_concurrency, poll_interval=poll_interval, prefetch=prefetch,
            retention=retention, shutdown_timeout=self.shutdown_mode.timeout,
            app_state=[_state_ref(item) for item in app_state],
            preempt_priority=None if preempt_priority is None else as_priority(preempt_priority),
            preempt_grace=_positive("preempt_grace", preempt_grace),
            cancel_hook_timeout=_positive("cancel_hook_timeout", cancel_hook_timeout),
            default_timeout=None if timeout is None else _positive("timeout", timeout),
            max_tasks_per_worker=max_tasks_per_worker and int(_positive("max_tasks_per_worker", max_tasks_per_worker)),
            max_worker_memory=max_worker_memory and int(_positive("max_worker_memory", max_worker_memory)),
            worker_memory_limit=worker_memory_limit and int(_positive("worker_memory_limit", worker_memory_limit)),
            hang_timeout=None if hang_timeout is None else _positive("hang_timeout", hang_timeout),
            heartbeat_interval=_positive("heartbeat_interval", heartbeat_interval),
            default_ttl=default_ttl, max_payload_bytes=max_payload_bytes,
            expiry_sweep_interval=None if expiry_sweep_interval is None else
            _positive("expiry_sweep_interval", expiry_sweep_interval),
            switch_interval=None if switch_interval is None else _positive("switch_interval", switch_interval),
        )  # fmt: skip
        self.policy = SchedulingPolicy(
            group_concurrency=group_concurrency, default_group_concurrency=default_group_concurrency,
            rate_limits={qualify(self.registry, t): r for t, r in (rate_limits or {}).items()},
            group_rate_limits=group_rate_limits, priority_aging=priority_aging, group_weights=group_weights,
            default_group_weight=default_group_weight, group_minimum_slots=group_minimum_slots,
            resource_monitoring=resource_monitoring, resource_sampler=resource_sampler,
            sampler_config=sampler_config, pressure_sources=pressure_sources, throttle_policy=throttle_policy,
            bandwidth_limit=bandwidth_limit,
        )  # fmt: skip
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self.metrics_options = metrics.options(metrics_prefix, metrics_labels, metrics_disabled)
        off = self.metrics_options.disabled
        self.metrics = metrics.Metrics(durations="task_duration_seconds" not in off,
                                       queue_wait="task_queue_wait_seconds" not in off)  # fmt: skip
        db = self._store()
        self.metrics.start(db.max_task_id(), db.counters())  # count what happens from now on
        self._exporter: MetricsExporter | None = None

    # -- handles and events -----------------------------------------------------------------------------
    def domain(self, domain: Domain) -> DomainHandle:
        return DomainHandle(self, self.registry.domain(domain))

    def subscribe(self, maxsize: int = 10_000) -> Subscription[Event]:
        """Lifecycle events (sync or async iteration). A slow subscriber drops its oldest events (counted in
        ``dropped``); it never slows dispatch."""
        return self.bus.subscribe(maxsize)

    def subscribe_progress(self, interval: float = 1.0, maxsize: int = 1000) -> Subscription[TaskProgress]:
        """Byte-level progress of running tasks, every ``interval`` seconds: one :class:`TaskProgress` per task
        that reports bytes. Kept apart from :meth:`subscribe` so byte counts never crowd out lifecycle events."""
        return self._subscribe_progress(interval, maxsize, None)

    def _subscribe_progress(self, interval: float, maxsize: int, domain: str | None) -> Subscription[TaskProgress]:
        interval = _positive("interval", interval)
        prefix = None if domain is None else domain + "::"
        accept = None if prefix is None else (lambda p: p.task_type.startswith(prefix))
        sub = self.progress_bus.subscribe(maxsize, accept)
        sub.interval = interval
        return sub

    def _on_progress_subscribers(self, active: bool) -> None:
        sup = self._supervisor
        if active and sup is not None:
            sup.progress_subscribers_changed()

    def _bus(self) -> EventBus[Event]:
        return self.bus

    def _live_view(self) -> LiveView | None:
        sup = self._supervisor
        if sup is None or not sup.started.is_set() or sup.error is not None:
            return None
        return capture_threadsafe(sup, policy_view)

    def _max_concurrency(self) -> int | None:
        return self.settings.max_concurrency

    def _notify(self, submitted: bool = False) -> bool:
        sup = self._supervisor
        if sup is not None and sup.loop is not None:
            sup.wake_threadsafe(submitted)
            return True
        return super()._notify(submitted)

    def set_max_concurrency(self, n: int) -> None:
        if n < 0:
            raise ValueError("max_concurrency must be >= 0")
        self.settings.max_concurrency = n
        self._notify()

    @property
    def max_concurrency(self) -> int:
        return self.settings.max_concurrency

    @property
    def is_running(self) -> bool:
        return self._supervisor is not None and self._supervisor.started.is_set() and self._supervisor.error is None

    # -- running ----------------------------------------------------------------------------------------
    def _make_supervisor(self) -> Supervisor:
        if self._supervisor is not None:
            raise TaskmillError("this scheduler is already running")
        self._supervisor = Supervisor(self.settings, self.registry, self.bus, self.progress_bus, self.policy,
                                      self.metrics)  # fmt: skip
        self._supervisor.exporter = self.metrics_exporter
        return self._supervisor

    def _new_loop(self) -> asyncio.AbstractEventLoop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:  # pragma: no cover
            return asyncio.new_event_loop()

    def run(
        self,
        *,
        on_hangup: Callable[[], None] | None = None,
        companion: Callable[[Supervisor], Awaitable[None]] | None = None,
    ) -> None:
        """Dispatch until SIGINT/SIGTERM (a second signal forces a hard stop) or :meth:`stop`.

        For a daemon: ``on_hangup`` runs on the supervisor's loop at SIGHUP (main thread only), and
        ``companion(supervisor)`` is a coroutine run on that loop beside dispatch (e.g. HTTP endpoints),
        cancelled once dispatch has stopped.
        """
        sup = self._make_supervisor()
        loop = self._new_loop()
        in_main = threading.current_thread() is threading.main_thread()
        hangup = in_main and on_hangup is not None
        try:
            if in_main:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, sup.request_stop, self.shutdown_mode.kind == "hard")
            if hangup:
                loop.add_signal_handler(signal.SIGHUP, on_hangup)  # type: ignore[arg-type]
            loop.run_until_complete(self._serve(sup, companion))
        finally:
            if in_main:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            if hangup:
                loop.remove_signal_handler(signal.SIGHUP)
            loop.close()
            self._supervisor = None

    @staticmethod
    async def _serve(sup: Supervisor, companion: Callable[[Supervisor], Awaitable[None]] | None) -> None:
        if companion is None:
            await sup.serve()
            return
        side = asyncio.ensure_future(companion(sup))
        try:
            await sup.serve()
        finally:
            side.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await side

    def start(self, timeout: float = 120.0) -> None:
        """Run the supervisor on a background thread; returns once the workers are up."""
        sup = self._make_supervisor()

        def target() -> None:
            loop = self._new_loop()
            try:
                loop.run_until_complete(sup.serve())
            except BaseException as exc:  # surfaced by start()/stop()
                self._thread_error = exc
            finally:
                loop.close()

        self._thread_error = None
        self._thread = threading.Thread(target=target, name="taskmill-supervisor", daemon=True)
        self._thread.start()
        if not sup.started.wait(timeout):
            raise TaskmillError(f"supervisor did not start within {timeout}s")
        if sup.error is not None:
            self._thread.join()
            self._thread = None
            self._supervisor = None
            raise sup.error

    def stop(self, *, hard: bool | None = None, timeout: float | None = None) -> None:
        """Stop per the shutdown mode (``hard=True`` forces it) and wait for the supervisor to finish."""
        sup, thread = self._supervisor, self._thread
        if sup is None:
            return
        sup.request_stop(hard=self.shutdown_mode.kind == "hard" if hard is None else hard)
        if thread is not None:
            thread.join(timeout)
            self._thread = None
        self._supervisor = None
        if self._thread_error is not None:
            err, self._thread_error = self._thread_error, None
            raise err

    def wait_until_idle(self, timeout: float | None = None, poll: float = 0.01) -> bool:
        """Block until nothing is pending or running (delayed tasks count as pending). False on timeout.

        Each poll is three index seeks, not a count: counting a large backlog every 10 ms took CPU and the GIL
        from the dispatch loop it was waiting for."""
        deadline = None if timeout is None else time.monotonic() + timeout
        store = self._store()
        while True:
            if not store.busy():
                return True
            if self._thread_error is not None:
                raise self._thread_error
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)

    def __enter__(self) -> Scheduler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.close()

    def close(self) -> None:
        if self._supervisor is not None:
            with contextlib.suppress(Exception):
                self.stop(hard=True)
        self.bus.close_all()
        self.progress_bus.close_all()
        super().close()

    @classmethod
    def from_config(cls, config: SchedulerConfig) -> Scheduler:
        """Build a scheduler from the daemon's config tree (``taskmill.load_config("taskmill.toml")``).

        Imports the ``"package.module:attribute"`` strings of ``domains`` and ``app_state`` and applies the
        ``domain_concurrency`` caps to the imported domains.
        """
        from .settings import scheduler_kwargs

        scheduler = cls(**scheduler_kwargs(config))
        for name, cap in config.domain_concurrency.items():
            scheduler.registry.domains[name].max_concurrency = cap
        return scheduler

    @classmethod
    def signature(cls) -> inspect.Signature:
        return inspect.signature(cls.__init__)

"""The supervisor's lifecycle: lock, recover, spawn workers, run dispatch turns, shut down.

The loop waits on one future that anything can complete: an in-process submit, a datagram from another
process, a worker frame, a worker exit, a stop request, or the next deadline (a delayed task falling due,
the slow ``data_version`` safety-net poll, the shutdown deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .. import events as ev
from .. import faults
from ..errors import StoreError
from ..metrics import Metrics, MetricsSnapshot, read_gauges, snapshot
from ..progress import TaskProgress
from ..protocol import Boot, ByteProgress, ChildrenQuery, Progress, Results, Spawn, StateRef, ToSupervisor
from ..registry import Registry
from ..scheduling import SchedulingPolicy
from ..store import Store, dispatch, now_ms
from ..store.records import Claimed
from . import gil, leftovers
from .dispatcher import Dispatcher, header
from .lock import SupervisorLock
from .pool import WorkerHandle
from .progress import ProgressTable
from .staffing import Staffing
from .starvation import StarvationWatch
from .wakeup import WakeupListener

log = logging.getLogger("taskmill.supervisor")


class Settings(msgspec.Struct, kw_only=True):
    store_path: str
    durability: str = "full"
    workers: int = 2
    max_concurrency: int = 2
    async_concurrency: int = 16
    poll_interval: float = 0.5
    prefetch: bool = True
    retention: Any = None
    shutdown_timeout: float = 10.0
    app_state: list[StateRef] = []
    preempt_priority: int | None = 0
    preempt_grace: float = 3.0
    cancel_hook_timeout: float = 30.0
    default_timeout: float | None = None
    max_tasks_per_worker: int | None = None
    max_worker_memory: int | None = None
    worker_memory_limit: int | None = None  # bytes of address space (RLIMIT_AS) each worker may map
    hang_timeout: float | None = None
    heartbeat_interval: float = 1.0
    default_ttl: float | None = None
    max_payload_bytes: int = 1024 * 1024
    expiry_sweep_interval: float | None = 30.0
    switch_interval: float | None = gil.DEFAULT_S  # seconds; None leaves the interpreter's GIL switch alone


class Supervisor(Staffing):
    def __init__(
        self, settings: Settings, registry: Registry, bus: ev.EventBus[ev.Event],
        progress_bus: ev.EventBus[TaskProgress] | None = None, policy: SchedulingPolicy | None = None,
        metrics: Metrics | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.policy = policy
        self.registry = registry
        self.bus = bus
        self.progress_bus: ev.EventBus[TaskProgress] = progress_bus if progress_bus is not None else ev.EventBus()
        self.metrics = metrics if metrics is not None else Metrics()  # policy code counts gate denials here
        self.exporter: Callable[[], Any] | None = None  # the scheduler's Prometheus exporter (for /metrics)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.dispatcher: Dispatcher | None = None
        self.started = threading.Event()
        self.recovered = 0
        self.progress = ProgressTable()  # the latest reports of running attempts (snapshots, `taskmill top`)
        self.error: BaseException | None = None
        self.thread_id: int | None = None  # the loop's thread
        self.store_error: str | None = None  # the last dispatch turn failed (disk full, ...): degraded
        self._waiter: asyncio.Future[None] | None = None
        self._wake_pending = False
        self._submit_wake_pending = False
        self._unadopted: list[WorkerHandle] = []
        self._booting: list[asyncio.Future[None]] = []
        self._still_booting = 0
        self._boot_t0 = 0.0
        self._stop_requested = False
        self._hard_stop = False
        self._fatal: BaseException | None = None
        self._respawns: set[asyncio.Task[None]] = set()
        self._standbys: dict[int, asyncio.Task[WorkerHandle | None]] = {}  # slot -> replacement booting early
        self._standby_handles: set[WorkerHandle] = set()
        self._boot: Boot | None = None
        self._env: dict[str, str] = {}
        self._lock: SupervisorLock | None = None

    # -- thread-safe controls -----------------------------------------------------------------------------
    def wake_threadsafe(self, submitted: bool = False) -> None:
        """Something changed in the database: look at the queue again, soon. ``submitted``: only new runnable
        tasks were added, so the turn skips the control and due-task checks."""
        if self._wake_pending or self.loop is None or (submitted and self._submit_wake_pending):
            return  # a pending change wake covers a submit; a pending submit wake covers another
        if submitted:
            self._submit_wake_pending = True
        else:
            self._wake_pending = True
        with contextlib.suppress(RuntimeError):  # loop already closed
            self.loop.call_soon_threadsafe(self._on_submit if submitted else self._on_change)

    def _on_change(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.queue_maybe_nonempty = True
            self.dispatcher.check_due = True
            self.dispatcher.check_control = True
        self._wake()

    def _on_submit(self) -> None:
        self._submit_wake_pending = False
        if self.dispatcher is not None:
            self.dispatcher.queue_maybe_nonempty = True
            self.dispatcher.check_submits = True
        self._wake()

    def _policy_changed(self) -> None:
        """A limit, weight or pressure source changed (any thread): look at the queue again."""
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._requeue)

    def _requeue(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.queue_maybe_nonempty = True
        self._wake()

    async def _monitor(self) -> None:
        """Sample resources and pressure sources on an interval (off the loop: samplers may block)."""
        assert self.policy is not None and self.loop is not None
        while not self._stop_requested:
            try:
                moved = await self.loop.run_in_executor(None, self.policy.tick)
            except Exception:  # a faulty sampler or pressure source must not stop dispatch
                log.exception("resource sampler or pressure source failed")
                moved = False
            self.metrics.pressure = self.policy.pressure
            if moved:
                self._requeue()
            await asyncio.sleep(self.policy.interval)

    def _start_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    def request_stop(self, hard: bool = False) -> None:
        """Stop dispatching; ``hard`` (or a second request) skips the graceful wait."""
        if self.loop is None:
            return
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._stop, hard)

    def executing_count(self) -> int | None:
        """Tasks executing now (None before dispatch starts). Safe from any thread: it only reads lengths."""
        d = self.dispatcher
        if d is None:
            return None
        return sum(1 for w in d.workers if w.sync) + sum(len(w.asyncs) for w in d.workers)

    def metrics_snapshot(self, store: Store) -> MetricsSnapshot:
        """Counters, plus gauges read through ``store`` (a connection of the calling thread)."""
        gauges = read_gauges(store, self.executing_count(), self.settings.max_concurrency, self.metrics.pressure)
        return snapshot(self.metrics, store.counters(), gauges)

    @property
    def stopping(self) -> bool:
        """A stop was requested: no new claims; running tasks are finishing or being interrupted."""
        return self._stop_requested

    def _stop(self, hard: bool) -> None:
        self._hard_stop = hard or self._stop_requested
        self._stop_requested = True
        self._wake()

    def _wake(self) -> None:
        self._wake_pending = False
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    # -- worker callbacks ---------------------------------------------------------------------------------
    def _on_message(self, worker: WorkerHandle, msg: ToSupervisor) -> None:
        assert self.dispatcher is not None
        worker.last_seen = time.monotonic()
        if isinstance(msg, Results):
            if faults.FAULTS:
                faults.hit("after_result_recv")
            if msg.rss:
                worker.rss = msg.rss
            self.dispatcher.on_results(worker, msg.results)
            self._wake()
        elif isinstance(msg, Spawn | ChildrenQuery):
            self.dispatcher.flow.requests.append((worker, msg))  # answered after the next turn commits
            self._wake()
        elif isinstance(msg, Progress | ByteProgress):
            c = self._held(worker, msg.task_id, msg.attempt)
            if c is None:
                return  # a report racing its attempt's end: nothing to show it on
            if isinstance(msg, ByteProgress):
                self.progress.on_bytes(msg)  # byte progress stays out of the event stream (subscribe_progress)
            else:
                self.progress.on_progress(msg)
                if self.bus.active:
                    self.bus.publish(ev.Progress(header(c), msg.fraction, msg.message))
            self.progress.prune(self, self.dispatcher.inflight_count())

    @staticmethod
    def _held(worker: WorkerHandle, task_id: int, attempt: int) -> Claimed | None:
        c = worker.asyncs.get((task_id, attempt))
        if c is not None:
            return c
        return next((g for g in worker.sync if g.id == task_id and g.attempt == attempt), None)

    def progress_subscribers_changed(self) -> None:
        """Start the byte-progress ticker when someone subscribes (thread-safe)."""
        loop = self.loop
        if loop is not None and self.dispatcher is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.progress.start_ticker, self, self.progress_bus)

    # -- main ---------------------------------------------------------------------------------------------
    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        lock = SupervisorLock(self.settings.store_path)
        store: Store | None = None
        listener: WakeupListener | None = None
        switch_held = False
        try:
            switch_held = gil.hold(self.settings.switch_interval)
            lock.acquire()
            self._lock = lock
            leftovers.reap(*lock.previous)  # a crash's old attempts must be gone before they run again
            booting = await self._begin_spawn()  # workers boot while the store opens and recovers
            store = Store(self.settings.store_path, self.settings.durability)  # type: ignore[arg-type]
            listener = WakeupListener(self.settings.store_path)  # bound before the epoch below commits
            ended: list[int] = []
            with store.write():
                self.recovered = dispatch.recover(store.conn, now_ms(), ended)
                dispatch.announce(store.conn)
            if self.recovered:
                log.info("recovered %d task(s) left running by a previous supervisor", self.recovered)
            self.dispatcher = Dispatcher(store, self.registry, self.bus, self.settings, self.policy, self.metrics)
            if self.policy is not None:
                self.policy.on_change = self._policy_changed
                if self.policy.ticking:
                    self._start_task(self._monitor())
            self.dispatcher.control.start()
            self.dispatcher.control.stopper.standby = self._start_standby
            self.dispatcher.flow.start(now_ms(), ended)
            if listener.sock is not None:
                self.loop.add_reader(listener.sock.fileno(), self._on_datagram, listener)
            await self._spawn_all(booting)  # dispatch starts now; ``started`` is set once every worker joined
            self.progress.start_ticker(self, self.progress_bus)
            await self._run(store)
        except BaseException as exc:
            self.error = exc
            for h in self._unadopted:  # spawned, but the start failed before the pool took them
                h.kill()
            for fut in self._booting:
                fut.cancel()
            raise
        finally:
            self.started.set()
            if listener is not None:
                if listener.sock is not None:
                    self.loop.remove_reader(listener.sock.fileno())
                listener.close()
            if store is not None:
                with contextlib.suppress(Exception):
                    store.checkpoint()
                store.close()
            lock.release()
            if switch_held:
                gil.release()

    def _on_datagram(self, listener: WakeupListener) -> None:
        if listener.drain():
            self._submit_wake_pending = True  # _on_submit clears it
            self._on_submit()
        else:
            self._on_change()

    async def _run(self, store: Store) -> None:
        assert self.dispatcher is not None and self.loop is not None
        d = self.dispatcher
        last_version = store.data_version()
        next_poll = time.monotonic() + self.settings.poll_interval
        deadline: float | None = None
        backoff = 0.0
        watch = StarvationWatch()
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._stop_requested and deadline is None:
                d.claiming = False
                deadline = time.monotonic() + (0.0 if self._hard_stop else self.settings.shutdown_timeout)
            if self._stop_requested and self._hard_stop:
                deadline = min(deadline or 0.0, time.monotonic())
            if deadline is not None and (d.inflight_count() == 0 or time.monotonic() >= deadline):
                break
            try:
                t0, c0 = time.perf_counter(), time.thread_time()
                d.turn()
                watch.turn(time.perf_counter() - t0, time.thread_time() - c0)
                backoff = 0.0
                self.store_error = None
            except StoreError as exc:  # disk full, lock budget exhausted: keep state, try again shortly
                self.store_error = str(exc)
                backoff = min(max(backoff * 2, 0.05), 2.0)
                log.error("dispatch turn failed (%s); retrying in %.2fs", exc, backoff)
            self._recycle()
            if self._standbys:
                self._drop_unused_standbys()
            control_deadline = d.control.tick()
            now = time.monotonic()
            watch.check(now)
            if now >= next_poll:
                version = store.data_version()
                if version != last_version:
                    last_version = version
                    d.queue_maybe_nonempty = True
                    d.check_due = True
                    d.check_control = True
                    continue
                next_poll = now + self.settings.poll_interval
            timeout = next_poll - now
            for due_ms in (d.next_due_ms, d.control.next_group_resume_ms, d.flow.next_sweep_ms):
                if due_ms is not None:
                    timeout = min(timeout, max(0.0, (due_ms - now_ms()) / 1000.0))
            if control_deadline is not None:
                timeout = min(timeout, max(0.0, control_deadline - now))
            if d.policy_wake is not None:
                timeout = min(timeout, max(0.0, d.policy_wake - now))
                d.policy_wake = None
            ahead = d.next_ahead()
            if ahead is not None:
                timeout = min(timeout, max(0.0, ahead - now))
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            if backoff:
                timeout = backoff
            if (d.has_pending_writes or d.rows_behind) and not backoff:
                continue
            await self._wait(timeout)
        await self._shutdown()

    async def _wait(self, timeout: float) -> None:
        assert self.loop is not None
        self._waiter = self.loop.create_future()
        timer = self.loop.call_later(max(timeout, 0.0), self._wake)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _shutdown(self) -> None:
        """Whatever still runs is interrupted; its tasks go back to pending, uncounted, for the next start."""
        assert self.dispatcher is not None
        d = self.dispatcher
        d.claiming = False
        d.shutting_down = True
        for t in list(self._respawns):
            t.cancel()
        for standby in self._standbys.values():
            standby.cancel()
        for h in self._standby_handles:
            h.kill()
        busy = [w for w in d.workers if w.alive and not w.idle]
        for w in busy:
            w.kill()
        stopping = [*d.workers, *self._standby_handles]  # standbys too: their exits are reaped on this loop
        await asyncio.gather(*(w.stop(2.0) for w in stopping), return_exceptions=True)
        for w in d.workers:  # exit callbacks may not have run for workers we killed
            if w.sync or w.asyncs:
                d.on_worker_exit(w, "supervisor shutting down")
        with contextlib.suppress(StoreError):
            d.turn()

"""The supervisor's lifecycle: lock, recover, spawn workers, run dispatch turns, shut down.

The loop waits on one future that anything can complete: an in-process submit, a datagram from another
process, a worker frame, a worker exit, a stop request, or the next deadline (a delayed task falling due,
the slow ``data_version`` safety-net poll, the shutdown deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from .. import events as ev
from .. import faults
from ..errors import StoreError, WorkerBootError
from ..metrics import Metrics, MetricsSnapshot, read_gauges, snapshot
from ..policy.preempt import should_recycle, task_limit
from ..progress import TaskProgress
from ..protocol import Boot, ByteProgress, ChildrenQuery, Progress, Results, Spawn, StateRef, ToSupervisor
from ..registry import Registry
from ..scheduling import SchedulingPolicy
from ..store import Store, dispatch, now_ms
from ..store.records import Claimed
from . import leftovers
from .dispatcher import Dispatcher, header
from .lock import SupervisorLock
from .pool import EXIT_BOOT_ERROR, WorkerHandle, describe_exit
from .progress import ProgressTable
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


class Supervisor:
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

    def _on_exit(self, worker: WorkerHandle, rc: int | None) -> None:
        assert self.dispatcher is not None
        if worker in self._standby_handles:  # a standby that never took a slot: nothing ran there
            self._standby_handles.discard(worker)
            return
        if worker.retiring and worker.idle:
            return
        if rc != 0:  # died or was killed: what its task started dies too, before the task can run again
            leftovers.reap(None, [worker.pid], timeout=0.5)
        reason = describe_exit(rc, worker.killed)
        if not self.dispatcher.shutting_down:
            log.warning("worker %s: %s", worker.pid, reason)
        self.dispatcher.on_worker_exit(worker, reason, worker.executing())
        if not self._stop_requested and not worker.retiring:
            task = asyncio.get_running_loop().create_task(self._respawn(worker.index, rc))
            self._respawns.add(task)
            task.add_done_callback(self._respawns.discard)
        self._wake()

    async def _respawn(self, index: int, rc: int | None) -> None:
        assert self.dispatcher is not None and self._boot is not None
        if rc == EXIT_BOOT_ERROR:
            self._fatal = WorkerBootError("a worker exited with the boot-error code; not respawning")
            self._wake()
            return
        standby = self._standbys.pop(index, None)
        handle = await standby if standby is not None else None
        if handle is not None and handle.alive:
            self._standby_handles.discard(handle)  # from now on its death is the slot's
        else:
            handle = WorkerHandle(index, self._on_message, self._on_exit)
            try:
                await self._boot_worker(handle)
            except WorkerBootError as exc:
                self._fatal = exc
                self._wake()
                return
        if self._stop_requested:
            await handle.stop(1.0)
            return
        handle.task_limit = task_limit(self.settings.max_tasks_per_worker)
        handle.last_seen = time.monotonic()
        self.dispatcher.workers[index] = handle
        self._record_workers()
        self.dispatcher.queue_maybe_nonempty = True
        self._wake()

    async def _boot_worker(self, handle: WorkerHandle) -> None:
        assert self.dispatcher is not None and self._boot is not None
        t0 = time.monotonic()
        await handle.start(self._boot, self._env)
        self._booted_in(time.monotonic() - t0)

    def _booted_in(self, seconds: float) -> None:
        """A worker boot took this long: start standbys about two boots ahead of a kill."""
        assert self.dispatcher is not None
        self.dispatcher.control.stopper.standby_lead = min(max(2 * seconds, 0.5), 5.0)

    def _start_standby(self, worker: WorkerHandle) -> None:
        """A stop order against ``worker`` will probably end in a kill: boot its replacement now."""
        if self._stop_requested or worker.index in self._standbys or self._boot is None:
            return
        self._standbys[worker.index] = asyncio.get_running_loop().create_task(self._standby(worker.index))

    async def _standby(self, index: int) -> WorkerHandle | None:
        handle = WorkerHandle(index, self._on_message, self._on_exit)
        self._standby_handles.add(handle)
        try:
            await self._boot_worker(handle)
        except WorkerBootError:
            self._standby_handles.discard(handle)
            return None  # the slot boots its own replacement (and reports the error) if it needs one
        return handle

    def _drop_unused_standbys(self) -> None:
        """The attempt stopped in time after all (or the slot was refilled otherwise): stop its standby."""
        assert self.dispatcher is not None
        stopper = self.dispatcher.control.stopper
        for index, task in list(self._standbys.items()):
            w = self.dispatcher.workers[index]
            if task.done() and w.alive and not w.killed and not stopper.stopping(w):
                del self._standbys[index]
                handle = task.result()
                if handle is not None:
                    self._start_task(handle.stop(1.0))

    def _record_workers(self, handles: list[WorkerHandle] | None = None) -> None:
        """Before a worker gets any task, its pid is in the lock file, for a successor to reap if we crash."""
        assert self._lock is not None
        if handles is None:
            assert self.dispatcher is not None
            handles = self.dispatcher.workers
        self._lock.record_workers([w.pid for w in handles if w.pid])

    # -- main ---------------------------------------------------------------------------------------------
    def _boot_message(self) -> Boot:
        path = [p or os.getcwd() for p in sys.path]
        heartbeat = self.settings.heartbeat_interval if self.settings.hang_timeout else 0.0
        return Boot(self.registry.origins(), self.settings.app_state, self.settings.async_concurrency, path,
                    self.registry.retry.max_retries, self.settings.default_timeout, heartbeat,
                    self.settings.default_ttl, self.settings.max_payload_bytes,
                    self.settings.worker_memory_limit or 0)  # fmt: skip

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        lock = SupervisorLock(self.settings.store_path)
        store: Store | None = None
        listener: WakeupListener | None = None
        try:
            lock.acquire()
            self._lock = lock
            leftovers.reap(*lock.previous)  # a crash's old attempts must be gone before they run again
            booting = await self._begin_spawn()  # workers boot while the store opens and recovers
            store = Store(self.settings.store_path, self.settings.durability)  # type: ignore[arg-type]
            ended: list[int] = []
            with store.write():
                self.recovered = dispatch.recover(store.conn, now_ms(), ended)
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
            listener = WakeupListener(self.settings.store_path)
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

    def _on_datagram(self, listener: WakeupListener) -> None:
        if listener.drain():
            self._submit_wake_pending = True  # _on_submit clears it
            self._on_submit()
        else:
            self._on_change()

    async def _begin_spawn(self) -> dict[asyncio.Future[None], WorkerHandle]:
        """Exec every worker now, so they import while the store opens; they take no work before
        :meth:`_spawn_all` adds them to the pool. Killed again if the start fails before that."""
        self._boot = self._boot_message()
        self._env = dict(os.environ)
        self._env["PYTHONPATH"] = os.pathsep.join(self._boot.sys_path)
        handles = [WorkerHandle(i, self._on_message, self._on_exit) for i in range(self.settings.workers)]
        self._unadopted = handles
        self._boot_t0 = time.monotonic()
        spawned = await asyncio.gather(*(h.spawn(self._boot, self._env) for h in handles), return_exceptions=True)
        self._record_workers(handles)
        for r in spawned:
            if isinstance(r, BaseException):
                raise WorkerBootError(f"could not start a worker process: {r!r}") from r
        booting = {asyncio.ensure_future(h.ready()): h for h in handles}
        self._booting = list(booting)
        return booting

    async def _spawn_all(self, booting: dict[asyncio.Future[None], WorkerHandle]) -> None:
        """Return as soon as the first worker is ready, so dispatch starts while the others boot.

        The others join the pool as they come up; :attr:`started` (what ``Scheduler.start()`` waits for, and
        health's "dispatching") is set once all have. A boot failure of the first one fails the start; a later
        one stops the scheduler as a failed respawn does (boot errors are deterministic: every worker imports
        the same modules).
        """
        assert self.dispatcher is not None
        handles = list(booting.values())
        self.dispatcher.workers = handles  # not alive until booted: the dispatcher skips them until then
        self._unadopted, self._booting = [], []
        done, _ = await asyncio.wait(booting, return_when=asyncio.FIRST_COMPLETED)
        first = next(iter(done))
        problem = first.exception()
        if problem is None:
            missing = self.registry.task_types() - set(booting[first].task_types)
            if missing:
                problem = WorkerBootError(
                    f"workers do not know task type(s) {sorted(missing)}: define domains and executors at module "
                    "level, in a module (or the __main__ script) that workers can import"
                )
        if problem is not None:
            for fut in booting:
                fut.cancel()
            for h in handles:
                h.kill()
            await asyncio.gather(*booting, return_exceptions=True)
            raise problem
        self._booted_in(time.monotonic() - self._boot_t0)
        self._still_booting = sum(1 for fut in booting if not fut.done())
        for fut, h in booting.items():
            if fut.done():
                self._joined(h)
            else:
                self._start_task(self._join_when_booted(fut, h))
        if not self._still_booting:
            self.started.set()

    def _joined(self, handle: WorkerHandle) -> None:
        handle.task_limit = task_limit(self.settings.max_tasks_per_worker)
        handle.last_seen = time.monotonic()
        self._record_workers()
        assert self.dispatcher is not None
        self.dispatcher.queue_maybe_nonempty = True
        self._wake()

    async def _join_when_booted(self, boot: asyncio.Future[None], handle: WorkerHandle) -> None:
        try:
            await boot
        except asyncio.CancelledError:
            handle.kill()
            raise
        except BaseException as exc:
            self._fatal = exc if isinstance(exc, WorkerBootError) else WorkerBootError(f"a worker failed: {exc!r}")
            self._wake()
            return
        self._joined(handle)
        self._still_booting -= 1
        if not self._still_booting:
            self.started.set()

    async def _run(self, store: Store) -> None:
        assert self.dispatcher is not None and self.loop is not None
        d = self.dispatcher
        last_version = store.data_version()
        next_poll = time.monotonic() + self.settings.poll_interval
        deadline: float | None = None
        backoff = 0.0
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
                d.turn()
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
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - now))
            if backoff:
                timeout = backoff
            if d.has_pending_writes and not backoff:
                continue
            await self._wait(timeout)
        await self._shutdown()

    def _recycle(self) -> None:
        """Replace workers past their task count or memory limit once they are idle (between tasks)."""
        assert self.dispatcher is not None
        limit_tasks, limit_rss = self.settings.max_tasks_per_worker, self.settings.max_worker_memory
        if not (limit_tasks or limit_rss) or self._stop_requested:
            return
        for w in self.dispatcher.workers:
            if not w.alive or w.replacing:
                continue
            if not w.retiring and should_recycle(w.tasks_done, w.task_limit, w.rss, limit_rss):
                w.retiring = True
            if w.retiring and w.idle:
                w.replacing = True
                task = asyncio.get_running_loop().create_task(self._replace(w))
                self._respawns.add(task)
                task.add_done_callback(self._respawns.discard)

    async def _replace(self, old: WorkerHandle) -> None:
        assert self.dispatcher is not None and self._boot is not None
        log.info("recycling worker %s after %d tasks (rss %d bytes)", old.pid, old.tasks_done, old.rss)
        await old.stop(5.0)
        if self._stop_requested:
            return
        await self._respawn(old.index, 0)

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
        for t in self._standbys.values():
            t.cancel()
        for h in self._standby_handles:
            h.kill()
        busy = [w for w in d.workers if w.alive and not w.idle]
        for w in busy:
            w.kill()
        await asyncio.gather(*(w.stop(2.0) for w in d.workers), return_exceptions=True)
        for w in d.workers:  # exit callbacks may not have run for workers we killed
            if w.sync or w.asyncs:
                d.on_worker_exit(w, "supervisor shutting down")
        with contextlib.suppress(StoreError):
            d.turn()

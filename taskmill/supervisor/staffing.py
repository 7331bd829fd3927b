"""The worker pool over the supervisor's life (a mixin of :class:`Supervisor`): booting the pool at start,
replacing a worker that died or was recycled, and booting a replacement ahead of a likely kill.

Workers are exec'd, so a boot is an interpreter start plus imports: the pool starts dispatching with the first
ready worker, and every pid is in the lock file before its worker gets a task.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import WorkerBootError
from ..policy.preempt import should_recycle, task_limit
from ..protocol import Boot
from . import leftovers, prespawn
from .pool import EXIT_BOOT_ERROR, WorkerHandle, describe_exit

if TYPE_CHECKING:
    from ..protocol import ToSupervisor
    from ..registry import Registry
    from .dispatcher import Dispatcher
    from .lock import SupervisorLock

log = logging.getLogger("taskmill.supervisor")


def current_umask() -> int:
    """This process's umask, read without changing it (setting it to read it back races other threads'
    file creation); -1 where /proc does not tell."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return -1


class Staffing:
    if TYPE_CHECKING:
        settings: Any
        registry: Registry
        dispatcher: Dispatcher | None
        started: threading.Event
        _stop_requested: bool
        _fatal: BaseException | None
        _standbys: dict[int, asyncio.Task[WorkerHandle | None]]
        _standby_handles: set[WorkerHandle]
        _boot: Boot | None
        _env: dict[str, str]
        _lock: SupervisorLock | None
        _unadopted: list[WorkerHandle]
        _booting: list[asyncio.Future[None]]
        _still_booting: int
        _boot_t0: float

        def _wake(self) -> None: ...
        def _start_task(self, coro: Coroutine[Any, Any, Any]) -> None: ...
        def _on_message(self, worker: WorkerHandle, msg: ToSupervisor) -> None: ...

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
            self._start_task(self._respawn(worker.index, rc))
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

    def _boot_message(self) -> Boot:
        path = prespawn.search_path()
        heartbeat = self.settings.heartbeat_interval if self.settings.hang_timeout else 0.0
        return Boot(self.registry.origins(), self.settings.app_state, self.settings.async_concurrency, path,
                    self.registry.retry.max_retries, self.settings.default_timeout, heartbeat,
                    self.settings.default_ttl, self.settings.max_payload_bytes,
                    self.settings.worker_memory_limit or 0, current_umask(), list(self.registry.domains),
                    self.settings.switch_interval or 0.0)  # fmt: skip

    async def _begin_spawn(self) -> dict[asyncio.Future[None], WorkerHandle]:
        """Exec every worker now, so they import while the store opens; they take no work before
        :meth:`_spawn_all` adds them to the pool. Killed again if the start fails before that."""
        self._boot = self._boot_message()
        self._env = prespawn.worker_env()
        handles = [WorkerHandle(i, self._on_message, self._on_exit) for i in range(self.settings.workers)]
        self._unadopted = handles
        self._boot_t0 = time.monotonic()
        early = prespawn.take(len(handles), self._env)  # exec'd by the daemon before it imported all this
        if early:
            log.debug("adopting %d worker(s) exec'd at start-up: pids %s", len(early), [p.popen.pid for p in early])
        starts = [h.adopt(p, self._boot) for h, p in zip(handles, early, strict=False)]
        starts += [h.spawn(self._boot, self._env) for h in handles[len(early) :]]
        spawned = await asyncio.gather(*starts, return_exceptions=True)
        self._record_workers(handles)
        for r in spawned:
            if isinstance(r, BaseException):
                raise WorkerBootError(f"could not start a worker process: {r!r}") from r
        booting: dict[asyncio.Future[None], WorkerHandle] = {asyncio.ensure_future(h.ready()): h for h in handles}
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
                self._start_task(self._replace(w))

    async def _replace(self, old: WorkerHandle) -> None:
        assert self.dispatcher is not None and self._boot is not None
        log.info("recycling worker %s after %d tasks (rss %d bytes)", old.pid, old.tasks_done, old.rss)
        await old.stop(5.0)
        if self._stop_requested:
            return
        await self._respawn(old.index, 0)

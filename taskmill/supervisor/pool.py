"""Worker processes as the supervisor sees them: spawn by exec, framed socket, exit watcher, two-stage kill.

Each worker runs ``python -m taskmill.workers`` in its own session (so ``killpg`` also reaches anything it
spawned), talks over one end of a socketpair passed as an inherited fd, and is watched through a pidfd on the
event loop (uvloop refuses a SIGCHLD handler; a pidfd also serves workers the daemon exec'd before its loop
existed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import WorkerBootError
from ..protocol import (
    HEADER,
    Boot,
    BootFailed,
    Cancel,
    ProtocolError,
    Ready,
    Reply,
    Stop,
    ToSupervisor,
    body_length,
    decode_for_supervisor,
    frame,
)
from ..slot import ExecutingSlot
from ..store.records import Claimed
from .prespawn import ExecdWorker

_NO_SIGPIPE = getattr(socket, "MSG_NOSIGNAL", 0)  # a dead worker's bell must not raise SIGPIPE in the application
log = logging.getLogger("taskmill.supervisor")
BOOT_TIMEOUT_S = 120.0
EXIT_BOOT_ERROR = 3
READ_CHUNK = 1 << 16


def describe_exit(returncode: int | None, killed_by_us: bool = False) -> str:
    if returncode is None:
        return "worker vanished"
    if returncode < 0:
        sig = -returncode
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        hint = " (killed: perhaps out of memory?)" if sig == signal.SIGKILL and not killed_by_us else ""
        return f"worker died (signal {sig}, {name}){hint}"
    return f"worker exited with code {returncode}"


class WorkerProcess:
    """The part of ``asyncio.subprocess.Process`` the pool uses, over a ``Popen`` (so a worker the daemon exec'd
    before its event loop existed is watched like any other).

    Its exit is watched from the start, through a pidfd on the event loop (a thread blocked in ``wait()`` where
    pidfds are unavailable), so it is reaped even if nobody awaits it; every caller of :meth:`wait` shares the
    one result. Construct it on the loop.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.returncode: int | None = None
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        try:
            fd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._wait_blocking, args=(loop,), name="taskmill-reap", daemon=True).start()
        else:
            loop.add_reader(fd, self._pidfd_ready, loop, fd)

    async def wait(self) -> int:
        if self.returncode is not None:
            return self.returncode
        return await asyncio.shield(self._exited)

    def _pidfd_ready(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        loop.remove_reader(fd)
        os.close(fd)
        self._exit(self.popen.wait())

    def _wait_blocking(self, loop: asyncio.AbstractEventLoop) -> None:
        rc = self.popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits any more
            loop.call_soon_threadsafe(self._exit, rc)

    def _exit(self, rc: int) -> None:
        self.returncode = rc
        if not self._exited.done():
            self._exited.set_result(rc)


class WorkerHandle:
    def __init__(
        self,
        index: int,
        on_message: Callable[[WorkerHandle, ToSupervisor], None],
        on_exit: Callable[[WorkerHandle, int | None], None],
    ) -> None:
        self.index = index
        self.pid = 0
        self.on_message = on_message
        self.on_exit = on_exit
        self.task_types: dict[str, bool] = {}
        self.sync: deque[Claimed] = deque()  # in the order the worker runs them
        self.asyncs: dict[tuple[int, int], Claimed] = {}
        self.proc: WorkerProcess | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reader: asyncio.StreamReader | None = None
        self.alive = False
        self.retiring = False  # take no new work; replaced once idle (recycling) or stopped (shutdown)
        self.replacing = False
        self.killed = False  # we killed it (stop escalation, time limit, hang): not an OOM suspect
        self.tasks_done = 0
        self.task_limit: int | None = None
        self.rss = 0
        self.head_since = 0.0  # monotonic time the current head of ``sync`` started (approximately)
        self.ahead_tried: tuple[int, int] | None = None  # the head a next task was last claimed ahead for
        self.last_seen = 0.0  # monotonic time of the last frame (hang detection)
        self.slot: ExecutingSlot | None = None  # what its main thread executes (read once it is dead)
        self.bell: socket.socket | None = None  # rung after a frame that must land while it runs something
        self._tasks: list[asyncio.Task[Any]] = []

    def executing(self) -> tuple[int, int] | None:
        """Once the worker is dead: the sync attempt it was executing, None if none, UNKNOWN if unsure."""
        if self.slot is None:
            return ExecutingSlot.UNKNOWN
        try:
            return self.slot.read()
        finally:
            self.slot.close()
            self.slot = None

    @property
    def idle(self) -> bool:
        return not self.sync and not self.asyncs

    async def start(self, boot: Boot, env: dict[str, str]) -> None:
        await self.spawn(boot, env)
        await self.ready()

    async def spawn(self, boot: Boot, env: dict[str, str]) -> None:
        """Exec the worker process and send it its boot message (it imports the domain modules next)."""
        await self.adopt(ExecdWorker(env), boot)

    async def adopt(self, execd: ExecdWorker, boot: Boot) -> None:
        """Take over a worker process (exec'd just now, or by the daemon before the pool existed: see
        :mod:`.prespawn`) and send it its boot."""
        self.proc = WorkerProcess(execd.popen)
        self.pid = execd.popen.pid
        self.slot = execd.slot
        self.bell = execd.bell
        self.reader, self.writer = await asyncio.open_unix_connection(sock=execd.sock, limit=1 << 20)
        self.send(boot)

    async def ready(self) -> None:
        """Wait for the worker's Ready (the task types it knows); then read its frames and watch its exit."""
        try:
            first = await asyncio.wait_for(self._read_one(), BOOT_TIMEOUT_S)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, ProtocolError) as exc:
            rc = await self._reap()
            raise WorkerBootError(f"worker {self.pid} failed to start ({exc!r}; exit code {rc})") from exc
        if isinstance(first, BootFailed):
            await self._reap()
            raise WorkerBootError(f"worker could not start: {first.error}")
        if not isinstance(first, Ready):
            self.kill()
            raise WorkerBootError(f"worker sent {type(first).__name__} before Ready")
        self.task_types = first.task_types
        if not first.bell and self.bell is not None:  # its reader thread reads every frame
            self.bell.close()
            self.bell = None
        self.alive = True
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_loop()), loop.create_task(self._watch_exit())]

    async def _reap(self) -> int | None:
        assert self.proc is not None
        try:
            return await asyncio.wait_for(self.proc.wait(), 5.0)
        except TimeoutError:
            self.kill()
            return await self.proc.wait()

    async def _read_one(self) -> ToSupervisor:
        assert self.reader is not None
        header = await self.reader.readexactly(HEADER.size)
        body = await self.reader.readexactly(body_length(header))
        return decode_for_supervisor(body)

    async def _read_loop(self) -> None:
        try:
            await self._read_frames()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the exit watcher reports the death
        except ProtocolError:
            self.kill()  # a worker that sends garbage is broken: replace it
        except Exception:  # a bug of ours must not leave the worker's frames unread for ever
            log.exception("worker %s: reading its frames failed; killing it", self.pid)
            self.kill()

    async def _read_frames(self) -> None:
        """Every frame of a burst from one ``read``: a wake-up and a read per burst rather than two
        ``readexactly`` awaits per frame (in a drain, ~15 result frames arrive per turn). The rest of a frame
        larger than a read is read in one piece, so a large frame costs no repeated copies."""
        assert self.reader is not None
        reader, size = self.reader, HEADER.size
        buf = b""
        while True:
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                return  # end of stream: the exit watcher reports the death
            buf = buf + chunk if buf else chunk
            pos, end = 0, len(buf)
            while end - pos >= size:
                stop = pos + size + body_length(buf[pos : pos + size])
                if stop > end:
                    if stop - end > READ_CHUNK:
                        buf = buf[pos:] + await reader.readexactly(stop - end)
                        pos, stop, end = 0, stop - pos, stop - pos
                    else:
                        break
                self.on_message(self, decode_for_supervisor(buf[pos + size : stop]))
                pos = stop
            buf = buf[pos:] if pos < end else b""

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        rc = await self.proc.wait()
        self.alive = False
        if self.writer is not None:
            self.writer.close()
        self.on_exit(self, rc)
        if self.slot is not None:
            self.slot.close()
            self.slot = None
        if self.bell is not None:
            self.bell.close()
            self.bell = None

    def send(self, msg: msgspec.Struct) -> bool:
        """False if the worker's end is gone (nothing was sent)."""
        if self.writer is None or self.writer.is_closing():
            return False
        self.writer.write(frame(msg))
        return True

    def send_urgent(self, msg: Cancel | Reply) -> None:
        """A frame the worker must read even while it runs something: send it, then ring its bell. Ringing
        after a write the transport buffered is fine: the worker's reader waits for the frame's bytes. No frame,
        no ring: the reader would wait for it for ever."""
        if self.send(msg) and self.bell is not None:
            with contextlib.suppress(OSError):  # full (it has not read earlier rings yet) or closed: dead
                self.bell.send(b"\0", _NO_SIGPIPE)

    def signal(self, signum: int) -> None:
        if self.pid and self.alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the worker's whole process group, grandchildren included."""
        self.killed = True
        if self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)

    async def stop(self, timeout: float) -> None:
        """Ask the worker to exit; kill its group if it has not within ``timeout`` seconds."""
        if self.proc is None:
            return
        self.retiring = True
        self.send(Stop())
        if self.writer is not None:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), timeout)
        except TimeoutError:
            self.kill()
            await self.proc.wait()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(t, 1.0)

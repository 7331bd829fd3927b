"""The worker's end of the framed socket, and which of its threads reads it.

Where every executor is sync, the main thread reads its frames itself whenever it has nothing to run, so a
``Run`` frame goes from the socket to its executor on one thread: queueing each frame from a reader thread to
the main thread cost ~0.2 ms of the ~1.1 ms from a submit to its executor's start here (a thread wake-up on a
2-core machine). While the main thread runs something, frames wait in the socket, except those that must land
during an executor: a ``Cancel`` (the executor must see ``ctx.cancelled``, or be interrupted) and a ``Reply``
(the executor waits for it). After sending one of those, the supervisor rings the worker's bell, a second
socket, and the reader thread, asleep on the bell, reads frames up to it. Waking the reader at every batch
instead (so that it could listen while the main thread runs) cost drains ~5%.

The bell's count keeps the two threads honest: each ring announces one urgent frame, and the reader reads
until as many urgent frames as rings have been read, by either thread. A frame whose bytes are still on their
way (the supervisor's write was buffered) is therefore still waited for. The bell also tells a worker its
supervisor is gone: its end closes even while the main thread is busy.

A worker whose main thread runs an event loop does not use the bell: its reader thread reads every frame.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import msgspec

from ..protocol import HEADER, Cancel, ProtocolError, Reply, ToWorker, body_length, decode_for_worker, frame

CHUNK = 1 << 16
Received = Callable[[ToWorker | None], None]  # a frame, or None once the supervisor's end is closed


class Channel:
    def __init__(self, sock: socket.socket, bell: socket.socket | None = None) -> None:
        self.sock = sock
        self.bell = bell  # None: no bell (an event-loop worker, or a test); the reader reads every frame
        self._buf = bytearray()
        self._pos = 0  # the first unread byte of _buf
        self._send_lock = threading.Lock()  # the heartbeat thread sends too
        self._read_lock = threading.Lock()  # held by whichever thread reads
        self._rings = 0  # urgent frames announced by the bell...
        self._urgent = 0  # ...and read, by either thread (both under _read_lock)

    # -- frames -------------------------------------------------------------------------------------------
    def recv(self) -> ToWorker | None:
        """The next message, or None when the supervisor closed its end. Blocks until a whole frame is here.
        Callers other than the worker's start-up hold the read lock (``read_idle``, ``serve_*``)."""
        while True:
            end = self._frame_end()
            if end:
                msg = self._take(end)
                if isinstance(msg, Cancel | Reply):
                    self._urgent += 1
                return msg
            chunk = self.sock.recv(CHUNK)
            if not chunk:
                if self._pos < len(self._buf):
                    raise ProtocolError("truncated frame")
                return None
            if self._pos:
                del self._buf[: self._pos]
                self._pos = 0
            self._buf += chunk

    def _frame_end(self) -> int:
        """Where the first buffered frame ends, or 0 if no whole frame is buffered."""
        start = self._pos + HEADER.size
        if len(self._buf) < start:
            return 0
        end = start + body_length(self._buf[self._pos : start])
        return end if len(self._buf) >= end else 0

    def _take(self, end: int) -> ToWorker:
        body = self._buf[self._pos + HEADER.size : end]
        if end == len(self._buf):  # the usual case: reads end on a frame boundary
            self._buf.clear()
            self._pos = 0
        else:
            self._pos = end
        return decode_for_worker(body)

    def send(self, msg: msgspec.Struct) -> None:
        data = frame(msg)
        with self._send_lock:
            self.sock.sendall(data)

    # -- who reads ----------------------------------------------------------------------------------------
    def read_idle(self, nothing_queued: Callable[[], bool]) -> tuple[bool, ToWorker | None]:
        """Main thread, with nothing to run: wait for the next frame and read it here. ``(False, None)`` if
        the reader thread queued something first (run that); ``(True, None)`` once the supervisor's end is
        closed."""
        with self._read_lock:
            if not nothing_queued():  # the reader queues only while it holds the lock: nothing slips by
                return False, None
            return True, self.recv()

    def serve_bell(self, received: Received) -> None:
        """The reader thread of a worker with a bell: at each ring, read frames until the urgent ones
        announced so far are all read (frames before them included). Returns once either end is closed."""
        assert self.bell is not None
        while True:
            try:
                rang = self.bell.recv(64)
            except OSError:
                rang = b""
            if not rang:
                received(None)
                return
            with self._read_lock:
                self._rings += len(rang)  # a byte a ring
                while self._urgent < self._rings:
                    msg = self.recv()
                    received(msg)
                    if msg is None:
                        return

    def serve_all(self, received: Received) -> None:
        """The reader thread of a worker without a bell: read every frame, until the supervisor's end closes."""
        while True:
            with self._read_lock:
                msg = self.recv()
            received(msg)
            if msg is None:
                return

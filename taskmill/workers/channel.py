"""The worker's end of the framed socket, and which of its threads reads it.

Frames are read by one thread at a time. The main thread reads while it has nothing to run, so a ``Run`` frame
goes from the socket to its executor without a hand-over between threads: queueing it to the main thread cost
~0.2 ms of the ~1 ms from a submit to its executor's start here (a thread wake-up on a 2-core machine). While
the main thread runs something, the reader thread reads, so cancel requests and replies still land during a
sync executor. A worker whose main thread runs an event loop never reads here: its reader thread reads all.

The hand-over: the main thread raises its flag and kicks the reader thread out of its ``poll`` through a pipe,
then takes the read lock, which the reader holds while it reads. A frame already buffered is always read
before the lock changes hands, so frames keep their order.
"""

from __future__ import annotations

import os
import select
import socket
import threading
from collections.abc import Callable

import msgspec

from ..protocol import HEADER, ProtocolError, ToWorker, body_length, decode_for_worker, frame

CHUNK = 1 << 16


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()
        self._pos = 0  # start of the first unread byte in _buf
        self._send_lock = threading.Lock()  # the heartbeat thread sends too
        self._read_lock = threading.Lock()  # held by whichever thread reads
        self._turn = threading.Condition()  # guards _main_reads
        self._main_reads = False
        self._kick_r, self._kick_w = os.pipe()
        os.set_blocking(self._kick_r, False)
        os.set_blocking(self._kick_w, False)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._poll.register(self._kick_r, select.POLLIN)

    # -- frames -------------------------------------------------------------------------------------------
    def recv(self) -> ToWorker | None:
        """The next message, or None when the supervisor closed its end. Blocks until a whole frame is here."""
        while True:
            msg = self._buffered()
            if msg is not None:
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

    def _buffered(self) -> ToWorker | None:
        end = self._frame_end()
        if not end:
            return None
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
        """Main thread, with nothing to run: read the next frame itself. ``(False, None)`` if the reader thread
        queued something meanwhile (run that first); ``(True, None)`` when the supervisor closed its end."""
        with self._turn:
            kick = not self._main_reads
            self._main_reads = True
        if kick:
            os.write(self._kick_w, b"\0")
        with self._read_lock:
            if not nothing_queued():  # the reader queues only while it holds the lock: nothing can slip by
                return False, None
            return True, self.recv()

    def busy(self) -> None:
        """Main thread, before it runs anything: the reader thread reads until it is idle again."""
        if self._main_reads:
            with self._turn:
                self._main_reads = False
                self._turn.notify()

    def serve_reader(self, received: Callable[[ToWorker | None], None]) -> None:
        """The reader thread: read whenever the main thread does not, until the supervisor closes its end."""
        while True:
            with self._turn:
                while self._main_reads:
                    self._turn.wait()
            with self._read_lock:
                while not self._main_reads:
                    if not self._frame_end() and not self._readable():
                        continue  # kicked: look at the flag again
                    msg = self.recv()
                    received(msg)
                    if msg is None:
                        return

    def _readable(self) -> bool:
        """Wait until the socket has data (True) or the main thread kicks (False)."""
        ready = dict(self._poll.poll())
        if self._kick_r in ready:
            try:
                while os.read(self._kick_r, 64):
                    pass
            except BlockingIOError:
                pass
        return self.sock.fileno() in ready

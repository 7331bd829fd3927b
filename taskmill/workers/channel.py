"""The worker's end of the framed socket: blocking reads on a reader thread, writes from the main thread."""

from __future__ import annotations

import socket
import threading

import msgspec

from ..protocol import HEADER, ProtocolError, ToWorker, body_length, decode_for_worker, frame


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._rfile = sock.makefile("rb", buffering=1 << 16)
        self._send_lock = threading.Lock()  # the heartbeat thread sends too

    def recv(self) -> ToWorker | None:
        """The next message, or None when the supervisor closed its end."""
        header = self._rfile.read(HEADER.size)
        if not header:
            return None
        if len(header) < HEADER.size:
            raise ProtocolError("truncated frame header")
        n = body_length(header)
        body = self._rfile.read(n)
        if len(body) < n:
            raise ProtocolError("truncated frame body")
        return decode_for_worker(body)

    def send(self, msg: msgspec.Struct) -> None:
        data = frame(msg)
        with self._send_lock:
            self.sock.sendall(data)

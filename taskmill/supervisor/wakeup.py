"""Waking the supervisor from another process within milliseconds, without polling.

After committing a change, a client sends a one-byte datagram to an abstract-namespace Unix socket named
after the database's real path: ``s`` when it only added runnable tasks, ``!`` for anything else. Best
effort: a lost datagram only delays the task until the supervisor's slow ``PRAGMA data_version`` check
(``poll_interval``). Abstract sockets leave no files behind and have no
108-byte path limit issue.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys

SUBMITTED = b"s"
CHANGED = b"!"


def address(db_path: str) -> str | None:
    if not sys.platform.startswith("linux"):
        return None
    digest = hashlib.sha256(os.path.realpath(db_path).encode()).hexdigest()[:32]
    return f"\0taskmill-{digest}"


class WakeupListener:
    """The supervisor's end: a non-blocking datagram socket to register with the event loop."""

    def __init__(self, db_path: str) -> None:
        self.sock: socket.socket | None = None
        addr = address(db_path)
        if addr is None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        self.sock = sock

    def drain(self) -> bool:
        """Read every pending ping. True if they all said "only new runnable tasks"."""
        assert self.sock is not None
        only_submits = True
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while True:
                if self.sock.recv(64) != SUBMITTED:
                    only_submits = False
        return only_submits

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class WakeupSender:
    """A client's end, created once per process and reused for every ping."""

    def __init__(self, db_path: str) -> None:
        self.addr = address(db_path)
        self.sock: socket.socket | None = None
        if self.addr is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.setblocking(False)

    def ping(self, submitted: bool = False) -> bool:
        """False only if nobody listens (no supervisor runs on this host); a full queue or no socket is True."""
        if self.sock is not None and self.addr is not None:
            try:
                self.sock.sendto(SUBMITTED if submitted else CHANGED, self.addr)
            except (ConnectionRefusedError, FileNotFoundError):
                return False
            except OSError:
                pass
        return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

"""Read-only HTTP endpoints on the supervisor's event loop: /healthz, /readyz, /metrics, /snapshot, /events.

A deliberately small HTTP/1.1 server (GET and HEAD, one request per connection, no request bodies) on the
loop that already runs dispatch, so the answers read live state without locks and no web framework is
needed. Nothing here mutates anything: cancel, pause and requeue go through the database (CLI, library).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ..events import Subscription
from .observe import Observer
from .runtime import Supervisor

log = logging.getLogger("taskmill.http")
MAX_HEADER_BYTES = 16 * 1024
READ_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 64
SSE_KEEPALIVE_S = 15.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
            503: "Service Unavailable"}  # fmt: skip
ROUTES = ("/healthz", "/readyz", "/metrics", "/snapshot", "/events")


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen now, so a port in use fails the daemon at startup with a clear message."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class HttpEndpoints:
    """The endpoints on an already bound socket; :meth:`serve` is the daemon's companion coroutine."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.address = sock.getsockname()[:2]
        self._conns: set[asyncio.Task[None]] = set()
        self._subs: set[Subscription] = set()
        self._observer: Observer | None = None
        self._sup: Supervisor | None = None

    async def serve(self, sup: Supervisor) -> None:
        """Serve until cancelled (the scheduler cancels its companion once dispatch has stopped)."""
        self._sup = sup
        self._observer = Observer(sup)
        server = await asyncio.start_server(self._accept, sock=self.sock, limit=MAX_HEADER_BYTES)
        try:
            await asyncio.Event().wait()
        finally:
            server.close()
            for sub in list(self._subs):
                sub.close()  # event streams end on their own, with their connections
            for task in list(self._conns):
                task.cancel()
            if self._conns:
                await asyncio.wait(self._conns, timeout=2.0)
            self._observer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._conns) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._conns.add(task)
        try:
            await self._handle(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            pass  # shutting down; ending normally keeps asyncio's stream callback quiet
        except Exception:
            log.exception("HTTP handler failed")
        finally:
            self._conns.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await _respond(writer, 400, b"bad request\n")
            return
        method, target = parts[0], parts[1]
        path = urlsplit(target).path
        if path not in ROUTES:
            await _respond(writer, 404, b"not found\n", head_only=method == "HEAD")
            return
        if method not in ("GET", "HEAD"):
            await _respond(writer, 405, b"read-only endpoints: GET or HEAD\n", extra={"Allow": "GET, HEAD"})
            return
        head_only = method == "HEAD"
        if path == "/events":
            await self._events(writer, head_only)
            return
        handler: Callable[[], Awaitable[tuple[int, bytes, str]]] = {
            "/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics,
            "/snapshot": self._snapshot,
        }[path]  # fmt: skip
        status, body, ctype = await handler()
        await _respond(writer, status, body, ctype, head_only=head_only)

    # -- endpoints ----------------------------------------------------------------------------------------
    async def _healthz(self) -> tuple[int, bytes, str]:
        assert self._observer is not None
        h = self._observer.health()
        return (200 if h.status == "ok" else 503), msgspec.json.encode(h) + b"\n", "application/json"

    async def _readyz(self) -> tuple[int, bytes, str]:
        assert self._observer is not None
        h = self._observer.health()
        return (200 if h.dispatching else 503), msgspec.json.encode(h) + b"\n", "application/json"

    async def _metrics(self) -> tuple[int, bytes, str]:
        assert self._observer is not None
        return 200, self._observer.metrics(), "text/plain; version=0.0.4; charset=utf-8"

    async def _snapshot(self) -> tuple[int, bytes, str]:
        assert self._observer is not None
        return 200, msgspec.json.encode(self._observer.snapshot()) + b"\n", "application/json"

    async def _events(self, writer: asyncio.StreamWriter, head_only: bool) -> None:
        """Server-Sent Events: one ``event: <kind>`` / ``data: <json>`` message per scheduler event."""
        assert self._sup is not None
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "Connection": "close"}
        writer.write(_status_line(200, headers))
        if head_only:
            await writer.drain()
            return
        writer.write(b": taskmill events\n\n")
        await writer.drain()
        sub = self._sup.bus.subscribe(maxsize=1000)
        self._subs.add(sub)
        stream = sub.__aiter__()
        waiting: asyncio.Future[Any] | None = None
        try:
            while True:
                if waiting is None:
                    waiting = asyncio.ensure_future(stream.__anext__())
                done, _ = await asyncio.wait({waiting}, timeout=SSE_KEEPALIVE_S)
                if not done:
                    writer.write(b": keep-alive\n\n")  # also how a vanished client is noticed
                else:
                    finished, waiting = waiting, None
                    if finished.exception() is not None:  # StopAsyncIteration: the subscription was closed
                        return
                    event = finished.result()
                    kind = type(event).__struct_config__.tag
                    writer.write(b"event: %s\ndata: %s\n\n" % (str(kind).encode(), msgspec.json.encode(event)))
                await writer.drain()
        finally:
            self._subs.discard(sub)
            sub.close()  # wakes (and so ends) the pending read
            if waiting is not None:
                waiting.add_done_callback(_retrieve)
                await asyncio.wait({waiting}, timeout=1.0)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a read abandoned at shutdown as handled (it ends with StopAsyncIteration or cancellation)."""
    if not fut.cancelled():
        fut.exception()


def _status_line(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _respond(writer: asyncio.StreamWriter, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
                   *, head_only: bool = False, extra: dict[str, str] | None = None) -> None:  # fmt: skip
    headers = {"Content-Type": ctype, "Content-Length": str(len(body)), "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff", "Connection": "close", **(extra or {})}  # fmt: skip
    writer.write(_status_line(status, headers) + (b"" if head_only else body))
    await writer.drain()

"""Progress reports from an executor, coalesced so that a tight loop can report as often as it likes.

``report()`` sends at once when the previous frame of this attempt is at least :data:`MIN_INTERVAL` old, and
otherwise leaves the newest value for the flusher. Byte counters (``add_bytes`` and friends) only update
two attributes and, the first time after a send, hand the reporter to the flusher: a million ``add_bytes``
calls cost a million attribute additions and about twenty frames a second, never a write per call.

The flusher is one daemon thread per worker process. It sends what is due (at most one frame per
reporter and interval), and re-sends a byte count about once a second while its attempt runs, so the
supervisor's throughput falls when a transfer stalls. Every send of one reporter holds that reporter's lock
and stops once the attempt is closed, so nothing about an attempt arrives after its result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import msgspec

from ..protocol import ByteProgress, Progress

MIN_INTERVAL = 0.05  # seconds between frames of one attempt
MAX_MESSAGE = 4096  # characters of a progress message (frames between processes have a size cap)
BYTES_KEEPALIVE = 1.0  # seconds: a running attempt's byte count is re-sent this often even if unchanged


_SEND_LOCK = threading.Lock()  # sends of every reporter; they are rare (at most 20 a second per attempt)


class ProgressReporter:
    """``ctx.progress``: fractional progress with a message, and byte-level progress.

    One is made for every attempt, so construction is kept to three attribute stores: everything else starts
    as a class attribute and becomes an instance attribute on first use.
    """

    _started_ms = 0  # when the attempt started (epoch ms), set by the runner
    _closed = False
    _frac_dirty = False
    _bytes_dirty = False
    _queued = False  # waiting in the flusher's queue
    sent_at = -1e9  # monotonic time of the last frame
    fraction: float | None = None
    message: str | None = None
    bytes_done = 0
    bytes_total: int | None = None

    def __init__(self, task_id: int, attempt: int, send: Callable[[msgspec.Struct], None]) -> None:
        self._task_id = task_id
        self._attempt = attempt
        self._send = send

    # -- fractions ----------------------------------------------------------------------------------------
    def report(self, fraction: float, message: str | None = None) -> None:
        """Report progress as a fraction in [0, 1] (clamped) with an optional message."""
        f = float(fraction)
        if not f >= 0.0:  # negative, or NaN
            f = 0.0
        elif f > 1.0:
            f = 1.0
        self.fraction = f
        self.message = message if message is None or len(message) <= MAX_MESSAGE else message[:MAX_MESSAGE] + "…"
        self._frac_dirty = True
        if self._queued:
            return  # the flusher sends the newest value when it is due (the value is set before this test)
        if self.fraction >= 1.0 or time.monotonic() - self.sent_at >= MIN_INTERVAL:
            self._send_pending()
        else:
            self._queued = True
            _flusher().mark(self)

    def report_fraction(self, done: int, total: int, message: str | None = None) -> None:
        """``done / total``; a total of 0 means there was nothing to do, so the work is complete (1.0)."""
        self.report(done / total if total > 0 else 1.0, message)

    # -- bytes --------------------------------------------------------------------------------------------
    def add_bytes(self, n: int) -> None:
        """Count ``n`` more bytes done. Cheap enough to call per chunk in a tight loop (call it from one
        thread; updates from several threads at once may be lost)."""
        self.bytes_done += n
        if not self._bytes_dirty:
            self._bytes_dirty = True
            _flusher().mark(self)

    def set_bytes_total(self, total: int) -> None:
        """The number of bytes the task will process (unknown until set)."""
        self.bytes_total = int(total)
        if not self._bytes_dirty:
            self._bytes_dirty = True
            _flusher().mark(self)

    def report_bytes(self, done: int, total: int | None = None) -> None:
        """Set the byte count (and the total, if given) outright."""
        self.bytes_done = int(done)
        if total is not None:
            self.bytes_total = int(total)
        if not self._bytes_dirty:
            self._bytes_dirty = True
            _flusher().mark(self)

    # -- sending ------------------------------------------------------------------------------------------
    def _send_pending(self, keepalive: bool = False) -> None:
        with _SEND_LOCK:
            if self._closed:
                return
            self._emit(keepalive)

    def _emit(self, keepalive: bool) -> None:
        # Flags are cleared before the values are read: a concurrent update sets them again and is sent next.
        if self._frac_dirty:
            self._frac_dirty = False
            assert self.fraction is not None
            self._send(Progress(self._task_id, self._attempt, self.fraction, self.message, self._started_ms))
        if self._bytes_dirty or (keepalive and (self.bytes_done or self.bytes_total is not None)):
            self._bytes_dirty = False
            self._send(ByteProgress(self._task_id, self._attempt, self.bytes_done, self.bytes_total,
                                    self._started_ms))  # fmt: skip
        self.sent_at = time.monotonic()

    def close(self) -> None:
        """The attempt ended: send what is still pending, then nothing more (its result follows)."""
        if not (self._frac_dirty or self._bytes_dirty or self._queued or self.sent_at > 0):
            self._closed = True  # never reported anything (the common case): nothing can be in flight
            return
        with _SEND_LOCK:
            if self._closed:
                return
            if self._frac_dirty or self._bytes_dirty:
                self._emit(False)
            self._closed = True

    flush = close

    @property
    def closed(self) -> bool:
        return self._closed


class _Flusher:
    """Sends the newest value of reporters whose frames were held back, once each is due (see module doc)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[ProgressReporter, None] = {}  # held-back values, in arrival order
        self._bytes: dict[ProgressReporter, None] = {}  # attempts reporting bytes, for the keepalive
        self._thread: threading.Thread | None = None

    def mark(self, r: ProgressReporter) -> None:
        with self._cond:
            self._pending[r] = None
            if r._bytes_dirty:
                self._bytes[r] = None
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskmill-progress", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _due(self, now: float) -> tuple[list[tuple[ProgressReporter, bool]], float | None]:
        due: dict[ProgressReporter, bool] = {}
        wait: float | None = None
        for r in list(self._pending):
            at = r.sent_at + MIN_INTERVAL
            if r._closed or at <= now:
                del self._pending[r]
                r._queued = False
                if not r._closed:
                    due[r] = False
            else:
                wait = at - now if wait is None else min(wait, at - now)
        for r in list(self._bytes):
            if r._closed:
                del self._bytes[r]
                continue
            at = r.sent_at + BYTES_KEEPALIVE
            if at <= now:
                if r not in self._pending:
                    due.setdefault(r, True)
            else:
                wait = at - now if wait is None else min(wait, at - now)
        return list(due.items()), wait

    def _run(self) -> None:
        while True:
            with self._cond:
                due, wait = self._due(time.monotonic())
                if not due:
                    self._cond.wait(wait)
                    continue
            for r, keepalive in due:
                try:
                    r._send_pending(keepalive)
                except OSError:
                    return  # the supervisor's end is gone; the worker is exiting


_FLUSHER: _Flusher | None = None
_FLUSHER_LOCK = threading.Lock()


def _flusher() -> _Flusher:
    global _FLUSHER
    f = _FLUSHER
    if f is None:
        with _FLUSHER_LOCK:
            if _FLUSHER is None:
                _FLUSHER = _Flusher()
            f = _FLUSHER
    return f

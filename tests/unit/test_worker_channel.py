"""A worker reads the supervisor's frames on whichever thread is free: the main thread while it has nothing to
run, the reader thread while it runs an executor. Every frame must come out once, whole and in order, however
the bytes were cut and whichever thread read it; a cancel must still reach an executor that is running; and the
worker must stop when asked."""

from __future__ import annotations

import collections
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import msgspec
import pytest

import taskmill as tm
from taskmill.domain import StateBag
from taskmill.protocol import (
    HEADER,
    Cancel,
    ProtocolError,
    Results,
    Run,
    Stop,
    TaskSpec,
    body_length,
    decode_for_supervisor,
    frame,
)
from taskmill.workers import attempt
from taskmill.workers.channel import Channel
from taskmill.workers.runner import WorkerRuntime


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_cut_anywhere_come_out_whole_and_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    msgs = [Cancel(i, 1) for i in range(50)] + [Stop()]
    data = b"".join(frame(m) for m in msgs)

    def write() -> None:
        for pos in range(0, len(data), 7):  # cuts through headers and bodies alike
            theirs.sendall(data[pos : pos + 7])
            if pos % 70 == 0:
                time.sleep(0.001)
        theirs.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=write)
    writer.start()
    ch = Channel(ours)
    got = []
    while (msg := ch.recv()) is not None:
        got.append(msg)
    writer.join()
    assert got == msgs


def test_a_frame_cut_short_by_the_end_of_the_socket_is_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    theirs.sendall(frame(Cancel(1, 1)) + frame(Cancel(2, 1))[:-2])
    theirs.shutdown(socket.SHUT_WR)
    ch = Channel(ours)
    assert ch.recv() == Cancel(1, 1)
    with pytest.raises(ProtocolError):
        ch.recv()


def test_frames_keep_their_order_as_reading_passes_between_the_threads(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The worker's main loop in miniature: run what the reader queued, else read itself, and hand reading
    back before "running" each frame. Frames arrive while either thread reads; none is lost or reordered."""
    ours, theirs = pair
    ch = Channel(ours)
    queued: collections.deque[Any] = collections.deque()
    reader = threading.Thread(target=ch.serve_reader, args=(queued.append,), daemon=True)
    reader.start()
    n = 400
    sent = [Cancel(i, 1) for i in range(n)]

    def write() -> None:
        for i, m in enumerate(sent):
            theirs.sendall(frame(m))
            if i % 3 == 0:
                time.sleep(0.0002)

    writer = threading.Thread(target=write)
    writer.start()
    consumed: list[Any] = []
    by_main = 0
    while len(consumed) < n:
        if queued:
            consumed.append(queued.popleft())
            ch.busy()
            continue
        read, msg = ch.read_idle(lambda: not queued)
        if read:
            consumed.append(msg)
            by_main += 1
            ch.busy()
            time.sleep(0.0005)  # "runs" it: frames pile up for the reader thread meanwhile
    writer.join()
    theirs.close()
    reader.join(5)
    assert consumed == sent
    assert 0 < by_main < n  # both threads read some
    assert list(queued) == [None]  # the reader saw the end of the socket and stopped


# -- the runtime, with real threads and a socket for the supervisor's end ----------------------------------

chan = tm.Domain("channel_test")


class Quick(tm.Task, frozen=True):
    task_type: ClassVar[str] = "quick"
    i: int


class Waits(tm.Task, frozen=True):
    task_type: ClassVar[str] = "waits"


@chan.executor(Quick)
def quick(task: Quick, ctx: tm.TaskContext) -> int:
    return task.i


@chan.executor(Waits)
def waits(task: Waits, ctx: tm.TaskContext) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ctx.check_cancelled()  # raises once the reader thread has flagged the cancel
        time.sleep(0.001)
    raise AssertionError("the cancel never reached the running executor")


def _spec(task_id: int, task: tm.Task) -> TaskSpec:
    kind = type(task).task_type
    return TaskSpec(task_id, f"channel_test::{kind}", "channel_test", f"k{task_id}", kind, 128,
                    msgspec.msgpack.encode(task), 0, 0, 1, 0, None, None, None)  # fmt: skip


def _read_results(sock: socket.socket, want: int) -> dict[int, str]:
    """The supervisor's side: results by task id, until ``want`` of them arrived."""
    statuses: dict[int, str] = {}
    sock.settimeout(10)
    buf = b""
    while len(statuses) < want:
        chunk = sock.recv(1 << 16)
        assert chunk, "the worker closed its end early"
        buf += chunk
        while len(buf) >= HEADER.size and len(buf) >= HEADER.size + body_length(buf[: HEADER.size]):
            end = HEADER.size + body_length(buf[: HEADER.size])
            msg = decode_for_supervisor(buf[HEADER.size : end])
            buf = buf[end:]
            if isinstance(msg, Results):
                statuses.update((r.id, r.status) for r in msg.results)
    return statuses


def test_a_worker_runs_frames_read_on_either_thread_and_a_cancel_reaches_a_running_executor(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The runtime serves on this (main) thread; the supervisor's side runs on another."""
    ours, theirs = pair
    rt = WorkerRuntime(Channel(ours), dict(chan.executors), StateBag([]), {})
    saved = signal.getsignal(signal.SIGALRM)
    rt.timer = attempt.SyncTimer()
    seen: list[dict[int, str]] = []

    def supervisor() -> None:
        try:
            theirs.sendall(frame(Run([_spec(1, Quick(i=1))])))  # read by the idle main thread
            seen.append(_read_results(theirs, 1))
            theirs.sendall(frame(Run([_spec(2, Waits())])))
            time.sleep(0.05)  # the executor is running: only the reader thread reads now
            theirs.sendall(frame(Cancel(2, 1)) + frame(Run([_spec(3, Quick(i=3))])))
            seen.append(_read_results(theirs, 2))
        finally:
            theirs.sendall(frame(Stop()))

    side = threading.Thread(target=supervisor)
    side.start()
    try:
        rt.run()
    finally:
        signal.signal(signal.SIGALRM, saved)
    side.join(10)
    assert seen == [{1: "ok"}, {2: "cancelled", 3: "ok"}]
    assert rt.finished.is_set()

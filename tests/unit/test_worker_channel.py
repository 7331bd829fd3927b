"""The worker's end of the socket: frames come out whole and in order however the bytes were cut, and with a
bell the reader thread reads only when rung, up to the urgent frame the ring announced, leaving the rest for
the main thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from taskmill.protocol import Cancel, ProtocolError, Reply, Run, Stop, frame
from taskmill.workers.channel import Channel

from ..helpers import wait_for


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frames_cut_anywhere_come_out_whole_and_in_order(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    msgs = [Cancel(i, 1) for i in range(50)] + [Run([]), Reply(7), Stop()]
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


class Belled:
    """A channel with a bell, its reader thread serving it, and the supervisor's ends of both sockets."""

    def __init__(self) -> None:
        self.sup, ours = socket.socketpair()
        self.ring_end, bell = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ch = Channel(ours, bell)
        self.got: list[Any] = []
        self.reader = threading.Thread(target=self.ch.serve_bell, args=(self.got.append,), daemon=True)
        self.reader.start()

    def ring(self) -> None:
        self.ring_end.send(b"\0")

    def main_reads(self) -> Any:
        read, msg = self.ch.read_idle(lambda: True)
        assert read
        return msg

    def close(self) -> None:
        self.ring_end.close()
        self.reader.join(5)
        self.sup.close()


@pytest.fixture
def belled() -> Iterator[Belled]:
    b = Belled()
    yield b
    b.close()


def test_the_reader_reads_only_when_rung_and_only_up_to_the_urgent_frame(belled: Belled) -> None:
    belled.sup.sendall(frame(Run([])) + frame(Stop()) + frame(Cancel(1, 1)) + frame(Run([])))
    time.sleep(0.1)
    assert belled.got == []  # unrung: the frames wait for the main thread
    belled.ring()
    wait_for(lambda: len(belled.got) == 3, 5, what="the frames up to the cancel")
    time.sleep(0.05)
    assert belled.got == [Run([]), Stop(), Cancel(1, 1)]
    assert belled.main_reads() == Run([])  # the frame after it is the main thread's


def test_rings_read_together_count_one_each(belled: Belled) -> None:
    belled.sup.sendall(frame(Cancel(1, 1)) + frame(Reply(2)) + frame(Run([])))
    belled.ring()
    belled.ring()  # on a stream socket the reader may get both bytes in one read
    wait_for(lambda: len(belled.got) == 2, 5, what="both urgent frames")
    time.sleep(0.05)
    assert belled.got == [Cancel(1, 1), Reply(2)]
    assert belled.main_reads() == Run([])


def test_a_ring_ahead_of_its_frame_waits_for_the_frame(belled: Belled) -> None:
    data = frame(Reply(3))
    belled.ring()  # the supervisor's write was buffered: the ring arrives first
    time.sleep(0.05)
    belled.sup.sendall(data[:3])
    time.sleep(0.05)
    assert belled.got == []
    belled.sup.sendall(data[3:])
    wait_for(lambda: belled.got == [Reply(3)], 5, what="the reply")


def test_an_urgent_frame_the_main_thread_read_answers_its_ring(belled: Belled) -> None:
    belled.sup.sendall(frame(Cancel(2, 1)))
    assert belled.main_reads() == Cancel(2, 1)  # read while idle, before the ring was served
    belled.ring()
    belled.sup.sendall(frame(Run([])))
    time.sleep(0.1)
    assert belled.got == []  # the ring's frame is read already: the reader takes nothing more
    assert belled.main_reads() == Run([])


def test_a_closed_bell_tells_the_reader_the_supervisor_is_gone(belled: Belled) -> None:
    belled.ring_end.close()
    belled.reader.join(5)
    assert belled.got == [None]

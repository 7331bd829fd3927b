"""The supervisor reads a worker's frames in bursts: whatever one read returns is split into frames, and the
tail of a frame that spans reads waits for the next. Every frame must come out once, whole and in order,
however the bytes were cut; a frame larger than a read arrives whole; garbage gets the worker killed."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from taskmill.protocol import HEADER, Heartbeat, Result, Results, frame
from taskmill.supervisor import pool
from taskmill.supervisor.pool import WorkerHandle


def _results(first: int, n: int, error: str | None = None) -> Results:
    return Results([Result(i, 1, "ok", 1, 2, 10, error=error) for i in range(first, first + n)])


async def _read_all(writes: list[bytes], expect: int) -> tuple[list[Any], WorkerHandle]:
    """Feed ``writes`` one at a time (each a separate send) and collect what the read loop hands over."""
    a, b = socket.socketpair()
    got: list[Any] = []
    done = asyncio.get_running_loop().create_future()

    def on_message(_w: WorkerHandle, msg: Any) -> None:
        got.append(msg)
        if len(got) == expect and not done.done():
            done.set_result(None)

    handle = WorkerHandle(0, on_message, lambda *_: None)
    handle.reader, handle.writer = await asyncio.open_unix_connection(sock=b, limit=1 << 20)
    reading = asyncio.get_running_loop().create_task(handle._read_loop())
    a.setblocking(False)
    loop = asyncio.get_running_loop()
    for chunk in writes:
        await loop.sock_sendall(a, chunk)
        await asyncio.sleep(0.001)  # let the reader see this piece on its own
    if expect:
        await asyncio.wait_for(done, 10)
    a.close()
    await asyncio.wait_for(reading, 10)
    handle.writer.close()
    return got, handle


def _cut(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for n in sizes:
        out.append(data[pos : pos + n])
        pos += n
    out.append(data[pos:])
    return [c for c in out if c]


def test_frames_cut_anywhere_come_out_whole_and_in_order() -> None:
    msgs = [_results(i * 10, 10) for i in range(6)] + [Heartbeat()]
    data = b"".join(frame(m) for m in msgs)
    one = len(frame(msgs[0]))
    cuts = [
        [len(data)],  # all at once
        [1] * 12,  # the first header byte by byte
        [HEADER.size, one - HEADER.size],  # a header, then its body
        [one + 3, one * 2 - 5, 7],  # frames straddling reads
    ]
    for sizes in cuts:
        got, _ = asyncio.run(_read_all(_cut(data, sizes), len(msgs)))
        assert got == msgs, sizes


def test_a_frame_larger_than_a_read_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "READ_CHUNK", 256)
    big = _results(0, 50, error="x" * 2_000)  # ~100 KiB, hundreds of reads' worth
    small = _results(1_000, 2)
    data = frame(small) + frame(big) + frame(small)
    got, _ = asyncio.run(_read_all(_cut(data, [len(frame(small)) + 100, 40_000]), 3))
    assert got == [small, big, small]


def test_garbage_gets_the_worker_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[bool] = []
    monkeypatch.setattr(WorkerHandle, "kill", lambda self: killed.append(True))
    good = _results(0, 1)
    bad = HEADER.pack(3) + b"\xc1\xc1\xc1"  # 0xc1 is never valid msgpack
    got, _ = asyncio.run(_read_all([frame(good) + bad + frame(good)], 0))
    assert got == [good] and killed == [True]  # nothing after the bad frame is trusted


def test_an_oversized_announcement_gets_the_worker_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[bool] = []
    monkeypatch.setattr(WorkerHandle, "kill", lambda self: killed.append(True))
    got, _ = asyncio.run(_read_all([HEADER.pack(1 << 31) + b"\x00" * 16], 0))
    assert got == [] and killed == [True]

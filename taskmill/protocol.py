"""Messages between the supervisor and its workers, and their framing. Both sides import this module.

A frame is a 4-byte big-endian length followed by a msgpack body. Frames over :data:`MAX_FRAME` are refused
on both sides: whatever task code produces is untrusted, and an oversize or undecodable frame means the
peer is broken, never that we should try harder.
"""

from __future__ import annotations

import struct

import msgspec

MAX_FRAME = 64 * 1024 * 1024
HEADER = struct.Struct(">I")


class ProtocolError(Exception):
    """A frame was oversize, truncated or undecodable."""


# -- supervisor → worker -----------------------------------------------------------------------------------
class TaskSpec(msgspec.Struct, array_like=True, frozen=True):
    """One attempt of one task, as the worker needs it. Same wire layout as ``store.records.Claimed``, so the
    supervisor sends claimed rows as they come out of the database."""

    id: int
    task_type: str
    domain: str
    key: str
    label: str
    priority: int
    payload: bytes
    retry_count: int
    max_retries: int | None
    attempt: int
    created_at: int
    group_key: str | None
    tags: str | None
    parent_id: int | None


class StateRef(msgspec.Struct, array_like=True, frozen=True):
    """Application state for workers: a factory ``module:qualname`` to call, or an encoded instance."""

    ref: str
    encoded: bytes | None = None


class Boot(msgspec.Struct, tag="boot", array_like=True):
    origins: list[str]
    app_state: list[StateRef]
    async_concurrency: int
    sys_path: list[str]
    default_max_retries: int = 3
    default_timeout: float | None = None  # seconds; per type / domain settings win
    heartbeat_interval: float = 0.0  # > 0: send Heartbeat frames this often (hang detection)


class Run(msgspec.Struct, tag="run", array_like=True):
    """Run these tasks in order (a sync batch) or concurrently (async executors)."""

    tasks: list[TaskSpec]


class Cancel(msgspec.Struct, tag="cancel", array_like=True):
    """Stop one attempt: ``ctx.cancelled`` turns true (async executors get their asyncio task cancelled).
    ``force``: also interrupt a running sync executor with a signal. ``hook``: run ``on_cancel`` afterwards."""

    task_id: int
    attempt: int
    force: bool = False
    hook: bool = False


class Stop(msgspec.Struct, tag="stop", array_like=True):
    """Finish what is running, then exit."""


ToWorker = Boot | Run | Cancel | Stop


# -- worker → supervisor -----------------------------------------------------------------------------------
class Ready(msgspec.Struct, tag="ready", array_like=True):
    pid: int
    task_types: dict[str, bool]  # qualified type → executor is async


class BootFailed(msgspec.Struct, tag="boot_failed", array_like=True):
    error: str


class Result(msgspec.Struct, array_like=True):
    """How one attempt ended. ``status``: ok, error (see ``retryable``), or cancelled."""

    id: int
    attempt: int
    status: str
    started_ms: int
    finished_ms: int
    elapsed_us: int = 0
    error: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    read_bytes: int = 0
    write_bytes: int = 0
    net_rx_bytes: int = 0
    net_tx_bytes: int = 0
    memo: bytes | None = None


class Results(msgspec.Struct, tag="results", array_like=True):
    results: list[Result]
    rss: int = 0  # the worker's resident memory, sampled at most once a second (0 = not sampled)


class Heartbeat(msgspec.Struct, tag="heartbeat", array_like=True):
    """Sent by a worker thread every ``heartbeat_interval`` while hang detection is on."""


class Progress(msgspec.Struct, tag="progress", array_like=True):
    task_id: int
    attempt: int
    fraction: float
    message: str | None = None


ToSupervisor = Ready | BootFailed | Results | Progress | Heartbeat

_encoder = msgspec.msgpack.Encoder()
worker_decoder = msgspec.msgpack.Decoder(ToWorker)
supervisor_decoder = msgspec.msgpack.Decoder(ToSupervisor)


def frame(msg: msgspec.Struct) -> bytes:
    """Encode ``msg`` with its length prefix in one buffer (one write per frame)."""
    buf = bytearray(HEADER.size)
    _encoder.encode_into(msg, buf, HEADER.size)
    n = len(buf) - HEADER.size
    if n > MAX_FRAME:
        raise ProtocolError(f"frame of {n} bytes exceeds the {MAX_FRAME}-byte limit")
    HEADER.pack_into(buf, 0, n)
    return bytes(buf)


def body_length(header: bytes) -> int:
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME:
        raise ProtocolError(f"peer announced a {n}-byte frame (limit {MAX_FRAME})")
    return int(n)


def decode_for_worker(body: bytes) -> ToWorker:
    try:
        return worker_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from exc


def decode_for_supervisor(body: bytes) -> ToSupervisor:
    try:
        return supervisor_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"undecodable frame: {exc}") from exc

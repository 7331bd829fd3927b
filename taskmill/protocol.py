"""Messages between the supervisor and its workers, and their framing. Both sides import this module.

A frame is a 4-byte big-endian length followed by a msgpack body. Frames over :data:`MAX_FRAME` are refused
on both sides: whatever task code produces is untrusted, and an oversize or undecodable frame means the
peer is broken, never that we should try harder.
"""

from __future__ import annotations

import struct

import msgspec

from .outcome import SubmitOutcome
from .store.records import ChildRecord, NewTask

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
    flags: int = 0  # store.records.F_*: F_FINALIZE = run finalize(task, memo, ctx) instead of execute
    expires_at: int | None = None
    memo: bytes | None = None  # what execute returned (msgpack), for the finalize phase


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
    default_ttl: float | None = None  # the scheduler-wide layer for rows built in the worker (spawns)
    max_payload_bytes: int = 1024 * 1024
    memory_limit: int = 0  # > 0: RLIMIT_AS in bytes, set once the worker has booted
    umask: int = -1  # >= 0: the supervisor's umask, which a worker exec'd before the daemon set it must adopt
    domains: list[str] = []  # the scheduler's domains: a worker hosts only their executors (empty: every one)
    switch_interval: float = 0.0  # > 0: the worker's GIL switch interval, seconds (taskmill/supervisor/gil.py)


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


class Reply(msgspec.Struct, tag="reply", array_like=True):
    """The answer to a worker's request (``Spawn``, ``ChildrenQuery``), sent after the turn that handled it
    committed. ``error_kind`` names the taskmill exception to raise in the executor."""

    request_id: int
    outcomes: list[SubmitOutcome] | None = None
    children: list[ChildRecord] | None = None
    error: str | None = None
    error_kind: str | None = None


ToWorker = Boot | Run | Cancel | Stop | Reply


# -- worker → supervisor -----------------------------------------------------------------------------------
class Ready(msgspec.Struct, tag="ready", array_like=True):
    pid: int
    task_types: dict[str, bool]  # qualified type → executor is async
    bell: bool = False  # reads a Cancel or Reply sent while it runs something only once its bell rings


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
    """``ctx.progress.report()``, coalesced in the worker. ``started_ms``: when the attempt started (epoch ms)."""

    task_id: int
    attempt: int
    fraction: float
    message: str | None = None
    started_ms: int = 0


class ByteProgress(msgspec.Struct, tag="bytes", array_like=True):
    """Byte counts of a running attempt (``ctx.add_bytes()`` ...): sent at most every 50 ms while they change,
    and about once a second while they do not (so a stalled transfer shows a falling throughput)."""

    task_id: int
    attempt: int
    done: int
    total: int | None = None
    started_ms: int = 0


class Spawn(msgspec.Struct, tag="spawn", array_like=True):
    """Insert ``rows`` (built in the worker, every default applied) as children of the running attempt
    ``task_id``/``attempt`` — or, with ``sibling``, as children of its parent. Fenced: refused unless that
    attempt is still running. The supervisor applies the inheritance (priority, remaining TTL, tags)."""

    request_id: int
    task_id: int
    attempt: int
    rows: list[NewTask]
    sibling: bool = False


class ChildrenQuery(msgspec.Struct, tag="children", array_like=True):
    """The children of ``task_id`` and how they ended (``ctx.children()``)."""

    request_id: int
    task_id: int
    attempt: int


ToSupervisor = Ready | BootFailed | Results | Progress | ByteProgress | Heartbeat | Spawn | ChildrenQuery

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


def body_length(header: bytes | bytearray) -> int:
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME:
        raise ProtocolError(f"peer announced a {n}-byte frame (limit {MAX_FRAME})")
    return int(n)


def decode_for_worker(body: bytes | bytearray) -> ToWorker:
    try:
        return worker_decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: e.g. invalid UTF-8 inside a string
        raise ProtocolError(f"undecodable frame: {exc}") from exc


def decode_for_supervisor(body: bytes) -> ToSupervisor:
    try:
        return supervisor_decoder.decode(body)
    except (msgspec.DecodeError, ValueError) as exc:  # ValueError: e.g. invalid UTF-8 inside a string
        raise ProtocolError(f"undecodable frame: {exc}") from exc

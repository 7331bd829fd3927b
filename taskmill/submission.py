"""Turning a typed task plus overrides into a stored row, applying the default layers in one place.

Precedence, most specific first: per call > task type (``Task.config()``) > domain default > scheduler
global > built-in. (The original let domain defaults beat the type's config; its docs promise this order.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from .domain import Domain, ExecutorSpec
from .errors import InvalidPayload, PayloadTooLarge, SubmitError, UnknownTaskType
from .policy.recurrence import RecurringSchedule, first_fire
from .priority import Priority, as_priority
from .store.records import F_RECURRING, F_TTL, F_TTL_FIRST, NewTask
from .task import DUPLICATE_STRATEGIES, TTL_ORIGINS, DependencyFailurePolicy, IoBudget, Task

MAX_TAGS = 32
MAX_TAG_KEY = 64
MAX_TAG_VALUE = 256
DEFAULT_MAX_PAYLOAD = 1024 * 1024

_encoder = msgspec.msgpack.Encoder()
_replace = msgspec.structs.replace
_TOKENS = itertools.count(1)  # one per template, never reused in a process


def _sha256(data: bytes) -> Any:
    """``hashlib.sha256``, imported on first use: worker processes import this module and never hash."""
    global _sha256
    import hashlib

    _sha256 = hashlib.sha256  # type: ignore[assignment]  # the same call, without this indirection from now on
    return _sha256(data)


class TaskSubmission(msgspec.Struct, kw_only=True):
    """An untyped submission, for callers that do not import the payload class.

    ``payload`` is a mapping (validated against the registered class) or msgpack bytes.
    """

    task_type: str
    payload: dict[str, Any] | bytes | None = None
    priority: int | None = None
    key: str | None = None
    label: str | None = None
    group: str | None = None
    tags: dict[str, str] | None = None
    run_after: float | None = None
    run_at: datetime | None = None
    ttl: float | None = None
    ttl_from: str | None = None
    max_retries: int | None = None
    on_duplicate: str | None = None
    depends_on: list[int] | None = None
    on_dependency_failure: str | None = None
    fail_fast: bool | None = None
    recurring: RecurringSchedule | float | None = None
    expected_io: IoBudget | None = None


class Defaults(msgspec.Struct, frozen=True, kw_only=True):
    """The scheduler-wide layer."""

    ttl: float | None = None
    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD


def now_ms() -> int:
    return int(time.time() * 1000)


def dedup_key(qualified_type: str, explicit: str | None, payload: bytes) -> str:
    """SHA-256 of ``type:`` then the explicit key (UTF-8) or the payload bytes, hex."""
    return _digest((qualified_type + ":").encode(), explicit, payload)


def _digest(prefix: bytes, explicit: str | None, payload: bytes) -> str:
    """:func:`dedup_key` with its ``type:`` prefix already encoded (a template keeps it)."""
    return _sha256(prefix + (payload if explicit is None else explicit.encode())).hexdigest()  # type: ignore[no-any-return]


def check_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Tags as stored: at most :data:`MAX_TAGS` pairs (the domain's default tags, the type's ``tags()``, per-call
    and inherited tags together), keys of 1 to :data:`MAX_TAG_KEY` bytes and values of at most
    :data:`MAX_TAG_VALUE` bytes (UTF-8)."""
    if len(tags) > MAX_TAGS:
        raise SubmitError(
            f"at most {MAX_TAGS} tags per task, got {len(tags)} (default, type, inherited and per-call tags together)"
        )
    out: dict[str, str] = {}
    for k, v in tags.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise SubmitError(f"tag keys and values must be strings, got {k!r}: {v!r}")
        if not k:
            raise SubmitError(f"tag keys must not be empty (the value was {v[:40]!r})")
        # A character is at most 4 bytes in UTF-8: short strings need no encoding to be measured.
        size = len(k) if len(k) * 4 <= MAX_TAG_KEY else len(k.encode())
        if size > MAX_TAG_KEY:
            raise SubmitError(f"tag key {k[:40]!r}... is {size} bytes, over the {MAX_TAG_KEY}-byte limit")
        size = len(v) if len(v) * 4 <= MAX_TAG_VALUE else len(v.encode())
        if size > MAX_TAG_VALUE:
            raise SubmitError(f"tag {k!r}: value is {size} bytes, over the {MAX_TAG_VALUE}-byte limit")
        out[k] = v
    return out


def _delay_ms(now_ms: int, run_after: float | timedelta | None, run_at: datetime | None) -> int | None:
    if run_after is not None and run_at is not None:
        raise SubmitError("give run_after or run_at, not both")
    if run_at is not None:
        if run_at.tzinfo is None:
            raise SubmitError("run_at must be timezone-aware (e.g. datetime.now(timezone.utc))")
        due = int(run_at.timestamp() * 1000)
    elif run_after is not None:
        seconds = run_after.total_seconds() if isinstance(run_after, timedelta) else float(run_after)
        if seconds < 0:
            raise SubmitError(f"run_after must be >= 0 seconds, got {seconds}")
        due = now_ms + int(seconds * 1000)
    else:
        return None
    return due if due > now_ms else None  # a time already past runs at the next dispatch


def encode_payload(spec: ExecutorSpec, task: Task, limit: int) -> bytes:
    try:
        payload = _encoder.encode(task)
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidPayload(f"{spec.qualified_type}: payload cannot be encoded: {exc}") from exc
    if len(payload) > limit:
        raise PayloadTooLarge(
            f"{spec.qualified_type}: payload is {len(payload)} bytes, over the {limit}-byte limit; "
            "store large data elsewhere and pass a reference"
        )
    try:  # msgspec does not type-check constructors: validate now so bad input fails here, not in a worker
        spec.decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise InvalidPayload(f"{spec.qualified_type}: {exc}") from exc
    return payload


class Template:
    """Everything about a submission that does not depend on the payload, resolved once.

    ``submit_batch`` builds one template per task class, so the per-task cost is encoding, validating and
    hashing the payload; a client keeps one per task type for plain ``submit`` calls (``Client._template``).
    Rows are copies of a prototype row with the per-task fields replaced.
    """

    __slots__ = (
        "_checked", "base", "explicit_key", "label", "prefix", "proto", "spec", "tags", "task_key", "task_tags",
        "task_tags_fn", "timeless", "token", "ttl_ms",
    )  # fmt: skip

    def __init__(
        self,
        domain: Domain,
        spec: ExecutorSpec,
        defaults: Defaults,
        *,
        priority: int | None = None,
        key: str | None = None,
        label: str | None = None,
        group: str | None = None,
        tags: Mapping[str, str] | None = None,
        run_after: float | timedelta | None = None,
        run_at: datetime | None = None,
        ttl: float | None = None,
        max_retries: int | None = None,
        on_duplicate: str | None = None,
        parent_id: int | None = None,
        now_ms: int | None = None,
        ttl_from: str | None = None,
        depends_on: Iterable[int] | None = None,
        on_dependency_failure: str | None = None,
        fail_fast: bool | None = None,
        recurring: RecurringSchedule | float | timedelta | None = None,
        expected_io: IoBudget | None = None,
        stamp: bool = True,
    ) -> None:
        now = int(time.time() * 1000) if now_ms is None else now_ms
        cfg = spec.type_config
        layered = priority if priority is not None else cfg.priority
        prio = int(as_priority(layered if layered is not None else domain.default_priority, Priority.NORMAL))
        strategy = on_duplicate or cfg.on_duplicate or "skip"
        if strategy not in DUPLICATE_STRATEGIES:
            raise SubmitError(f"on_duplicate must be one of {DUPLICATE_STRATEGIES}, got {strategy!r}")
        merged: dict[str, str] = dict(domain.default_tags)
        if cfg.tags:
            merged.update(cfg.tags)
        self.tags = merged
        self.task_tags = tags  # per-call tags, applied over the task's own
        ttl_s = ttl if ttl is not None else cfg.ttl if cfg.ttl is not None else domain.default_ttl
        if ttl_s is None:
            ttl_s = defaults.ttl
        if ttl_s is not None and ttl_s <= 0:
            raise SubmitError(f"ttl must be > 0 seconds, got {ttl_s}")
        if max_retries is not None and max_retries < 0:
            raise SubmitError("max_retries must be >= 0")
        origin = ttl_from or cfg.ttl_from or "submission"
        if origin not in TTL_ORIGINS:
            raise SubmitError(f"ttl_from must be one of {TTL_ORIGINS}, got {origin!r}")
        io = expected_io if expected_io is not None else cfg.expected_io
        if io is not None and (not isinstance(io, IoBudget) or min(io.read, io.write, io.net_rx, io.net_tx) < 0):
            raise SubmitError(f"expected_io must be an IoBudget of non-negative byte counts, got {io!r}")
        self.spec = spec
        self.explicit_key = key
        self.label = label
        self.task_key = spec.task_cls.key is not Task.key
        self.base: dict[str, Any] = dict(
            task_type=spec.qualified_type, domain=domain.name, priority=prio, created_at=now,
            expected_read_bytes=io.read if io else 0, expected_write_bytes=io.write if io else 0,
            expected_net_rx_bytes=io.net_rx if io else 0, expected_net_tx_bytes=io.net_tx if io else 0,
            max_retries=max_retries, run_after=_delay_ms(now, run_after, run_at), parent_id=parent_id,
            group_key=group if group is not None else cfg.group if cfg.group is not None else domain.default_group,
            ttl_seconds=ttl_s, expires_at=None if ttl_s is None or origin != "submission" else now + int(ttl_s * 1000),
            on_duplicate=strategy,
        )  # fmt: skip
        flags = 0 if ttl_s is None else F_TTL | (F_TTL_FIRST if origin == "first_attempt" else 0)
        if origin != "submission":
            self.base["ttl_from"] = origin
        if depends_on is not None:
            self.base["depends_on"] = [int(d) for d in depends_on]
        if on_dependency_failure is not None:
            try:
                self.base["on_dep_failure"] = DependencyFailurePolicy(on_dependency_failure).value
            except ValueError:
                raise SubmitError(
                    f"on_dependency_failure must be one of {[p.value for p in DependencyFailurePolicy]}, "
                    f"got {on_dependency_failure!r}"
                ) from None
        if fail_fast is not None:
            self.base["fail_fast"] = bool(fail_fast)
        if recurring is not None:
            flags |= F_RECURRING
            self._recurring(recurring, now, run_after is not None or run_at is not None)
        if flags:
            self.base["flags"] = flags
        self.prefix = (spec.qualified_type + ":").encode()
        self.task_tags_fn = spec.task_cls.tags is not Task.tags
        # Without a delay or a schedule only created_at and expires_at depend on the time: ``row(now=...)``
        # restamps them, so one template serves many calls.
        self.timeless = run_after is None and run_at is None and recurring is None
        self.ttl_ms = None if self.base["expires_at"] is None else int(ttl_s * 1000)  # type: ignore[operator]
        self._checked: dict[str, str] | None = None
        # Rows of one stamped template (and one time) share their shape; a one-off template (``build``) leaves
        # rows unstamped, so the store compares their fields and rows alike still go in one statement.
        self.token = next(_TOKENS) if stamp else 0
        self.proto = NewTask(key="", label="", payload=b"", shape=(self.token, 0) if stamp else None, **self.base)

    def _recurring(self, recurring: RecurringSchedule | float | timedelta, now: int, delayed: bool) -> None:
        sched = recurring if isinstance(recurring, RecurringSchedule) else RecurringSchedule(recurring)
        if self.base["parent_id"] is not None:
            raise SubmitError("a child task cannot be recurring (its parent would wait for it forever)")
        if not delayed:  # run_after / run_at, when given, place the first occurrence
            due = first_fire(sched, now)
            self.base["run_after"] = due if due > now else None
        self.base.update(
            recurring_interval=sched.interval_seconds, recurring_cron=sched.cron, recurring_tz=sched.timezone,
            recurring_max=sched.max_occurrences,
        )  # fmt: skip

    def row(
        self, task: Task | None, payload: bytes, now: int | None = None, tags: Mapping[str, str] | None = None
    ) -> NewTask:
        """The row for one task (``task`` None: an untyped submission whose payload is already validated).

        ``now`` (ms): the submission time, for a template kept across calls; ``tags``: per-call tags, applied
        over the template's and the task's own."""
        key = self.explicit_key
        if key is None and self.task_key and task is not None:
            key = task.key()
        merged = self.tags
        if self.task_tags_fn and task is not None:
            merged = {**merged, **task.tags()}
        if self.task_tags:
            merged = {**merged, **self.task_tags}
        if tags:
            merged = {**merged, **tags}
        if merged is self.tags:  # the template's own tags: checked once
            checked = self._checked
            if checked is None:
                checked = self._checked = check_tags(merged) if merged else {}
        else:
            checked = check_tags(merged) if merged else {}
        digest = _digest(self.prefix, key, payload)
        label = self.label or key or self.spec.qualified_type
        if now is None or not self.timeless:
            return _replace(self.proto, key=digest, label=label, payload=payload, tags=checked)
        ttl_ms = self.ttl_ms
        shape = (self.token, now) if self.token else None  # created_at and expires_at follow from now
        if ttl_ms is None:
            return _replace(self.proto, key=digest, label=label, payload=payload, tags=checked, created_at=now,
                            shape=shape)  # fmt: skip
        return _replace(self.proto, key=digest, label=label, payload=payload, tags=checked, created_at=now,
                        expires_at=now + ttl_ms, shape=shape)  # fmt: skip


def build(
    domain: Domain,
    spec: ExecutorSpec,
    task: Task | None,
    defaults: Defaults,
    *,
    payload: bytes | None = None,
    **overrides: Any,
) -> NewTask:
    """Resolve every layer for one submission. Raises a :class:`SubmitError` and writes nothing on bad input."""
    template = Template(domain, spec, defaults, stamp=False, **overrides)
    if payload is None:
        assert task is not None
        payload = encode_payload(spec, task, defaults.max_payload_bytes)
    return template.row(task, payload)


def resolve_untyped(
    domains: Mapping[str, Domain], sub: TaskSubmission, limit: int = DEFAULT_MAX_PAYLOAD
) -> tuple[Domain, ExecutorSpec, bytes]:
    """Find the executor of a qualified type and validate an untyped payload against its class."""
    name, sep, _ = sub.task_type.partition("::")
    domain = domains.get(name) if sep else None
    spec = domain.executors.get(sub.task_type) if domain else None
    if domain is None or spec is None:
        raise UnknownTaskType(
            f"no executor registered for task type {sub.task_type!r} (use the qualified 'domain::type' name)"
        )
    try:
        raw = sub.payload if isinstance(sub.payload, bytes) else _encoder.encode(sub.payload or {})
    except (TypeError, OverflowError, msgspec.EncodeError) as exc:
        raise InvalidPayload(f"{sub.task_type}: payload cannot be encoded: {exc}") from exc
    if len(raw) > limit:
        raise PayloadTooLarge(f"{sub.task_type}: payload is {len(raw)} bytes, over the {limit}-byte limit")
    try:
        task = spec.decoder.decode(raw)
    except (msgspec.DecodeError, ValueError) as exc:  # ValidationError included; ValueError: invalid UTF-8
        raise InvalidPayload(f"{sub.task_type}: {exc}") from exc
    return domain, spec, encode_payload(spec, task, limit)

"""Typed task payloads: subclass :class:`Task` (a msgspec Struct) and give it a ``task_type``."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

import msgspec

from .policy.retry import RetryPolicy

DuplicateStrategy = Literal["skip", "supersede", "reject"]
DUPLICATE_STRATEGIES = ("skip", "supersede", "reject")
TtlFrom = Literal["submission", "first_attempt"]
TTL_ORIGINS = ("submission", "first_attempt")


class DependencyFailurePolicy(StrEnum):
    """What a dependent does when a dependency ends without completing (plain strings work too).

    ``CANCEL`` (default): end as ``dependency_failed``, and take everything downstream of it down the same
    way. ``FAIL``: end as ``dependency_failed``; its own dependents apply their own policies. ``IGNORE``: treat
    the dependency as done and run anyway.
    """

    CANCEL = "cancel"
    FAIL = "fail"
    IGNORE = "ignore"


class IoBudget(msgspec.Struct, frozen=True):
    """Expected bytes a task will move: disk read/write and network receive/transmit."""

    read: int = 0
    write: int = 0
    net_rx: int = 0
    net_tx: int = 0

    @classmethod
    def disk(cls, read: int, write: int) -> IoBudget:
        return cls(read=read, write=write)

    @classmethod
    def net(cls, rx: int, tx: int) -> IoBudget:
        return cls(net_rx=rx, net_tx=tx)


class TaskTypeConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Static per-type defaults. Every field is optional: None means "fall through to the next layer"."""

    priority: int | None = None
    expected_io: IoBudget | None = None
    group: str | None = None
    ttl: float | None = None
    retry: RetryPolicy | None = None
    max_retries: int | None = None
    on_duplicate: DuplicateStrategy | None = None
    tags: dict[str, str] | None = None
    timeout: float | None = None
    ttl_from: TtlFrom | None = None


class Task(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every task payload. Subclasses set ``task_type`` and declare typed fields.

    Payloads are encoded with msgspec (never pickle) and validated against the class in the worker, so a
    payload from another process or an older version fails with a readable error instead of misbehaving.
    """

    task_type: ClassVar[str] = ""
    __taskmill_domain__: ClassVar[Any] = None  # the owning Domain, set on registration

    @classmethod
    def config(cls) -> TaskTypeConfig:
        return TaskTypeConfig()

    def key(self) -> str | None:
        """An explicit dedup key; None derives it from the payload bytes."""
        return None

    def tags(self) -> dict[str, str]:
        """Per-instance tags, merged under per-call tags."""
        return {}

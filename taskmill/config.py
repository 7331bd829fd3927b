"""Settings types shared by the Python API and the daemon's TOML file."""

from __future__ import annotations

from typing import Literal

import msgspec


class ShutdownMode(msgspec.Struct, frozen=True):
    """``hard()``: interrupt running tasks at once. ``graceful(timeout)``: stop dispatching, let running tasks
    finish for up to ``timeout`` seconds, then interrupt the rest. Interrupted tasks go back to pending,
    without using a retry, and run at the next start."""

    kind: Literal["hard", "graceful"] = "graceful"
    timeout: float = 10.0

    @classmethod
    def hard(cls) -> ShutdownMode:
        return cls("hard", 0.0)

    @classmethod
    def graceful(cls, timeout: float = 10.0) -> ShutdownMode:
        if timeout < 0:
            raise ValueError("graceful shutdown timeout must be >= 0 seconds")
        return cls("graceful", float(timeout))


class RetentionPolicy(msgspec.Struct, frozen=True):
    """How much history to keep; pruned every ``keep_count / 10`` finished tasks
    (at least 1,000 apart; see :mod:`taskmill.policy.retention`). ``None`` fields mean no limit.

    Build with ``RetentionPolicy.max_count(n)``, ``RetentionPolicy.max_age_days(d)`` or ``keep_all()``.
    """

    keep_count: int | None = None
    keep_days: float | None = None

    @classmethod
    def max_count(cls, n: int) -> RetentionPolicy:
        if n < 0:
            raise ValueError("history max_count must be >= 0")
        return cls(keep_count=n)

    @classmethod
    def max_age_days(cls, days: float) -> RetentionPolicy:
        if days <= 0:
            raise ValueError("history max_age_days must be > 0")
        return cls(keep_days=days)

    @classmethod
    def keep_all(cls) -> RetentionPolicy:
        return cls()


DEFAULT_RETENTION = RetentionPolicy(keep_count=100_000)

"""Token-bucket rate limits: pure state driven by an injected clock (seconds, monotonic)."""

from __future__ import annotations

import msgspec

from ..errors import ConfigError


class RateLimit(msgspec.Struct, frozen=True):
    """``permits`` starts per ``interval`` seconds, with up to ``burst`` at once (the bucket starts full)."""

    permits: int
    interval: float = 1.0
    burst: int = 0  # 0: the same as permits

    def __post_init__(self) -> None:
        if self.permits < 1 or not self.interval > 0 or self.burst < 0:
            raise ConfigError(f"rate limit needs permits >= 1, interval > 0 and burst >= 0, got {self!r}")
        if self.burst == 0:
            msgspec.structs.force_setattr(self, "burst", self.permits)

    @classmethod
    def per_second(cls, n: int) -> RateLimit:
        return cls(n, 1.0, n)

    @classmethod
    def per_minute(cls, n: int) -> RateLimit:
        return cls(n, 60.0, n)

    def with_burst(self, burst: int) -> RateLimit:
        return RateLimit(self.permits, self.interval, burst)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.permits / self.interval


class TokenBucket:
    __slots__ = ("last", "limit", "tokens")

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.last = now

    def _refill(self, now: float) -> None:
        if now > self.last:
            self.tokens = min(float(self.limit.burst), self.tokens + (now - self.last) * self.limit.rate)
            self.last = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def has_token(self, now: float) -> bool:
        return self.available(now) >= 1.0

    def take(self, now: float) -> None:
        """Take one token (call only after ``has_token``)."""
        self._refill(now)
        self.tokens -= 1.0

    def ready_at(self, now: float) -> float:
        """When the next whole token will be there."""
        missing = 1.0 - self.available(now)
        return now if missing <= 0 else now + missing / self.limit.rate

    def retune(self, limit: RateLimit, now: float) -> None:
        """A changed limit keeps what was left (at most the new burst)."""
        self._refill(now)
        self.limit = limit
        self.tokens = min(self.tokens, float(limit.burst))

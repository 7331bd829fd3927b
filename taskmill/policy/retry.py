"""Retry policy and the failure decision: retry now, retry later, dead-letter or fail for good."""

from __future__ import annotations

import random
from typing import Literal

import msgspec

Strategy = Literal["constant", "linear", "exponential", "exponential_jitter"]


class RetryPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How many times to retry (``max_retries`` retries = that many + 1 attempts) and how long to wait.

    Delays are seconds. Build with the constructors: ``RetryPolicy.constant(3, 5.0)``,
    ``RetryPolicy.exponential(5, base=1.0, max=60.0)``.
    """

    max_retries: int = 3
    strategy: Strategy = "constant"
    delay: float = 0.0
    increment: float = 0.0
    max_delay: float = 0.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.delay < 0 or self.increment < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("retry delays must be >= 0 and multiplier >= 1")

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(max_retries=0)

    @classmethod
    def constant(cls, max_retries: int, delay: float = 0.0) -> RetryPolicy:
        return cls(max_retries=max_retries, strategy="constant", delay=delay)

    @classmethod
    def linear(cls, max_retries: int, initial: float, increment: float, max: float) -> RetryPolicy:
        return cls(max_retries=max_retries, strategy="linear", delay=initial, increment=increment, max_delay=max)

    @classmethod
    def exponential(
        cls, max_retries: int, base: float = 1.0, max: float = 60.0, multiplier: float = 2.0
    ) -> RetryPolicy:
        return cls(max_retries=max_retries, strategy="exponential", delay=base, max_delay=max, multiplier=multiplier)

    @classmethod
    def exponential_jitter(
        cls, max_retries: int, base: float = 1.0, max: float = 60.0, multiplier: float = 2.0
    ) -> RetryPolicy:
        return cls(
            max_retries=max_retries,
            strategy="exponential_jitter",
            delay=base,
            max_delay=max,
            multiplier=multiplier,
        )


def backoff_delay(policy: RetryPolicy, retry_count: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry_count + 1`` (``retry_count`` is 0-based)."""
    n = max(0, retry_count)
    if policy.strategy == "constant":
        return policy.delay
    if policy.strategy == "linear":
        return min(policy.delay + policy.increment * n, policy.max_delay)
    base = min(policy.delay * policy.multiplier**n, policy.max_delay)
    if policy.strategy == "exponential":
        return base
    return (rng or random).uniform(0.0, base) if base > 0 else 0.0


class FailureDecision(msgspec.Struct, frozen=True):
    """``kind``: retry (``delay`` seconds, 0 = re-run at once), dead_letter, or fail (permanent)."""

    kind: Literal["retry", "dead_letter", "fail"]
    delay: float = 0.0


def decide_failure(
    *,
    retryable: bool,
    retry_count: int,
    max_retries: int,
    policy: RetryPolicy,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> FailureDecision:
    """Decide what a failed attempt leads to. The executor's ``retry_after`` beats the policy's backoff."""
    if not retryable:
        return FailureDecision("fail")
    if retry_count >= max_retries:
        return FailureDecision("dead_letter")
    delay = retry_after if retry_after is not None else backoff_delay(policy, retry_count, rng)
    return FailureDecision("retry", max(0.0, delay))

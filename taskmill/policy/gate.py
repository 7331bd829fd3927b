"""Which peeked candidate may start now: caps, backpressure, IO budget, then rate-limit tokens.

Pure bookkeeping over counts handed in by the caller (no I/O). A denied candidate is simply skipped, so it
never blocks the ones behind it. Tokens are taken only once every other check has passed, and a type token
is never spent when the group's bucket is empty.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ..store.records import Candidate
from .io import IoVector, ResourceSnapshot, io_admits
from .ratelimit import TokenBucket

DOMAIN_CAP = "domain_cap"
GROUP_CAP = "group_cap"
THROTTLED = "throttled"
IO_BUDGET = "io_budget"
RATE_LIMITED = "rate_limited"
REASONS = (DOMAIN_CAP, GROUP_CAP, THROTTLED, IO_BUDGET, RATE_LIMITED)


class Gate:
    def __init__(
        self,
        *,
        now: float,
        domain_caps: Mapping[str, int],
        group_caps: Mapping[str, int],
        default_group_cap: int,
        in_domain: Counter[str],
        in_group: Counter[str | None],
        throttle_ceiling: int | None = None,
        io_rates: ResourceSnapshot | None = None,
        io_running: IoVector = (0, 0, 0, 0),
        type_buckets: Mapping[str, TokenBucket] | None = None,
        group_buckets: Mapping[str, TokenBucket] | None = None,
        extra_domain: Counter[str] | None = None,
        extra_group: Counter[str | None] | None = None,
    ) -> None:
        """``in_domain``/``in_group``: slots in use (what may execute at once). ``extra_*``: tasks that may go
        past a full cap because they will queue behind a worker already holding that domain or group."""
        self.now = now
        self.domain_caps = domain_caps
        self.group_caps = group_caps
        self.default_group_cap = default_group_cap
        self.in_domain = in_domain
        self.in_group = in_group
        self.ceiling = throttle_ceiling
        self.io_rates = io_rates
        self.io_running = list(io_running)
        self.type_buckets = type_buckets or {}
        self.group_buckets = group_buckets or {}
        self.extra_domain: Counter[str] = extra_domain if extra_domain is not None else Counter()
        self.extra_group: Counter[str | None] = extra_group if extra_group is not None else Counter()
        self.denials: Counter[str] = Counter()
        self.wake_at: float | None = None  # when a rate-limited candidate could next start

    def group_cap(self, group: str | None) -> int:
        if group is None:
            return 0
        return self.group_caps.get(group, self.default_group_cap)

    def check(self, c: Candidate, *, group_cap: bool = True, dry: bool = False) -> str | None:
        """The reason ``c`` cannot start now, or None. Takes its rate-limit tokens and counts it as started
        when it can (unless ``dry``: only explain)."""
        queued_domain = queued_group = False  # admitted past a full cap, to queue behind a holder
        if self.domain_caps:
            cap = self.domain_caps.get(c.domain, 0)
            if cap and self.in_domain[c.domain] >= cap:
                if self.extra_domain[c.domain] <= 0:
                    return self._deny(DOMAIN_CAP)
                queued_domain = True
        group = c.group_key
        if group_cap and group is not None and (self.group_caps or self.default_group_cap):
            gcap = self.group_caps.get(group, self.default_group_cap)
            if gcap and self.in_group[group] >= gcap:
                if self.extra_group[group] <= 0:
                    return self._deny(GROUP_CAP)
                queued_group = True
        if self.ceiling is not None and c.priority >= self.ceiling:
            return self._deny(THROTTLED)
        if self.io_rates is not None:
            io = (c.read_bytes, c.write_bytes, c.net_rx_bytes, c.net_tx_bytes)
            if not io_admits(tuple(self.io_running), io, self.io_rates):  # type: ignore[arg-type]
                return self._deny(IO_BUDGET)
        tb = self.type_buckets.get(c.task_type) if self.type_buckets else None
        gb = self.group_buckets.get(group) if group is not None and self.group_buckets else None
        now = self.now
        for b in (tb, gb):
            if b is not None and not b.has_token(now):
                at = b.ready_at(now)
                self.wake_at = at if self.wake_at is None else min(self.wake_at, at)
                return self._deny(RATE_LIMITED)
        if dry:
            return None
        if tb is not None:
            tb.tokens -= 1.0  # refilled to ``now`` by has_token just above
        if gb is not None:
            gb.tokens -= 1.0
        if queued_domain:
            self.extra_domain[c.domain] -= 1
        else:
            self.in_domain[c.domain] += 1
        if queued_group:
            self.extra_group[group] -= 1
        else:
            self.in_group[group] += 1
        if self.io_rates is not None:
            r = self.io_running
            r[0] += c.read_bytes
            r[1] += c.write_bytes
            r[2] += c.net_rx_bytes
            r[3] += c.net_tx_bytes
        return None

    def _deny(self, reason: str) -> str:
        self.denials[reason] += 1
        return reason

    def _empty(self, buckets: Mapping[str, TokenBucket]) -> list[str]:
        out = []
        for key, b in buckets.items():
            if not b.has_token(self.now):
                out.append(key)
                at = b.ready_at(self.now)
                self.wake_at = at if self.wake_at is None else min(self.wake_at, at)
        return out

    def blocked_types(self) -> list[str]:
        """Types whose bucket is empty: left out of the next peek inside SQLite (and a wake-up is due when
        their next token arrives)."""
        return self._empty(self.type_buckets)

    def blocked_groups(self) -> list[str]:
        """Groups at their cap or out of tokens."""
        out = self._empty(self.group_buckets)
        out.extend(g for g, n in self.group_caps.items() if n and self.in_group[g] >= n and self.extra_group[g] <= 0)
        if self.default_group_cap:
            out.extend(g for g, n in self.in_group.items() if g is not None and g not in self.group_caps
                       and n >= self.default_group_cap and self.extra_group[g] <= 0)  # fmt: skip
        return out

    def full_domains(self) -> list[str]:
        return [d for d, n in self.domain_caps.items() if n and self.in_domain[d] >= n and self.extra_domain[d] <= 0]

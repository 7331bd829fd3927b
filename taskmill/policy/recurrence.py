"""Recurring schedules and when their next occurrence fires. Pure functions over epoch milliseconds.

Semantics (fixed rate): an interval schedule fires at ``first + k * interval``; a cron schedule fires at the
times its expression matches, in its time zone (DST handled by ``cronsim``). Times are measured from the
*scheduled* time of an occurrence, never from when it happened to run, so a slow queue does not make the
schedule drift.

One occurrence is active at a time (it holds the task's key). When it ends, :func:`plan_next` places the next
one on the grid:

- fire times that came while the occurrence had **not started** yet are skipped (it was still queued, so
  running it again would only pile up work);
- fire times that came while it was **running** collapse into one occurrence that runs at once; the rest of
  them are skipped too;
- otherwise the next occurrence waits for the next fire time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from ..errors import ConfigError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

# cronsim and zoneinfo are imported where used: worker processes import this module (through
# ``RecurringSchedule`` in the public API) but never evaluate a schedule.

CRON_SCAN_LIMIT = 1000  # fire times counted one by one before jumping ahead (cron only; intervals are O(1))


class RecurringSchedule(msgspec.Struct, frozen=True):
    """Run a task again and again: every ``interval`` seconds, or whenever the ``cron`` expression matches.

    ``max_occurrences``: stop after that many runs. ``initial_delay`` (interval schedules): seconds before
    the first run, which is otherwise immediate. ``timezone`` (cron schedules): an IANA name such as
    ``"Europe/Berlin"``; the default is UTC.
    """

    interval: float | timedelta | None = None
    max_occurrences: int | None = None
    initial_delay: float | timedelta | None = None
    cron: str | None = None
    timezone: str | None = None

    def __post_init__(self) -> None:
        if (self.interval is None) == (self.cron is None):
            raise ConfigError("RecurringSchedule needs exactly one of interval (seconds) or cron (an expression)")
        if self.interval is not None and seconds(self.interval) <= 0:
            raise ConfigError(f"recurring interval must be > 0 seconds, got {self.interval!r}")
        if self.max_occurrences is not None and self.max_occurrences < 1:
            raise ConfigError("max_occurrences must be >= 1 (None = no limit)")
        if self.initial_delay is not None:
            if self.cron is not None:
                raise ConfigError("initial_delay applies to interval schedules; a cron schedule waits for its time")
            if seconds(self.initial_delay) < 0:
                raise ConfigError("initial_delay must be >= 0 seconds")
        if self.cron is not None:
            from cronsim import CronSim, CronSimError

            zone(self.timezone)
            try:
                CronSim(self.cron, datetime.now(zone(self.timezone)))
            except CronSimError as exc:
                raise ConfigError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        elif self.timezone is not None:
            raise ConfigError("timezone applies to cron schedules only")

    @property
    def interval_seconds(self) -> float | None:
        return None if self.interval is None else seconds(self.interval)


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def zone(name: str | None) -> ZoneInfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {name!r}") from exc


def cron_after(expr: str, tz: str | None, after_ms: int) -> int:
    """The first time strictly after ``after_ms`` that ``expr`` matches in ``tz``."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(after_ms / 1000.0, zone(tz))
    return int(next(CronSim(expr, start)).timestamp() * 1000)


def first_fire(schedule: RecurringSchedule, now_ms: int) -> int:
    """When the first occurrence of a schedule submitted at ``now_ms`` is due."""
    if schedule.cron is not None:
        return cron_after(schedule.cron, schedule.timezone, now_ms)
    delay = schedule.initial_delay
    return now_ms + (int(seconds(delay) * 1000) if delay is not None else 0)


class NextOccurrence(msgspec.Struct, frozen=True):
    """``scheduled_ms``: the fire time the next occurrence stands for; it is due at ``max(scheduled, now)``.
    ``skipped``: fire times dropped on the way (pile-up prevention)."""

    scheduled_ms: int
    skipped: int


def plan_next(
    *, interval_s: float | None, cron: str | None, tz: str | None, scheduled_ms: int, started_ms: int | None,
    now_ms: int,
) -> NextOccurrence:  # fmt: skip
    """Place the occurrence after the one scheduled at ``scheduled_ms``, which started at ``started_ms`` (None:
    it never ran, e.g. it expired) and ended at ``now_ms``."""
    started = now_ms if started_ms is None else min(max(started_ms, scheduled_ms), now_ms)
    if interval_s is not None:
        return _plan_interval(int(interval_s * 1000), scheduled_ms, started, now_ms)
    assert cron is not None
    return _plan_cron(cron, tz, scheduled_ms, started, now_ms)


def _plan_interval(step: int, scheduled: int, started: int, now: int) -> NextOccurrence:
    step = max(step, 1)
    before_start = (started - scheduled) // step  # fire times in (scheduled, started]
    t = scheduled + (before_start + 1) * step
    if t > now:
        return NextOccurrence(t, before_start)
    last = (now - scheduled) // step  # fire times in (scheduled, now]: the newest one runs at once
    return NextOccurrence(scheduled + last * step, last - 1)


def _at(ms: int, tz: str | None) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, zone(tz))


def _plan_cron(expr: str, tz: str | None, scheduled: int, started: int, now: int) -> NextOccurrence:
    from cronsim import CronSim

    it = CronSim(expr, _at(scheduled, tz))
    skipped = 0
    latest: int | None = None  # the newest fire time that came while the occurrence ran
    for _ in range(CRON_SCAN_LIMIT):
        t = int(next(it).timestamp() * 1000)
        if t > now:
            return NextOccurrence(t, skipped) if latest is None else NextOccurrence(latest, skipped)
        if t <= started or latest is not None:
            skipped += 1
        if t > started:
            latest = t
    # Far behind (a long outage): stop counting one by one and jump to now.
    prev = int(next(CronSim(expr, _at(now + 1, tz), reverse=True)).timestamp() * 1000)
    if prev > started:
        return NextOccurrence(prev, skipped)
    return NextOccurrence(cron_after(expr, tz, now), skipped)

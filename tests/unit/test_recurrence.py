"""When recurring schedules fire next: interval and cron, skips instead of pile-ups (pure, fixed clocks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import taskmill as tm
from taskmill.policy.recurrence import NextOccurrence, cron_after, first_fire, plan_next

S = 1000  # ms


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def interval(scheduled: int, started: int | None, now: int, every: float = 10.0) -> NextOccurrence:
    return plan_next(interval_s=every, cron=None, tz=None, scheduled_ms=scheduled, started_ms=started, now_ms=now)


def test_an_interval_schedule_runs_at_a_fixed_rate_from_the_scheduled_time() -> None:
    # scheduled at 0, started late at 3 s, done at 4 s: the next one is at 10 s, not 4 + 10
    assert interval(0, 3 * S, 4 * S) == NextOccurrence(10 * S, 0)


def test_fire_times_before_the_occurrence_started_are_skipped() -> None:
    # queued until 25 s (fire times 10 and 20 came while it had not started), done at 26 s: next at 30 s
    assert interval(0, 25 * S, 26 * S) == NextOccurrence(30 * S, 2)


def test_fire_times_during_a_long_run_collapse_into_one_immediate_occurrence() -> None:
    # started on time, ran until 35 s: 10, 20 and 30 came meanwhile; the newest (30) runs at once
    nxt = interval(0, 0, 35 * S)
    assert nxt == NextOccurrence(30 * S, 2)


def test_an_occurrence_that_never_ran_skips_everything_up_to_now() -> None:
    assert interval(0, None, 35 * S) == NextOccurrence(40 * S, 3)


def test_first_fire_honours_initial_delay_and_cron() -> None:
    now = ms(datetime(2024, 1, 1, 12, 0, 7, tzinfo=UTC))
    assert first_fire(tm.RecurringSchedule(60), now) == now
    assert first_fire(tm.RecurringSchedule(60, initial_delay=timedelta(seconds=5)), now) == now + 5 * S
    assert first_fire(tm.RecurringSchedule(cron="*/15 * * * *"), now) == ms(datetime(2024, 1, 1, 12, 15, tzinfo=UTC))


def test_cron_in_a_time_zone_follows_local_time_across_daylight_saving() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    before = ms(datetime(2024, 3, 30, 12, 0, tzinfo=berlin))  # the day before clocks go forward
    first = cron_after("0 9 * * *", "Europe/Berlin", before)
    second = cron_after("0 9 * * *", "Europe/Berlin", first)
    assert datetime.fromtimestamp(first / 1000, berlin) == datetime(2024, 3, 31, 9, 0, tzinfo=berlin)
    assert datetime.fromtimestamp(second / 1000, berlin) == datetime(2024, 4, 1, 9, 0, tzinfo=berlin)
    assert second - first == 24 * 3600 * S  # 09:00 local both days (UTC offset changed overnight)


def test_cron_plan_skips_and_collapses_like_intervals() -> None:
    t0 = ms(datetime(2024, 1, 1, 12, 0, tzinfo=UTC))
    minute = 60 * S

    def cron(started: int | None, now: int) -> NextOccurrence:
        return plan_next(interval_s=None, cron="* * * * *", tz="UTC", scheduled_ms=t0, started_ms=started, now_ms=now)

    assert cron(t0, t0 + 5 * S) == NextOccurrence(t0 + minute, 0)
    assert cron(t0 + 150 * S, t0 + 170 * S) == NextOccurrence(t0 + 3 * minute, 2)  # 12:01, 12:02 came while queued
    assert cron(t0, t0 + 150 * S) == NextOccurrence(t0 + 2 * minute, 1)  # 12:01 and 12:02 came while running


def test_a_long_outage_jumps_ahead_instead_of_counting_every_missed_time() -> None:
    t0 = ms(datetime(2024, 1, 1, tzinfo=UTC))
    week = 7 * 24 * 3600 * S
    nxt = plan_next(interval_s=None, cron="* * * * * *", tz=None, scheduled_ms=t0, started_ms=None, now_ms=t0 + week)
    assert nxt.scheduled_ms == t0 + week + S and nxt.skipped >= 1000


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"interval": 5, "cron": "* * * * *"},
        {"interval": 0},
        {"interval": 5, "max_occurrences": 0},
        {"cron": "not a cron"},
        {"cron": "* * * * *", "timezone": "Mars/Olympus"},
        {"cron": "* * * * *", "initial_delay": 5},
        {"interval": 5, "timezone": "UTC"},
    ],
)
def test_invalid_schedules_are_refused_when_built(kwargs: dict[str, object]) -> None:
    with pytest.raises(tm.ConfigError):
        tm.RecurringSchedule(**kwargs)  # type: ignore[arg-type]

"""Pure policy functions: backoff delays, the failure decision, how often history is pruned, what a duplicate
submit does (no I/O)."""

from __future__ import annotations

import random

import pytest

from taskmill import RetryPolicy
from taskmill.policy.dedup import duplicate_share, probe_pays, skip_action
from taskmill.policy.dispatch import (
    AHEAD_MAX_MS,
    MAX_PREFETCH,
    PREFETCH_BUDGET_MS,
    DurationTracker,
    ahead_at,
    prefetch_depth,
)
from taskmill.policy.retention import prune_interval
from taskmill.policy.retry import backoff_delay, decide_failure


def test_constant_backoff_is_the_same_for_every_retry() -> None:
    p = RetryPolicy.constant(5, 2.5)
    assert [backoff_delay(p, n) for n in range(5)] == [2.5] * 5


def test_exponential_backoff_doubles_from_base_and_is_capped() -> None:
    p = RetryPolicy.exponential(10, base=1.0, max=10.0)
    assert [backoff_delay(p, n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_exponential_backoff_honours_the_multiplier() -> None:
    p = RetryPolicy.exponential(10, base=0.5, max=100.0, multiplier=3.0)
    assert [backoff_delay(p, n) for n in range(4)] == [0.5, 1.5, 4.5, 13.5]


def test_linear_backoff_grows_by_the_increment_up_to_the_cap() -> None:
    p = RetryPolicy.linear(10, initial=1.0, increment=0.5, max=2.0)
    assert [backoff_delay(p, n) for n in range(5)] == [1.0, 1.5, 2.0, 2.0, 2.0]


def test_jittered_backoff_stays_within_zero_and_the_exponential_bound() -> None:
    p = RetryPolicy.exponential_jitter(10, base=1.0, max=8.0)
    rng = random.Random(1234)
    for n in range(8):
        bound = min(1.0 * 2.0**n, 8.0)
        samples = [backoff_delay(p, n, rng) for _ in range(200)]
        assert all(0.0 <= s <= bound for s in samples), (n, min(samples), max(samples))
        # really jittered: spread over the range, not a constant
        assert max(samples) - min(samples) > bound * 0.5


def test_jittered_backoff_is_reproducible_with_a_seeded_rng() -> None:
    p = RetryPolicy.exponential_jitter(5, base=1.0, max=60.0)
    a = [backoff_delay(p, n, random.Random(7)) for n in range(5)]
    b = [backoff_delay(p, n, random.Random(7)) for n in range(5)]
    assert a == b
    assert a != [backoff_delay(p, n, random.Random(8)) for n in range(5)]


def test_negative_retry_count_is_treated_as_the_first_retry() -> None:
    p = RetryPolicy.exponential(3, base=1.0, max=60.0)
    assert backoff_delay(p, -3) == backoff_delay(p, 0) == 1.0


def test_a_permanent_failure_never_retries() -> None:
    d = decide_failure(retryable=False, retry_count=0, max_retries=5, policy=RetryPolicy.constant(5))
    assert d.kind == "fail"


def test_retryable_failures_retry_until_max_retries_then_dead_letter() -> None:
    p = RetryPolicy.constant(2, 3.0)
    kinds = [decide_failure(retryable=True, retry_count=n, max_retries=2, policy=p).kind for n in range(4)]
    assert kinds == ["retry", "retry", "dead_letter", "dead_letter"]


def test_zero_max_retries_dead_letters_the_first_failure() -> None:
    d = decide_failure(retryable=True, retry_count=0, max_retries=0, policy=RetryPolicy.none())
    assert d.kind == "dead_letter"


def test_the_retry_delay_comes_from_the_policy() -> None:
    p = RetryPolicy.exponential(5, base=0.25, max=60.0)
    delays = [decide_failure(retryable=True, retry_count=n, max_retries=5, policy=p).delay for n in range(3)]
    assert delays == [0.25, 0.5, 1.0]


def test_retry_after_from_the_executor_beats_the_policy_both_ways() -> None:
    p = RetryPolicy.constant(5, 30.0)
    shorter = decide_failure(retryable=True, retry_count=0, max_retries=5, policy=p, retry_after=0.5)
    assert (shorter.kind, shorter.delay) == ("retry", 0.5)
    longer = decide_failure(
        retryable=True, retry_count=0, max_retries=5, policy=RetryPolicy.constant(5), retry_after=12.0
    )
    assert (longer.kind, longer.delay) == ("retry", 12.0)


def test_retry_after_does_not_extend_max_retries() -> None:
    d = decide_failure(retryable=True, retry_count=3, max_retries=3, policy=RetryPolicy.constant(3), retry_after=1.0)
    assert d.kind == "dead_letter"


def test_a_negative_retry_after_means_retry_now() -> None:
    d = decide_failure(
        retryable=True, retry_count=0, max_retries=3, policy=RetryPolicy.constant(3, 5.0), retry_after=-4.0
    )
    assert (d.kind, d.delay) == ("retry", 0.0)


def test_jitter_in_decide_failure_uses_the_given_rng() -> None:
    p = RetryPolicy.exponential_jitter(5, base=4.0, max=60.0)
    a = decide_failure(retryable=True, retry_count=1, max_retries=5, policy=p, rng=random.Random(3))
    b = decide_failure(retryable=True, retry_count=1, max_retries=5, policy=p, rng=random.Random(3))
    assert a == b and 0.0 <= a.delay <= 8.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_retries": -1}, {"delay": -1.0}, {"max_delay": -1.0}, {"multiplier": 0.5}, {"increment": -1.0}],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_history_is_pruned_a_tenth_of_keep_count_apart_but_never_more_often_than_every_thousand() -> None:
    assert prune_interval(100_000) == 10_000  # the default retention: the O(keep) cut-off search every 10k tasks
    assert prune_interval(5_000) == 1000
    assert prune_interval(0) == 1000
    assert prune_interval(None) == 1000  # age-only retention: a range delete, cheap every time


def test_prefetch_depth_grows_as_soon_as_a_fast_type_is_first_seen_and_a_slow_type_turns_it_off() -> None:
    now = [100.0]
    t = DurationTracker(window=10.0, clock=lambda: now[0])
    assert t.depth() == 1  # nothing seen: one task at a time
    t.observe("fast", 5)  # 5 µs
    assert t.depth() == MAX_PREFETCH  # within the same 50 ms as the first look: no warm-up at depth 1
    now[0] += 1.0
    t.observe("slow", 40_000)  # 40 ms
    assert t.depth() == 1  # a slow type in play: never queue tasks behind it
    now[0] += 11.0
    t.observe("fast", 5)
    assert t.depth() == MAX_PREFETCH  # the slow type left the window
    assert prefetch_depth(0.5) == 4 and prefetch_depth(None) == 1


def test_observing_a_results_message_at_once_averages_as_one_at_a_time() -> None:
    samples = [("a", 100), ("b", 3000), ("a", 300), ("a", 50)]
    one, many = DurationTracker(clock=lambda: 5.0), DurationTracker(clock=lambda: 5.0)
    for t, us in samples:
        one.observe(t, us)
    many.observe_many(samples)
    assert many._avg == pytest.approx(one._avg) and many._seen == one._seen and many.depth() == one.depth()
    assert many._spread == pytest.approx(one._spread)


def test_the_next_task_goes_out_when_the_running_one_is_due_to_end_within_the_prefetch_budget() -> None:
    assert ahead_at(100.0, 10.0, 1.0) == pytest.approx(100.0 + (10.0 - PREFETCH_BUDGET_MS) / 1000)
    assert ahead_at(100.0, PREFETCH_BUDGET_MS / 2, 0.1) == 100.0  # due to end within the budget from the start
    assert ahead_at(100.0, AHEAD_MAX_MS, 1.0) is not None
    assert ahead_at(100.0, AHEAD_MAX_MS * 1.01, 1.0) is None  # long: the round trip is a small share of it
    assert ahead_at(100.0, 10.0, 6.0) is None  # durations spread wide: a queued task could wait long behind it
    assert ahead_at(100.0, None, None) is None


def test_a_steady_type_is_sent_ahead_after_a_few_runs_and_an_erratic_one_never() -> None:
    t = DurationTracker(clock=lambda: 0.0)
    t.observe("steady", 10_000)
    assert t.ahead_at("steady", 1.0) is None  # one sample proves nothing yet
    t.observe_many([("steady", 10_200), ("steady", 9_900), ("steady", 10_100)])
    assert t.ahead_at("steady", 1.0) == pytest.approx(1.0 + (t._avg["steady"] - PREFETCH_BUDGET_MS) / 1000)
    t.observe_many([("erratic", us) for us in (5_000, 45_000) * 10])
    assert t.ahead_at("erratic", 1.0) is None
    t.observe_many([("steady", 48_000), ("steady", 2_000)])  # the steady type turns erratic: no longer ahead
    assert t.ahead_at("steady", 1.0) is None
    assert t.ahead_at("unknown", 1.0) is None


# -- resubmitting an active key (on_duplicate="skip") --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "priority", "requeue", "requeue_priority", "new_priority", "action"),
    [
        ("pending", 128, 0, None, 64, "upgrade"),  # strictly more urgent
        ("pending", 128, 0, None, 128, None),  # as urgent: a plain duplicate
        ("pending", 128, 0, None, 192, None),  # less urgent: never a downgrade
        ("paused", 128, 0, None, 64, "upgrade"),
        ("paused", 128, 0, None, 128, "requeue"),  # a paused task was stopped mid-run: run it once more
        ("running", 128, 0, None, 192, "requeue"),
        ("running", 128, 1, 128, 128, None),  # a requeue as urgent is set already
        ("running", 128, 1, 128, 64, "requeue"),  # a more urgent requeue replaces it
        ("running", 128, 1, None, 254, "requeue"),  # a requeue without its own priority counts as 255
        ("blocked", 128, 0, None, 0, None),
        ("waiting", 128, 0, None, 0, None),
    ],
)
def test_skip_action(
    status: str, priority: int, requeue: int, requeue_priority: int | None, new_priority: int, action: str | None
) -> None:
    assert skip_action(status, priority, requeue, requeue_priority, new_priority) == action


def test_a_client_probes_only_while_most_of_its_submits_are_duplicates() -> None:
    share = 0.0
    streak = 0
    while not probe_pays(share):
        share = duplicate_share(share, True)
        streak += 1
    assert 5 <= streak <= 10  # a short run of duplicates switches probing on...
    for _ in range(3):
        share = duplicate_share(share, True)
    inserts = 0
    while probe_pays(share):
        share = duplicate_share(share, False)
        inserts += 1
    assert 1 <= inserts <= 10  # ...and a short run of new tasks switches it off
    assert not probe_pays(0.0) and probe_pays(1.0)

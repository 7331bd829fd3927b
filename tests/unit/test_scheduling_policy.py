"""Scheduling policy as pure functions: token buckets, aging, fair allocation, throttling, IO gate, the gate."""

from __future__ import annotations

from collections import Counter

import pytest

import taskmill as tm
from taskmill.policy.aging import effective_priority, is_urgent
from taskmill.policy.fair import GroupDemand, compute_allocation
from taskmill.policy.gate import DOMAIN_CAP, GROUP_CAP, IO_BUDGET, RATE_LIMITED, THROTTLED, Gate
from taskmill.policy.io import ResourceSnapshot, io_admits, smooth
from taskmill.policy.pressure import CompositePressure, ThrottlePolicy
from taskmill.policy.ratelimit import TokenBucket
from taskmill.store.records import Candidate

P = tm.Priority


# -- rate limits ----------------------------------------------------------------------------------------
def test_rate_limit_constructors() -> None:
    assert tm.RateLimit.per_second(5) == tm.RateLimit(5, 1.0, 5)
    assert tm.RateLimit.per_minute(30) == tm.RateLimit(30, 60.0, 30)
    assert tm.RateLimit.per_second(5).with_burst(1).burst == 1
    with pytest.raises(tm.ConfigError):
        tm.RateLimit(0)
    with pytest.raises(tm.ConfigError):
        tm.RateLimit(1, interval=0)


def test_bucket_starts_full_refills_at_the_rate_and_caps_at_burst() -> None:
    b = TokenBucket(tm.RateLimit.per_second(2).with_burst(3), now=0.0)
    for _ in range(3):
        assert b.has_token(0.0)
        b.take(0.0)
    assert not b.has_token(0.0)
    assert b.ready_at(0.0) == pytest.approx(0.5)
    assert not b.has_token(0.49)
    assert b.has_token(0.5)
    assert b.available(100.0) == 3.0  # never beyond the burst


def test_bucket_retune_keeps_what_was_left_up_to_the_new_burst() -> None:
    b = TokenBucket(tm.RateLimit.per_second(10), now=0.0)
    b.take(0.0)
    b.retune(tm.RateLimit.per_second(1).with_burst(2), 0.0)
    assert b.available(0.0) == 2.0
    b.retune(tm.RateLimit.per_second(100), 0.0)
    assert b.available(0.0) == 2.0


# -- aging -----------------------------------------------------------------------------------------------
CFG = tm.AgingConfig(grace_period=10, aging_interval=2, max_effective_priority=int(P.HIGH))


def test_aging_promotes_one_level_per_interval_after_the_grace_period() -> None:
    base = int(P.NORMAL)
    assert effective_priority(base, 0, 0, 10_000, CFG) == base
    assert effective_priority(base, 0, 0, 11_999, CFG) == base
    assert effective_priority(base, 0, 0, 12_000, CFG) == base - 1
    assert effective_priority(base, 0, 0, 30_000, CFG) == base - 10
    assert effective_priority(base, 0, 0, 10**9, CFG) == int(P.HIGH)  # never past the ceiling


def test_aging_excludes_paused_time_and_never_demotes() -> None:
    assert effective_priority(int(P.NORMAL), 0, 20_000, 30_000, CFG) == int(P.NORMAL)
    assert effective_priority(int(P.REALTIME), 0, 0, 10**9, CFG) == int(P.REALTIME)


def test_aging_config_is_validated_and_urgency_follows_the_threshold() -> None:
    with pytest.raises(tm.ConfigError):
        tm.AgingConfig(aging_interval=0)
    with pytest.raises(tm.ConfigError):
        tm.AgingConfig(max_effective_priority=64, urgent_threshold=10)
    cfg = tm.AgingConfig(urgent_threshold=100)
    assert is_urgent(100, cfg) and not is_urgent(101, cfg) and not is_urgent(0, None)


# -- fair allocation --------------------------------------------------------------------------------------
def test_weights_split_the_slots() -> None:
    alloc = compute_allocation(8, {"a": GroupDemand(3, 100), "b": GroupDemand(1, 100)})
    assert alloc == {"a": 6, "b": 2}


def test_unused_share_goes_to_groups_that_have_work() -> None:
    alloc = compute_allocation(8, {"a": GroupDemand(3, 100), "b": GroupDemand(1, 100), "c": GroupDemand(4, 1)})
    assert alloc["c"] == 1 and sum(alloc.values()) == 8 and alloc["a"] > alloc["b"]


def test_minimum_slots_come_first_and_caps_bound_a_group() -> None:
    alloc = compute_allocation(4, {"a": GroupDemand(10, 100), "b": GroupDemand(1, 100, min_slots=2)})
    assert alloc["b"] >= 2 and sum(alloc.values()) == 4
    alloc = compute_allocation(8, {"a": GroupDemand(3, 100, cap=2), "b": GroupDemand(1, 100)})
    assert alloc == {"a": 2, "b": 6}


def test_ungrouped_tasks_are_one_group_and_rounding_is_deterministic() -> None:
    demands = {None: GroupDemand(1, 100), "x": GroupDemand(1, 100), "y": GroupDemand(1, 100)}
    first = compute_allocation(4, demands)
    assert first == compute_allocation(4, dict(reversed(list(demands.items()))))
    assert sum(first.values()) == 4 and max(first.values()) - min(first.values()) <= 1


# -- pressure and throttling ------------------------------------------------------------------------------
class Fixed:
    def __init__(self, name: str, value: float) -> None:
        self.name, self.value = name, value

    def pressure(self) -> float:
        return self.value


def test_default_tiers_throttle_less_urgent_work_first() -> None:
    t = ThrottlePolicy.default_three_tier()
    assert [t.throttled(int(p), 0.6) for p in (P.REALTIME, P.HIGH, P.NORMAL, P.BACKGROUND, P.IDLE)] == [
        False, False, False, True, True]  # fmt: skip
    assert [t.throttled(int(p), 0.8) for p in (P.REALTIME, P.HIGH, P.NORMAL, P.BACKGROUND)] == [
        False, False, True, True]  # fmt: skip
    assert not t.throttled(int(P.IDLE), 0.5)  # strictly over the limit
    assert t.ceiling(0.6) == int(P.BACKGROUND) and t.ceiling(0.8) == int(P.NORMAL) and t.ceiling(0.1) is None


def test_composite_pressure_is_the_maximum_with_a_breakdown() -> None:
    c = CompositePressure([Fixed("disk", 0.2), Fixed("battery", 1.7)])
    assert c.pressure() == 1.0
    assert c.breakdown() == [("disk", 0.2), ("battery", 1.0)]
    assert CompositePressure().pressure() == 0.0


# -- IO gate ----------------------------------------------------------------------------------------------
def test_io_gate_admits_within_80_percent_of_two_seconds_of_throughput() -> None:
    rates = ResourceSnapshot(io_read_bytes_per_sec=1000, io_write_bytes_per_sec=1000)
    assert io_admits((1, 0, 0, 0), (1599, 0, 0, 0), rates)
    assert not io_admits((1, 0, 0, 0), (1600, 0, 0, 0), rates)
    assert not io_admits((1000, 0, 0, 0), (700, 0, 0, 0), rates)
    assert not io_admits((0, 1000, 0, 0), (0, 700, 0, 0), rates)
    assert io_admits((0, 0, 0, 0), (10**9, 0, 0, 0), rates)  # alone on the axis: never starved
    assert io_admits((10**9, 0, 0, 0), (0, 0, 0, 0), rates)  # declares no IO
    assert io_admits((5, 0, 0, 0), (10**9, 0, 0, 0), ResourceSnapshot())  # nothing observed yet
    assert io_admits((0, 0, 5, 0), (0, 0, 10**9, 0), rates)  # no network rate observed
    net = ResourceSnapshot(net_rx_bytes_per_sec=1000)
    assert not io_admits((0, 0, 1000, 0), (0, 0, 700, 0), net) and io_admits((10**9, 0, 0, 0), (0, 0, 0, 0), net)


def test_smoothing_is_an_ewma_starting_from_the_first_sample() -> None:
    first = smooth(None, ResourceSnapshot(cpu_usage=1.0), 0.3)
    assert first.cpu_usage == 1.0
    assert smooth(first, ResourceSnapshot(cpu_usage=0.0), 0.3).cpu_usage == pytest.approx(0.7)


# -- the gate ---------------------------------------------------------------------------------------------
def cand(i: int, *, domain: str = "d", group: str | None = None, prio: int = 128, t: str = "d::t",
         read: int = 0) -> Candidate:  # fmt: skip
    return Candidate(i, t, domain, prio, group, 0, 0, read, 0, 0, 0)


def test_gate_denies_by_reason_without_blocking_the_others() -> None:
    g = Gate(now=0.0, domain_caps={"d": 1}, group_caps={"g": 1}, default_group_cap=0, in_domain=Counter(),
             in_group=Counter(), throttle_ceiling=int(P.BACKGROUND),
             io_rates=ResourceSnapshot(io_read_bytes_per_sec=100))  # fmt: skip
    assert g.check(cand(1, domain="e", group="g")) is None
    assert g.check(cand(2, domain="e", group="g")) == GROUP_CAP
    assert g.check(cand(3)) is None
    assert g.check(cand(4)) == DOMAIN_CAP
    assert g.check(cand(5, domain="e", prio=int(P.IDLE))) == THROTTLED
    assert g.check(cand(6, domain="e", read=100)) is None
    assert g.check(cand(8, domain="e", read=10_000)) == IO_BUDGET
    assert g.check(cand(7, domain="e")) is None
    assert g.denials == Counter({GROUP_CAP: 1, DOMAIN_CAP: 1, THROTTLED: 1, IO_BUDGET: 1})
    assert g.full_domains() == ["d"] and g.blocked_groups() == ["g"]


def test_gate_takes_tokens_last_and_never_wastes_a_type_token() -> None:
    types = {"d::t": TokenBucket(tm.RateLimit.per_second(1).with_burst(2), 0.0)}
    groups = {"g": TokenBucket(tm.RateLimit.per_second(1).with_burst(1), 0.0)}
    g = Gate(now=0.0, domain_caps={}, group_caps={}, default_group_cap=0, in_domain=Counter(), in_group=Counter(),
             type_buckets=types, group_buckets=groups)  # fmt: skip
    assert g.check(cand(1, group="g")) is None
    assert g.check(cand(2, group="g")) == RATE_LIMITED
    assert types["d::t"].available(0.0) == 1.0  # the group was empty: the type token stays
    assert g.wake_at == pytest.approx(1.0)
    assert g.check(cand(3)) is None  # ungrouped: only the type bucket applies
    assert g.check(cand(4)) == RATE_LIMITED
    assert g.blocked_types() == ["d::t"] and g.blocked_groups() == ["g"]


def test_default_group_cap_applies_to_groups_without_their_own() -> None:
    g = Gate(now=0.0, domain_caps={}, group_caps={"big": 3}, default_group_cap=1, in_domain=Counter(),
             in_group=Counter())  # fmt: skip
    assert g.check(cand(1, group="x")) is None
    assert g.check(cand(2, group="x")) == GROUP_CAP
    assert g.check(cand(3, group="big")) is None and g.check(cand(4, group="big")) is None
    assert g.check(cand(5)) is None and g.check(cand(6)) is None  # ungrouped: no group cap
    assert g.blocked_groups() == ["x"]

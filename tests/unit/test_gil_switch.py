"""The supervisor's GIL switch interval: lowered while any supervisor of the process runs, never raised, and
put back by the last one unless the application changed it meanwhile."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from taskmill.supervisor import gil


@pytest.fixture(autouse=True)
def _interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    assert gil._holders == 0, "a test left the interval held"
    sys.setswitchinterval(before)


def test_a_holder_lowers_the_interval_and_puts_it_back() -> None:
    assert gil.hold(0.0005)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    gil.release()
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_none_holds_nothing() -> None:
    assert not gil.hold(None)
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_a_lower_interval_the_application_chose_is_never_raised() -> None:
    sys.setswitchinterval(0.0001)
    assert gil.hold(0.0005)
    assert sys.getswitchinterval() == pytest.approx(0.0001)
    gil.release()
    assert sys.getswitchinterval() == pytest.approx(0.0001)


def test_the_last_of_several_holders_restores_and_the_lowest_request_wins() -> None:
    gil.hold(0.001)
    gil.hold(0.0005)
    assert sys.getswitchinterval() == pytest.approx(0.0005)
    gil.release()
    assert sys.getswitchinterval() == pytest.approx(0.0005)  # one supervisor still runs
    gil.release()
    assert sys.getswitchinterval() == pytest.approx(0.005)


def test_an_interval_the_application_set_meanwhile_is_left_in_place() -> None:
    gil.hold(0.0005)
    sys.setswitchinterval(0.002)
    gil.release()
    assert sys.getswitchinterval() == pytest.approx(0.002)

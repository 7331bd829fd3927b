"""A payload that passes the submitter's checks but not the worker's: a readable permanent failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

import taskmill as tm
from taskmill.domain import DOMAINS
from tests.helpers import entries
from tests.integration import domains as D


class OldStrict(tm.Task, frozen=True):
    """What an out-of-date client believes tm_payloads::strict looks like (``value`` was a str)."""

    task_type: ClassVar[str] = "strict"
    log: str
    value: str


@pytest.fixture
def old_domain() -> Iterator[tm.Domain]:
    """A second definition of the tm_payloads domain, as another version of the app would have it."""
    saved = DOMAINS.get("tm_payloads")
    try:
        old = tm.Domain("tm_payloads")
        old.executor(OldStrict)(lambda task, ctx: None)
        yield old
    finally:
        if saved is not None:
            DOMAINS["tm_payloads"] = saved


def test_a_payload_that_fails_validation_in_the_worker_fails_permanently(
    make_scheduler: Any, db: Path, log: str, old_domain: tm.Domain
) -> None:
    s = make_scheduler([D.payloads], workers=1, retry=tm.RetryPolicy.constant(3, 0.0))
    sub = s.subscribe()
    with tm.connect(db) as old_client:
        bad = old_client.domain(old_domain).submit(OldStrict(log=log, value="forty-two"))
    assert bad.kind == "inserted"
    good = s.domain(D.payloads).submit(D.Strict(log=log, value=42))
    s.start()
    assert s.wait_until_idle(10)

    [rec] = s.history_of(bad.id)
    assert rec.status == "failed"  # permanent: no retry, no dead letter
    assert rec.last_error is not None and "PayloadDecodeError" in rec.last_error
    assert "Expected `int`, got `str`" in rec.last_error and "value" in rec.last_error
    assert [r.status for r in s.history_of(good.id)] == ["completed"]

    dispatched = {}
    while (ev := sub.get(timeout=2)) is not None:
        if isinstance(ev, tm.Dispatched):
            dispatched.setdefault(ev.header.task_id, ev.worker_pid)  # type: ignore[union-attr]
        if len(dispatched) == 2:
            break
    sub.close()
    # the worker survived the bad payload and ran the next task
    assert dispatched[bad.id] == dispatched[good.id]
    [ran] = entries(log, "start")
    assert ran["tag"] == "strict-42" and ran["pid"] == dispatched[bad.id]

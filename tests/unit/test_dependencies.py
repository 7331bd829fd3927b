"""Dependencies and their cascades in the store alone (no supervisor): submit-time checks, cancel cascades by
policy, supersede, paused scopes, and the TTL sweep with a fixed clock."""

from __future__ import annotations

from pathlib import Path

import pytest

import taskmill as tm
from taskmill.store import flow
from tests.integration import workflow_domains as W


def status(c: tm.Client, task_id: int) -> str:
    rec = c.task(task_id)
    if rec is not None:
        return rec.status
    return c.history_of(task_id)[0].status


def step(tag: str) -> W.Step:
    return W.Step(log="unused", tag=tag)


def test_dependents_are_stored_blocked_with_their_edges(db: Path) -> None:
    with tm.connect(db) as c:
        h = c.domain(W.flow)
        a, b = h.submit(step("a")).id, h.submit(step("b")).id
        out = h.submit_batch([step("c1"), step("c2")], depends_on=[a, b, a])
        assert all(o.blocked for o in out) and c.blocked_count() == 2
        c1 = out[0].id
        assert c.task_dependencies(c1) == [a, b] and sorted(c.task_dependents(a)) == sorted(out.inserted())
        with pytest.raises(tm.InvalidDependency, match="does not exist"):
            h.submit(step("d"), depends_on=[a, 12345])
        assert c.blocked_count() == 2  # the refused submission wrote nothing
        with pytest.raises(tm.SubmitError, match="on_dependency_failure"):
            h.submit(step("e"), depends_on=[a], on_dependency_failure="shrug")


def test_cancelling_a_dependency_applies_each_dependents_policy_in_the_same_transaction(db: Path) -> None:
    with tm.connect(db) as c:
        h = c.domain(W.flow)
        a = h.submit(step("a")).id
        cancel = h.submit(step("cancel"), depends_on=[a]).id
        under_cancel = h.submit(step("under-cancel"), depends_on=[cancel], on_dependency_failure="ignore").id
        fail = h.submit(step("fail"), depends_on=[a], on_dependency_failure="fail").id
        under_fail = h.submit(step("under-fail"), depends_on=[fail], on_dependency_failure="ignore").id
        under_fail_cancel = h.submit(step("under-fail-cancel"), depends_on=[fail]).id
        ignore = h.submit(step("ignore"), depends_on=[a], on_dependency_failure="ignore").id
        assert c.cancel(a)
        assert status(c, a) == "cancelled"
        assert status(c, cancel) == status(c, under_cancel) == "dependency_failed"
        assert status(c, fail) == status(c, under_fail_cancel) == "dependency_failed"
        assert status(c, under_fail) == status(c, ignore) == "pending"
        assert "dependency task" in (c.history_of(cancel)[0].last_error or "")
        assert c.blocked_count() == 0 and c.task_dependents(a) == []


def test_a_failed_dependency_is_refused_unless_ignored_and_a_cycle_is_refused(db: Path) -> None:
    with tm.connect(db) as c:
        h = c.domain(W.flow)
        gone = h.submit(step("gone")).id
        c.cancel(gone)
        with pytest.raises(tm.InvalidDependency, match="already ended as cancelled"):
            h.submit(step("x"), depends_on=[gone])
        assert not h.submit(step("y"), depends_on=[gone], on_dependency_failure="ignore").blocked
        a = h.submit(step("a")).id
        first = h.submit(step("first"), key="first", depends_on=[a]).id
        second = h.submit(step("second"), depends_on=[first]).id
        with pytest.raises(tm.CyclicDependency, match="depend on itself"):
            h.submit(step("first'"), key="first", on_duplicate="supersede", depends_on=[second])
        with pytest.raises(tm.CyclicDependency):
            h.submit(step("first'"), key="first", on_duplicate="supersede", depends_on=[first])
        # a supersede in place replaces the dependencies: with none left, the task is runnable
        out = h.submit(step("first'"), key="first", on_duplicate="supersede")
        assert out.id == first and status(c, first) == "pending" and c.task_dependencies(first) == []
        assert c.task_dependents(a) == []


def test_an_unblocked_task_lands_paused_if_its_domain_is_paused_now(db: Path) -> None:
    with tm.connect(db) as c:
        h = c.domain(W.flow)
        a = h.submit(step("a")).id
        b = h.submit(step("b"), depends_on=[a], on_dependency_failure="ignore").id
        h.pause()
        assert status(c, b) == "blocked"  # a pause does not touch blocked tasks...
        c.cancel(a)
        assert status(c, b) == "paused"  # ...but one unblocked meanwhile waits for the resume
        h.resume()
        assert status(c, b) == "pending"


def test_the_sweep_expires_queued_and_blocked_tasks_and_cascades(db: Path) -> None:
    with tm.connect(db) as c:
        h = c.domain(W.flow)
        a = h.submit(step("a"), ttl=10).id
        b = h.submit(step("b"), depends_on=[a], ttl=100, on_dependency_failure="fail").id
        d = h.submit(step("d"), depends_on=[b], on_dependency_failure="ignore").id
        keep = h.submit(step("keep"), ttl=100).id
        created = c.task(a).created_at  # type: ignore[union-attr]
        store = c._store()
        fx = flow.Effects()
        with store.write():  # a fixed clock: 50 s after submission
            assert flow.expire_due(store.conn, int((created + 50) * 1000), 100, fx) == 1
        assert status(c, a) == "expired" and status(c, b) == "dependency_failed" and status(c, d) == "pending"
        assert status(c, keep) == "pending"
        kinds = sorted(type(e).__name__ for e in fx.events)
        assert kinds == ["DependencyFailed", "TaskExpired", "TaskUnblocked"]

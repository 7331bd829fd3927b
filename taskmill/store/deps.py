"""Dependencies at submit time: validate ``depends_on``, add the edges, and the read-side queries.

A dependency is checked inside the submitting transaction, by task id (history rows keep the task's id, so a
finished dependency is found by the same id it was submitted with):

- active: an edge is added and the new task is stored ``blocked``;
- completed: already satisfied, no edge;
- ended any other way: an error under the ``cancel`` and ``fail`` policies, ignored under ``ignore``;
- unknown (never existed, or pruned from history): :class:`InvalidDependency`.

Cycles: a new task cannot be a dependency of anything yet, so only a task whose dependencies are *replaced*
(a supersede in place keeps its id) can close a cycle; that is checked with a recursive walk. A child that
depends on its own parent (or an ancestor) is a cycle as well: a parent completes only after its children.
"""

from __future__ import annotations

from collections.abc import Sequence

import apsw
import msgspec

from ..errors import CyclicDependency, InvalidDependency
from . import sql
from . import sql_flow as q

_json = msgspec.json.encode
POLICIES = ("cancel", "fail", "ignore")


def active_dependencies(
    conn: apsw.Connection, depends_on: Sequence[int], policy: str, *, parent_id: int | None = None,
    replacing: int | None = None,
) -> list[tuple[int, str]]:  # fmt: skip
    """The dependencies still to wait for, as (id, status); raises on unknown, failed or cyclic ones."""
    if policy not in POLICIES:
        raise InvalidDependency(f"on_dependency_failure must be one of {POLICIES}, got {policy!r}")
    waiting: list[tuple[int, str]] = []
    for dep in dict.fromkeys(int(d) for d in depends_on):
        row = next(iter(conn.execute(q.DEP_TARGET, (dep,))), None)
        if row is None:
            raise InvalidDependency(f"dependency task {dep} does not exist (depends_on takes ids of submitted tasks)")
        status, finished = row
        if finished is None:
            waiting.append((dep, str(status)))
        elif status != "completed" and policy != "ignore":
            raise InvalidDependency(
                f"dependency task {dep} already ended as {status}; it can never complete "
                "(use on_dependency_failure='ignore' to run anyway)"
            )
    if not waiting:
        return waiting
    ids = [d for d, _ in waiting]
    if replacing is not None and (replacing in ids or _reaches(conn, ids, replacing)):
        raise CyclicDependency(f"task {replacing} would depend on itself through {ids}")
    if parent_id is not None:
        ancestors = {int(r[0]) for r in conn.execute(q.ANCESTORS, (parent_id,))}
        bad = sorted(ancestors.intersection(ids))
        if bad:
            raise CyclicDependency(
                f"a child cannot depend on its parent or ancestors {bad}: they complete only after their children"
            )
    return waiting


def _reaches(conn: apsw.Connection, ids: list[int], target: int) -> bool:
    return next(iter(conn.execute(q.REACHES, (_json(ids).decode(), target))), None) is not None


def add_edges(conn: apsw.Connection, task_id: int, deps: Sequence[tuple[int, str]]) -> None:
    conn.executemany(q.INSERT_DEP, [(task_id, d) for d, _ in deps])
    conn.executemany(q.MARK_DEPENDED_ON, [(d,) for d, _ in deps])
    if any(status == "running" for _, status in deps):
        conn.execute(sql.META_BUMP, ("dep_epoch",))  # the supervisor holds that task's flags from before this edge


def dependencies_of(conn: apsw.Connection, task_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(q.DEPENDENCIES_OF, (task_id,))]


def dependents_of(conn: apsw.Connection, task_id: int) -> list[int]:
    return [int(r[0]) for r in conn.execute(q.DEPENDENTS_OF, (task_id,))]

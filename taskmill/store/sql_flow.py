"""Named SQL of workflows: dependencies, parents and children, expiry, recurring schedules.

Kept beside ``sql.py`` (which holds the hot dispatch statements) so neither grows past a readable size; like
it, this is the only place these statements live. None of them runs for a plain task: dispatch reaches them
only for rows whose ``flags`` are set.
"""

from __future__ import annotations

from .sql import _COPY
from .sql_control import _CLEAR

# Pause reasons a row gets when it becomes runnable again (unblocked, finalize, next occurrence): the scopes
# paused right now, plus a paused schedule's own bit. Blocked and waiting rows do not carry scope bits (a
# domain resume only clears paused rows), so they are computed at the moment the row becomes queued.
_SCOPES = (
    "(CASE WHEN recurring_paused <> 0 THEN 16 ELSE 0 END | CASE WHEN domain IN (SELECT domain FROM paused_domains) THEN 2 ELSE 0 END"
    " | CASE WHEN group_key IS NOT NULL AND group_key IN (SELECT group_key FROM paused_groups) THEN 8 ELSE 0 END)"
)
_REQUEUED = f"""
    pause_reasons = {_SCOPES},
    status = CASE WHEN {_SCOPES} <> 0 THEN 'paused' ELSE 'pending' END,
    paused_at_ms = CASE WHEN {_SCOPES} <> 0 THEN ?2 END
"""

# -- the row settle() reads -------------------------------------------------------------------------------
FLOW_ROW = """
SELECT id, status, finished_at, flags, parent_id, task_type, key, label, priority, tags, created_at, started_at,
    last_error, fail_fast, on_dep_failure, attempt, cancel_requested
FROM tasks NOT INDEXED WHERE id = +?
"""
CLEAR_FLAGS = "UPDATE tasks NOT INDEXED SET flags = 0 WHERE id = +?"
END_QUEUED = """
UPDATE tasks NOT INDEXED SET status = ?2, finished_at = ?3, last_error = ?4, paused_at_ms = NULL
WHERE id = +?1 AND finished_at IS NULL AND status <> 'running'
"""
HEADER_ROW = "SELECT id, task_type, key, label, priority, tags, created_at FROM tasks NOT INDEXED WHERE id = +?"

# -- dependencies -----------------------------------------------------------------------------------------
DEP_TARGET = "SELECT status, finished_at FROM tasks NOT INDEXED WHERE id = +? AND run_of IS NULL"
INSERT_DEP = "INSERT OR IGNORE INTO task_deps (task_id, depends_on_id) VALUES (?, ?)"
MARK_DEPENDED_ON = "UPDATE tasks NOT INDEXED SET flags = flags | 2 WHERE id = +?"
RUNNING_DEPENDED_ON = """
SELECT id, attempt, flags FROM tasks INDEXED BY idx_active
WHERE status = 'running' AND finished_at IS NULL AND status <> 'pending' AND (flags & 2) <> 0
"""
DEPENDENTS_OF = "SELECT task_id FROM task_deps INDEXED BY idx_task_deps_on WHERE depends_on_id = +? ORDER BY task_id"
DEPENDENCIES_OF = "SELECT depends_on_id FROM task_deps WHERE task_id = +? ORDER BY depends_on_id"
DELETE_EDGE = "DELETE FROM task_deps WHERE task_id = +? AND depends_on_id = +?"
DELETE_EDGES_OF = "DELETE FROM task_deps WHERE task_id = +?"
HAS_EDGES = "SELECT 1 FROM task_deps WHERE task_id = +? LIMIT 1"
# A superseded running task's dependents follow the task that now holds its key.
MOVE_EDGES = "UPDATE OR IGNORE task_deps SET depends_on_id = ?2 WHERE depends_on_id = +?1"
# Would ``?2`` (an existing task getting new dependencies) reach itself through the dependencies ``?1``?
REACHES = """
WITH RECURSIVE up(id) AS (
    SELECT value FROM json_each(?1)
    UNION SELECT d.depends_on_id FROM task_deps AS d JOIN up ON d.task_id = up.id
)
SELECT 1 FROM up WHERE id = +?2 LIMIT 1
"""
ANCESTORS = """
WITH RECURSIVE anc(id) AS (
    SELECT ?1
    UNION SELECT t.parent_id FROM tasks AS t NOT INDEXED JOIN anc ON t.id = anc.id WHERE t.parent_id IS NOT NULL
)
SELECT id FROM anc
"""
UNBLOCK = f"UPDATE tasks NOT INDEXED SET {_REQUEUED} WHERE id = +?1 AND status = 'blocked' RETURNING status"
TASKS_BY_STATUS_DOMAIN = """
SELECT {cols} FROM tasks INDEXED BY idx_active WHERE status = +?1 AND domain = +?2 AND finished_at IS NULL
    AND status <> 'pending'
ORDER BY priority, id LIMIT (+?3 + 0) OFFSET (+?4 + 0)
"""

# -- parents and children ---------------------------------------------------------------------------------
MARK_PARENT = "UPDATE tasks NOT INDEXED SET flags = flags | 4 WHERE id = +?"
SPAWN_PARENT = """
SELECT status, attempt, cancel_requested, parent_id, priority, expires_at, tags, finished_at, flags
FROM tasks NOT INDEXED WHERE id = +?
"""
HAS_ACTIVE_CHILD = (
    "SELECT 1 FROM tasks INDEXED BY idx_children_active WHERE parent_id = +? AND finished_at IS NULL LIMIT 1"
)
COUNT_ACTIVE_CHILDREN = (
    "SELECT COUNT(*) FROM tasks INDEXED BY idx_children_active WHERE parent_id = +? AND finished_at IS NULL"
)
ACTIVE_CHILDREN = "SELECT id FROM tasks INDEXED BY idx_children_active WHERE parent_id = +? AND finished_at IS NULL"
COUNT_FAILED_CHILDREN = """
SELECT COUNT(*) FROM tasks INDEXED BY idx_parent
WHERE parent_id = +? AND run_of IS NULL AND status IN ('failed', 'dead_letter', 'expired', 'dependency_failed')
"""
CHILDREN_OF = """
SELECT id, task_type, key, label, status, last_error, finished_at FROM tasks INDEXED BY idx_parent
WHERE parent_id = +? AND run_of IS NULL ORDER BY id
"""
# execute returned with children: wait for them (fenced on the attempt, and on no stop having been asked for).
# TTL covers the time before a task runs: a parent that has run can no longer expire (its children can).
TO_WAITING = """
UPDATE tasks NOT INDEXED SET status = 'waiting', memo = ?3, flags = (flags & ~16) | ?4, started_at = NULL
WHERE id = +?1 AND attempt = +?2 AND status = 'running' AND cancel_requested = 0
"""
TO_FINALIZE = f"""
UPDATE tasks NOT INDEXED SET {_REQUEUED}, flags = flags | 1, started_at = NULL, run_after = NULL
WHERE id = +?1 AND status = 'waiting'
"""
COMPLETE_WAITING = """
UPDATE tasks NOT INDEXED SET status = 'completed', finished_at = ?2, duration_ms = 0
WHERE id = +?1 AND status = 'waiting'
"""
REQUEST_FAIL = """
UPDATE tasks NOT INDEXED SET cancel_requested = 3, last_error = ?2
WHERE id = +?1 AND status = 'running' AND cancel_requested = 0
"""

# -- expiry ------------------------------------------------------------------------------------------------
SET_FIRST_EXPIRY = """
UPDATE tasks NOT INDEXED SET expires_at = ?2 + CAST(ttl_seconds * 1000 AS INTEGER), flags = flags & ~64
WHERE id = +?1 AND expires_at IS NULL AND ttl_seconds IS NOT NULL
"""
EXPIRE_CLAIMED = """
UPDATE tasks NOT INDEXED SET status = 'expired', finished_at = ?2, started_at = NULL, attempt = attempt - 1,
    last_error = 'expired: its TTL ran out before it could start'
WHERE id = +?1 AND attempt = +?3 AND status = 'running'
"""
DUE_EXPIRIES = """
SELECT id FROM tasks INDEXED BY idx_expires
WHERE expires_at <= +?1 AND expires_at IS NOT NULL AND finished_at IS NULL AND status IN ('pending', 'paused', 'blocked')
    AND (flags & 1) = 0
ORDER BY expires_at LIMIT (+?2 + 0)
"""

# -- recurring schedules -------------------------------------------------------------------------------------
SET_RECURRING = """
UPDATE tasks NOT INDEXED SET recurring_interval = ?2, recurring_cron = ?3, recurring_tz = ?4, recurring_max = ?5,
    recurring_at = ?6
WHERE id = +?1
"""
RECURRING_ROW = """
SELECT recurring_interval, recurring_cron, recurring_tz, recurring_max, recurring_count, recurring_at, started_at,
    ttl_seconds, ttl_from, flags
FROM tasks NOT INDEXED WHERE id = +?
"""
_RUN_COPY = _COPY + ", actual_read_bytes, actual_write_bytes, actual_net_rx_bytes, actual_net_tx_bytes"
OCCURRENCE_COPY = f"""
INSERT INTO tasks ({_RUN_COPY}, status, started_at, finished_at, duration_ms, run_of)
SELECT {_RUN_COPY}, status, started_at, finished_at, duration_ms, id FROM tasks NOT INDEXED WHERE id = +?1
"""
# The same row becomes the next occurrence (same id and key: the schedule's handle never changes).
NEXT_OCCURRENCE = f"""
UPDATE tasks NOT INDEXED SET {_REQUEUED}, finished_at = NULL, started_at = NULL, duration_ms = NULL, retry_count = 0,
    last_error = NULL, requeue = 0, requeue_priority = NULL, cancel_requested = 0, memo = NULL,
    actual_read_bytes = NULL, actual_write_bytes = NULL, actual_net_rx_bytes = NULL, actual_net_tx_bytes = NULL,
    run_after = ?3, recurring_at = ?4, recurring_count = ?5, expires_at = ?6, flags = ?7
WHERE id = +?1
"""
SET_RECURRING_COUNT = "UPDATE tasks NOT INDEXED SET recurring_count = ?2 WHERE id = +?1"
RECURRING_SCHEDULES = """
SELECT id, task_type, domain, key, label, status, recurring_interval, recurring_cron, recurring_tz, recurring_max,
    recurring_count, recurring_at, run_after, recurring_paused
FROM tasks INDEXED BY idx_recurring WHERE (flags & 8) <> 0 AND finished_at IS NULL ORDER BY id
"""
RECURRING_TARGET = """
SELECT id, status, domain FROM tasks NOT INDEXED WHERE id = +? AND (flags & 8) <> 0 AND finished_at IS NULL
"""
PAUSE_RECURRING = "UPDATE tasks NOT INDEXED SET recurring_paused = 1 WHERE id = +?"
PAUSE_RECURRING_QUEUED = """
UPDATE tasks NOT INDEXED SET pause_reasons = pause_reasons | 16, status = 'paused', paused_at_ms = COALESCE(paused_at_ms, ?2)
WHERE id = +?1 AND status IN ('pending', 'paused')
"""
RESUME_RECURRING = "UPDATE tasks NOT INDEXED SET recurring_paused = 0 WHERE id = +?"
RESUME_RECURRING_QUEUED = _CLEAR + " WHERE id = +?3 AND status = 'paused' AND (pause_reasons & +?1) <> 0"
END_SCHEDULE = """
UPDATE tasks NOT INDEXED SET flags = flags & ~8, recurring_interval = NULL, recurring_cron = NULL, recurring_paused = 0
WHERE id = +?
"""

# -- recovery ---------------------------------------------------------------------------------------------
DELETE_STALE_EDGES = """
DELETE FROM task_deps WHERE task_id NOT IN (
    SELECT id FROM tasks INDEXED BY idx_active WHERE status = 'blocked' AND finished_at IS NULL AND status <> 'pending')
"""
EDGES_TO_ENDED = """
SELECT DISTINCT d.depends_on_id, t.id IS NULL FROM task_deps AS d LEFT JOIN tasks AS t ON t.id = d.depends_on_id
WHERE t.id IS NULL OR t.finished_at IS NOT NULL
"""
BLOCKED_WITHOUT_EDGES = """
SELECT id FROM tasks INDEXED BY idx_active WHERE status = 'blocked' AND finished_at IS NULL AND status <> 'pending'
    AND NOT EXISTS (SELECT 1 FROM task_deps WHERE task_deps.task_id = tasks.id)
"""
WAITING_IDS = """
SELECT id FROM tasks INDEXED BY idx_active WHERE status = 'waiting' AND finished_at IS NULL AND status <> 'pending'
"""

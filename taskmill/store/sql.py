"""Named SQL statements. The only place in taskmill where SQL text lives (with schema.py).

Hot statements pin their index (``INDEXED BY`` / ``NOT INDEXED``): with several partial indexes on one
table the planner otherwise sometimes picks a status index and sorts, which is quadratic under load.
"""

from __future__ import annotations

ACTIVE = ("pending", "running", "paused", "waiting", "blocked")

TASK_COLUMNS = (
    "id, task_type, domain, key, label, priority, status, payload, retry_count, max_retries, last_error, "
    "attempt, created_at, started_at, run_after, parent_id, group_key, expected_read_bytes, "
    "expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes, requeue, expires_at, tags"
)
HISTORY_COLUMNS = (
    "id, COALESCE(run_of, id), task_type, domain, key, label, priority, status, payload, retry_count, "
    "max_retries, last_error, created_at, started_at, finished_at, duration_ms, parent_id, group_key, "
    "actual_read_bytes, actual_write_bytes, actual_net_rx_bytes, actual_net_tx_bytes, tags"
)
# Columns copied when a finished run is preserved next to a task that continues (requeue, supersede).
_COPY = (
    "task_type, domain, key, label, priority, payload, memo, expected_read_bytes, expected_write_bytes, "
    "expected_net_rx_bytes, expected_net_tx_bytes, retry_count, max_retries, last_error, attempt, created_at, "
    "run_after, parent_id, fail_fast, group_key, ttl_seconds, expires_at, tags"
)

_COPY_T = ", ".join(f"tasks.{c.strip()}" for c in _COPY.split(","))

# -- submission -----------------------------------------------------------------------------------------
INSERT_TASK = """
INSERT INTO tasks (task_type, domain, key, label, priority, status, payload, created_at,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    max_retries, run_after, parent_id, fail_fast, group_key, on_dep_failure, ttl_seconds, ttl_from,
    expires_at, tags)
VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_TAG = "INSERT INTO task_tags (task_id, key, value) VALUES (?, ?, ?)"
# The newest non-copy row of a key; the caller checks whether it is still active.
EXISTING_BY_KEY = """
SELECT key, id, status, priority, requeue, requeue_priority FROM tasks INDEXED BY idx_key
WHERE key = ? AND run_of IS NULL ORDER BY id DESC LIMIT 1
"""
EXISTING_BY_KEYS = """
SELECT t.key, t.id, t.status, t.priority, t.requeue, t.requeue_priority
FROM json_each(?) AS j CROSS JOIN tasks AS t NOT INDEXED
ON t.id = (SELECT id FROM tasks INDEXED BY idx_key WHERE key = j.value AND run_of IS NULL ORDER BY id DESC LIMIT 1)
"""
UPGRADE_PRIORITY = "UPDATE tasks NOT INDEXED SET priority = ? WHERE id = ?"
SET_REQUEUE = "UPDATE tasks NOT INDEXED SET requeue = 1, requeue_priority = ? WHERE id = ?"
SUPERSEDE_COPY = f"""
INSERT INTO tasks ({_COPY}, status, finished_at, run_of)
SELECT {_COPY}, 'superseded', ?2, id FROM tasks NOT INDEXED WHERE id = ?1
"""
SUPERSEDE_IN_PLACE = """
UPDATE tasks NOT INDEXED SET label = ?, priority = ?, payload = ?, created_at = ?, expected_read_bytes = ?,
    expected_write_bytes = ?, expected_net_rx_bytes = ?, expected_net_tx_bytes = ?, max_retries = ?,
    run_after = ?, group_key = ?, ttl_seconds = ?, expires_at = ?, tags = ?, retry_count = 0,
    last_error = NULL, status = CASE WHEN status = 'blocked' THEN 'blocked' ELSE 'pending' END,
    pause_reasons = 0, paused_at_ms = NULL
WHERE id = ?
"""
DELETE_TAGS_OF = "DELETE FROM task_tags WHERE task_id = ?"

# -- dispatch -------------------------------------------------------------------------------------------
CLAIM_RETURNING = (
    " RETURNING id, task_type, domain, key, label, priority, payload, retry_count, max_retries, attempt, "
    "created_at, group_key, tags, parent_id"
)
CLAIM_NEXT = (
    """
UPDATE tasks SET status = 'running', started_at = ?1, attempt = attempt + 1
WHERE id IN (SELECT id FROM tasks INDEXED BY idx_ready WHERE status = 'pending' AND run_after IS NULL
             ORDER BY priority, id LIMIT ?2)
"""
    + CLAIM_RETURNING
)
CLAIM_IDS = (
    """
UPDATE tasks NOT INDEXED SET status = 'running', started_at = ?1, attempt = attempt + 1
WHERE id IN (SELECT value FROM json_each(?2)) AND status = 'pending'
"""
    + CLAIM_RETURNING
)
PEEK_READY = """
SELECT id, task_type, domain, priority, group_key FROM tasks INDEXED BY idx_ready
WHERE status = 'pending' AND run_after IS NULL AND (priority, id) > (?1, ?2)
ORDER BY priority, id LIMIT ?3
"""
PROMOTE_DUE = "UPDATE tasks SET run_after = NULL WHERE status = 'pending' AND run_after <= ?"
NEXT_RUN_AFTER = "SELECT MIN(run_after) FROM tasks INDEXED BY idx_delayed WHERE status = 'pending' AND run_after IS NOT NULL"

# Finishing is fenced on the attempt the supervisor dispatched: a late result from a stale attempt is a no-op.
FINISH = """
UPDATE tasks NOT INDEXED SET status = ?1, finished_at = ?2, started_at = ?3, duration_ms = ?4,
    actual_read_bytes = ?5, actual_write_bytes = ?6, actual_net_rx_bytes = ?7, actual_net_tx_bytes = ?8,
    retry_count = retry_count + ?9, last_error = COALESCE(?10, last_error), requeue = 0
WHERE id = ?11 AND attempt = ?12 AND status = 'running' AND (requeue = 0 OR ?1 <> 'completed')
"""
# Requeue statements take a JSON array of [id, started_ms, finished_ms, 0, 0, 0, 0, attempt].
_FENCE = "tasks.id = j.value ->> 0 AND tasks.attempt = j.value ->> 7 AND tasks.status = 'running'"
# A completed task that was resubmitted while running: keep this run as a finished copy, run it again.
REQUEUE_COPY = f"""
INSERT INTO tasks ({_COPY}, status, started_at, finished_at, duration_ms, run_of)
SELECT {_COPY_T}, 'completed', j.value ->> 1, j.value ->> 2, (j.value ->> 2) - (j.value ->> 1), tasks.id
FROM json_each(?1) AS j CROSS JOIN tasks NOT INDEXED ON {_FENCE} AND tasks.requeue = 1
"""
REQUEUE_RESET = f"""
UPDATE tasks NOT INDEXED SET status = 'pending', priority = COALESCE(requeue_priority, priority), retry_count = 0,
    last_error = NULL, requeue = 0, requeue_priority = NULL, started_at = NULL, run_after = NULL
FROM json_each(?1) AS j
WHERE {_FENCE} AND tasks.requeue = 1
"""
RETRY_LATER = """
UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL, retry_count = retry_count + 1,
    last_error = ?, run_after = ?
WHERE id = ? AND attempt = ? AND status = 'running'
"""
RETRY_INLINE = """
UPDATE tasks NOT INDEXED SET retry_count = retry_count + 1, last_error = ?, attempt = attempt + 1, started_at = ?
WHERE id = ? AND attempt = ? AND status = 'running' RETURNING attempt, retry_count
"""
RELEASE = (
    "UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL "
    "WHERE id = ? AND attempt = ? AND status = 'running'"
)
RECOVER_RUNNING = (
    "UPDATE tasks SET status = 'pending', started_at = NULL WHERE status = 'running' AND finished_at IS NULL"
)
RECOVER_PAUSED = """
UPDATE tasks SET pause_duration_ms = pause_duration_ms + (?1 - paused_at_ms), paused_at_ms = ?1
WHERE paused_at_ms IS NOT NULL AND finished_at IS NULL
"""
PRUNE_IDS_BY_COUNT = """
SELECT id FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL
ORDER BY finished_at DESC, id DESC LIMIT ?2 OFFSET ?1
"""
PRUNE_IDS_BY_AGE = """
SELECT id FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT ?2
"""
DELETE_IDS = "DELETE FROM tasks NOT INDEXED WHERE id IN (SELECT value FROM json_each(?))"
DELETE_TAGS_OF_IDS = "DELETE FROM task_tags WHERE task_id IN (SELECT value FROM json_each(?))"

# -- queries --------------------------------------------------------------------------------------------
TASK_BY_ID = f"SELECT {TASK_COLUMNS} FROM tasks NOT INDEXED WHERE id = ? AND finished_at IS NULL"
TASK_BY_KEY = f"""
SELECT {TASK_COLUMNS} FROM tasks NOT INDEXED WHERE id = (
    SELECT id FROM tasks INDEXED BY idx_key WHERE key = ? AND run_of IS NULL ORDER BY id DESC LIMIT 1)
AND finished_at IS NULL
"""
TASKS_BY_STATUS = f"""
SELECT {TASK_COLUMNS} FROM tasks INDEXED BY idx_active WHERE status = ? AND finished_at IS NULL
    AND status <> 'pending'
ORDER BY priority, id LIMIT ? OFFSET ?
"""
_PENDING = "status = 'pending' AND finished_at IS NULL"
PENDING_TASKS = f"""
SELECT * FROM (
    SELECT {TASK_COLUMNS} FROM tasks INDEXED BY idx_ready WHERE {_PENDING} AND run_after IS NULL
    UNION ALL
    SELECT {TASK_COLUMNS} FROM tasks INDEXED BY idx_delayed WHERE {_PENDING} AND run_after IS NOT NULL
) ORDER BY priority, id LIMIT ? OFFSET ?
"""
COUNT_BY_STATUS = "SELECT COUNT(*) FROM tasks INDEXED BY idx_active WHERE status = ? AND finished_at IS NULL AND status <> 'pending'"
COUNT_BY_STATUS_DOMAIN = (
    "SELECT COUNT(*) FROM tasks INDEXED BY idx_active WHERE status = ? AND domain = ? AND finished_at IS NULL "
    "AND status <> 'pending'"
)
COUNT_PENDING = f"""
SELECT (SELECT COUNT(*) FROM tasks INDEXED BY idx_ready WHERE {_PENDING} AND run_after IS NULL AND (?1 IS NULL OR domain = ?1))
     + (SELECT COUNT(*) FROM tasks INDEXED BY idx_delayed WHERE {_PENDING} AND run_after IS NOT NULL
        AND (?1 IS NULL OR domain = ?1))
"""
COUNTS = (
    "SELECT status, COUNT(*) FROM tasks INDEXED BY idx_active WHERE finished_at IS NULL AND status <> 'pending' "
    "GROUP BY status"
)
PENDING_BY_TYPE = f"""
SELECT task_type, COUNT(*) FROM (
    SELECT task_type FROM tasks INDEXED BY idx_ready WHERE {_PENDING} AND run_after IS NULL
    UNION ALL
    SELECT task_type FROM tasks INDEXED BY idx_delayed WHERE {_PENDING} AND run_after IS NOT NULL
) GROUP BY task_type
"""
_HIST = f"SELECT {HISTORY_COLUMNS} FROM tasks"
HISTORY_PAGE = (
    f"{_HIST} INDEXED BY idx_finished WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC "
    "LIMIT ? OFFSET ?"
)
HISTORY_BY_TYPE = (
    f"{_HIST} INDEXED BY idx_finished_type WHERE task_type = ? AND finished_at IS NOT NULL "
    "ORDER BY finished_at DESC, id DESC LIMIT ? OFFSET ?"
)
HISTORY_COMPLETED = (
    f"{_HIST} INDEXED BY idx_finished WHERE finished_at IS NOT NULL AND status = 'completed' "
    "AND (?1 IS NULL OR domain = ?1) ORDER BY finished_at DESC, id DESC LIMIT ?2 OFFSET ?3"
)
HISTORY_BY_STATUS = (
    f"{_HIST} INDEXED BY idx_finished_status WHERE status = ?1 AND finished_at IS NOT NULL AND status <> 'completed' "
    "AND (?2 IS NULL OR domain = ?2) ORDER BY finished_at DESC, id DESC LIMIT ?3 OFFSET ?4"
)
HISTORY_BY_KEY = (
    f"{_HIST} INDEXED BY idx_key WHERE key = ? AND finished_at IS NOT NULL ORDER BY id DESC LIMIT ?"
)
HISTORY_OF_TASK = f"""
{_HIST} NOT INDEXED WHERE id = ?1 AND finished_at IS NOT NULL
UNION ALL
{_HIST} INDEXED BY idx_run_of WHERE run_of = ?1
ORDER BY 15 DESC, 1 DESC
"""
HISTORY_ROW = f"{_HIST} NOT INDEXED WHERE id = ? AND finished_at IS NOT NULL"
RESUBMIT_SOURCE = """
SELECT task_type, domain, key, label, priority, payload, expected_read_bytes, expected_write_bytes,
    expected_net_rx_bytes, expected_net_tx_bytes, max_retries, parent_id, fail_fast, group_key, tags
FROM tasks NOT INDEXED WHERE id = ?
"""
HISTORY_COUNT = "SELECT COUNT(*) FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL"
HISTORY_STATUS_COUNTS = (
    "SELECT status, COUNT(*) FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL GROUP BY status"
)
DATA_VERSION = "PRAGMA data_version"
META_GET = "SELECT value FROM meta WHERE name = ?"
META_SET = (
    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)

"""Named SQL statements. The only place in taskmill where SQL text lives (with schema.py)."""

from __future__ import annotations

TASK_COLUMNS = (
    "id, task_type, domain, key, label, priority, status, payload, retry_count, max_retries, last_error, "
    "attempt, created_at, started_at, run_after, parent_id, group_key, expected_read_bytes, "
    "expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes, requeue, expires_at, tags"
)
HISTORY_COLUMNS = (
    "hid, task_id, task_type, domain, key, label, priority, status, payload, retry_count, max_retries, "
    "last_error, created_at, started_at, completed_at, duration_ms, parent_id, group_key, actual_read_bytes, "
    "actual_write_bytes, actual_net_rx_bytes, actual_net_tx_bytes, tags"
)

INSERT_TASK = """
INSERT INTO tasks (task_type, domain, key, label, priority, status, payload, created_at,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    max_retries, run_after, parent_id, fail_fast, group_key, on_dep_failure, ttl_seconds, ttl_from,
    expires_at, tags)
VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
INSERT_TASK_RETURNING = INSERT_TASK + " ON CONFLICT(key) DO NOTHING RETURNING id"
INSERT_TAG = "INSERT INTO task_tags (task_id, key, value) VALUES (?, ?, ?)"
LAST_ROWID = "SELECT last_insert_rowid()"

EXISTING_BY_KEYS = """
SELECT key, id, status, priority, requeue, requeue_priority FROM tasks
WHERE key IN (SELECT value FROM json_each(?))
"""
EXISTING_BY_KEY = "SELECT key, id, status, priority, requeue, requeue_priority FROM tasks WHERE key = ?"
UPGRADE_PRIORITY = "UPDATE tasks SET priority = ? WHERE id = ?"
SET_REQUEUE = "UPDATE tasks SET requeue = 1, requeue_priority = ? WHERE id = ?"
SUPERSEDE_TO_HISTORY = """
INSERT INTO history (task_id, task_type, domain, key, label, priority, status, payload, memo,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    retry_count, max_retries, last_error, created_at, started_at, completed_at, run_after, parent_id,
    fail_fast, group_key, ttl_seconds, expires_at, tags)
SELECT id, task_type, domain, key, label, priority, 'superseded', payload, memo,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    retry_count, max_retries, last_error, created_at, started_at, ?2, run_after, parent_id,
    fail_fast, group_key, ttl_seconds, expires_at, tags
FROM tasks WHERE id = ?1
"""
SUPERSEDE_IN_PLACE = """
UPDATE tasks SET label = ?, priority = ?, payload = ?, created_at = ?, expected_read_bytes = ?,
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
WHERE id IN (SELECT id FROM tasks INDEXED BY idx_tasks_ready WHERE status = 'pending' AND run_after IS NULL
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
SELECT id, task_type, domain, priority, group_key FROM tasks INDEXED BY idx_tasks_ready
WHERE status = 'pending' AND run_after IS NULL AND (priority, id) > (?1, ?2)
ORDER BY priority, id LIMIT ?3
"""
PROMOTE_DUE = "UPDATE tasks SET run_after = NULL WHERE status = 'pending' AND run_after <= ?"
NEXT_RUN_AFTER = "SELECT MIN(run_after) FROM tasks WHERE status = 'pending' AND run_after IS NOT NULL"
HAS_READY = "SELECT 1 FROM tasks WHERE status = 'pending' AND run_after IS NULL LIMIT 1"

# Results arrive as a JSON array of [id, started_ms, finished_ms, read, write, rx, tx, attempt, error].
# One statement moves the whole batch to history, fenced on the attempt the supervisor dispatched.
FINISH_TO_HISTORY = """
INSERT INTO history (task_id, task_type, domain, key, label, priority, status, payload, memo,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    actual_read_bytes, actual_write_bytes, actual_net_rx_bytes, actual_net_tx_bytes,
    retry_count, max_retries, last_error, created_at, started_at, completed_at, duration_ms, run_after,
    parent_id, fail_fast, group_key, ttl_seconds, expires_at, tags)
SELECT t.id, t.task_type, t.domain, t.key, t.label, t.priority, ?2, t.payload, t.memo,
    t.expected_read_bytes, t.expected_write_bytes, t.expected_net_rx_bytes, t.expected_net_tx_bytes,
    j.value ->> 3, j.value ->> 4, j.value ->> 5, j.value ->> 6,
    t.retry_count + ?3, t.max_retries, COALESCE(j.value ->> 8, t.last_error), t.created_at,
    j.value ->> 1, j.value ->> 2, (j.value ->> 2) - (j.value ->> 1), t.run_after,
    t.parent_id, t.fail_fast, t.group_key, t.ttl_seconds, t.expires_at, t.tags
FROM json_each(?1) AS j
CROSS JOIN tasks AS t NOT INDEXED ON t.id = j.value ->> 0 AND t.attempt = j.value ->> 7 AND t.status = 'running'
"""
REQUEUE_FINISHED = """
UPDATE tasks NOT INDEXED SET status = 'pending', priority = COALESCE(requeue_priority, priority), retry_count = 0,
    last_error = NULL, requeue = 0, requeue_priority = NULL, started_at = NULL, run_after = NULL
WHERE id IN (SELECT j.value ->> 0 FROM json_each(?1) AS j) AND requeue = 1 AND status = 'running'
"""
DELETE_FINISHED = """
DELETE FROM tasks NOT INDEXED WHERE id IN (
    SELECT t.id FROM json_each(?1) AS j
    CROSS JOIN tasks AS t NOT INDEXED ON t.id = j.value ->> 0 AND t.attempt = j.value ->> 7 AND t.status = 'running')
"""
DELETE_FINISHED_TAGS = """
DELETE FROM task_tags WHERE task_id IN (SELECT j.value ->> 0 FROM json_each(?1) AS j)
    AND task_id NOT IN (SELECT id FROM tasks)
"""
RETRY_LATER = """
UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL, retry_count = retry_count + 1, last_error = ?,
    run_after = ?
WHERE id = ? AND attempt = ? AND status = 'running'
"""
RETRY_INLINE = """
UPDATE tasks NOT INDEXED SET retry_count = retry_count + 1, last_error = ?, attempt = attempt + 1, started_at = ?
WHERE id = ? AND attempt = ? AND status = 'running' RETURNING attempt, retry_count
"""
RELEASE = "UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL WHERE id = ? AND attempt = ? AND status = 'running'"
RECOVER_RUNNING = "UPDATE tasks SET status = 'pending', started_at = NULL WHERE status = 'running'"
RECOVER_PAUSED = """
UPDATE tasks SET pause_duration_ms = pause_duration_ms + (?1 - paused_at_ms), paused_at_ms = ?1
WHERE paused_at_ms IS NOT NULL
"""
PRUNE_BY_COUNT = """
DELETE FROM history WHERE hid <= (SELECT hid FROM history ORDER BY hid DESC LIMIT 1 OFFSET ?)
"""
PRUNE_BY_AGE = "DELETE FROM history WHERE completed_at < ?"

# -- queries --------------------------------------------------------------------------------------------
TASK_BY_ID = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
TASK_BY_KEY = f"SELECT {TASK_COLUMNS} FROM tasks WHERE key = ?"
TASKS_BY_STATUS = f"SELECT {TASK_COLUMNS} FROM tasks WHERE status = ? ORDER BY priority, id LIMIT ? OFFSET ?"
COUNT_BY_STATUS = "SELECT COUNT(*) FROM tasks WHERE status = ?"
COUNT_BY_STATUS_DOMAIN = "SELECT COUNT(*) FROM tasks WHERE status = ? AND domain = ?"
COUNTS = "SELECT status, COUNT(*) FROM tasks GROUP BY status"
PENDING_BY_TYPE = "SELECT task_type, COUNT(*) FROM tasks WHERE status = 'pending' GROUP BY task_type"
HISTORY_PAGE = f"SELECT {HISTORY_COLUMNS} FROM history ORDER BY hid DESC LIMIT ? OFFSET ?"
HISTORY_BY_TYPE = (
    f"SELECT {HISTORY_COLUMNS} FROM history WHERE task_type = ? ORDER BY hid DESC LIMIT ? OFFSET ?"
)
HISTORY_BY_STATUS = (
    f"SELECT {HISTORY_COLUMNS} FROM history WHERE status = ? ORDER BY hid DESC LIMIT ? OFFSET ?"
)
HISTORY_BY_STATUS_DOMAIN = f"SELECT {HISTORY_COLUMNS} FROM history WHERE status = ? AND domain = ? ORDER BY hid DESC LIMIT ? OFFSET ?"
HISTORY_BY_KEY = f"SELECT {HISTORY_COLUMNS} FROM history WHERE key = ? ORDER BY hid DESC LIMIT ?"
HISTORY_OF_TASK = f"SELECT {HISTORY_COLUMNS} FROM history WHERE task_id = ? ORDER BY hid DESC"
DEAD_LETTER_OF_TASK = f"SELECT {HISTORY_COLUMNS} FROM history WHERE task_id = ? AND status = 'dead_letter' ORDER BY hid DESC LIMIT 1"
HISTORY_ROW_FULL = """
SELECT task_type, domain, key, label, priority, payload, expected_read_bytes, expected_write_bytes,
    expected_net_rx_bytes, expected_net_tx_bytes, max_retries, parent_id, fail_fast, group_key, tags
FROM history WHERE hid = ?
"""
DELETE_HISTORY_ROW = "DELETE FROM history WHERE hid = ?"
HISTORY_COUNT = "SELECT COUNT(*) FROM history"
HISTORY_STATUS_COUNTS = "SELECT status, COUNT(*) FROM history GROUP BY status"
DATA_VERSION = "PRAGMA data_version"
META_GET = "SELECT value FROM meta WHERE name = ?"
META_SET = (
    "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value"
)

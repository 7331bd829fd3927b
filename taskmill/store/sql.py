"""Named SQL statements. The only place in taskmill where SQL text lives (with schema.py).

Hot statements pin their index (``INDEXED BY`` / ``NOT INDEXED``): with several partial indexes on one
table the planner otherwise sometimes picks a status index and sorts, which is quadratic under load. LIMIT and
OFFSET take ``(?N + 0)`` rather than a bare parameter: a bare one makes SQLite re-prepare the statement on
every run (about 100 µs per claim here).
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


def key_is(value: str) -> str:
    """``key = value`` through ``idx_key_prefix``: the index seeks on the key's first 4 bytes (the expression
    must read exactly as the index's), the row check compares the whole key. Pass a parameter as ``+?N``: a bare
    one compared with an indexed expression makes SQLite re-plan the statement on every run (~50 µs here)."""
    return f"unhex(substr(key, 1, 8)) = unhex(substr({value}, 1, 8)) AND key = {value}"


def pending_rows(columns: str, scope: str = "") -> str:
    """``columns`` of every pending row (``AND scope``, if given): the due ones through ``idx_ready`` and the delayed
    ones through ``idx_delayed``. Each partial index holds one half, so the two seeks joined by UNION ALL replace a
    scan of the table."""
    where = "status = 'pending' AND finished_at IS NULL" + (f" AND {scope}" if scope else "")
    return (
        f"SELECT {columns} FROM tasks INDEXED BY idx_ready WHERE {where} AND run_after IS NULL\n"
        f"    UNION ALL\n"
        f"    SELECT {columns} FROM tasks INDEXED BY idx_delayed WHERE {where} AND run_after IS NOT NULL"
    )


# -- submission -----------------------------------------------------------------------------------------
INSERT_TASK = """
INSERT INTO tasks (task_type, domain, key, label, priority, payload, created_at,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    max_retries, run_after, parent_id, fail_fast, group_key, on_dep_failure, ttl_seconds, ttl_from,
    expires_at, tags, status, pause_reasons, paused_at_ms, flags)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# INSERT_TASK's row as one autocommit statement, inserted only if its key is free and nothing is paused; else no
# row, and the caller takes the transaction path, which applies the duplicate strategy or the pause.
INSERT_FREE = (
    INSERT_TASK.split("VALUES")[0]
    + "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
    + f"""?23, ?24, ?25
WHERE NOT EXISTS (SELECT 1 FROM tasks INDEXED BY idx_key_prefix WHERE {key_is("+?3")} AND run_of IS NULL
                  AND status IN {ACTIVE})
  AND NOT EXISTS (SELECT 1 FROM paused_domains) AND NOT EXISTS (SELECT 1 FROM paused_groups)
"""
)
SUPERVISOR_EPOCH = "SELECT value FROM meta WHERE name = 'supervisor_epoch'"
# A run of batch rows that differ only in key, label, payload (hex) and tags: one statement whose loop runs in
# SQLite, with no per-row binding. json_each yields the array in order, so the ids follow the batch's order.
INSERT_TASKS_JSON = """
INSERT INTO tasks (task_type, domain, key, label, priority, payload, created_at,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    max_retries, run_after, parent_id, fail_fast, group_key, on_dep_failure, ttl_seconds, ttl_from,
    expires_at, tags, status, pause_reasons, paused_at_ms, flags)
SELECT ?1, ?2, j.value ->> 0, j.value ->> 1, ?3, unhex(j.value ->> 2), ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,
    ?14, ?15, ?16, ?17, j.value ->> 3, ?18, ?19, ?20, ?21
FROM json_each(?22) AS j
"""
# The common run: one label and one set of tags, keys of one width. Each element is the key followed by the
# payload in hex, a plain string: no nested array for SQLite to parse four times per row (~1.4 µs a row less).
INSERT_TASKS_FLAT = """
INSERT INTO tasks (task_type, domain, key, label, priority, payload, created_at,
    expected_read_bytes, expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes,
    max_retries, run_after, parent_id, fail_fast, group_key, on_dep_failure, ttl_seconds, ttl_from,
    expires_at, tags, status, pause_reasons, paused_at_ms, flags)
SELECT ?1, ?2, substr(j.value, 1, ?23), ?24, ?3, unhex(substr(j.value, ?23 + 1)), ?4, ?5, ?6, ?7, ?8, ?9, ?10,
    ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?25, ?18, ?19, ?20, ?21
FROM json_each(?22) AS j
"""
KEY_OF = "SELECT key FROM tasks NOT INDEXED WHERE id = +?"
KEYS_IN_RANGE = "SELECT key, id FROM tasks NOT INDEXED WHERE id BETWEEN +?1 AND +?2"
PAUSED_SCOPES = "SELECT 'domain', domain FROM paused_domains UNION ALL SELECT 'group', group_key FROM paused_groups"
INSERT_TAG = "INSERT INTO task_tags (task_id, key, value) VALUES (?, ?, ?)"
# The newest non-copy row of a key; the caller checks whether it is still active.
EXISTING_BY_KEY = f"""
SELECT key, id, status, priority, requeue, requeue_priority FROM tasks INDEXED BY idx_key_prefix
WHERE {key_is("+?1")} AND run_of IS NULL ORDER BY id DESC LIMIT 1
"""
EXISTING_BY_KEYS = f"""
SELECT t.key, t.id, t.status, t.priority, t.requeue, t.requeue_priority
FROM json_each(?) AS j CROSS JOIN tasks AS t NOT INDEXED
ON t.id = (SELECT id FROM tasks INDEXED BY idx_key_prefix WHERE {key_is("j.value")} AND run_of IS NULL
           ORDER BY id DESC LIMIT 1)
"""
# One round trip for a single submit: the key's newest non-copy row, then any paused domains and groups.
SUBMIT_CONTEXT = f"""
SELECT * FROM (SELECT 'task', key, id, status, priority, requeue, requeue_priority FROM tasks
               INDEXED BY idx_key_prefix WHERE {key_is("+?1")} AND run_of IS NULL ORDER BY id DESC LIMIT 1)
UNION ALL SELECT 'domain', domain, NULL, NULL, NULL, NULL, NULL FROM paused_domains
UNION ALL SELECT 'group', group_key, NULL, NULL, NULL, NULL, NULL FROM paused_groups
"""
UPGRADE_PRIORITY = "UPDATE tasks NOT INDEXED SET priority = ? WHERE id = +?"
SET_REQUEUE = "UPDATE tasks NOT INDEXED SET requeue = 1, requeue_priority = ? WHERE id = +?"
SUPERSEDE_COPY = f"""
INSERT INTO tasks ({_COPY}, status, finished_at, run_of)
SELECT {_COPY}, 'superseded', ?2, id FROM tasks NOT INDEXED WHERE id = +?1
"""
SUPERSEDE_IN_PLACE = """
UPDATE tasks NOT INDEXED SET label = ?1, priority = ?2, payload = ?3, created_at = ?4, expected_read_bytes = ?5,
    expected_write_bytes = ?6, expected_net_rx_bytes = ?7, expected_net_tx_bytes = ?8, max_retries = ?9,
    run_after = ?10, group_key = ?11, ttl_seconds = ?12, expires_at = ?13, tags = ?14, retry_count = 0,
    last_error = NULL, pause_reasons = ?16, on_dep_failure = ?19, ttl_from = ?20,
    status = CASE WHEN ?17 <> 0 THEN 'blocked' WHEN ?16 <> 0 THEN 'paused' ELSE 'pending' END,
    paused_at_ms = CASE WHEN ?16 <> 0 THEN ?4 END, flags = (flags & 2) | ?18
WHERE id = +?15
"""
DELETE_TAGS_OF = "DELETE FROM task_tags WHERE task_id = +?"
SUPERSEDE_WAITING = """
UPDATE tasks NOT INDEXED SET status = 'superseded', finished_at = ?2, last_error = 'superseded'
WHERE id = +?1 AND status = 'waiting'
"""

# -- dispatch -------------------------------------------------------------------------------------------
CLAIM_RETURNING = (
    " RETURNING id, task_type, domain, key, label, priority, payload, retry_count, max_retries, attempt, "
    "created_at, group_key, tags, parent_id, flags, expires_at, memo"
)
CLAIM_NEXT = (
    """
UPDATE tasks SET status = 'running', started_at = ?1, attempt = attempt + 1
WHERE id IN (SELECT id FROM tasks INDEXED BY idx_ready WHERE status = 'pending' AND run_after IS NULL
             ORDER BY priority, id LIMIT (+?2 + 0))
"""
    + CLAIM_RETURNING
)
CLAIM_IDS = (
    """
UPDATE tasks NOT INDEXED SET status = 'running', started_at = ?1, attempt = attempt + 1
WHERE id IN (SELECT value FROM json_each(+?2)) AND status = 'pending'
"""
    + CLAIM_RETURNING
)
PROMOTE_DUE = "UPDATE tasks SET run_after = NULL WHERE status = 'pending' AND run_after <= +?"
NEXT_RUN_AFTER = (
    "SELECT MIN(run_after) FROM tasks INDEXED BY idx_delayed WHERE status = 'pending' AND run_after IS NOT NULL"
)

# Finishing is fenced on the attempt the supervisor dispatched: a late result from a stale attempt is a no-op.
FINISH = """
UPDATE tasks NOT INDEXED SET status = ?1, finished_at = ?2,
    started_at = CASE WHEN ?3 > 0 THEN ?3 ELSE started_at END,
    duration_ms = CASE WHEN ?3 > 0 THEN ?4 ELSE ?2 - started_at END,
    actual_read_bytes = ?5, actual_write_bytes = ?6, actual_net_rx_bytes = ?7, actual_net_tx_bytes = ?8,
    retry_count = retry_count + ?9, last_error = COALESCE(?10, last_error), requeue = 0
WHERE id = +?11 AND attempt = +?12 AND status = 'running' AND (requeue = 0 OR +?1 <> 'completed')
"""
# The common case of FINISH, narrower: a completed run (no error, no retry) of a task nobody resubmitted meanwhile.
# Parameters: id, finished_ms, started_ms, read, write, rx, tx, attempt (~25% cheaper per row than FINISH).
COMPLETE = """
UPDATE tasks NOT INDEXED SET status = 'completed', finished_at = ?2,
    started_at = CASE WHEN ?3 > 0 THEN ?3 ELSE started_at END,
    duration_ms = ?2 - CASE WHEN ?3 > 0 THEN ?3 ELSE started_at END,
    actual_read_bytes = ?4, actual_write_bytes = ?5, actual_net_rx_bytes = ?6, actual_net_tx_bytes = ?7
WHERE id = +?1 AND attempt = +?8 AND status = 'running' AND requeue = 0
"""
# Requeue statements take a JSON array of [id, started_ms, finished_ms, read, write, rx, tx, attempt].
_FENCE = "tasks.id = j.value ->> 0 AND tasks.attempt = j.value ->> 7 AND tasks.status = 'running'"
# A completed task that was resubmitted while running: keep this run as a finished copy, run it again.
REQUEUE_COPY = f"""
INSERT INTO tasks ({_COPY}, status, started_at, finished_at, duration_ms, actual_read_bytes, actual_write_bytes,
    actual_net_rx_bytes, actual_net_tx_bytes, run_of)
SELECT {_COPY_T}, 'completed', j.value ->> 1, j.value ->> 2, (j.value ->> 2) - (j.value ->> 1), j.value ->> 3,
    j.value ->> 4, j.value ->> 5, j.value ->> 6, tasks.id
FROM json_each(?1) AS j CROSS JOIN tasks NOT INDEXED ON {_FENCE} AND tasks.requeue = 1
"""
REQUEUE_RESET = f"""
UPDATE tasks NOT INDEXED SET status = 'pending', priority = COALESCE(requeue_priority, priority), retry_count = 0,
    last_error = NULL, requeue = 0, requeue_priority = NULL, started_at = NULL, run_after = NULL,
    flags = flags & ~133, memo = NULL
FROM json_each(?1) AS j
WHERE {_FENCE} AND tasks.requeue = 1
"""
RETRY_LATER = """
UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL, retry_count = retry_count + 1,
    last_error = ?, run_after = ?
WHERE id = +? AND attempt = +? AND status = 'running'
"""
RETRY_INLINE = """
UPDATE tasks NOT INDEXED SET retry_count = retry_count + 1, last_error = ?, attempt = attempt + 1, started_at = ?
WHERE id = +? AND attempt = +? AND status = 'running' RETURNING attempt, retry_count
"""
# A released attempt never started (or its worker is gone): give its attempt number back.
RELEASE = (
    "UPDATE tasks NOT INDEXED SET status = 'pending', started_at = NULL, attempt = attempt - 1 "
    "WHERE id = +? AND attempt = +? AND status = 'running'"
)
# After a crash, a run that was being stopped lands where its requests say; the rest go back to pending.
# (cancel_requested: 1 cancel, 2 supersede, 3 fail — a parent whose child failed under fail_fast.)
# Both recovery statements seek their partial index: a full scan costs ~2 µs per row of the table at start-up.
RECOVER_RUNNING = """
UPDATE tasks INDEXED BY idx_active SET
    status = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN cancel_requested = 2 THEN 'superseded'
                  WHEN cancel_requested = 3 THEN 'failed' WHEN pause_reasons <> 0 THEN 'paused' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested <> 0 THEN ?1 END,
    paused_at_ms = CASE WHEN cancel_requested = 0 AND pause_reasons <> 0 THEN ?1 END,
    started_at = CASE WHEN cancel_requested <> 0 THEN started_at END
WHERE status = 'running' AND finished_at IS NULL AND status <> 'pending'
RETURNING id, finished_at, status, task_type
"""
RECOVER_PAUSED = """
UPDATE tasks INDEXED BY idx_paused SET pause_duration_ms = pause_duration_ms + (?1 - paused_at_ms), paused_at_ms = ?1
WHERE status = 'paused' AND paused_at_ms IS NOT NULL AND finished_at IS NULL
"""
# Pruning never deletes the row holding the largest id: new ids are the largest plus one (schema.py), so that
# row is what keeps an id from being handed out twice. It is finished history like any other; a history pruned
# to N rows holds N + 1 while that row is older than the newest N.
PRUNE_IDS_BY_COUNT = """
SELECT id FROM (
    SELECT id FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL
    ORDER BY finished_at DESC, id DESC LIMIT (+?2 + 0) OFFSET (+?1 + 0)
) WHERE id < (SELECT max(id) FROM tasks)
"""
PRUNE_IDS_BY_AGE = """
SELECT id FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL AND finished_at < +?1
    AND id < (SELECT max(id) FROM tasks) LIMIT (+?2 + 0)
"""
DELETE_IDS = "DELETE FROM tasks NOT INDEXED WHERE id IN (SELECT value FROM json_each(+?))"
DELETE_TAGS_OF_IDS = "DELETE FROM task_tags WHERE task_id IN (SELECT value FROM json_each(+?))"

DATA_VERSION = "PRAGMA data_version"
META_GET = "SELECT value FROM meta WHERE name = +?"
META_SET = "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value"
# Counters in meta: 'dep_epoch' (deps.py), 'supervisor_epoch' (bumped at each supervisor start, after its wake-up
# socket is bound and before its first turn: client.py) and 'syncs' (a write whose commit must reach the disk).
META_BUMP = (
    "INSERT INTO meta (name, value) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)

# The task that replaced ``?2`` under the same key (supersede of a running task inserts a new row).
REPLACEMENT_OF = f"""
SELECT id FROM tasks INDEXED BY idx_key_prefix WHERE {key_is("+?1")} AND run_of IS NULL AND id > +?2
ORDER BY id DESC LIMIT 1
"""

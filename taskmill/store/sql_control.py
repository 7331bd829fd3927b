"""Statements of control: cancel, stop requests, preemption, and pausing domains, groups and everything.

Kept apart from ``sql.py`` (submission, dispatch, queries) as ``sql_flow.py`` and ``sql_policy.py`` are; the same
conventions hold (pinned indexes, ``+?N`` parameters).
"""

from __future__ import annotations

ACTIVE_ROW = (
    "SELECT id, status, cancel_requested, task_type FROM tasks NOT INDEXED WHERE id = +? AND finished_at IS NULL"
)
ACTIVE_CHILDREN = "SELECT id FROM tasks INDEXED BY idx_children_active WHERE parent_id = +? AND finished_at IS NULL"
CANCEL_QUEUED = """
UPDATE tasks NOT INDEXED SET status = 'cancelled', finished_at = ?2, last_error = COALESCE(last_error, 'cancelled'),
    paused_at_ms = NULL
WHERE id = +?1 AND finished_at IS NULL AND status <> 'running'
"""
REQUEST_STOP = (
    "UPDATE tasks NOT INDEXED SET cancel_requested = ?2 WHERE id = +?1 AND status = 'running' AND cancel_requested = 0"
)
# Running tasks someone asked to stop (cancel/supersede) or pause; the running set is small.
STOP_REQUESTS = """
SELECT id, attempt, cancel_requested, pause_reasons FROM tasks INDEXED BY idx_active
WHERE status = 'running' AND finished_at IS NULL AND status <> 'pending' AND (cancel_requested <> 0 OR pause_reasons <> 0)
"""
MARK_PREEMPTED = "UPDATE tasks NOT INDEXED SET pause_reasons = pause_reasons | 1 WHERE id = +? AND attempt = +? AND status = 'running'"
# A stopped run lands where its requests say: cancelled, superseded, paused, or back to pending (request withdrawn).
STOP_APPLIED = """
UPDATE tasks NOT INDEXED SET
    status = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN cancel_requested = 2 THEN 'superseded'
                  WHEN cancel_requested = 3 THEN 'failed' WHEN pause_reasons <> 0 THEN 'paused' ELSE 'pending' END,
    finished_at = CASE WHEN cancel_requested <> 0 THEN ?1 END,
    paused_at_ms = CASE WHEN cancel_requested = 0 AND pause_reasons <> 0 THEN ?1 END,
    started_at = CASE WHEN cancel_requested <> 0 THEN started_at END,
    duration_ms = CASE WHEN cancel_requested <> 0 THEN ?1 - started_at END,
    last_error = CASE WHEN cancel_requested = 1 THEN 'cancelled' WHEN cancel_requested = 2 THEN 'superseded'
                      ELSE last_error END
WHERE id = +?2 AND attempt = +?3 AND status = 'running'
RETURNING id, status, pause_reasons
"""
# A range of ids, as sql_obs.NEW_ROWS, with the newest id of the same snapshot.
NEW_URGENT = """
SELECT MIN(CASE WHEN priority <= ?2 AND finished_at IS NULL AND status <> 'running' THEN priority END),
    (SELECT MAX(id) FROM tasks)
FROM tasks WHERE id > +?1 AND id <= +?1 + ?3
"""
MAX_ID = "SELECT MAX(id) FROM tasks"
# What a dispatch turn reads first, in one statement where it used three (data version, dependency epoch, global
# pause).
TURN_STATE = """
SELECT (SELECT data_version FROM pragma_data_version()), (SELECT value FROM meta WHERE name = 'dep_epoch'),
    EXISTS (SELECT 1 FROM meta WHERE name = ?1)
"""
READY_HEAD_PRIORITY = "SELECT priority FROM tasks INDEXED BY idx_ready WHERE status = 'pending' AND run_after IS NULL ORDER BY priority, id LIMIT 1"
PAUSED_COUNT_WITH = (
    "SELECT COUNT(*) FROM tasks INDEXED BY idx_paused WHERE status = 'paused' AND (pause_reasons & +?) <> 0"
)
# Clearing one pause reason: rows left with no reason become pending again, their paused time accumulated.
_CLEAR = """
UPDATE tasks SET pause_reasons = pause_reasons & ~?1,
    status = CASE WHEN (pause_reasons & ~?1) = 0 THEN 'pending' ELSE status END,
    pause_duration_ms = pause_duration_ms + CASE WHEN (pause_reasons & ~?1) = 0 THEN ?2 - COALESCE(paused_at_ms, ?2) ELSE 0 END,
    paused_at_ms = CASE WHEN (pause_reasons & ~?1) = 0 THEN NULL ELSE paused_at_ms END
"""
RESUME_PREEMPTED = _CLEAR + " WHERE status = 'paused' AND (pause_reasons & +?1) <> 0 AND priority <= +?3"
CLEAR_DOMAIN = _CLEAR + " WHERE status = 'paused' AND domain = +?3 AND (pause_reasons & +?1) <> 0"
CLEAR_GROUP = _CLEAR + " WHERE status = 'paused' AND group_key = +?3 AND (pause_reasons & +?1) <> 0"
CLEAR_ALL = _CLEAR + " WHERE status = 'paused' AND (pause_reasons & +?1) <> 0"
WITHDRAW_RUNNING = "UPDATE tasks SET pause_reasons = pause_reasons & ~?1 WHERE status = 'running' AND finished_at IS NULL AND (pause_reasons & +?1) <> 0 AND (+?2 IS NULL OR domain = +?2) AND (+?3 IS NULL OR group_key = +?3)"
# Adding a pause reason: queued rows become paused now; running rows carry the request for the supervisor.
_QUEUED_IDS = """
    SELECT id FROM tasks INDEXED BY idx_ready WHERE status = 'pending' AND run_after IS NULL AND {scope}
    UNION ALL SELECT id FROM tasks INDEXED BY idx_delayed WHERE status = 'pending' AND run_after IS NOT NULL AND {scope}
    UNION ALL SELECT id FROM tasks INDEXED BY idx_paused WHERE status = 'paused' AND {scope}
"""
_ADD = """
UPDATE tasks NOT INDEXED SET pause_reasons = pause_reasons | ?1, status = 'paused', paused_at_ms = COALESCE(paused_at_ms, ?2)
WHERE id IN ({ids})
"""
PAUSE_DOMAIN_QUEUED = _ADD.format(ids=_QUEUED_IDS.format(scope="domain = ?3"))
PAUSE_GROUP_QUEUED = _ADD.format(ids=_QUEUED_IDS.format(scope="group_key = ?3"))
PAUSE_RUNNING = "UPDATE tasks SET pause_reasons = pause_reasons | ?1 WHERE status = 'running' AND finished_at IS NULL AND (+?2 IS NULL OR domain = +?2) AND (+?3 IS NULL OR group_key = +?3)"
ADD_PAUSED_DOMAIN = "INSERT INTO paused_domains (domain, paused_at) VALUES (?, ?) ON CONFLICT(domain) DO NOTHING"
DEL_PAUSED_DOMAIN = "DELETE FROM paused_domains WHERE domain = +?"
IS_DOMAIN_PAUSED = "SELECT 1 FROM paused_domains WHERE domain = +?"
ADD_PAUSED_GROUP = """
INSERT INTO paused_groups (group_key, paused_at, resume_at) VALUES (?1, ?2, ?3)
ON CONFLICT(group_key) DO UPDATE SET resume_at = excluded.resume_at
"""
DEL_PAUSED_GROUP = "DELETE FROM paused_groups WHERE group_key = +?"
IS_GROUP_PAUSED = "SELECT 1 FROM paused_groups WHERE group_key = +?"
PAUSED_GROUPS = "SELECT group_key, paused_at, resume_at FROM paused_groups ORDER BY group_key"
DUE_GROUP_RESUMES = "SELECT group_key FROM paused_groups WHERE resume_at IS NOT NULL AND resume_at <= +?"
NEXT_GROUP_RESUME = "SELECT MIN(resume_at) FROM paused_groups WHERE resume_at IS NOT NULL"
ACTIVE_IDS_OF_DOMAIN = """
SELECT id FROM tasks INDEXED BY idx_active WHERE finished_at IS NULL AND status <> 'pending' AND domain = +?1
UNION ALL SELECT id FROM tasks INDEXED BY idx_ready WHERE status = 'pending' AND run_after IS NULL AND domain = +?1
UNION ALL SELECT id FROM tasks INDEXED BY idx_delayed WHERE status = 'pending' AND run_after IS NOT NULL AND domain = +?1
"""

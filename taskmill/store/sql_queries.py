"""Named SQL of the query API: tasks by id, key and status, counts, history pages, a type's recent duration.

Read-only statements, beside ``sql.py`` (submission, dispatch, recovery) and like it the only place they live.
None runs on the dispatch hot path.
"""

from __future__ import annotations

from .sql import HISTORY_COLUMNS, TASK_COLUMNS, key_is, pending_rows

# -- tasks and counts --------------------------------------------------------------------------------------------
TASK_BY_ID = f"SELECT {TASK_COLUMNS} FROM tasks NOT INDEXED WHERE id = +? AND finished_at IS NULL"
TASK_BY_KEY = f"""
SELECT {TASK_COLUMNS} FROM tasks NOT INDEXED WHERE id = (
    SELECT id FROM tasks INDEXED BY idx_key_prefix WHERE {key_is("+?1")} AND run_of IS NULL ORDER BY id DESC LIMIT 1)
AND finished_at IS NULL
"""
TASKS_BY_STATUS = f"""
SELECT {TASK_COLUMNS} FROM tasks INDEXED BY idx_active WHERE status = +? AND finished_at IS NULL
    AND status <> 'pending'
ORDER BY priority, id LIMIT (+? + 0) OFFSET (+? + 0)
"""
_PENDING = "status = 'pending' AND finished_at IS NULL"
PENDING_TASKS = f"""
SELECT * FROM (
    {pending_rows(TASK_COLUMNS)}
) ORDER BY priority, id LIMIT (+? + 0) OFFSET (+? + 0)
"""
COUNT_BY_STATUS = (
    "SELECT COUNT(*) FROM tasks INDEXED BY idx_active WHERE status = +? AND finished_at IS NULL AND status <> 'pending'"
)
COUNT_BY_STATUS_DOMAIN = (
    "SELECT COUNT(*) FROM tasks INDEXED BY idx_active WHERE status = +? AND domain = +? AND finished_at IS NULL "
    "AND status <> 'pending'"
)
COUNT_PENDING = f"""
SELECT (SELECT COUNT(*) FROM tasks INDEXED BY idx_ready WHERE {_PENDING} AND run_after IS NULL AND (+?1 IS NULL OR domain = +?1))
     + (SELECT COUNT(*) FROM tasks INDEXED BY idx_delayed WHERE {_PENDING} AND run_after IS NOT NULL
        AND (+?1 IS NULL OR domain = +?1))
"""
# Anything pending (due or delayed) or running: three seeks, whatever the backlog (a count would walk it).
BUSY = f"""
SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY idx_ready WHERE {_PENDING} AND run_after IS NULL)
    OR EXISTS (SELECT 1 FROM tasks INDEXED BY idx_delayed WHERE {_PENDING} AND run_after IS NOT NULL)
    OR EXISTS (SELECT 1 FROM tasks INDEXED BY idx_active WHERE status = 'running' AND finished_at IS NULL
               AND status <> 'pending')
"""
COUNTS = (
    "SELECT status, COUNT(*) FROM tasks INDEXED BY idx_active WHERE finished_at IS NULL AND status <> 'pending' "
    "GROUP BY status"
)
PENDING_BY_DOMAIN_PRIORITY = f"""
SELECT domain, priority, COUNT(*) FROM (
    {pending_rows("domain, priority")}
) GROUP BY domain, priority ORDER BY domain, priority
"""
PENDING_BY_TYPE = f"""
SELECT task_type, COUNT(*) FROM (
    {pending_rows("task_type")}
) GROUP BY task_type
"""
_HIST = f"SELECT {HISTORY_COLUMNS} FROM tasks"
HISTORY_PAGE = (
    f"{_HIST} INDEXED BY idx_finished WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC "
    "LIMIT (? + 0) OFFSET (? + 0)"
)
HISTORY_BY_TYPE = (
    f"{_HIST} INDEXED BY idx_finished_type WHERE task_type = +? AND finished_at IS NOT NULL "
    "ORDER BY finished_at DESC, id DESC LIMIT (? + 0) OFFSET (? + 0)"
)
HISTORY_COMPLETED = (
    f"{_HIST} INDEXED BY idx_finished WHERE finished_at IS NOT NULL AND status = 'completed' "
    "AND (?1 IS NULL OR domain = ?1) ORDER BY finished_at DESC, id DESC LIMIT (?2 + 0) OFFSET (?3 + 0)"
)
HISTORY_BY_STATUS = (
    f"{_HIST} INDEXED BY idx_finished_status WHERE status = +?1 AND finished_at IS NOT NULL AND status <> 'completed' "
    "AND (?2 IS NULL OR domain = ?2) ORDER BY finished_at DESC, id DESC LIMIT (?3 + 0) OFFSET (?4 + 0)"
)
HISTORY_BY_KEY = (
    f"{_HIST} INDEXED BY idx_key_prefix WHERE {key_is('+?1')} AND finished_at IS NOT NULL ORDER BY id DESC "
    "LIMIT (?2 + 0)"
)
HISTORY_OF_TASK = f"""
{_HIST} NOT INDEXED WHERE id = +?1 AND finished_at IS NOT NULL
UNION ALL
{_HIST} INDEXED BY idx_run_of WHERE run_of = +?1
ORDER BY 15 DESC, 1 DESC
"""
HISTORY_ROW = f"{_HIST} NOT INDEXED WHERE id = +? AND finished_at IS NOT NULL"
RESUBMIT_SOURCE = """
SELECT task_type, domain, key, label, priority, payload, expected_read_bytes, expected_write_bytes,
    expected_net_rx_bytes, expected_net_tx_bytes, max_retries, parent_id, fail_fast, group_key, tags
FROM tasks NOT INDEXED WHERE id = +?
"""
HISTORY_COUNT = "SELECT COUNT(*) FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL"
HISTORY_STATUS_COUNTS = (
    "SELECT status, COUNT(*) FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL GROUP BY status"
)
# -- observability: estimated progress, group pauses, the latest history of a task ----------------------------------
# Average duration of the type's recent completed runs: the newest ?3 finished rows of the type (one range of
# idx_finished_type, never the whole history), of which the newest ?2 completed ones count.
RECENT_DURATION = """
SELECT AVG(duration_ms), COUNT(*) FROM (
    SELECT duration_ms FROM (
        SELECT status, duration_ms, finished_at FROM tasks INDEXED BY idx_finished_type
        WHERE task_type = +?1 AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT (+?3 + 0))
    WHERE status = 'completed' AND duration_ms IS NOT NULL ORDER BY finished_at DESC LIMIT (+?2 + 0))
"""
# Tasks held by a group pause (the GROUP bit, 8, of pause_reasons), per paused group.
GROUP_PAUSED_COUNT = """
SELECT COUNT(*) FROM tasks INDEXED BY idx_group
WHERE group_key = +?1 AND status = 'paused' AND finished_at IS NULL AND (pause_reasons & 8) <> 0
"""
# The newest history record of a task: its own row once it has ended, else its newest preserved run (a
# recurring occurrence, a requeued run). Copies get increasing ids, so the newest is the largest.
LATEST_HISTORY_OF_TASK = f"""
SELECT * FROM (
    SELECT {HISTORY_COLUMNS}, 0 FROM tasks NOT INDEXED WHERE id = +?1 AND finished_at IS NOT NULL
    UNION ALL
    SELECT * FROM (SELECT {HISTORY_COLUMNS}, 1 FROM tasks INDEXED BY idx_run_of WHERE run_of = +?1
                   ORDER BY id DESC LIMIT 1)
) ORDER BY 24 LIMIT 1
"""

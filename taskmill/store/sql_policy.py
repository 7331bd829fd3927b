"""SQL of the gated dispatch path (scheduling policy): peeks of runnable candidates in priority order, with
what is known to be blocked left out, per-level and per-group streams, and the gate's other inputs."""

_PEEK = """
SELECT id, task_type, domain, priority, group_key, created_at, pause_duration_ms, expected_read_bytes,
    expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes FROM tasks INDEXED BY {index}
WHERE status = 'pending' AND run_after IS NULL AND (priority, id) > (+?1, +?2) AND priority < +?7 {scope}
    AND domain NOT IN (SELECT value FROM json_each(+?4)) AND task_type NOT IN (SELECT value FROM json_each(+?5))
    AND (group_key IS NULL OR group_key NOT IN (SELECT value FROM json_each(+?6)))
ORDER BY {order} LIMIT (+?3 + 0)
"""
# Runnable candidates after (priority, id), below a priority ceiling, leaving out capped domains, rate-limited
# types and full groups inside SQLite: all, ungrouped only, or one group (?8).
PEEK_READY = _PEEK.format(index="idx_ready", scope="", order="priority, id")
PEEK_READY_UNGROUPED = _PEEK.format(index="idx_ready", scope="AND group_key IS NULL", order="priority, id")
PEEK_READY_GROUP = _PEEK.format(
    index="idx_ready_group", scope="AND group_key = +?8 AND group_key IS NOT NULL", order="group_key, priority, id"
)
_LEVELS = """
WITH RECURSIVE lv(p) AS (
    SELECT MIN(priority) FROM tasks INDEXED BY {index} WHERE status = 'pending' AND run_after IS NULL {scope}
    UNION ALL
    SELECT (SELECT MIN(priority) FROM tasks INDEXED BY {index}
            WHERE status = 'pending' AND run_after IS NULL {scope} AND priority > lv.p)
    FROM lv WHERE lv.p IS NOT NULL
) SELECT p FROM lv WHERE p IS NOT NULL
"""
# The distinct priorities of runnable tasks (one index seek each), for merging per-level FIFO streams by age.
READY_LEVELS = _LEVELS.format(index="idx_ready", scope="")
READY_LEVELS_GROUP = _LEVELS.format(index="idx_ready_group", scope="AND group_key = +?1 AND group_key IS NOT NULL")
# Groups with runnable tasks (one seek each, bounded).
READY_GROUPS = """
WITH RECURSIVE g(k) AS (
    SELECT MIN(group_key) FROM tasks INDEXED BY idx_ready_group
    WHERE status = 'pending' AND run_after IS NULL AND group_key IS NOT NULL
    UNION ALL
    SELECT (SELECT MIN(group_key) FROM tasks INDEXED BY idx_ready_group
            WHERE status = 'pending' AND run_after IS NULL AND group_key IS NOT NULL AND group_key > g.k)
    FROM g WHERE g.k IS NOT NULL
) SELECT k FROM g WHERE k IS NOT NULL LIMIT (+?1 + 0)
"""
READY_IN_GROUP = """
SELECT COUNT(*) FROM (SELECT 1 FROM tasks INDEXED BY idx_ready_group
    WHERE group_key = +?1 AND status = 'pending' AND run_after IS NULL AND group_key IS NOT NULL LIMIT (+?2 + 0))
"""
READY_UNGROUPED = """
SELECT COUNT(*) FROM (SELECT 1 FROM tasks INDEXED BY idx_ready
    WHERE status = 'pending' AND run_after IS NULL AND group_key IS NULL LIMIT (+?1 + 0))
"""
CANDIDATE_BY_ID = """
SELECT id, task_type, domain, priority, group_key, created_at, pause_duration_ms, expected_read_bytes,
    expected_write_bytes, expected_net_rx_bytes, expected_net_tx_bytes, status, run_after, pause_reasons
FROM tasks NOT INDEXED WHERE id = +?1 AND finished_at IS NULL
"""
RUNNING_EXPECTED_IO = """
SELECT COALESCE(SUM(expected_read_bytes), 0), COALESCE(SUM(expected_write_bytes), 0),
    COALESCE(SUM(expected_net_rx_bytes), 0), COALESCE(SUM(expected_net_tx_bytes), 0)
FROM tasks INDEXED BY idx_active WHERE status = 'running' AND finished_at IS NULL AND status <> 'pending'
"""

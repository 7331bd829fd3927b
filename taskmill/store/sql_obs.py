"""Named SQL of the observability side: tag queries, statistics over history, metric counters.

Beside ``sql.py`` and ``sql_flow.py``, and like them the only place these statements live. Nothing here runs on
the dispatch hot path except :data:`NEW_ROWS` (one rowid seek per turn) and :data:`DROP_FINISHED_TAGS` (only for
finished tasks that carry tags).
"""

from __future__ import annotations

from .sql import HISTORY_COLUMNS, TASK_COLUMNS, pending_rows

# -- metric counters (see schema._V4) ----------------------------------------------------------------------
BUMP = (
    "INSERT INTO counters (name, label, value) VALUES (?1, ?2, ?3) "
    "ON CONFLICT(name, label) DO UPDATE SET value = value + excluded.value"
)
COUNTERS = "SELECT name, label, value FROM counters"
# Rows created after ``?1``: new tasks (any process, any path) and in-place supersedes (their copy rows). Copies of
# finished runs (requeue, recurring occurrences) only move the watermark.
# A range of row ids, not "the next N rows": a rowid range needs no list of ids built first (~35% cheaper).
# Ids are handed out in increasing order (schema.py); deleted rows only make a slice smaller. The last row (task_type
# NULL) is the newest id in the same snapshot, so the caller knows where the committed rows end.
NEW_ROWS = """
SELECT task_type, group_key, SUM(run_of IS NULL OR status = 'superseded') FROM tasks
WHERE id > +?1 AND id <= +?1 + ?2 GROUP BY task_type, group_key
UNION ALL SELECT NULL, NULL, MAX(id) FROM tasks
"""

# -- tags of active tasks -----------------------------------------------------------------------------------
DROP_TAGS = "DELETE FROM task_tags WHERE task_id = +?"
# Finished rows only: a completed run of a requeued task goes back to pending and keeps its tags.
DROP_FINISHED_TAGS = """
DELETE FROM task_tags WHERE task_id IN (
    SELECT t.id FROM json_each(+?1) AS j CROSS JOIN tasks AS t NOT INDEXED ON t.id = j.value
    WHERE t.finished_at IS NOT NULL)
"""
RESTORE_TAGS = """
INSERT OR REPLACE INTO task_tags (task_id, key, value)
SELECT tasks.id, j.key, j.value FROM tasks NOT INDEXED, json_each(tasks.tags) AS j
WHERE tasks.id = +?1 AND tasks.tags IS NOT NULL AND tasks.finished_at IS NULL
"""

# Every tag query reads idx_task_tags_kv. Without a status or domain filter that index answers alone (it only holds
# active tasks); with one, each matching tag row looks up its task. ``{join}`` is "" or _SCOPE (parameters ?9 and
# ?10: status, domain, either may be NULL; ?1..?8 are the query's own).
_SCOPE = (
    " JOIN tasks AS t NOT INDEXED ON t.id = g.task_id AND t.finished_at IS NULL"
    " AND (+?9 IS NULL OR t.status = +?9) AND (+?10 IS NULL OR t.domain = +?10)"
)
# AND of up to 4 pairs: the first (the most selective, chosen by the caller) drives, the others are index probes.
_AND = " JOIN task_tags AS h{n} INDEXED BY idx_task_tags_kv ON h{n}.task_id = g.task_id AND h{n}.key = +?{k} AND h{n}.value = +?{v}"
_IDS_BY_TAGS = "SELECT g.task_id FROM task_tags AS g INDEXED BY idx_task_tags_kv{join}{more} WHERE g.key = +?1 AND g.value = +?2 ORDER BY 1"
_COUNT_BY_TAGS = (
    "SELECT COUNT(*) FROM task_tags AS g INDEXED BY idx_task_tags_kv{join}{more} WHERE g.key = +?1 AND g.value = +?2"
)
MAX_FILTERS = 4


def _and(n: int) -> str:
    return "".join(_AND.format(n=i, k=2 * i + 1, v=2 * i + 2) for i in range(1, n))


# [scoped][number of pairs]
IDS_BY_TAGS = [[_IDS_BY_TAGS.format(join=j, more=_and(n)) for n in range(MAX_FILTERS + 1)] for j in ("", _SCOPE)]
COUNT_BY_TAGS = [[_COUNT_BY_TAGS.format(join=j, more=_and(n)) for n in range(MAX_FILTERS + 1)] for j in ("", _SCOPE)]
SAMPLE_PAIR = (
    "SELECT COUNT(*) FROM (SELECT 1 FROM task_tags INDEXED BY idx_task_tags_kv WHERE key = +?1 AND value = +?2 "
    "LIMIT (+?3 + 0))"
)
_COUNT_BY_TAG = (
    "SELECT g.value, COUNT(*) FROM task_tags AS g INDEXED BY idx_task_tags_kv{join} WHERE g.key = +?1 "
    "GROUP BY g.value ORDER BY 2 DESC, 1"
)
COUNT_BY_TAG = [_COUNT_BY_TAG.format(join=j) for j in ("", _SCOPE)]
# Prefix queries are a range on the key: [?1, ?2), where ?2 is the prefix with its last character incremented —
# exact and case-sensitive (LIKE would be ASCII case-insensitive and need escaping).
# Distinct keys by skip-scan: one index seek per distinct key, whatever the number of tasks.
TAG_KEYS_BY_PREFIX = """
WITH RECURSIVE k(key) AS (
    SELECT (SELECT MIN(key) FROM task_tags INDEXED BY idx_task_tags_kv WHERE key >= +?1 AND key < +?2)
    UNION ALL
    SELECT (SELECT MIN(key) FROM task_tags INDEXED BY idx_task_tags_kv WHERE key > k.key AND key < +?2)
    FROM k WHERE k.key IS NOT NULL
)
SELECT key FROM k WHERE key IS NOT NULL
"""
TAG_KEYS_BY_PREFIX_SCOPED = (
    "SELECT DISTINCT g.key FROM task_tags AS g INDEXED BY idx_task_tags_kv" + _SCOPE
    + " WHERE g.key >= +?1 AND g.key < +?2 ORDER BY 1"
)  # fmt: skip
_IDS_BY_KEY_PREFIX = (
    "SELECT DISTINCT g.task_id FROM task_tags AS g INDEXED BY idx_task_tags_kv{join} "
    "WHERE g.key >= +?1 AND g.key < +?2 ORDER BY 1"
)
IDS_BY_KEY_PREFIX = [_IDS_BY_KEY_PREFIX.format(join=j) for j in ("", _SCOPE)]
_COUNT_BY_KEY_PREFIX = (
    "SELECT COUNT(*) FROM (SELECT g.task_id FROM task_tags AS g INDEXED BY idx_task_tags_kv{join} "
    "WHERE g.key >= +?1 AND g.key < +?2 GROUP BY g.task_id)"
)
COUNT_BY_KEY_PREFIX = [_COUNT_BY_KEY_PREFIX.format(join=j) for j in ("", _SCOPE)]

# -- active tasks, scoped to a domain ------------------------------------------------------------------------
PENDING_TASKS_DOMAIN = f"""
SELECT * FROM (
    {pending_rows(TASK_COLUMNS, "domain = +?1")}
) ORDER BY priority, id LIMIT (+?2 + 0) OFFSET (+?3 + 0)
"""
PENDING_BY_TYPE_DOMAIN = f"""
SELECT task_type, COUNT(*) FROM (
    {pending_rows("task_type", "domain = +?1")}
) GROUP BY task_type
"""
RUNNING_IO = """
SELECT COALESCE(SUM(expected_read_bytes), 0), COALESCE(SUM(expected_write_bytes), 0),
    COALESCE(SUM(expected_net_rx_bytes), 0), COALESCE(SUM(expected_net_tx_bytes), 0)
FROM tasks INDEXED BY idx_active WHERE status = 'running' AND finished_at IS NULL AND status <> 'pending'
    AND (+?1 IS NULL OR domain = +?1)
"""

# -- history -------------------------------------------------------------------------------------------------
HISTORY_PAGE_DOMAIN = (
    f"SELECT {HISTORY_COLUMNS} FROM tasks INDEXED BY idx_finished WHERE finished_at IS NOT NULL AND domain = +?1 "
    "ORDER BY finished_at DESC, id DESC LIMIT (+?2 + 0) OFFSET (+?3 + 0)"
)
# Every retained run of a type (copies of requeued runs and past occurrences included). Averages cover completed
# runs; a waiting parent completed without running has no IO recorded (NULL, left out of the averages).
HISTORY_STATS = """
SELECT COUNT(*), COALESCE(SUM(status = 'completed'), 0), COALESCE(SUM(status IN ('failed', 'dead_letter')), 0),
    AVG(CASE WHEN status = 'completed' THEN duration_ms END),
    AVG(CASE WHEN status = 'completed' THEN actual_read_bytes END),
    AVG(CASE WHEN status = 'completed' THEN actual_write_bytes END),
    AVG(CASE WHEN status = 'completed' THEN actual_net_rx_bytes END),
    AVG(CASE WHEN status = 'completed' THEN actual_net_tx_bytes END)
FROM tasks INDEXED BY idx_finished_type WHERE task_type = +?1 AND finished_at IS NOT NULL
"""
AVG_THROUGHPUT = """
SELECT COUNT(*), AVG(COALESCE(actual_read_bytes, 0) * 1000.0 / duration_ms),
    AVG(COALESCE(actual_write_bytes, 0) * 1000.0 / duration_ms)
FROM (SELECT actual_read_bytes, actual_write_bytes, duration_ms FROM tasks INDEXED BY idx_finished_type
      WHERE task_type = +?1 AND finished_at IS NOT NULL AND status = 'completed' AND duration_ms > 0
      ORDER BY finished_at DESC, id DESC LIMIT (+?2 + 0))
"""
PAUSED_GROUP_COUNT = "SELECT COUNT(*) FROM paused_groups"

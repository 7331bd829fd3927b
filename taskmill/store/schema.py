"""Schema and ordered migrations keyed on ``PRAGMA user_version``.

Each migration runs once, in order, inside one write transaction. A database whose user_version is newer
than this code knows is refused rather than silently misread.
"""

from __future__ import annotations

import apsw

from ..errors import SchemaError
from .connection import write_tx

# One row per run. A task is active while ``finished_at`` is NULL; finishing it updates the row in place, so
# completion never touches the (random-order) dedup key index — that is what keeps dispatch cheap. History
# is the set of finished rows (the ``history`` view). A task that runs again in place (requeue) or is
# superseded in place leaves a copy of the finished run, linked by ``run_of``.
#
# Ids are the rowid, without AUTOINCREMENT: SQLite hands out the largest id plus one, and pruning never deletes
# the row holding the largest id (``sql.PRUNE_IDS_*``), so an id is never handed out twice. AUTOINCREMENT would
# guarantee that too, at the price of a write to ``sqlite_sequence`` in every inserting transaction: a fourth
# WAL frame beside the row and its two indexes (single submits ran ~1.2x faster without it). Databases created
# while this statement still said AUTOINCREMENT keep it: the table's layout is the same, so nothing is migrated,
# and they pay that frame.
_V1 = [
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        task_type TEXT NOT NULL,
        domain TEXT NOT NULL,
        key TEXT NOT NULL,
        label TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        payload BLOB,
        memo BLOB,
        expected_read_bytes INTEGER NOT NULL DEFAULT 0,
        expected_write_bytes INTEGER NOT NULL DEFAULT 0,
        expected_net_rx_bytes INTEGER NOT NULL DEFAULT 0,
        expected_net_tx_bytes INTEGER NOT NULL DEFAULT 0,
        actual_read_bytes INTEGER,
        actual_write_bytes INTEGER,
        actual_net_rx_bytes INTEGER,
        actual_net_tx_bytes INTEGER,
        retry_count INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER,
        last_error TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        duration_ms INTEGER,
        run_after INTEGER,
        run_of INTEGER,
        requeue INTEGER NOT NULL DEFAULT 0,
        requeue_priority INTEGER,
        parent_id INTEGER,
        fail_fast INTEGER NOT NULL DEFAULT 1,
        group_key TEXT,
        on_dep_failure TEXT NOT NULL DEFAULT 'cancel',
        ttl_seconds REAL,
        ttl_from TEXT NOT NULL DEFAULT 'submission',
        expires_at INTEGER,
        recurring_interval REAL,
        recurring_max INTEGER,
        recurring_count INTEGER NOT NULL DEFAULT 0,
        recurring_paused INTEGER NOT NULL DEFAULT 0,
        pause_reasons INTEGER NOT NULL DEFAULT 0,
        pause_duration_ms INTEGER NOT NULL DEFAULT 0,
        paused_at_ms INTEGER,
        tags TEXT
    )
    """,
    # Dedup: the newest non-copy row of a key is the only one that can be active (indexed by prefix since _V6).
    "CREATE INDEX idx_key ON tasks(key)",
    # Runnable now. Delayed rows keep run_after set until due, so "next task" is one seek at any backlog.
    "CREATE INDEX idx_ready ON tasks(priority, id) WHERE status = 'pending' AND run_after IS NULL",
    "CREATE INDEX idx_delayed ON tasks(run_after) WHERE status = 'pending' AND run_after IS NOT NULL",
    # Active but not pending (pending rows are counted through idx_ready/idx_delayed): one index fewer to
    # maintain on every insert.
    "CREATE INDEX idx_active ON tasks(status, domain) WHERE finished_at IS NULL AND status <> 'pending'",
    "CREATE INDEX idx_finished ON tasks(finished_at) WHERE finished_at IS NOT NULL",
    "CREATE INDEX idx_finished_type ON tasks(task_type, finished_at) WHERE finished_at IS NOT NULL",
    "CREATE INDEX idx_finished_status ON tasks(status, finished_at) "
    "WHERE finished_at IS NOT NULL AND status <> 'completed'",
    "CREATE INDEX idx_run_of ON tasks(run_of) WHERE run_of IS NOT NULL",
    "CREATE INDEX idx_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL",
    "CREATE INDEX idx_group ON tasks(group_key, status) WHERE group_key IS NOT NULL AND finished_at IS NULL",
    "CREATE INDEX idx_expires ON tasks(expires_at) WHERE expires_at IS NOT NULL AND finished_at IS NULL",
    """
    CREATE VIEW history AS SELECT * FROM tasks WHERE finished_at IS NOT NULL
    """,
    """
    CREATE TABLE task_deps (
        task_id INTEGER NOT NULL,
        depends_on_id INTEGER NOT NULL,
        PRIMARY KEY (task_id, depends_on_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX idx_task_deps_on ON task_deps(depends_on_id)",
    """
    CREATE TABLE task_tags (
        task_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (task_id, key)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX idx_task_tags_kv ON task_tags(key, value)",
    """
    CREATE TABLE paused_groups (
        group_key TEXT PRIMARY KEY,
        paused_at INTEGER NOT NULL,
        resume_at INTEGER
    )
    """,
    """
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value TEXT
    )
    """,
]

# Control: stop requests for running tasks (cancel, supersede) are columns the supervisor polls on change;
# pause requests reuse pause_reasons (a running row with bits set is to be paused). Domain pauses persist.
_V2 = [
    "ALTER TABLE tasks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX idx_paused ON tasks(status, pause_reasons) WHERE status = 'paused'",
    """
    CREATE TABLE paused_domains (
        domain TEXT PRIMARY KEY,
        paused_at INTEGER NOT NULL
    )
    """,
]

# Workflows. ``flags`` says what a row needs beyond plain dispatch (see ``records.F_*``): 0 for a plain task, so
# the hot path tests one integer. Recurring schedules keep their spec on the row; ``recurring_at`` is the
# scheduled time of the current occurrence (``run_after`` is cleared when a delayed row becomes runnable).
_V3 = [
    "ALTER TABLE tasks ADD COLUMN flags INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE tasks ADD COLUMN recurring_cron TEXT",
    "ALTER TABLE tasks ADD COLUMN recurring_tz TEXT",
    "ALTER TABLE tasks ADD COLUMN recurring_at INTEGER",
    # "does this parent still have active children": one seek, however many children already finished.
    "CREATE INDEX idx_children_active ON tasks(parent_id) WHERE parent_id IS NOT NULL AND finished_at IS NULL",
    # Live schedules (a finished row's flags are cleared once settled; copies of past occurrences have none).
    "CREATE INDEX idx_recurring ON tasks(id) WHERE (flags & 8) <> 0",
]

# Scheduling policy: fair scheduling and group caps peek one group's runnable tasks in priority order.
# Partial on grouped rows, so ungrouped tasks pay nothing for it.
_V4 = [
    "CREATE INDEX idx_ready_group ON tasks(group_key, priority, id) "
    "WHERE status = 'pending' AND run_after IS NULL AND group_key IS NOT NULL",
]

# Observability. ``task_tags`` holds the tags of active tasks only (every statement that ends a task drops its
# rows; a recurring task's next occurrence puts them back from the ``tags`` column, which history keeps), so tag
# queries read one index however much history is kept. ``counters`` are the metrics of transitions any process
# can make (a cancel from a client, a supersede, a dependency cascade): written in the transaction that makes
# them, so the supervisor's metrics count them exactly, whoever made them.
_V5 = [
    "DELETE FROM task_tags WHERE task_id IN (SELECT id FROM tasks WHERE finished_at IS NOT NULL)",
    """
    CREATE TABLE counters (
        name TEXT NOT NULL,
        label TEXT NOT NULL,
        value INTEGER NOT NULL,
        PRIMARY KEY (name, label)
    ) WITHOUT ROWID
    """,
]

# The dedup key index holds the first 4 bytes of each key, not the 64-character key. Keys are SHA-256 digests, so
# every insert lands on a random leaf of this index, and a batch of 1,000 rewrites nearly all of its leaves:
# with the default retention's 100,000 finished rows, the full-key index made each batched row cost ~15 µs of
# WAL writes at commit. Entries of ~13 bytes instead of ~70 make that index a fifth of the size (batches
# ~1.7x faster there). Lookups compare the prefix through the index, then the whole key on the row
# (``sql.key_is``): with a million keys, about one lookup in 4,000 meets another key's row on the way.
# Every stored key is a lowercase hex digest (``submission.dedup_key``), so the prefix is never NULL.
_V6 = [
    "DROP INDEX idx_key",
    "CREATE INDEX idx_key_prefix ON tasks(unhex(substr(key, 1, 8)))",
]

MIGRATIONS: list[list[str]] = [_V1, _V2, _V3, _V4, _V5, _V6]
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: apsw.Connection) -> int:
    return int(next(iter(conn.execute("PRAGMA user_version")))[0])


def migrate(conn: apsw.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version found before migrating."""
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {found} is newer than this taskmill supports ({SCHEMA_VERSION}); upgrade taskmill"
        )
    if found == SCHEMA_VERSION:
        return found
    with write_tx(conn):
        current = user_version(conn)  # another process may have migrated while we waited for the lock
        for version in range(current, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    return found

"""Schema and ordered migrations keyed on ``PRAGMA user_version``.

Each migration runs once, in order, inside one write transaction. A database whose user_version is newer
than this code knows is refused rather than silently misread.
"""

from __future__ import annotations

import apsw

from ..errors import SchemaError
from .connection import write_tx

_V1 = [
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        task_type TEXT NOT NULL,
        domain TEXT NOT NULL,
        key TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        payload BLOB,
        memo BLOB,
        expected_read_bytes INTEGER NOT NULL DEFAULT 0,
        expected_write_bytes INTEGER NOT NULL DEFAULT 0,
        expected_net_rx_bytes INTEGER NOT NULL DEFAULT 0,
        expected_net_tx_bytes INTEGER NOT NULL DEFAULT 0,
        retry_count INTEGER NOT NULL DEFAULT 0,
        max_retries INTEGER,
        last_error TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        run_after INTEGER,
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
    # Runnable-now queue: delayed rows keep run_after set until they are due, so this index holds only
    # candidates and "next task" stays one index seek however deep the delayed backlog is.
    "CREATE INDEX idx_tasks_ready ON tasks(priority, id) WHERE status = 'pending' AND run_after IS NULL",
    "CREATE INDEX idx_tasks_delayed ON tasks(run_after) WHERE status = 'pending' AND run_after IS NOT NULL",
    "CREATE INDEX idx_tasks_status ON tasks(status, domain)",
    "CREATE INDEX idx_tasks_parent ON tasks(parent_id) WHERE parent_id IS NOT NULL",
    "CREATE INDEX idx_tasks_group ON tasks(group_key, status) WHERE group_key IS NOT NULL",
    "CREATE INDEX idx_tasks_expires ON tasks(expires_at) WHERE expires_at IS NOT NULL",
    """
    CREATE TABLE history (
        hid INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id INTEGER NOT NULL,
        task_type TEXT NOT NULL,
        domain TEXT NOT NULL,
        key TEXT NOT NULL,
        label TEXT NOT NULL,
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
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
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        completed_at INTEGER NOT NULL,
        duration_ms INTEGER,
        run_after INTEGER,
        parent_id INTEGER,
        fail_fast INTEGER NOT NULL DEFAULT 1,
        group_key TEXT,
        ttl_seconds REAL,
        expires_at INTEGER,
        tags TEXT
    )
    """,
    "CREATE INDEX idx_history_task ON history(task_id)",
    "CREATE INDEX idx_history_type ON history(task_type, completed_at)",
    "CREATE INDEX idx_history_key ON history(key, completed_at)",
    "CREATE INDEX idx_history_status ON history(status, completed_at)",
    "CREATE INDEX idx_history_completed ON history(completed_at)",
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

MIGRATIONS: list[list[str]] = [_V1]
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: apsw.Connection) -> int:
    return int(next(iter(conn.execute("PRAGMA user_version")))[0])


def migrate(conn: apsw.Connection) -> int:
    """Bring the schema up to :data:`SCHEMA_VERSION`; returns the version found before migrating."""
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"database schema version {found} is newer than this taskmill supports ({SCHEMA_VERSION}); "
            "upgrade taskmill"
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

"""Huey (SqliteHuey) side of the peer benchmark: the ``huey`` instance and the two tasks.

Imported as the top-level module ``tasks`` both by the worker
(``huey_consumer tasks.huey``, with this directory and ``peers/`` on
``PYTHONPATH``) and by the harness (``adapter.py`` loads this file under the
same module name), because Huey routes a message by ``<module>.<function>``.

Configuration comes from the environment so the consumer CLI needs no flags:
``PEERS_STATE_DIR`` (directory of the database file) and ``PEERS_DURABILITY``.

Durability mapping (huey 3.5 ``SqliteStorage`` always opens WAL; its only knob is
``fsync``: ``None`` leaves ``synchronous`` alone, ``True`` sets FULL, ``False`` sets OFF):

* ``full``    -> ``SqliteHuey(fsync=True)``: WAL + ``synchronous=FULL``, the WAL is
  synced at every commit, so an accepted task survives power loss.
* ``normal``  -> WAL + ``synchronous=NORMAL`` through a one-method storage subclass:
  survives any process crash, may lose the last commits on power loss. Huey has
  no constructor option for this; ``fsync=False`` would give OFF, which is weaker.
* ``default`` -> ``SqliteHuey()`` as shipped: WAL and SQLite's compiled-in default
  ``synchronous`` (FULL for the usual builds, so normally the same as ``full``).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import taskbody
from huey import SqliteHuey
from huey.storage import SqliteStorage

DB_NAME = "huey.db"


class NormalSyncStorage(SqliteStorage):
    """``SqliteStorage`` whose connections use ``synchronous=NORMAL``."""

    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


def make_huey(state_dir: Path, durability: str) -> SqliteHuey:
    """A ``SqliteHuey`` on ``state_dir/huey.db`` with the given durability (see module doc)."""
    filename = str(state_dir / DB_NAME)
    if durability == "full":
        return SqliteHuey(filename=filename, fsync=True)
    if durability == "normal":
        return SqliteHuey(filename=filename, storage_class=NormalSyncStorage)
    if durability == "default":
        return SqliteHuey(filename=filename)
    raise ValueError(f"unknown durability {durability!r}; expected full, normal or default")


huey = make_huey(Path(os.environ["PEERS_STATE_DIR"]), os.environ.get("PEERS_DURABILITY", "full"))


@huey.task()
def noop(i: int, t_submit: float, kind: str) -> None:
    taskbody.noop(i, t_submit, kind)


@huey.task()
def cpu(i: int, t_submit: float) -> None:
    taskbody.cpu(i, t_submit)

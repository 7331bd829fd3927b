"""What the Redis-based peers (RQ, Dramatiq, Celery) share: where the server is, one db per peer, and Redis
persistence as the meaning of a durability.

The server comes from ``REDIS_URL`` (default ``redis://127.0.0.1:6379``). Each peer puts its own db number into
that URL (Dramatiq 1, RQ 2, Celery 3, as in protocol §1), so ``reset()`` is a ``FLUSHDB`` of that db and touches
nothing else on the server. A peer is registered only when its library imports and the server answers PING
(``require_server``); otherwise ``compare`` skips it with one line.

Durability. A Redis peer's enqueue returns when Redis has executed the write and replied, so what an accepted task
survives is the server's persistence, which is server-wide. ``setup()`` sets it with ``CONFIG SET`` and ``close()``
puts the previous values back:

* ``normal`` -> ``appendonly yes``, ``appendfsync everysec``. Redis writes the append-only file (``write(2)``)
  before it sends the reply and fsyncs it once a second in the background: an accepted task survives a crash of
  the Redis process, and a power loss can lose about the last second (up to 2 s if the disk lags, when Redis
  postpones the write). That is the promise of taskmill's ``normal`` (WAL, ``synchronous=NORMAL``).
* ``full`` -> ``appendonly yes``, ``appendfsync always``: the file is fsynced before the reply, so an accepted task
  survives power loss, like taskmill's ``full`` (``synchronous=FULL``).

Where ``CONFIG`` is disabled (managed servers) the server's own settings are used if they already match, and
``setup()`` fails with a message otherwise. ``settings()`` records what the server really ran with.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit, urlunsplit

import redis

from .adapter import PEERS_DIR, PeerAdapter, PeerUnavailable, load_tasks, spawn

DEFAULT_URL = "redis://127.0.0.1:6379"
URL_VAR = "PEERS_REDIS_URL"  # The full URL, db included, handed to a peer's tasks module in the workers.
PERSISTENCE = {"normal": "everysec", "full": "always"}  # durability -> appendfsync (with appendonly yes)
DURABILITIES = {
    "normal": "Redis AOF, appendfsync everysec: an accepted task survives a Redis crash, not a power loss",
    "full": "Redis AOF, appendfsync always: fsync before the reply, an accepted task survives power loss",
}


def url_for_db(db: int, base: str | None = None) -> str:
    """``REDIS_URL`` (or ``base``) with its path replaced by ``/<db>``; query and credentials are kept."""
    parts = urlsplit(base or os.environ.get("REDIS_URL") or DEFAULT_URL)
    return urlunsplit(parts._replace(path=f"/{db}"))


def connect(url: str) -> redis.Redis:
    """A client that fails fast when nothing listens, so a missing server costs ~1 s, not a hang."""
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=10.0)


def require_server(db: int) -> str:
    """The URL for ``db`` if a server answers PING there; ``PeerUnavailable`` with the reason otherwise."""
    url = url_for_db(db)
    try:
        with contextlib.closing(connect(url)) as client:
            client.ping()
    except redis.RedisError as exc:
        raise PeerUnavailable(f"no Redis server answers PING at {url} (set REDIS_URL): {exc}") from None
    return url


def _wait_for_rewrite(client: redis.Redis, timeout: float = 60.0) -> None:
    """Turning the AOF on starts a background rewrite; no timing may overlap it."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("aof_rewrite_scheduled"):
            return
        if time.monotonic() > deadline:
            raise RuntimeError("Redis AOF rewrite still running after 60 s")
        time.sleep(0.05)


def _config_get(client: redis.Redis, key: str) -> str | None:
    """A server setting, or None where ``CONFIG`` is refused."""
    try:
        return str(client.config_get(key).get(key, ""))
    except redis.ResponseError:
        return None


def apply_persistence(client: redis.Redis, durability: str) -> dict[str, str]:
    """Set ``appendonly yes`` and the durability's ``appendfsync``; returns the values to restore afterwards."""
    wanted = {"appendonly": "yes", "appendfsync": PERSISTENCE[durability]}
    before = {k: _config_get(client, k) for k in wanted}
    try:
        for key, value in wanted.items():
            if before[key] != value:
                client.config_set(key, value)
    except redis.ResponseError as exc:
        if before != wanted:
            raise RuntimeError(
                f"durability {durability!r} needs {wanted} but CONFIG SET is refused ({exc}); "
                f"start the server with --appendonly yes --appendfsync {wanted['appendfsync']}"
            ) from exc
        return {}
    _wait_for_rewrite(client)
    return {k: v for k, v in before.items() if v and v != wanted[k]}


def persistence_settings(client: redis.Redis) -> dict[str, object]:
    """What the server really runs with: the durability's meaning for this run."""
    config = {k: _config_get(client, k) or "?" for k in ("appendonly", "appendfsync", "save")}
    persistence = client.info("persistence")
    return {
        "redis_server": client.info("server").get("redis_version", "?"),
        **config,
        "aof_enabled": bool(persistence.get("aof_enabled")),
    }


class RedisPeer(PeerAdapter):
    """Shared lifecycle of the Redis peers: one db, persistence per durability, ``FLUSHDB`` as reset.

    A subclass sets ``name``, ``db``, ``library`` (the module whose version is recorded) and ``peer_dir`` (whose
    ``tasks.py`` the base loads as ``_mod``), and implements ``open_library`` / ``close_library`` and the
    enqueue/queue-depth/worker methods.
    """

    db: int = 0
    library: str = "?"
    peer_dir: Path = PEERS_DIR
    durabilities = DURABILITIES

    def __init__(self) -> None:
        self.url = url_for_db(self.db)
        self._client: redis.Redis | None = None
        self._restore: dict[str, str] = {}
        self._durability = ""
        self._tasks: ModuleType | None = None  # the peer's tasks module, loaded by ``open_library``

    @property
    def _mod(self) -> ModuleType:
        if self._tasks is None:
            raise RuntimeError("setup() has not been called")
        return self._tasks

    @property
    def client(self) -> redis.Redis:
        """The harness's own connection to the peer's db (reset, settings, persistence)."""
        if self._client is None:
            raise RuntimeError("setup() has not been called")
        return self._client

    def setup(self, state_dir: Path, durability: str) -> None:
        if durability not in self.durabilities:
            raise ValueError(f"{self.name}: unknown durability {durability!r}")
        state_dir.mkdir(parents=True, exist_ok=True)
        self._durability = durability
        self._client = connect(self.url)
        self._restore = apply_persistence(self._client, durability)
        self._tasks = load_tasks(self.peer_dir / "tasks.py", self.tasks_env())
        self.open_library()

    def open_library(self) -> None:
        """Create and connect the library's producer-side client from ``self._mod`` (before any timing)."""
        raise NotImplementedError

    def close_library(self) -> None:  # An optional hook, not abstract.
        """Release what ``open_library`` made (the tasks module is still loaded)."""

    def reset(self) -> None:
        self.client.flushdb()

    def tasks_env(self) -> dict[str, str]:
        """Environment a peer's ``tasks.py`` reads, in the harness and in the workers."""
        return {URL_VAR: self.url}

    def spawn_workers(self, cmd: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
        """Start the library's worker CLI from the peer's directory with its ``tasks`` module importable."""
        worker_env = {
            **env,
            **self.tasks_env(),
            "PYTHONPATH": os.pathsep.join([str(self.peer_dir), str(PEERS_DIR)]),
        }
        return spawn(cmd, worker_env, cwd=self.peer_dir, log=log)

    def settings(self) -> dict[str, object]:
        module = sys.modules.get(self.library)
        version = getattr(module, "__version__", None) or getattr(module, "VERSION", "?")
        return {self.library: str(version), "redis_db": self.db, **persistence_settings(self.client)}

    def close(self) -> None:
        if self._tasks is not None:
            self.close_library()
            self._tasks = None
        if self._client is not None:
            with contextlib.suppress(redis.RedisError):
                for key, value in self._restore.items():
                    self._client.config_set(key, value)
            self._client.close()
            self._client = None
            self._restore = {}

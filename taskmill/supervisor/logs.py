"""The daemon's logging: human-readable lines by default, JSON lines on request, reopened on SIGHUP.

taskmill itself never logs payload values at INFO or above (task ids and types only), so a log shipper
never sees task arguments. Reopening on SIGHUP lets logrotate move the file away without a restart.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import msgspec

from ..settings import LoggingConfig

HUMAN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s[%(process)d]: %(message)s"
_installed: logging.Handler | None = None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC), level, logger, pid, msg, and exc when present."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z", "level": record.levelname.lower(), "logger": record.name,
            "pid": record.process, "msg": record.getMessage(),
        }  # fmt: skip
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return msgspec.json.encode(doc).decode()


def configure(cfg: LoggingConfig) -> None:
    """Install (or replace, reopening the file) the handler on the root logger."""
    global _installed
    if cfg.file:
        os.makedirs(os.path.dirname(cfg.file) or ".", exist_ok=True)
        handler: logging.Handler = logging.FileHandler(cfg.file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if cfg.format == "json" else logging.Formatter(HUMAN_FORMAT))
    root = logging.getLogger()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.addHandler(handler)
    root.setLevel(cfg.level.upper())
    _installed = handler

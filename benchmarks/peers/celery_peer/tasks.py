"""Celery side of the peer benchmark: the app (Redis broker, no result backend) and the two tasks.

Imported as the top-level module ``tasks`` by ``celery -A tasks worker`` (this directory and ``peers/`` on
``PYTHONPATH``) and by the harness (``adapter.py`` loads this file under the same name), so the task names are
``tasks.noop`` and ``tasks.cpu`` on both sides. The broker URL, db included, comes from ``PEERS_REDIS_URL``.
Options are Celery's defaults (early ack, prefetch multiplier 4); the tasks return None, so no backend is set.
"""

from __future__ import annotations

import os

import taskbody
from celery import Celery

app = Celery("tasks", broker=os.environ["PEERS_REDIS_URL"])
app.conf.broker_connection_retry_on_startup = True  # The default; set so Celery 5 does not warn about it.


@app.task
def noop(i: int, t_submit: float, kind: str) -> None:
    taskbody.noop(i, t_submit, kind)


@app.task
def cpu(i: int, t_submit: float) -> None:
    taskbody.cpu(i, t_submit)

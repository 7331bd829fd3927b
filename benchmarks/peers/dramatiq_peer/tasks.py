"""Dramatiq side of the peer benchmark: a ``RedisBroker`` and the two actors.

Imported as the top-level module ``tasks`` by ``dramatiq tasks`` (this directory and ``peers/`` on
``PYTHONPATH``) and by the harness (``adapter.py`` loads this file under the same name). The broker's URL, db
included, comes from ``PEERS_REDIS_URL``; middleware and actor options are Dramatiq's defaults.
"""

from __future__ import annotations

import os

import dramatiq
import taskbody
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["PEERS_REDIS_URL"])
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(i: int, t_submit: float, kind: str) -> None:
    taskbody.noop(i, t_submit, kind)


@dramatiq.actor
def cpu(i: int, t_submit: float) -> None:
    taskbody.cpu(i, t_submit)

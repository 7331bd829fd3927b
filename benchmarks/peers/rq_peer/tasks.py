"""RQ side of the peer benchmark: the two tasks, as plain functions.

Imported as the top-level module ``tasks`` by the work horses of ``rq worker-pool`` (this directory and
``peers/`` on ``PYTHONPATH``) and by the harness (``adapter.py`` loads this file under the same name), because
RQ stores a job's function as ``<module>.<name>`` and imports it in the worker. The Redis connection is the
worker CLI's ``-u URL``; this module needs none.
"""

from __future__ import annotations

import taskbody


def noop(i: int, t_submit: float, kind: str) -> None:
    taskbody.noop(i, t_submit, kind)


def cpu(i: int, t_submit: float) -> None:
    taskbody.cpu(i, t_submit)

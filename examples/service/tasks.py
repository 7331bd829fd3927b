"""Task types and executors of the example service, loaded by the daemon and by every worker process.

The daemon imports this module because ``examples/taskmill.toml`` lists ``"service.tasks:media"`` and
``"service.tasks:mail"`` in ``domains`` (with ``python_path = ["."]``, relative to the TOML file).
Applications import the same module to submit typed tasks (see ``submit.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import ClassVar

import taskmill as tm

log = logging.getLogger(__name__)

media = tm.Domain("media", default_priority=tm.Priority.NORMAL, max_concurrency=2)
mail = tm.Domain("mail", default_retry=tm.RetryPolicy.exponential(5, base=1.0, max=60.0))


class Thumbnail(tm.Task, frozen=True):
    """CPU-bound: hashes ``rounds`` times, standing in for image work (a sync executor has a worker to itself)."""

    task_type: ClassVar[str] = "thumbnail"
    path: str
    width: int
    rounds: int = 20_000

    def key(self) -> str:
        return f"{self.path}@{self.width}"


class SendEmail(tm.Task, frozen=True):
    """IO-bound: an async executor; many share one worker."""

    task_type: ClassVar[str] = "send_email"
    to: str
    subject: str


@media.executor(Thumbnail)
def thumbnail(task: Thumbnail, ctx: tm.TaskContext) -> None:
    digest = task.path.encode()
    for i in range(task.rounds):
        digest = hashlib.sha256(digest).digest()
        if i % 5_000 == 0:
            ctx.progress.report(i / task.rounds)
    log.debug("thumbnail %s done", ctx.record.id)  # ids, never payload values, at INFO and above


@mail.executor(SendEmail)
async def send_email(task: SendEmail, ctx: tm.TaskContext) -> None:
    await asyncio.sleep(0.05)  # stands in for an SMTP round trip
    ctx.record_net_tx_bytes(len(task.subject))

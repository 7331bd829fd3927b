"""Stopping running attempts: a cancel message, then a signal, then SIGKILL of the worker's process group.

Used for cancel, supersede, pause and preemption (``reason="request"``: where the run lands is read from its
row), for time limits (``"timeout"``) and for hung workers (``"hang"``) — those two count as failed attempts.
Only the attempt a worker is executing escalates; one still queued behind it is dropped by the worker when
it gets there.

A worker killed at the end of the grace period has to be replaced before its slot takes work again, and a
worker takes a few hundred milliseconds to boot. So once a stop looks likely to end in a kill (the attempt
is still running a while after the signal, and the kill is less than :attr:`Stopper.standby_lead` away),
the supervisor is asked to boot a standby for that worker's slot; the kill then costs no boot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from .. import faults
from ..protocol import Cancel
from ..store.records import Claimed
from .pool import WorkerHandle

Reason = Literal["request", "timeout", "hang"]
SIGNAL_AFTER_S = 0.01  # cooperative window before the signal: ctx.cancelled checks usually win it
STANDBY_AFTER_S = 0.1  # still running this long after the signal: it ignores it, a kill is likely


class StopOrder:
    __slots__ = ("kill_at", "reason", "signal_at", "standby_at", "task", "worker")

    def __init__(self, worker: WorkerHandle, task: Claimed, reason: Reason) -> None:
        self.worker = worker
        self.task = task
        self.reason = reason
        self.signal_at: float | None = None
        self.kill_at: float | None = None
        self.standby_at: float | None = None


def executing(worker: WorkerHandle, task: Claimed) -> bool:
    if (task.id, task.attempt) in worker.asyncs:
        return True
    return bool(worker.sync) and worker.sync[0] is task


class Stopper:
    def __init__(self, grace: float, hook_timeout: float) -> None:
        self.grace = grace
        self.hook_timeout = hook_timeout
        self.orders: dict[tuple[int, int], StopOrder] = {}
        self.standby: Callable[[WorkerHandle], None] | None = None  # boots a replacement ahead of a kill
        self.standby_lead = 1.0  # seconds before a kill to start that boot (the supervisor keeps it ~2 boots)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self.orders

    def stop(self, worker: WorkerHandle, task: Claimed, reason: Reason, *, hook: bool = False) -> None:
        key = (task.id, task.attempt)
        if key in self.orders:
            return
        order = self.orders[key] = StopOrder(worker, task, reason)
        worker.send_urgent(Cancel(task.id, task.attempt, False, hook))
        if executing(worker, task):
            self._arm(order, hook)

    def _arm(self, order: StopOrder, hook: bool) -> None:
        now = time.monotonic()
        order.signal_at = now + SIGNAL_AFTER_S
        order.kill_at = now + self.grace + (self.hook_timeout if hook else 0.0)
        if self.standby is not None:
            order.standby_at = min(max(order.signal_at + STANDBY_AFTER_S, order.kill_at - self.standby_lead),
                                   order.kill_at)  # fmt: skip

    def stopping(self, worker: WorkerHandle) -> bool:
        """A stop order stands against an attempt of this worker."""
        return any(o.worker is worker for o in self.orders.values())

    def promoted(self, worker: WorkerHandle) -> None:
        """The worker's queue head changed: a stop order for the new head now escalates too."""
        if worker.sync:
            order = self.orders.get((worker.sync[0].id, worker.sync[0].attempt))
            if order is not None and order.kill_at is None:
                self._arm(order, False)

    def kill_now(self, worker: WorkerHandle, task: Claimed, reason: Reason) -> None:
        """Time limit or hang: no cooperation expected, kill the worker's process group at once."""
        self.orders[(task.id, task.attempt)] = StopOrder(worker, task, reason)
        worker.kill()

    def pop(self, task_id: int, attempt: int) -> StopOrder | None:
        return self.orders.pop((task_id, attempt), None) if self.orders else None

    def forget_worker(self, worker: WorkerHandle) -> dict[tuple[int, int], StopOrder]:
        gone = {k: o for k, o in self.orders.items() if o.worker is worker}
        for k in gone:
            del self.orders[k]
        return gone

    def tick(self, now: float) -> float | None:
        """Escalate what is due; returns the next deadline (monotonic) or None."""
        nxt: float | None = None
        for order in list(self.orders.values()):
            if order.signal_at is not None and now >= order.signal_at:
                order.signal_at = None
                order.worker.send_urgent(Cancel(order.task.id, order.task.attempt, True, False))
                if faults.FAULTS:
                    faults.hit("after_preempt_signal")
            if order.standby_at is not None and now >= order.standby_at:
                order.standby_at = None
                if self.standby is not None and order.kill_at is not None and executing(order.worker, order.task):
                    self.standby(order.worker)
            if order.kill_at is not None and now >= order.kill_at:
                order.kill_at = None
                order.worker.kill()
            for t in (order.signal_at, order.standby_at, order.kill_at):
                if t is not None and (nxt is None or t < nxt):
                    nxt = t
        return nxt

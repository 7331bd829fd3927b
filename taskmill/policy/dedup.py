"""What resubmitting the key of an active task does under ``on_duplicate="skip"``: nothing, a priority upgrade
or a requeue. Pure, so the store's write path and a client's read-only probe (:func:`probe_pays`) decide alike."""

from __future__ import annotations

from typing import Literal

Action = Literal["upgrade", "requeue"] | None

PROBE_AFTER = 0.5  # a client probes once this share of its recent single submits were duplicates or rejections
PROBE_WEIGHT = 0.1  # the weight of the newest submit in that share


def skip_action(status: str, priority: int, requeue: int, requeue_priority: int | None, new_priority: int) -> Action:
    """``upgrade``: a strictly more urgent resubmission of a queued (or paused) task raises its priority.
    ``requeue``: a resubmission of a running (or paused) task runs it once more after it ends, unless a requeue
    at least as urgent is already set. None: a plain duplicate, nothing to write."""
    if status in ("pending", "paused") and new_priority < priority:
        return "upgrade"
    if status in ("running", "paused") and (
        not requeue or (255 if requeue_priority is None else requeue_priority) > new_priority
    ):
        return "requeue"
    return None


def duplicate_share(previous: float, was_duplicate: bool) -> float:
    """The running share of duplicates among a client's single submits (an exponential average)."""
    return previous + PROBE_WEIGHT * ((1.0 if was_duplicate else 0.0) - previous)


def probe_pays(share: float) -> bool:
    """Whether to look the key up before taking the write lock. A probe settles a duplicate with one read that
    never waits for the supervisor's transaction (and commits nothing); it costs a submit that does insert one
    more statement, so it pays only while most submits are duplicates."""
    return share >= PROBE_AFTER

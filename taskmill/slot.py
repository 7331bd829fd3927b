"""The executing slot: what a worker's main thread runs now, in shared memory the supervisor reads after a death.

Standard library only, so ``taskmill.supervisor.prespawn`` can create one before anything else is imported.
"""

from __future__ import annotations

import mmap
import os
import struct


class ExecutingSlot:
    """What a worker's main thread is executing right now, in 24 bytes of memory shared with the supervisor.

    Results travel in batches, so when a worker dies its supervisor cannot tell from the pipe alone which
    task killed it: the head of its queue may have finished already, its result still unsent. The worker
    writes (task id, attempt) here just before calling a sync executor and clears it just after, two memory
    writes the task's negated id once it is done; the supervisor reads it once the worker is dead. A death
    between tasks is charged to the task that just finished if its result never arrived (it may have broken
    the worker, or its frame), so no task can loop for ever. A third word checks the other two, so a write
    torn by the kill reads as unknown.
    """

    _REC = struct.Struct("<qqq")
    _MAGIC = 0x7461736B6D696C6C  # "taskmill"
    UNKNOWN = (-1, -1)

    def __init__(self, fd: int) -> None:
        self.map = mmap.mmap(fd, self._REC.size)

    @classmethod
    def create(cls) -> tuple[ExecutingSlot, int] | None:
        """A new cleared slot and the fd to hand to the worker, or None where memfd is unavailable."""
        try:
            fd = os.memfd_create("taskmill-executing", os.MFD_CLOEXEC)
            os.ftruncate(fd, cls._REC.size)
        except (AttributeError, OSError):
            return None
        slot = cls(fd)
        slot.clear()
        return slot, fd

    def set(self, task_id: int, attempt: int) -> None:
        self._REC.pack_into(self.map, 0, task_id, attempt, task_id ^ (attempt << 1) ^ self._MAGIC)

    def clear(self) -> None:
        self._REC.pack_into(self.map, 0, 0, 0, self._MAGIC)

    def done(self, task_id: int, attempt: int) -> None:
        self.set(-task_id, attempt)

    def read(self) -> tuple[int, int] | None:
        """(task id, attempt) being executed; (-task id, attempt) if that one is done and nothing else has
        started; None if nothing ever ran; :attr:`UNKNOWN` if the record is torn."""
        task_id, attempt, check = self._REC.unpack_from(self.map, 0)
        if check != task_id ^ (attempt << 1) ^ self._MAGIC:
            return self.UNKNOWN
        return None if task_id == 0 else (task_id, attempt)

    def close(self) -> None:
        self.map.close()

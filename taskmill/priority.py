"""Task priority: 0..255, lower is more urgent (the original's u8 scale)."""

from __future__ import annotations

from typing import ClassVar


class Priority(int):
    """An int in 0..255 with named levels; ``Priority.HIGH < Priority.NORMAL`` means HIGH runs first."""

    REALTIME: ClassVar[Priority]
    HIGH: ClassVar[Priority]
    NORMAL: ClassVar[Priority]
    BACKGROUND: ClassVar[Priority]
    IDLE: ClassVar[Priority]

    def __new__(cls, value: int) -> Priority:
        v = int(value)
        if not 0 <= v <= 255:
            raise ValueError(f"priority must be in 0..255 (lower is more urgent), got {value!r}")
        return super().__new__(cls, v)

    def is_more_urgent_than(self, other: int) -> bool:
        return int(self) < int(other)

    def __repr__(self) -> str:
        name = _NAMES.get(int(self))
        return f"Priority.{name}" if name else f"Priority({int(self)})"


Priority.REALTIME = Priority(0)  # type: ignore[misc]
Priority.HIGH = Priority(64)  # type: ignore[misc]
Priority.NORMAL = Priority(128)  # type: ignore[misc]
Priority.BACKGROUND = Priority(192)  # type: ignore[misc]
Priority.IDLE = Priority(255)  # type: ignore[misc]
_NAMES = {0: "REALTIME", 64: "HIGH", 128: "NORMAL", 192: "BACKGROUND", 255: "IDLE"}


def as_priority(value: int | None, default: int = 128) -> int:
    """Validate an optional priority, returning a plain int for storage."""
    if value is None:
        return default
    return int(Priority(value))

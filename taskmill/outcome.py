"""What a submission did. Not an error: a duplicate or a rejected submission is a normal answer."""

from __future__ import annotations

from typing import Literal

import msgspec

OutcomeKind = Literal["inserted", "duplicate", "upgraded", "requeued", "superseded", "rejected"]


class SubmitOutcome(msgspec.Struct, frozen=True):
    """``kind`` says what happened; ``id`` is the new or affected task (None for duplicate/rejected).

    ``superseded``: ``id`` is the task now holding the key and ``replaced_id`` the one it replaced (the same id
    when a pending task is updated in place).
    """

    kind: OutcomeKind
    id: int | None = None
    replaced_id: int | None = None
    group_paused: bool = False
    paused: bool = False  # stored paused: its domain or group is paused
    blocked: bool = False  # stored blocked: it waits for dependencies (``depends_on``)

    @property
    def is_inserted(self) -> bool:
        return self.kind in ("inserted", "superseded")

    @property
    def is_duplicate(self) -> bool:
        return self.kind == "duplicate"


class BatchOutcome(msgspec.Struct, frozen=True):
    """Outcomes of :meth:`submit_batch`, one per input item, in input order."""

    outcomes: list[SubmitOutcome]

    def inserted(self) -> list[int]:
        return [o.id for o in self.outcomes if o.kind == "inserted" and o.id is not None]

    def upgraded(self) -> list[int]:
        return [o.id for o in self.outcomes if o.kind == "upgraded" and o.id is not None]

    def requeued(self) -> list[int]:
        return [o.id for o in self.outcomes if o.kind == "requeued" and o.id is not None]

    def superseded(self) -> list[int]:
        return [o.id for o in self.outcomes if o.kind == "superseded" and o.id is not None]

    @property
    def duplicated_count(self) -> int:
        return sum(1 for o in self.outcomes if o.kind == "duplicate")

    @property
    def rejected_count(self) -> int:
        return sum(1 for o in self.outcomes if o.kind == "rejected")

    def __len__(self) -> int:
        return len(self.outcomes)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.outcomes)

    def __getitem__(self, i: int) -> SubmitOutcome:
        return self.outcomes[i]

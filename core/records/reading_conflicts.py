"""One reading, one choice: settling a conflict on any part of a vital-sign reading.

A reading is written as several registers together (the canonical value, the value and
unit as typed, the flag). Corrected on two workstations at once, each of those that differ
is a conflict of its own; a person choosing one side of one of them chooses that whole
reading: every part written by the same correction is kept, so the stored value can never
end up from one side and the value as typed from the other.
"""

from __future__ import annotations

from typing import Any

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError
from core.records.spec import Mutation

READING_FIELDS = ("value", "entered_value", "entered_unit", "flag")


def settle_reading(
    field: str,
    candidates: dict[str, Any],
    chosen: str | None,
    typed: str | None,
    author: str,
) -> Mutation | None:
    """The settling mutation for a chosen side of a reading's conflict (None: a typed-in
    value, or another field, settled as any register is)."""
    if field not in READING_FIELDS or chosen is None:
        return None

    def settle(doc: RecordDoc, hlc: str) -> None:
        live = crdt.all_live(doc)
        picked = next((e for e in live.get(field, []) if e.write_id == chosen), None)
        if picked is None:
            raise NotFoundError(f"the chosen value {chosen!r} is no longer live")
        for name in READING_FIELDS:
            entries = live.get(name, [])
            same = [e for e in entries if (e.hlc, e.author) == (picked.hlc, picked.author)]
            # A part that correction did not write (none today: corrections write all)
            # stays as it is, its own conflict if it has one.
            if same:
                crdt.write(doc, name, same[0].value, hlc, author)

    return settle

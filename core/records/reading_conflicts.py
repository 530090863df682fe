"""One reading, one choice: settling a conflict on any part of a vital-sign reading.

A reading is written as several registers together (the canonical value, the value and
unit as typed, the flag). Corrected on two workstations at once, each of those that differ
is a conflict of its own; a person choosing one side of one of them chooses that whole
reading: every part written by the same correction is kept, so the stored value can never
end up from one side and the value as typed from the other.

An appointment moved on two workstations at once is settled the same way: its start, end
and clinician as one move wrote them.
"""

from __future__ import annotations

from typing import Any

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError
from core.records.spec import Mutation

READING_FIELDS = ("value", "entered_value", "entered_unit", "flag")


MOVE_FIELDS = ("starts_at", "ends_at", "clinician")


def settle_reading(
    field: str,
    candidates: dict[str, Any],
    chosen: str | None,
    typed: str | None,
    author: str,
) -> Mutation | None:
    """The settling mutation for a chosen side of a reading's conflict (None: a typed-in
    value, or another field, settled as any register is)."""
    return _settle_together(READING_FIELDS, field, chosen, author)


def settle_move(
    field: str,
    candidates: dict[str, Any],
    chosen: str | None,
    typed: str | None,
    author: str,
) -> Mutation | None:
    """The same for an appointment moved on two workstations at once: choosing one side's
    start keeps that move's end (and clinician), never one move's start with the other's
    end."""
    return _settle_together(MOVE_FIELDS, field, chosen, author)


def _settle_together(
    group: tuple[str, ...], field: str, chosen: str | None, author: str
) -> Mutation | None:
    if field not in group or chosen is None:
        return None

    def settle(doc: RecordDoc, hlc: str) -> None:
        live = crdt.all_live(doc)
        picked = next((e for e in live.get(field, []) if e.write_id == chosen), None)
        if picked is None:
            raise NotFoundError(f"the chosen value {chosen!r} is no longer live")
        for name in group:
            entries = live.get(name, [])
            same = [e for e in entries if (e.hlc, e.author) == (picked.hlc, picked.author)]
            # A part that correction did not write (none today: corrections write all)
            # stays as it is, its own conflict if it has one.
            if same:
                crdt.write(doc, name, same[0].value, hlc, author)

    return settle

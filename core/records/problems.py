"""Problems (diagnoses) on a patient's chart, coded with ICD-10-CM.

A problem's description is the code's own description, chosen from the shipped code list
(``icd10``); text without a code is only stored when the person chose "uncoded".
Resolving replaces the item by a resolved copy with the date (``chart_lists``), so the
problem list's history keeps what was active and when it ended; who recorded a problem and
who resolved it, and when, are read from that history (``list_history``). Adding a problem
already active on the chart (the same code, or the same text but for case) is refused with
``DuplicateWarning`` until the person confirms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.records import icd10, merged
from core.records.chart_lists import (
    DuplicateWarning,
    ListWriter,
    Values,
    check_visit,
    current_item,
    dated,
    same_text,
)
from core.records.clinic import ClinicRecords, clean_item
from core.records.crdt import RecordDoc
from core.records.errors import ValidationError
from core.records.list_history import ended_line, when_by, with_history
from core.records.merged import Reader
from core.records.types import PROBLEMS
from core.store.database import Transaction


@dataclass(frozen=True)
class Problem:
    """One problem as the chart shows it, and who recorded it when."""

    id: str
    patient_id: str
    code: str | None
    description: str
    status: str  # active or resolved
    onset: str | None  # 2019, 2019-05 or 2019-05-14
    resolved: str | None
    encounter_id: str | None
    # From the list's history (``list_history``): when the problem was recorded and by
    # whom (a user name), and for a resolved one when and by whom the resolution was.
    recorded_at: str | None = None
    recorded_by: str | None = None
    resolved_at: str | None = None
    resolved_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)

    @property
    def label(self) -> str:
        """``I10 Essential (primary) hypertension`` or ``(uncoded) Back pain``."""
        return f"{self.code or '(uncoded)'} {self.description}"

    def history_lines(self, names: Mapping[str, str]) -> list[str]:
        """``Recorded 2026-12-04 09:12 by Dr Amara Okafor`` and, resolved, ``Resolved
        2027-01-10 (recorded 2027-01-12 08:30 by Dr M Chen)``: who did what when, by full
        name (``names``: user name -> full name; else the user name)."""
        lines = [f"Recorded {when_by(self.recorded_at, self.recorded_by, names)}"]
        if self.status == "resolved":
            lines.append(
                ended_line(PROBLEMS.name, self.resolved, self.resolved_at, self.resolved_by, names)
            )
        return lines


# The conditions table's columns, as the first fields of ``Problem`` (the rest: history).
ROW_FIELDS = PROBLEMS.column_names
_COLUMNS = ", ".join(ROW_FIELDS)


class Problems:
    """Problem-list operations on behalf of the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records
        self._list = ListWriter(records, PROBLEMS)

    def add(
        self,
        patient_id: str,
        code: str | None = None,
        uncoded: str | None = None,
        onset: str | None = None,
        encounter_id: str | None = None,
        allow_duplicate: bool = False,
    ) -> Problem:
        """Record a problem: an ICD-10-CM ``code`` (its description is the code list's), or
        ``uncoded`` text the person chose to record without a code; never both. One already
        active on the chart (``duplicates``) raises ``DuplicateWarning`` (nothing saved)
        unless ``allow_duplicate``: the person saw the warning and goes on."""
        if (code is None) == (uncoded is None):
            raise ValidationError("code", "give an ICD-10-CM code, or choose uncoded text")
        typed: dict[str, str | None]
        if code is not None:
            found = icd10.lookup(code)
            typed = {"code": found.code, "description": found.description}
        else:
            typed = {"code": None, "description": uncoded}
        value = clean_item(
            PROBLEMS,
            {**typed, "description": typed["description"] if code is None else found.code,
             "onset": onset, "encounter_id": encounter_id},
        )  # fmt: skip
        if code is not None:
            # The code list's own text, as it is: a few exceed the 200 characters typed text
            # may have (S06.815D has 228).
            value["description"] = found.description

        def add(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            check_visit(tx, patient_id, encounter_id)
            if not allow_duplicate:
                same = self._duplicates(tx, patient_id, value["code"], value["description"])
                if same:
                    label = f"{value['code'] or '(uncoded)'} {value['description']}"
                    raise DuplicateWarning(label, "problem", same)
            return [self._list.add(doc, value, hlc)]

        details = {"code": str(value["code"] or "uncoded")}
        if allow_duplicate:
            details["confirmed_duplicate"] = "yes"
        added = self._list.write("problem.add", patient_id, details, add)
        return self._get(added[0])  # written: the gate checked the write

    @staticmethod
    def _duplicates(
        db: Reader, patient_id: str, code: object, description: object
    ) -> list[Problem]:
        """The patient's active problems adding one with ``code`` and ``description`` would
        repeat: the same code, or the same text but for case and spacing (an uncoded "back
        pain" repeats "Back pain", and text a coded problem's own description)."""
        rows = db.query(
            f"SELECT {_COLUMNS} FROM conditions WHERE {merged.IN_CHART}",
            (merged.chart_ids_json(db, patient_id),),
        )
        same = [
            p
            for p in (Problem(*r) for r in rows)
            if p.status != "resolved"
            and ((code and p.code == code) or same_text(p.description, description))
        ]
        return with_history(db, PROBLEMS.name, sorted(same, key=lambda p: p.id))

    def resolve(
        self, item_id: str, date: str | None = None, encounter_id: str | None = None
    ) -> Problem:
        """Mark an active problem resolved on ``date`` (default today); it stays on the
        list, resolved. ``encounter_id``: the visit it is resolved in (one of the
        patient's; none if not given), which then lists it resolved
        (``visits.visit_list_items``); the resolved copy keeps the visit it was recorded
        in, the resolution's visit being named by the change (the list's history)."""
        patient_id = self._list.patient_of(item_id, "problem")
        resolved = dated(PROBLEMS, "resolved", date)

        def resolve(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            check_visit(tx, patient_id, encounter_id)
            old = current_item(doc, PROBLEMS.name, item_id, "problem")
            if old.get("status") == "resolved":
                raise ValidationError("status", "this problem is already resolved")
            onset = str(old.get("onset") or "")
            if onset and resolved and resolved[: len(onset)] < onset:
                raise ValidationError("resolved", f"{resolved} is before the onset ({onset})")
            new: Values = {**old, "status": "resolved", "resolved": resolved}
            return self._list.replace(doc, item_id, [new], hlc, encounter_id)

        added = self._list.write("problem.resolve", patient_id, {"item_id": item_id}, resolve)
        return self._get(added[0])  # written: the gate checked the write

    def get(self, item_id: str) -> Problem:
        """One problem by its item id; refused (audited) unless the signed-in person may
        see problems on its patient's chart (``problems.list``)."""
        found = self._get(item_id)
        self.records.require("problems.list", found.patient_id)
        return found

    def _get(self, item_id: str) -> Problem:
        """One problem, unchecked: for this class's own flows, after a write."""
        rows = self.records.db.query(f"SELECT {_COLUMNS} FROM conditions WHERE id = ?", (item_id,))
        if not rows:
            self._list.patient_of(item_id, "problem")  # raises NotFoundError
        return with_history(self.records.db, PROBLEMS.name, [Problem(*rows[0])])[0]

    def list(self, patient_id: str, include_resolved: bool = False) -> list[Problem]:
        """The patient's problems: active ones by onset (unknown last), then resolved ones,
        most recently resolved first."""
        self.records.get_patient(patient_id)
        self.records.require("problems.list", patient_id)
        rows = self.records.db.query(
            f"SELECT {_COLUMNS} FROM conditions WHERE {merged.IN_CHART}",
            (merged.chart_ids_json(self.records.db, patient_id),),
        )
        problems = with_history(self.records.db, PROBLEMS.name, [Problem(*r) for r in rows])
        active = sorted(
            (p for p in problems if p.status != "resolved"),
            key=lambda p: (p.onset is None, p.onset or "", p.description.casefold()),
        )
        if not include_resolved:
            return active
        resolved = sorted(
            (p for p in problems if p.status == "resolved"),
            key=lambda p: (p.resolved or "", p.description.casefold()),
            reverse=True,
        )
        return active + resolved

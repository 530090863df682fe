"""Medications on a patient's chart: start, stop, change dose; active and past lists.

Stopping replaces the item by a stopped copy with the stop date; changing a dose stops the
old item and starts a new one the same day, in one change, so the list shows the history
(what was taken, from when to when). Starting a medication whose name matches a recorded
allergy (``allergy_match``) is refused with ``AllergyWarning``, and one already active on
the chart (the same name but for case) with ``DuplicateWarning``, until the person confirms.

Who recorded a medication and when, who stopped it (or changed its dose, which is no stop)
and who prescribed it are read from the list's history (``list_history``): the clinician
starting a medication (or changing its dose) who says they prescribe it is recorded as its
prescriber by the change itself (``prescribing``); one recorded from elsewhere keeps the
prescriber's name as typed (``prescriber``), or none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.records import merged
from core.records.allergy_match import AllergyMatch, match
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
from core.records.errors import RecordError, ValidationError
from core.records.list_history import ended_line, when_by, with_history
from core.records.merged import Reader
from core.records.models import Allergy
from core.records.types import ALLERGIES, MEDICATIONS
from core.store.database import Transaction

# What a person types when starting a medication (the rest is set by the operations).
START_FIELDS = (
    "name", "strength", "dose", "route", "frequency", "start", "reason", "prescriber",
    "encounter_id",
)  # fmt: skip
# What a dose change may change; the name and the reason (the same indication) are carried
# over from the medication changed. The prescriber is whoever the person changing it names,
# and the visit is the one it is changed in (given as ``encounter_id``), never the old
# one's: neither is known to be the old one's.
DOSE_FIELDS = ("strength", "dose", "route", "frequency")
CARRIED_FIELDS = ("name", "reason")


def _check_prescriber(value: Values, prescribing: bool) -> None:
    """Refuse a prescriber's name typed by a clinician saying they prescribe it themselves:
    which of the two prescribed it would be anyone's guess."""
    if prescribing and value.get("prescriber"):
        raise ValidationError(
            "prescriber",
            "you are recorded as the prescriber: leave the name blank, or say it was "
            "prescribed elsewhere",
        )


class AllergyWarning(RecordError):
    """The medication matches a recorded allergy: nothing was saved; start it again with
    the person's confirmation to save it."""

    def __init__(self, name: str, matches: list[AllergyMatch]) -> None:
        listed = "; ".join(m.describe() for m in matches)
        super().__init__(f"{name} matches a recorded allergy: {listed}")
        self.name = name
        self.matches = matches


@dataclass(frozen=True)
class Medication:
    """One medication as the chart shows it (active, or stopped: history), and who
    recorded, prescribed and stopped it when."""

    id: str
    patient_id: str
    name: str
    strength: str | None
    dose: str | None
    route: str | None
    frequency: str | None
    start: str | None
    stop: str | None
    reason: str | None
    prescriber: str | None
    encounter_id: str | None
    status: str | None  # active or stopped (None: recorded before statuses, active)
    # From the list's history (``list_history``): when it was recorded and by whom (a user
    # name); who prescribed it, when the clinician starting it said it was them (else
    # ``prescriber`` names whoever was typed, if anyone); when and by whom it was stopped.
    # An old dose was not stopped but changed: ``changed_to`` is the new dose's item id
    # (``stopped_at``/``stopped_by`` then say when and by whom); a new dose's
    # ``changed_from`` the old one's.
    recorded_at: str | None = None
    recorded_by: str | None = None
    prescribed_by: str | None = None
    stopped_at: str | None = None
    stopped_by: str | None = None
    changed_to: str | None = None
    changed_from: str | None = None

    @property
    def active(self) -> bool:
        """Still taken."""
        return self.status != "stopped"

    @property
    def instructions(self) -> str:
        """``500 mg, 1 tablet by mouth twice daily``."""
        how = " ".join(x for x in (self.dose, self.route, self.frequency) if x)
        return ", ".join(x for x in (self.strength, how) if x)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)

    def prescribed_text(self, names: Mapping[str, str]) -> str:
        """``Dr Amara Okafor`` (the clinician who said they prescribed it, by full name),
        else the prescriber's name as typed, else ``""``."""
        if self.prescribed_by:
            return names.get(self.prescribed_by, self.prescribed_by)
        return self.prescriber or ""

    def history_lines(
        self, names: Mapping[str, str], others: Mapping[str, Medication] | None = None
    ) -> list[str]:
        """Who did what when, by full name (``names``: user name -> full name): ``Recorded
        2026-12-04 09:12 by Dr Amara Okafor``, who prescribed it, and for a past one ``Dose
        changed to 1000 mg, 1 tablet on 2027-01-10 by Dr M Chen`` (``others``: the chart's
        medications by id, to name the new dose) or ``Stopped 2027-01-10 (recorded ...)``."""
        lines = [f"Recorded {when_by(self.recorded_at, self.recorded_by, names)}"]
        prescribed = self.prescribed_text(names)
        lines.append(f"Prescribed by {prescribed}" if prescribed else "Prescriber not recorded")
        if self.active:
            return lines
        by = when_by(None, self.stopped_by, names) if self.stopped_at else ""
        if self.changed_to is not None:
            new = (others or {}).get(self.changed_to)
            to = f" to {new.instructions}" if new is not None and new.instructions else ""
            lines.append(f"Dose changed{to} on {self.stop or '(date not recorded)'} {by}".strip())
        else:
            lines.append(
                ended_line(MEDICATIONS.name, self.stop, self.stopped_at, self.stopped_by, names)
            )
        return lines


# The medications table's columns, as the first fields of ``Medication`` (the rest:
# history).
ROW_FIELDS = (
    *("id", "patient_id", "name", "strength", "dose", "route", "frequency", "start", "stop"),
    *("reason", "prescriber", "encounter_id", "status"),
)
_COLUMNS = ", ".join(ROW_FIELDS)


_ALLERGY_COLUMNS = ", ".join(ALLERGIES.column_names)


class Medications:
    """Medication operations on behalf of the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records
        self._list = ListWriter(records, MEDICATIONS)

    def start(
        self,
        patient_id: str,
        fields: Mapping[str, str | None],
        confirm_allergy: bool = False,
        allow_duplicate: bool = False,
        prescribing: bool = False,
    ) -> Medication:
        """Start a medication. A match with a recorded allergy raises ``AllergyWarning``
        (nothing saved) unless ``confirm_allergy``: the person saw the warning and goes on;
        the same for one already active on the chart (``DuplicateWarning``) and
        ``allow_duplicate``. ``prescribing``: the signed-in clinician says they prescribe
        it (recorded as its prescriber; no ``prescriber`` name is then typed); otherwise it
        was prescribed elsewhere, by the ``prescriber`` typed if known."""
        unknown = sorted(set(fields) - set(START_FIELDS))
        if unknown:
            raise ValidationError(unknown[0], "is not a medication field")
        value = clean_item(MEDICATIONS, {**fields, "status": "active", "stop": None})
        _check_prescriber(value, prescribing)
        name = str(value["name"])

        def start(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            check_visit(tx, patient_id, fields.get("encounter_id"))
            if not confirm_allergy:
                self._warn(tx, patient_id, name)
            if not allow_duplicate:
                same = self._duplicates(tx, patient_id, name)
                if same:
                    raise DuplicateWarning(name, "medication", same)
            return [self._list.add(doc, value, hlc, prescribed=prescribing)]

        details = {"confirmed_allergy": "yes" if confirm_allergy else "no"}
        if allow_duplicate:
            details["confirmed_duplicate"] = "yes"
        added = self._list.write("medication.start", patient_id, details, start)
        return self._get(added[0])  # written: the gate checked the write

    def warning_heeded(self, patient_id: str) -> None:
        """Record that the person was shown the allergy warning for a medication of this
        patient and chose not to start it (an audit entry, ``medication.not_started``;
        nothing on the chart changes). Heeding the warning is a clinical decision as much
        as overriding it (``medication.start`` with ``confirmed_allergy``): both are in the
        log. Like every audit entry it names no clinical value (not the medication)."""
        records = self.records
        records.get_patient(patient_id)
        details = {"patient_id": patient_id, "allergy_warning": "heeded"}
        with records.db.write(
            records.actor, "medication.not_started", "patient", patient_id, details
        ):
            pass

    @staticmethod
    def _warn(tx: Transaction, patient_id: str, name: str) -> None:
        rows = tx.query(
            f"SELECT {_ALLERGY_COLUMNS} FROM allergies WHERE {merged.IN_CHART}",
            (merged.chart_ids_json(tx, patient_id),),
        )
        found = match(name, [Allergy(*r) for r in rows])
        if found:
            raise AllergyWarning(name, found)

    @staticmethod
    def _duplicates(db: Reader, patient_id: str, name: str) -> list[Medication]:
        """The patient's active medications of the same name (but for case and spacing):
        a medication has no code, its name is what says which drug it is."""
        rows = db.query(
            f"SELECT {_COLUMNS} FROM medications WHERE {merged.IN_CHART}",
            (merged.chart_ids_json(db, patient_id),),
        )
        same = [m for m in (Medication(*r) for r in rows) if m.active and same_text(m.name, name)]
        return with_history(db, MEDICATIONS.name, sorted(same, key=lambda m: m.id))

    def allergy_matches(self, patient_id: str, name: str) -> list[AllergyMatch]:
        """The patient's recorded allergies ``name`` matches (for a form to warn early)."""
        return match(name, self.records.allergies(patient_id))

    def stop(
        self, item_id: str, date: str | None = None, encounter_id: str | None = None
    ) -> Medication:
        """Stop an active medication on ``date`` (default today); it stays as history.
        ``encounter_id``: the visit it is stopped in (one of the patient's; none if not
        given), which then lists it stopped (``visits.visit_list_items``). The stopped
        copy keeps the visit it was started in: the stop's visit is named by the change
        (the list's history), so no stored field changes meaning for older releases."""
        patient_id = self._list.patient_of(item_id, "medication")
        stop = dated(MEDICATIONS, "stop", date)

        def stop_it(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            check_visit(tx, patient_id, encounter_id)
            old = self._active_item(doc, item_id, stop)
            stopped: Values = {**old, "status": "stopped", "stop": stop}
            return self._list.replace(doc, item_id, [stopped], hlc, encounter_id)

        added = self._list.write("medication.stop", patient_id, {"item_id": item_id}, stop_it)
        return self._get(added[0])  # written: the gate checked the write

    def change_dose(
        self,
        item_id: str,
        changes: Mapping[str, str | None],
        date: str | None = None,
        prescriber: str | None = None,
        encounter_id: str | None = None,
        prescribing: bool = False,
    ) -> Medication:
        """Stop the medication on ``date`` (default today) and start it again with the
        changed strength, dose, route or frequency from that day, in one change; the new
        medication. It keeps the old one's name and reason; its prescriber is the signed-in
        clinician when ``prescribing``, else ``prescriber`` (none if not given, never the
        old one's) and its visit ``encounter_id`` (the visit
        the dose is changed in, one of the patient's; none if not given, never the old
        one's). The stopped old dose keeps the visit it was started in; the visit the new
        dose names lists both (``visits.visit_list_items``)."""
        unknown = sorted(set(changes) - set(DOSE_FIELDS))
        if unknown:
            raise ValidationError(
                unknown[0], "a dose change changes strength, dose, route or frequency"
            )
        patient_id = self._list.patient_of(item_id, "medication")
        when = dated(MEDICATIONS, "start", date)

        def change(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            check_visit(tx, patient_id, encounter_id)
            old = self._active_item(doc, item_id, when)
            kept = {f: old.get(f) for f in (*CARRIED_FIELDS, *DOSE_FIELDS)}
            typed = {**kept, **changes, "prescriber": prescriber, "encounter_id": encounter_id}
            new = clean_item(MEDICATIONS, typed)  # type: ignore[arg-type]
            _check_prescriber(new, prescribing)
            new |= {"start": when, "stop": None, "status": "active"}
            if all(new.get(f) == old.get(f) for f in DOSE_FIELDS):
                raise ValidationError("dose", "nothing changed: type the new dose")
            stopped: Values = {**old, "status": "stopped", "stop": when}
            return self._list.replace(doc, item_id, [stopped, new], hlc, prescribed=prescribing)[1:]

        details = {"item_id": item_id}
        added = self._list.write("medication.change_dose", patient_id, details, change)
        return self._get(added[0])  # written: the gate checked the write

    @staticmethod
    def _active_item(doc: RecordDoc, item_id: str, when: str | None) -> Values:
        old = current_item(doc, MEDICATIONS.name, item_id, "medication")
        if old.get("status") == "stopped":
            raise ValidationError("status", "this medication is already stopped")
        start = old.get("start")
        if isinstance(start, str) and when is not None and when < start:
            raise ValidationError("stop", f"{when} is before the medication started ({start})")
        return old

    def get(self, item_id: str) -> Medication:
        """One medication by its item id; refused (audited) unless the signed-in person may
        see medications on its patient's chart (``medications.list``)."""
        found = self._get(item_id)
        self.records.require("medications.list", found.patient_id)
        return found

    def _get(self, item_id: str) -> Medication:
        """One medication, unchecked: for this class's own flows, after a write."""
        rows = self.records.db.query(f"SELECT {_COLUMNS} FROM medications WHERE id = ?", (item_id,))
        if not rows:
            self._list.patient_of(item_id, "medication")  # raises NotFoundError
        return with_history(self.records.db, MEDICATIONS.name, [Medication(*rows[0])])[0]

    def list(self, patient_id: str, include_past: bool = False) -> list[Medication]:
        """Active medications by name; with ``include_past``, then the stopped ones, most
        recently stopped first."""
        self.records.get_patient(patient_id)
        self.records.require("medications.list", patient_id)
        rows = self.records.db.query(
            f"SELECT {_COLUMNS} FROM medications WHERE {merged.IN_CHART}",
            (merged.chart_ids_json(self.records.db, patient_id),),
        )
        meds = with_history(self.records.db, MEDICATIONS.name, [Medication(*r) for r in rows])
        active = sorted((m for m in meds if m.active), key=lambda m: (m.name.casefold(), m.id))
        if not include_past:
            return active
        past = sorted(
            (m for m in meds if not m.active),
            key=lambda m: (m.stop or "", m.start or "", m.id),
            reverse=True,
        )
        return active + past

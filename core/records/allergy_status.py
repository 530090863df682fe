"""Allergies in use: edit reaction and severity; "No known allergies" as an answer.

"No known allergies" (NKA) is something a clinician asked and recorded; "nothing recorded"
means nobody asked yet. The patient's ``allergy_status`` register holds ``nka`` once NKA is
recorded, and ``allergies`` from the first recorded allergy on (``ClinicRecords.add_allergy``
writes it in the same change), which ends NKA. Recording NKA while allergies are on the
list is refused. Two workstations recording NKA and an allergy concurrently write the
register concurrently: an ordinary register conflict in the inbox.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from core.records import crdt
from core.records.chart_lists import ListWriter, current_item
from core.records.clinic import ClinicRecords, clean_item
from core.records.crdt import RecordDoc
from core.records.errors import ValidationError
from core.records.models import Allergy, Patient
from core.records.types import ALLERGIES
from core.store.database import Transaction

NKA = "nka"
HAS_ALLERGIES = "allergies"


class AllergyState(Enum):
    """What the chart's allergy banner says."""

    ALLERGIES = "allergies"  # red: the substances and severities
    NONE_KNOWN = "nka"  # neutral: "No known allergies"
    NOT_RECORDED = "unknown"  # amber: "Allergies not recorded yet"


def allergy_state(patient: Patient, allergies: list[Allergy] | tuple[Allergy, ...]) -> AllergyState:
    """The state the banner shows: any allergy on the list wins over a recorded NKA."""
    if allergies:
        return AllergyState.ALLERGIES
    if patient.allergy_status == NKA:
        return AllergyState.NONE_KNOWN
    return AllergyState.NOT_RECORDED


_SEVERITY_RANK = {"severe": 0, "moderate": 1, "mild": 2}


def most_severe_first(allergies: Sequence[Allergy]) -> list[Allergy]:
    """Allergies in the order the banner and the printed pages list them: severe first,
    then moderate, mild and unstated, each by substance."""
    return sorted(allergies, key=lambda a: (_SEVERITY_RANK.get(a.severity or "", 3), a.substance))


class AllergyRecords:
    """Allergy operations beyond add and remove (those are on ``ClinicRecords``)."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records
        self._list = ListWriter(records, ALLERGIES)

    def record_no_known_allergies(self, patient_id: str) -> Patient:
        """Record that the patient was asked and has no known allergies."""
        actor = self.records.actor

        def nka(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            listed = crdt.elements(doc, ALLERGIES.name)
            if listed:
                names = ", ".join(str(e.value.get("substance")) for e in listed)
                raise ValidationError(
                    "allergy_status",
                    f"the patient has recorded allergies ({names}): remove those entered in "
                    "error before recording no known allergies",
                )
            crdt.write(doc, "allergy_status", NKA, hlc, actor)
            return []

        self._list.write("allergy.none_known", patient_id, {}, nka)
        return self.records.get_patient(patient_id)

    def edit(self, allergy_id: str, reaction: str | None, severity: str | None) -> Allergy:
        """Change an allergy's reaction and severity (the substance stays: a different
        substance is a different allergy). Stored as remove + add in one change."""
        patient_id = self._list.patient_of(allergy_id, "allergy")

        def edit(tx: Transaction, doc: RecordDoc, hlc: str) -> list[str]:
            old = current_item(doc, ALLERGIES.name, allergy_id, "allergy")
            new = clean_item(
                ALLERGIES,
                {"substance": str(old["substance"]), "reaction": reaction, "severity": severity},
            )
            if new == old:
                raise ValidationError("reaction", "nothing changed")
            return self._list.replace(doc, allergy_id, [new], hlc)

        added = self._list.write("allergy.edit", patient_id, {"allergy_id": allergy_id}, edit)
        return next(a for a in self.records.allergies(patient_id) if a.id == added[0])

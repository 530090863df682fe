"""A chart worth printing, made through the ordinary write path: shared by the report,
CLI and app tests."""

from __future__ import annotations

from dataclasses import dataclass

from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.notes import Notes
from core.records.vital_signs import VitalSigns

DAY = "2026-11-30"


@dataclass(frozen=True)
class SampleChart:
    """Ids of what was recorded."""

    patient_id: str
    visit_id: str
    other_patient_id: str
    third_patient_id: str


def sample_chart(records: ClinicRecords) -> SampleChart:
    """Zoë Ñúñez-Ødegård with an allergy, problems (one resolved), medications (one
    stopped), vitals (an older weight in kg; the visit's set typed in °F and lb, the
    temperature high), a visit with a diagnosis, a medication started, a signed note and
    its addendum, and a day of appointments for her and two others (one cancelled)."""
    p = records.add_patient("Ñúñez-Ødegård", "Zoë", "1984-03-02", "female", "RC-1001")
    records.add_allergy(p.id, "Penicillin", "hives", "severe")
    e = ClinicalEntries(records)
    e.add_to_list(p.id, "problems", {"description": "Type 2 diabetes mellitus", "code": "E11.9"})
    e.add_to_list(
        p.id,
        "problems",
        {"description": "Sprained ankle", "code": "S93.401A", "status": "resolved"},
    )
    e.add_to_list(
        p.id,
        "medications",
        {"name": "Metformin", "dose": "500 mg", "route": "oral", "frequency": "twice daily"},
    )
    stopped = e.add_to_list(p.id, "medications", {"name": "Ibuprofen", "dose": "400 mg"})
    e.remove_from_list(p.id, "medications", stopped)
    visit = e.add(
        "encounter",
        p.id,
        {"started_at": f"{DAY}T09:05", "reason": "Diabetes review", "clinician": "admin"},
    )
    # Vitals as staff type them, through the catalogue: an older weight in kg, then the
    # visit's set typed in °F and lb (stored as 38.89 Cel and 69.853 kg, printed as typed).
    vitals = VitalSigns(records)
    vitals.record(p.id, {"weight": "80.0"}, {"weight": "kg"}, "2026-10-01T10:00")
    vitals.record(
        p.id,
        {"temperature": "102", "weight": "154", "systolic": "128", "diastolic": "82"},
        {"temperature": "[degF]", "weight": "[lb_av]"},
        f"{DAY}T09:10",
        visit,
    )
    # What was decided in the visit: a diagnosis and a medication started, linked to it.
    e.add_to_list(
        p.id,
        "problems",
        {"description": "Essential (primary) hypertension", "code": "I10", "encounter_id": visit},
    )
    e.add_to_list(
        p.id,
        "medications",
        {"name": "Lisinopril", "strength": "10 mg", "dose": "1 tablet", "route": "oral",
         "frequency": "once daily", "start": DAY, "encounter_id": visit},
    )  # fmt: skip
    notes = Notes(records)
    note = notes.create(
        p.id, "S: feels well.\nA: diabetes controlled.\nP: continue metformin.", visit
    )
    notes.sign(note.id)
    notes.add_addendum(note.id, "HbA1c came back at 6.8 %.")
    notes.create(p.id, "An unrelated note outside the visit.")
    other = records.add_patient("Петров", "Иван", "1950-07-14")
    third = records.add_patient("O'Brien", "Seán", "2001-12-24")
    for patient, starts, ends, status in (
        (third.id, "11:00", "11:20", "booked"),
        (p.id, "09:00", "09:20", "arrived"),
        (other.id, "08:30", "08:45", "booked"),
        (other.id, "14:00", "14:15", "cancelled"),
    ):
        e.add(
            "appointment",
            patient,
            {
                "starts_at": f"{DAY}T{starts}",
                "ends_at": f"{DAY}T{ends}",
                "reason": "Follow-up",
                "status": status,
            },
        )
    e.add(
        "appointment",
        third.id,
        {"starts_at": "2026-12-01T08:00", "ends_at": "2026-12-01T08:15", "status": "booked"},
    )
    return SampleChart(p.id, visit, other.id, third.id)

"""What a printed report holds, gathered in ONE place from the records.

Each ``*_report`` function reads what its page shows and returns plain frozen dataclasses
with the values already worded for print (dates and times in local time, full names of
staff); :mod:`core.reports.pdf` only lays them out. Printing patient data is a disclosure,
so each function writes its audit entry (``print.summary``, ``print.visit``,
``print.day``) through the write path, in the same transaction as the reads: no report is
produced without its entry, and a failed read leaves no entry.

The problems, medications and visit fields are read from the derived tables as they
stand, by column name, so fields the chart gains later (a medication's stop date, a
visit's end) print once they exist without changes elsewhere; extend here. Vitals are read
through ``VitalSigns`` and worded by ``core.reports.vital_text``: as typed (``102 °F ▲``),
never as the stored code and converted value. A visit's diagnoses and medication changes
are the list items carrying its id (``visit_list_items``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from core.records import merged
from core.records.allergy_status import AllergyState, allergy_state, most_severe_first
from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError
from core.records.models import Allergy, Patient
from core.records.notes import ON_CHART, load_note
from core.records.types import choice_label
from core.records.validation import calendar_date
from core.records.visits import visit_list_items
from core.records.vital_signs import VitalSigns, visit_readings
from core.reports.vital_text import VitalText, latest_texts, visit_texts


@dataclass(frozen=True)
class PrintContext:
    """What every page carries besides its content."""

    clinic: str
    printed_at: str  # local time, "2026-12-04 14:05"
    printed_by: str  # "Ana Ruiz (ana)"


@dataclass(frozen=True)
class PatientLine:
    """The patient a page is about: name and birth date head every page."""

    name: str  # "FAMILY, Given"
    birth_date: str
    sex: str | None
    mrn: str | None
    phone: str | None


@dataclass(frozen=True)
class AllergyLine:
    """One allergy as printed."""

    substance: str
    reaction: str | None
    severity: str | None


@dataclass(frozen=True)
class ProblemLine:
    """One problem on the list."""

    description: str
    code: str | None
    status: str
    onset: str | None


@dataclass(frozen=True)
class MedicationLine:
    """One active medication: its name and how it is taken."""

    name: str
    how: str  # "500 mg, oral, twice daily" (what is recorded of dose, route, frequency)


@dataclass(frozen=True)
class VitalLine:
    """One measurement as entered: ``Temperature``, ``102 °F ▲`` (``core.reports.vital_text``)."""

    label: str
    value: str  # as typed, with the unit symbol people read and the high/low mark
    measured_at: str
    flag: str | None = None  # "high", "low" or None
    recorded_by: str = ""  # who recorded it, as a note's author is named ("" unknown)


@dataclass(frozen=True)
class DiagnosisLine:
    """A problem recorded in a visit, or resolved in it."""

    description: str
    code: str | None
    status: str  # "Active" or "Resolved", as the screen words it
    resolved: str | None = None  # the date it was resolved


@dataclass(frozen=True)
class MedicationChangeLine:
    """A medication started (or started again at a new dose) in a visit, stopped in it,
    or the old dose a dose change in it stopped (``dose_changed``)."""

    name: str
    how: str  # "500 mg, 1 tablet, by mouth, twice daily"
    start: str | None
    stop: str | None
    dose_changed: bool = False


@dataclass(frozen=True)
class PatientSummaryReport:
    """A patient summary: demographics, allergies, active problems and medications, and the
    latest value of each vital sign."""

    context: PrintContext
    patient: PatientLine
    allergies: tuple[AllergyLine, ...]
    allergy_state: AllergyState  # as the chart's banner: allergies, none known, not recorded
    problems: tuple[ProblemLine, ...]
    medications: tuple[MedicationLine, ...]
    vitals: tuple[VitalLine, ...]


@dataclass(frozen=True)
class AddendumLine:
    """An addendum to a signed note."""

    body: str
    added_by: str
    added_at: str


@dataclass(frozen=True)
class NoteLine:
    """A note of a visit, with its signature and addenda."""

    body: str
    author: str
    signed_by: str | None  # who signed it (a nurse's note is signed by a clinician)
    signed_at: str | None
    addenda: tuple[AddendumLine, ...]
    # Who else changed its text (full names), after ``author``, who started it.
    editors: tuple[str, ...] = ()


@dataclass(frozen=True)
class VisitReport:
    """A visit note: the patient's allergies, the visit's reason, clinician and times, its
    notes, vitals, the diagnoses made and the medications started or changed in it."""

    context: PrintContext
    patient: PatientLine
    # The patient's allergies as the chart's banner shows them at printing time: a visit
    # note goes to a pharmacy or a referral with its prescriptions.
    allergies: tuple[AllergyLine, ...]
    allergy_state: AllergyState
    reason: str | None
    clinician: str | None
    started_at: str
    ended_at: str | None
    notes: tuple[NoteLine, ...]
    vitals: tuple[VitalLine, ...]
    diagnoses: tuple[DiagnosisLine, ...] = ()
    medications: tuple[MedicationChangeLine, ...] = ()


@dataclass(frozen=True)
class AppointmentLine:
    """One appointment on the day list."""

    starts: str  # "09:30"
    ends: str
    patient: str
    birth_date: str
    mrn: str | None
    reason: str | None
    status: str  # "Arrived", "No-show": as the schedule shows it
    clinician: str | None = None  # once appointments name one


@dataclass(frozen=True)
class DayReport:
    """The day's appointments in time order (cancelled ones are counted, not listed)."""

    context: PrintContext
    day: str  # YYYY-MM-DD
    appointments: tuple[AppointmentLine, ...]
    cancelled: int


# ----- gathering -------------------------------------------------------------------------


def summary_report(records: ClinicRecords, patient_id: str) -> PatientSummaryReport:
    """The patient summary of ``patient_id``, audited as ``print.summary``."""
    with records.db.write(records.actor, "print.summary", "patient", patient_id):
        patient = records.get_patient(patient_id)
        allergies = records.allergies(patient_id)
        chart = (merged.chart_ids_json(records.db, patient_id),)
        problems = [
            r
            for r in _rows(records, "conditions", merged.IN_CHART, chart)
            if (r.get("status") or "active") == "active"
        ]
        medications = [
            r for r in _rows(records, "medications", merged.IN_CHART, chart) if _active(r)
        ]
        vitals = _vital_lines(records, latest_texts(VitalSigns(records).sets(patient_id)))
        return PatientSummaryReport(
            _context(records),
            _patient_line(patient),
            tuple(_allergy_line(a) for a in most_severe_first(allergies)),
            allergy_state(patient, allergies),
            tuple(
                ProblemLine(
                    str(r["description"]),
                    r.get("code") or None,
                    str(r.get("status") or "active"),
                    _date(r.get("onset")),
                )
                for r in sorted(problems, key=lambda r: str(r["description"]).casefold())
            ),
            tuple(
                MedicationLine(str(r["name"]), _how(r))
                for r in sorted(medications, key=lambda r: str(r["name"]).casefold())
            ),
            vitals,
        )


def visit_report(records: ClinicRecords, visit_id: str) -> VisitReport:
    """The note of one visit, audited as ``print.visit`` on the visit's patient."""
    visit = _rows(records, "encounters", "id = ?", (visit_id,))
    if not visit:
        raise NotFoundError(f"no visit with id {visit_id!r}")
    row = visit[0]
    patient_id = str(row["patient_id"])
    with records.db.write(records.actor, "print.visit", "patient", patient_id, {"visit": visit_id}):
        patient = records.get_patient(patient_id)
        allergies = records.allergies(patient_id)
        note_ids = [
            str(r["id"])
            for r in _rows(records, "notes", f"encounter_id = ? AND {ON_CHART}", (visit_id,))
            if r.get("patient_id") == patient_id
        ]
        lines = []
        # Signed notes in the order they were signed, drafts after them.
        # Read under print.visit's check (above), as the visit's vitals below.
        ordered = sorted(
            (load_note(records.db, i) for i in note_ids), key=lambda n: (n.signed_at or "~", n.id)
        )
        for note in ordered:
            author = _person(records, note.author)
            lines.append(
                NoteLine(
                    note.body,
                    author,
                    _person(records, note.signed_by or note.author) if note.signed_at else None,
                    _when(note.signed_at),
                    tuple(
                        AddendumLine(
                            a.body, _person(records, a.recorded_by), _when(a.recorded_at) or ""
                        )
                        for a in note.addenda
                    ),
                    tuple(_person(records, e) for e in note.editors),
                )
            )
        vital_signs = VitalSigns(records)
        sets = [s for s in vital_signs.sets(patient_id) if s.encounter_id == visit_id]
        vitals = visit_texts(sets, visit_readings(records.db, visit_id))
        items = visit_list_items(records, patient_id, visit_id)
        return VisitReport(
            _context(records),
            _patient_line(patient),
            tuple(_allergy_line(a) for a in most_severe_first(allergies)),
            allergy_state(patient, allergies),
            row.get("reason") or None,
            _person(records, row["clinician"]) if row.get("clinician") else None,
            _when(row.get("started_at")) or "",
            _when(row.get("ended_at") or row.get("closed_at")),
            tuple(lines),
            _vital_lines(records, vitals),
            tuple(
                DiagnosisLine(
                    str(p.get("description") or ""),
                    str(p["code"]) if p.get("code") else None,
                    _choice(p.get("status") or "active") or "",
                    _date(p.get("resolved")) if p.get("status") == "resolved" else None,
                )
                for p in sorted(items.get("problems", []), key=_by("description"))
            ),
            tuple(
                MedicationChangeLine(
                    str(m.get("name") or ""),
                    _how(m),
                    _date(m.get("start")),
                    _date(m.get("stop")),
                    bool(m.get("changed_to")),
                )
                # By name; a stable sort keeps an old dose just before its new one.
                for m in sorted(items.get("medications", []), key=_by("name"))
            ),
        )


def day_report(records: ClinicRecords, day: str | None = None) -> DayReport:
    """The appointments of ``day`` (YYYY-MM-DD; today when None) in time order, audited as
    ``print.day`` naming every patient on the list."""
    when = (calendar_date("day", day) if day else dt.date.today()).isoformat()
    rows = _rows(records, "appointments", "substr(starts_at, 1, 10) = ?", (when,))
    listed = sorted(
        (r for r in rows if r.get("status") != "cancelled"),
        key=lambda r: (str(r["starts_at"]), str(r["id"])),
    )
    patient_ids = sorted({str(r["patient_id"]) for r in listed})
    with records.db.write(records.actor, "print.day", "schedule", when, {"patients": patient_ids}):
        patients = {pid: records.get_patient(pid) for pid in patient_ids}
        return DayReport(
            _context(records),
            when,
            tuple(
                AppointmentLine(
                    _clock(str(r["starts_at"])),
                    _clock(str(r["ends_at"])),
                    patients[str(r["patient_id"])].display_name,
                    patients[str(r["patient_id"])].birth_date,
                    patients[str(r["patient_id"])].mrn,
                    r.get("reason") or None,
                    _choice(r.get("status")) or "",
                    _person(records, str(r["clinician"])) if r.get("clinician") else None,
                )
                for r in listed
            ),
            len(rows) - len(listed),
        )


# ----- helpers -----------------------------------------------------------------------------


def _rows(
    records: ClinicRecords, table: str, where: str, params: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Every column of the rows of ``table`` matching ``where``, by name (the table's
    columns as the migrations made them, so columns added later come along)."""
    names = [str(r[1]) for r in records.db.query(f"PRAGMA table_info({table})")]
    rows = records.db.query(
        f"SELECT {', '.join(names)} FROM {table} WHERE {where} ORDER BY id", params
    )
    return [dict(zip(names, r, strict=True)) for r in rows]


def _context(records: ClinicRecords) -> PrintContext:
    printed_at = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    return PrintContext(records.clinic_name(), printed_at, _person(records, records.actor, True))


def _person(records: ClinicRecords, username: str, with_login: bool = False) -> str:
    """A staff member's full name (and login name); anything else stands for itself."""
    user = records.user(username) if username else None
    if user is None or not user.full_name:
        return username
    return f"{user.full_name} ({user.username})" if with_login else user.full_name


def _patient_line(p: Patient) -> PatientLine:
    return PatientLine(p.display_name, p.birth_date, _choice(p.sex), p.mrn, p.phone)


def _allergy_line(a: Allergy) -> AllergyLine:
    return AllergyLine(a.substance, a.reaction, _choice(a.severity))


def _choice(value: Any) -> str | None:
    """A coded choice (a status, a sex, a severity) worded as the screen shows it
    (``no_show`` -> ``No-show``), never as its stored code."""
    return choice_label(str(value)) if value else None


def _active(row: dict[str, Any]) -> bool:
    """A medication is active unless marked inactive or stopped."""
    if row.get("active") in (0, "0", False):
        return False
    return not any(row.get(k) for k in ("stop", "stopped", "stopped_at", "stop_date"))


def _how(row: dict[str, Any]) -> str:
    parts = (row.get(k) for k in ("strength", "dose", "route", "frequency"))
    return ", ".join(str(p) for p in parts if p)


def _vital_lines(records: ClinicRecords, texts: list[VitalText]) -> tuple[VitalLine, ...]:
    names = {u: _person(records, u) for u in {t.recorded_by for t in texts} - {""}}
    return tuple(
        VitalLine(
            t.label, t.value, _when(t.observed_at) or "", t.flag, names.get(t.recorded_by, "")
        )
        for t in texts
    )


def _by(name: str) -> Any:
    """A sort key: an item's ``name`` field, case-insensitively."""
    return lambda item: str(item.get(name) or "").casefold()


def _when(value: Any) -> str | None:
    """A stored time as printed: local time to the minute (a stored UTC time is converted;
    a wall-clock time such as an appointment's is printed as typed)."""
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone()
    return parsed.strftime("%Y-%m-%d %H:%M")


def _clock(value: str) -> str:
    when = _when(value) or ""
    return when[11:] or when


def _date(value: Any) -> str | None:
    return str(value) if value else None

"""The demo clinic's generator: deterministic, and it yields what the demo promises."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from core.records.clinic import ClinicRecords
from core.records.demo_data import OLDEST_AGE, SCHEDULE_DAYS, VITAL_CODES, DemoCounts, generate
from tests.unit.sync.replicas import new_replica

TODAY = dt.date(2026, 12, 4)  # a Friday: the week around it has a weekend
PATIENTS = 60


def _content(records: ClinicRecords) -> dict[str, list[Any]]:
    """What the clinic holds, without record ids and write times (random per database):
    every row keyed by its patient's MRN."""
    db = records.db
    mrn = "(SELECT mrn FROM patients p WHERE p.id = t.patient_id)"
    return {
        "patients": db.query(
            "SELECT mrn, family, given, birth_date, sex, phone FROM patients ORDER BY mrn"
        ),
        "allergies": db.query(
            f"SELECT {mrn}, substance, reaction, severity FROM allergies t ORDER BY 1, 2"
        ),
        "problems": db.query(
            f"SELECT {mrn}, code, description, status FROM conditions t ORDER BY 1, 2"
        ),
        "medications": db.query(
            f"SELECT {mrn}, name, dose, route, frequency FROM medications t ORDER BY 1, 2"
        ),
        "encounters": db.query(
            f"SELECT {mrn}, started_at, reason, clinician FROM encounters t ORDER BY 1, 2"
        ),
        "observations": db.query(
            f"SELECT {mrn}, observed_at, code, value, unit FROM observations t ORDER BY 1, 2, 3"
        ),
        "notes": db.query(f"SELECT {mrn}, body, signed_at IS NOT NULL FROM notes t ORDER BY 1, 2"),
        "appointments": db.query(
            f"SELECT {mrn}, starts_at, ends_at, reason, status FROM appointments t ORDER BY 2, 1"
        ),
    }


@pytest.fixture(scope="module")
def clinic() -> tuple[ClinicRecords, DemoCounts]:
    records = new_replica("demo")
    return records, generate(records, seed=7, patients=PATIENTS, today=TODAY)


def test_the_same_seed_gives_the_same_clinic(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    first, counts = clinic
    again = new_replica("demo")
    assert generate(again, seed=7, patients=PATIENTS, today=TODAY) == counts
    assert _content(again) == _content(first)
    other = new_replica("demo")
    generate(other, seed=8, patients=PATIENTS, today=TODAY)
    assert _content(other)["patients"] != _content(first)["patients"]


def test_counts_are_what_the_database_holds(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    records, counts = clinic
    held = {name: len(rows) for name, rows in _content(records).items()}
    signed = sum(1 for row in _content(records)["notes"] if row[2])
    assert counts.to_dict() == {**held, "signed_notes": signed}
    # Every record type of a chart is there, and notes both signed and still drafts.
    assert all(n > 0 for n in counts.to_dict().values()), counts
    assert 0 < counts.signed_notes < counts.notes
    assert counts.patients == PATIENTS


def test_every_visit_has_vitals_and_a_note(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    db = clinic[0].db
    assert db.query(
        "SELECT count(*) FROM encounters e WHERE NOT EXISTS "
        "(SELECT 1 FROM notes n WHERE n.encounter_id = e.id) OR NOT EXISTS "
        "(SELECT 1 FROM observations o WHERE o.encounter_id = e.id)"
    ) == [(0,)]
    codes = {str(r[0]) for r in db.query("SELECT DISTINCT code FROM observations")}
    assert codes == {code for code, _unit in VITAL_CODES.values()}
    # Visits are in the past and never before the patient was born.
    assert db.query(
        "SELECT count(*) FROM encounters e JOIN patients p ON p.id = e.patient_id "
        "WHERE e.started_at < p.birth_date OR e.started_at >= ?",
        (TODAY.isoformat(),),
    ) == [(0,)]


def test_ages_run_from_newborn_to_95(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    births = [dt.date.fromisoformat(str(r[0])) for r in clinic[0].db.query(
        "SELECT birth_date FROM patients"
    )]  # fmt: skip
    ages_in_days = sorted((TODAY - b).days for b in births)
    assert ages_in_days[0] < 31  # a newborn
    assert ages_in_days[-1] // 365.25 == OLDEST_AGE
    decades = {days // 3653 for days in ages_in_days}
    assert len(decades) >= 8  # spread over the whole range, not bunched


def test_names_across_cultures(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    names = [f"{r[0]} {r[1]}" for r in clinic[0].db.query("SELECT family, given FROM patients")]
    assert any("'" in n for n in names), names
    assert any(not n.isascii() for n in names), names
    # The search finds an apostrophe name without the apostrophe.
    apostrophe = next(n.split()[0] for n in names if "'" in n.split()[0])
    found = clinic[0].search_patients(apostrophe.replace("'", "").lower())
    assert any(p.family == apostrophe for p in found)


def test_a_week_of_schedule_around_today(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    rows = clinic[0].db.query("SELECT starts_at, status FROM appointments")
    days = {dt.date.fromisoformat(str(s)[:10]) for s, _ in rows}
    week = {TODAY + dt.timedelta(days=d) for d in range(-SCHEDULE_DAYS, SCHEDULE_DAYS + 1)}
    assert days == week
    today = [str(status) for s, status in rows if str(s).startswith(TODAY.isoformat())]
    assert {"done", "arrived", "booked"} <= set(today), today
    past = {str(status) for s, status in rows if str(s) < TODAY.isoformat()}
    future = {str(status) for s, status in rows if str(s) > (TODAY + dt.timedelta(1)).isoformat()}
    assert past <= {"done", "cancelled", "no_show"} and future <= {"booked", "cancelled"}
    # Who is waiting today arrived at the desk (the waiting room counts from then).
    arrived = clinic[0].db.query("SELECT arrived_at FROM appointments WHERE status = 'arrived'")
    assert arrived and all(a for (a,) in arrived)


def test_problems_are_coded_and_fit_the_age(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    rows = clinic[0].db.query(
        "SELECT c.code, p.birth_date FROM conditions c JOIN patients p ON p.id = c.patient_id"
    )
    assert rows and all(code for code, _born in rows)
    # Hypertension is not given to children.
    assert all(
        (TODAY - dt.date.fromisoformat(str(born))).days >= 35 * 365
        for code, born in rows
        if code == "I10"
    )


def test_every_write_went_through_the_write_path(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    db = clinic[0].db
    counts = clinic[1]
    ops = db.query("SELECT count(*) FROM oplog")[0][0]
    audited: dict[str, int] = dict(
        db.query("SELECT action, count(*) FROM audit_log GROUP BY action")
    )
    # Joining the clinic (tests/clinic_identity.py) is audited and makes no op.
    assert audited.pop("device.signing") == 1
    assert audited["patient.create"] == counts.patients
    # A visit's vitals are one set: one audit entry, one op per vital sign.
    assert audited["vitals.record"] == counts.encounters
    assert db.query("SELECT count(*) FROM observations")[0][0] == counts.observations
    assert audited["encounter.close"] == counts.encounters
    assert audited["note.sign"] == counts.signed_notes
    assert audited["appointment.create"] == counts.appointments
    assert ops == sum(audited.values()) - audited["vitals.record"] + counts.observations

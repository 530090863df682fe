"""The demo clinic's generator: deterministic, and it yields what the demo promises."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from core.records.clinic import ClinicRecords
from core.records.demo_data import (
    CLINICIANS,
    OLDEST_AGE,
    SCHEDULE_DAYS,
    VITAL_CODES,
    DemoCounts,
    generate,
)
from tests.unit.sync.replicas import new_replica

TODAY = dt.date(2026, 12, 4)  # a Friday: the week around it has a weekend
NOW = dt.datetime.combine(TODAY, dt.time(11, 0))  # the demo's now on a given day
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
    # Visits started before the demo's now, never before the patient was born.
    assert db.query(
        "SELECT count(*) FROM encounters e JOIN patients p ON p.id = e.patient_id "
        "WHERE e.started_at < p.birth_date OR e.started_at > ?",
        (NOW.isoformat(timespec="minutes"),),
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
    assert {"done", "in_visit", "arrived", "booked"} <= set(today), today
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
    # Every visit is closed but those in progress (see test_a_patient_in_the_visit_...).
    in_progress = db.query("SELECT count(*) FROM appointments WHERE status = 'in_visit'")[0][0]
    assert audited["encounter.close"] == counts.encounters - in_progress
    assert audited["note.sign"] == counts.signed_notes
    assert audited["appointment.create"] == counts.appointments
    assert ops == sum(audited.values()) - audited["vitals.record"] + counts.observations


def _local(utc: object) -> dt.datetime:
    """A stored UTC timestamp as the clinic's local wall-clock time (as the chart shows it)."""
    return dt.datetime.fromisoformat(str(utc)).astimezone().replace(tzinfo=None)


def test_a_patient_in_the_visit_has_the_visit_open(
    clinic: tuple[ClinicRecords, DemoCounts],
) -> None:
    """The tester's D12: an appointment shown "In visit" had no visit in progress."""
    db = clinic[0].db
    in_visit = db.query(
        "SELECT id, patient_id, starts_at, clinician FROM appointments WHERE status = 'in_visit'"
    )
    assert in_visit
    # Nobody is in two visits at once: neither patient nor clinician.
    assert len({r[1] for r in in_visit}) == len({r[3] for r in in_visit}) == len(in_visit)
    for appointment, patient, starts, clinician in in_visit:
        visits = db.query(
            "SELECT id, started_at, clinician, appointment_id FROM encounters "
            "WHERE patient_id = ? AND closed_at IS NULL",
            (patient,),
        )
        assert len(visits) == 1, (appointment, visits)
        visit, started, seen_by, started_from = visits[0]
        assert (seen_by, started_from) == (clinician, appointment)
        assert str(starts) <= str(started) <= NOW.isoformat(timespec="minutes")
        # In progress: its vitals taken, its note a draft of the clinician's.
        assert db.query("SELECT count(*) FROM observations WHERE encounter_id = ?", (visit,))[0][0]
        assert db.query("SELECT author, signed_at FROM notes WHERE encounter_id = ?", (visit,)) == [
            (clinician, None)
        ]
    # No other visit is open: every visit not in progress is over.
    assert db.query("SELECT count(*) FROM encounters WHERE closed_at IS NULL")[0][0] == len(
        in_visit
    )
    # A patient seen (done) today or on a past day has that visit, closed.
    done = db.query(
        "SELECT a.id, e.closed_at FROM appointments a "
        "LEFT JOIN encounters e ON e.appointment_id = a.id WHERE a.status = 'done'"
    )
    assert done and all(closed for _a, closed in done), done


def test_notes_are_signed_on_the_visit_day_by_its_clinician(
    clinic: tuple[ClinicRecords, DemoCounts],
) -> None:
    """The tester's D12: old notes read "signed today by Demo User"."""
    db = clinic[0].db
    accounts = {username for username, _name in CLINICIANS}
    signed = db.query(
        "SELECT n.signed_at, n.signed_by, n.author, e.started_at, e.closed_at, e.clinician "
        "FROM notes n JOIN encounters e ON e.id = n.encounter_id "
        "WHERE n.signed_at IS NOT NULL"
    )
    assert len(signed) == clinic[1].signed_notes
    for signed_at, signed_by, author, started, closed, clinician in signed:
        when = _local(signed_at)
        assert when.date().isoformat() == str(started)[:10], (signed_at, started)
        assert _local(closed) <= when <= NOW, (signed_at, closed)
        assert signed_by == author == clinician and signed_by in accounts


def test_nothing_done_is_dated_after_now(clinic: tuple[ClinicRecords, DemoCounts]) -> None:
    db = clinic[0].db
    now = NOW.isoformat(timespec="minutes")
    closed = db.query(
        "SELECT e.started_at, e.closed_at, e.closed_by, e.clinician FROM encounters e "
        "WHERE e.closed_at IS NOT NULL"
    )
    assert closed
    for started, closed_at, closed_by, clinician in closed:
        assert str(started) < _local(closed_at).isoformat() and _local(closed_at) <= NOW
        assert closed_by == clinician
    # Vitals measured in their visit: after it started, before it closed, before now.
    late = db.query(
        "SELECT o.observed_at, e.started_at, e.closed_at FROM observations o "
        "JOIN encounters e ON e.id = o.encounter_id "
        "WHERE o.observed_at < e.started_at OR o.observed_at > ?",
        (now,),
    )
    assert late == []
    for observed, closed_at in db.query(
        "SELECT o.observed_at, e.closed_at FROM observations o "
        "JOIN encounters e ON e.id = o.encounter_id WHERE e.closed_at IS NOT NULL"
    ):
        assert dt.datetime.fromisoformat(str(observed)) < _local(closed_at)
    # Nobody is seen or missed before their time; nobody checked in after now (a patient
    # may be in the waiting room early for the next appointment).
    assert db.query(
        "SELECT count(*) FROM appointments WHERE status IN ('done', 'in_visit', 'no_show') "
        "AND starts_at > ?",
        (now,),
    ) == [(0,)]
    for (arrived,) in db.query("SELECT arrived_at FROM appointments WHERE arrived_at IS NOT NULL"):
        assert str(arrived) <= NOW.isoformat()
    # Nobody has an appointment before they were born.
    assert db.query(
        "SELECT count(*) FROM appointments a JOIN patients p ON p.id = a.patient_id "
        "WHERE a.starts_at < p.birth_date"
    ) == [(0,)]


def test_made_early_in_the_morning_nothing_is_done_yet_today() -> None:
    """Made at 08:10 (the real clock, no ``today`` given), today's schedule has nobody seen
    or in a visit yet, and no note, visit or vitals is dated after 08:10."""
    records = new_replica("demo")
    early = dt.datetime.combine(TODAY, dt.time(8, 10))
    generate(records, seed=7, patients=20, clock=lambda: early)
    db = records.db
    today = TODAY.isoformat()
    statuses = {str(s) for (s,) in db.query(
        "SELECT status FROM appointments WHERE starts_at >= ?", (today,)
    )}  # fmt: skip
    assert statuses and statuses <= {"arrived", "booked", "cancelled"}, statuses
    started = [str(s) for (s,) in db.query("SELECT started_at FROM encounters")]
    assert started and max(started) < today
    signed = [_local(s) for (s,) in db.query("SELECT signed_at FROM notes WHERE signed_at > ''")]
    assert signed and max(signed) < early
    assert max(str(o) for (o,) in db.query("SELECT observed_at FROM observations")) < today

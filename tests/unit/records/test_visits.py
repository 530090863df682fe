"""Visits: start (walk-in or from an appointment), what was done in them, close; the V4
migration on data of the previous schema; concurrent edits between replicas."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from core.crypto.secure_memory import SecureMemory
from core.records import crdt
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError, NotFoundError, ValidationError
from core.records.medications import Medications
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.schedule import Appointment, Schedule
from core.records.visits import SOAP_TEMPLATE, Visits, visit_list_items
from core.store.database import Database
from core.store.migrations import MIGRATIONS
from tests.unit.sync.replicas import assert_converged, new_replica, sync_pair


def _patient(r: ClinicRecords) -> str:
    return r.add_patient("Bello", "Ada", "1970-01-01").id


def test_walk_in_visit_defaults_to_the_signed_in_clinician_and_opens() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    visit = Visits(r).start(pid, "Cough")
    assert (visit.patient_id, visit.reason, visit.clinician) == (pid, "Cough", "dr.ade")
    assert visit.status == "open" and visit.closed_at is None and visit.appointment_id is None
    assert len(visit.started_at) == len("2026-12-04T09:30")


def test_named_clinician_must_be_a_user_of_the_clinic() -> None:
    r = new_replica("admin")
    r.add_user("dr.kim", "Min Kim", "clinician", "a long password here")
    pid = _patient(r)
    assert Visits(r).start(pid, clinician="dr.kim").clinician == "dr.kim"
    with pytest.raises(ValidationError, match="'dr\\.nobody' is not a user"):
        Visits(r).start(pid, clinician="dr.nobody")
    assert len(Visits(r).list_visits(pid)) == 1  # the refused one wrote nothing


# The clinic's clock in these tests: Friday 4 December 2026, mid-morning.
NOW = dt.datetime(2026, 12, 4, 9, 10)


def _booked(r: ClinicRecords, pid: str, starts: str = "2026-12-04 09:00") -> Appointment:
    """Dr Ade's 15-minute appointment for ``pid`` about asthma."""
    if r.user("dr.ade") is None:
        r.add_user("dr.ade", "Ade Bello", "clinician", "a long password here")
    return Schedule(r, lambda: NOW).book(
        pid, starts, "dr.ade", minutes=15, reason="Asthma review", allow_overlap=True
    )


def _arrived(r: ClinicRecords, pid: str) -> Appointment:
    """Today's appointment, the patient checked in."""
    return Schedule(r, lambda: NOW).set_status(_booked(r, pid).id, "arrived")


def _audit(r: ClinicRecords, entity_id: str) -> list[str]:
    rows = r.db.query("SELECT action FROM audit_log WHERE entity_id = ? ORDER BY seq", (entity_id,))
    return [str(row[0]) for row in rows]


def test_visit_from_an_appointment_records_it_and_takes_its_reason() -> None:
    r = new_replica("dr.ade")
    pid, other = _patient(r), r.add_patient("Roy", "Lee", "1960-01-01").id
    appt = _arrived(r, pid).id
    with pytest.raises(ValidationError, match="another patient's appointment"):
        Visits(r, lambda: NOW).start(other, appointment_id=appt)
    visit = Visits(r, lambda: NOW).start(pid, appointment_id=appt)
    assert visit.appointment_id == appt and visit.reason == "Asthma review"
    assert visit.started_at == "2026-12-04T09:10"
    with pytest.raises(ValidationError, match="already started from it"):
        Visits(r, lambda: NOW).start(pid, appointment_id=appt)
    with pytest.raises(NotFoundError, match="no appointment with id 'nope'"):
        Visits(r, lambda: NOW).start(pid, appointment_id="nope")


def test_starting_from_an_appointment_sets_it_in_visit_in_the_same_transaction() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    appt = _arrived(r, pid).id
    ops_before = r.db.query("SELECT count(*) FROM oplog")[0][0]
    visit = Visits(r, lambda: NOW).start(pid, appointment_id=appt)
    schedule = Schedule(r, lambda: NOW)
    assert schedule.get(appt).status == "in_visit"
    assert schedule.waiting() == []  # out of the waiting room
    # Both changes are audited, each under its own record, and replicate as two ops.
    assert _audit(r, appt)[-1] == "appointment.status"
    assert _audit(r, visit.id) == ["encounter.create"]
    assert r.db.query("SELECT count(*) FROM oplog")[0][0] == ops_before + 2
    # The one operation cannot half-happen: a refused visit (here its reason) leaves the
    # appointment arrived, with no visit.
    second = _arrived(r, pid).id
    with pytest.raises(ValidationError, match="reason: contains control characters"):
        Visits(r, lambda: NOW).start(pid, "Wheeze\x07", appointment_id=second)
    assert schedule.get(second).status == "arrived"
    assert [v.appointment_id for v in Visits(r).list_visits(pid)] == [appt]
    assert _audit(r, second)[-1] == "appointment.status"  # the arrival, nothing after


@pytest.mark.parametrize("status", ["booked", "cancelled", "no_show", "done"])
def test_only_an_arrived_appointment_starts_a_visit(status: str) -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    appt = _booked(r, pid).id
    schedule = Schedule(r, lambda: NOW)
    for step in {"booked": [], "cancelled": ["cancelled"], "no_show": ["no_show"],
                 "done": ["arrived", "in_visit", "done"]}[status]:  # fmt: skip
        schedule.set_status(appt, step)
    label = {"no_show": "no-show"}.get(status, status)
    with pytest.raises(
        ValidationError, match=f"appointment_id: is {label}; a visit is started from an"
    ):
        Visits(r, lambda: NOW).start(pid, appointment_id=appt)
    assert schedule.get(appt).status == status
    assert Visits(r).list_visits(pid) == []


def test_tomorrow_s_booking_cannot_start_a_visit_and_stays_cancellable() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    tomorrow = _booked(r, pid, "2026-12-05 09:00").id
    with pytest.raises(ValidationError, match="appointment_id: is booked; a visit is started"):
        Visits(r, lambda: NOW).start(pid, appointment_id=tomorrow)
    with pytest.raises(ValidationError, match="only be marked arrived on that day"):
        Schedule(r, lambda: NOW).set_status(tomorrow, "arrived")
    assert Schedule(r, lambda: NOW).cancel(tomorrow, "Away").status == "cancelled"
    assert Visits(r).list_visits(pid) == []


def test_the_chart_s_start_visit_marks_today_s_booking_arrived_in_the_same_transaction() -> None:
    """Started by someone with the patient in front of them (the chart's Start visit), a
    booking of today is marked arrived, then in visit, with the visit: the visit is the
    booked clinician's and the booking does not stay booked. Another day's still cannot."""
    r = new_replica("nora")
    pid = _patient(r)
    appt = _booked(r, pid).id
    tomorrow = _booked(r, pid, "2026-12-05 09:00").id
    with pytest.raises(ValidationError, match="only be marked arrived on that day"):
        Visits(r, lambda: NOW).start(pid, appointment_id=tomorrow, arrived_now=True)
    assert Schedule(r).get(tomorrow).status == "booked"
    visit = Visits(r, lambda: NOW).start(pid, appointment_id=appt, arrived_now=True)
    assert (visit.appointment_id, visit.clinician, visit.reason) == (
        appt, "dr.ade", "Asthma review",
    )  # fmt: skip
    got = Schedule(r).get(appt)
    assert (got.status, got.arrived_at) == ("in_visit", NOW.isoformat())
    assert _audit(r, appt)[-2:] == ["appointment.status", "appointment.status"]
    # A refused start leaves the booking booked: the arrival did not land alone.
    again = _booked(r, pid, "2026-12-04 11:00").id
    with pytest.raises(ValidationError, match="reason: contains control characters"):
        Visits(r, lambda: NOW).start(pid, "Wheeze\x07", appointment_id=again, arrived_now=True)
    assert Schedule(r).get(again).status == "booked"


def test_start_visit_offers_the_patient_s_appointments_of_today_not_yet_started() -> None:
    r = new_replica("dr.ade")
    pid, other = _patient(r), r.add_patient("Roy", "Lee", "1960-01-01").id
    visits = Visits(r, lambda: NOW)
    assert visits.appointments_to_start(pid) == []
    booked = _booked(r, pid, "2026-12-04 14:30").id
    arrived = _arrived(r, pid).id  # 09:00
    started = _arrived(r, pid).id
    visits.start(pid, appointment_id=started)
    cancelled = _booked(r, pid, "2026-12-04 16:00").id
    Schedule(r, lambda: NOW).cancel(cancelled)
    _booked(r, pid, "2026-12-05 09:00")  # tomorrow's
    _booked(r, other, "2026-12-04 10:00")  # another patient's
    assert [a.id for a in visits.appointments_to_start(pid)] == [arrived, booked]


@pytest.mark.strict_authz
def test_a_nurse_is_offered_and_starts_today_s_booking_and_an_administrator_none() -> None:
    """With permissions enforced: a nurse sees the patient's booking of today and starts
    its visit (marking it arrived); an administrator who does not see the schedule is
    offered none, and no refusal is logged for asking."""
    ann = new_replica("ann")
    ann.set_up_clinic("Riverside", "ann", "Ann Founder", "correct horse battery staple")
    ann.add_user("nia", "Nia Nurse", "nurse", "correct horse battery staple")
    ann.add_user("dr.ade", "Ade Bello", "clinician", "correct horse battery staple")
    ann.add_user("adam", "Adam Admin", "admin", "correct horse battery staple")
    pid = ann.add_patient("Reyes", "Maria", "1970-02-03").id
    doctor, nurse = ClinicRecords(ann.db, "dr.ade"), ClinicRecords(ann.db, "nia")
    admin = ClinicRecords(ann.db, "adam")
    appt = Schedule(doctor, lambda: NOW).book(pid, "2026-12-04 14:30", "dr.ade", minutes=20)
    assert [a.id for a in Visits(nurse, lambda: NOW).appointments_to_start(pid)] == [appt.id]
    refused = "SELECT count(*) FROM audit_log WHERE action = 'action.refused'"
    before = ann.db.query(refused)[0][0]
    assert Visits(admin, lambda: NOW).appointments_to_start(pid) == []
    assert ann.db.query(refused)[0][0] == before
    visit = Visits(nurse, lambda: NOW).start(pid, appointment_id=appt.id, arrived_now=True)
    assert (visit.appointment_id, visit.clinician) == (appt.id, "dr.ade")
    assert Schedule(nurse).get(appt.id).status == "in_visit"


def test_an_appointment_already_in_visit_without_a_visit_starts_one_on_its_day_only() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    appt = _arrived(r, pid).id
    Schedule(r, lambda: NOW).start_visit(appt)  # called in at the desk (or by the CLI)
    next_day = NOW + dt.timedelta(days=1)
    with pytest.raises(ValidationError, match="is on 2026-12-04: it can only be marked in visit"):
        Visits(r, lambda: next_day).start(pid, appointment_id=appt)
    assert Visits(r).list_visits(pid) == []
    visit = Visits(r, lambda: NOW).start(pid, appointment_id=appt)
    assert visit.appointment_id == appt
    assert Schedule(r).get(appt).status == "in_visit"
    # An arrival written without the schedule (an older replica) is held to the day too.
    stray = ClinicalEntries(r).add(
        "appointment",
        pid,
        {"starts_at": "2026-12-05T09:00", "ends_at": "2026-12-05T09:15", "status": "arrived"},
    )
    with pytest.raises(ValidationError, match="is on 2026-12-05: it can only be marked in visit"):
        Visits(r, lambda: NOW).start(pid, appointment_id=stray)
    assert Schedule(r).get(stray).status == "arrived"


def test_closing_a_visit_marks_its_appointment_done_in_the_same_transaction() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    appt = _arrived(r, pid).id
    visits = Visits(r, lambda: NOW)
    visit = visits.start(pid, appointment_id=appt)
    walk_in = visits.start(pid, "Cut finger")
    ops_before = r.db.query("SELECT count(*) FROM oplog")[0][0]
    assert visits.close(visit.id).status == "closed"
    assert Schedule(r).get(appt).status == "done"
    assert _audit(r, visit.id)[-1] == "encounter.close"
    assert _audit(r, appt)[-1] == "appointment.status"
    assert r.db.query("SELECT count(*) FROM oplog")[0][0] == ops_before + 2
    assert visits.close(walk_in.id).status == "closed"  # no appointment, nothing else
    # A visit whose appointment the desk moved back to waiting closes and leaves it so.
    again = _arrived(r, pid).id
    second = visits.start(pid, appointment_id=again)
    Schedule(r, lambda: NOW).set_status(again, "arrived")
    visits.close(second.id)
    assert Schedule(r).get(again).status == "arrived"


def test_a_visit_closed_by_mistake_is_reopened_and_takes_its_note() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    appt = _arrived(r, pid).id
    visits = Visits(r, lambda: NOW)
    visit = visits.start(pid, appointment_id=appt)
    closed = visits.close(visit.id)
    with pytest.raises(ValidationError, match="visit is closed"):
        visits.add_note(visit.id)

    reopened = visits.reopen(visit.id)
    assert reopened.status == "open" and reopened.is_open
    assert (reopened.closed_at, reopened.closed_by) == (None, None)
    assert visits.add_note(visit.id, "Wheeze, peak flow 300.").encounter_id == visit.id
    # The audit entry says who reopened it, and who had closed it when.
    [(actor, details)] = r.db.query(
        "SELECT actor, details FROM audit_log WHERE action = 'encounter.reopen' AND entity_id = ?",
        (visit.id,),
    )
    assert actor == "dr.ade"
    assert json.loads(details) == {"closed_at": closed.closed_at, "closed_by": "dr.ade"}
    assert Schedule(r).get(appt).status == "done"  # the appointment is over either way
    with pytest.raises(ValidationError, match="the visit is open"):
        visits.reopen(visit.id)

    assert visits.close(visit.id).status == "closed"  # and closed again, once written
    assert Schedule(r).get(appt).status == "done"
    assert _audit(r, visit.id)[-3:] == ["encounter.close", "encounter.reopen", "encounter.close"]


@pytest.mark.strict_authz
def test_reopening_a_visit_needs_what_closing_it_needs() -> None:
    """Clinicians and nurses close and reopen visits (manage_visit); the front desk neither."""
    ann = new_replica("ann")
    ann.set_up_clinic("Riverside", "ann", "Ann Founder", "correct horse battery staple")
    ann.add_user("doc", "Dr Ade", "clinician", "correct horse battery staple")
    ann.add_user("nia", "Nia Nurse", "nurse", "correct horse battery staple")
    ann.add_user("fred", "Fred Desk", "front_desk", "correct horse battery staple")
    pid = _patient(ClinicRecords(ann.db, "fred"))
    visit = Visits(ClinicRecords(ann.db, "doc")).start(pid, "Cough")
    Visits(ClinicRecords(ann.db, "doc")).close(visit.id)
    with pytest.raises(NotAllowedError, match="reopen a visit"):
        Visits(ClinicRecords(ann.db, "fred")).reopen(visit.id)
    assert Visits(ann).get(visit.id).status == "closed"
    assert Visits(ClinicRecords(ann.db, "nia")).reopen(visit.id).status == "open"


def test_visits_started_in_the_same_minute_list_newest_first() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    ids = []
    for i in range(5):
        ids.append(Visits(r).start(pid, f"walk-in {i}").id)
        time.sleep(0.002)  # recorded times are kept to the millisecond
    assert [v.id for v in Visits(r).list_visits(pid)] == ids[::-1]


def test_timeline_is_newest_first_and_open_filter_and_close() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits = Visits(r)
    ids = [visits.start(pid, f"visit {i}").id for i in range(3)]
    # Started in the same minute: give them distinct times as a real day would.
    for i, vid in enumerate(ids):
        ClinicalEntries(r).update("encounter", vid, {"started_at": f"2026-12-0{i + 1}T09:00"})
    assert [v.id for v in visits.list_visits(pid)] == ids[::-1]
    closed = visits.close(ids[1])
    assert closed.status == "closed" and closed.closed_by == "dr.ade" and closed.closed_at
    assert [v.id for v in visits.list_visits(pid, open_only=True)] == [ids[2], ids[0]]
    assert [v.id for v in visits.list_visits(open_only=True)] == [ids[2], ids[0]]
    with pytest.raises(ValidationError, match="already closed"):
        visits.close(ids[1])
    with pytest.raises(ValidationError, match="visit is closed"):
        visits.add_note(ids[1])
    audit = r.db.query("SELECT action FROM audit_log WHERE entity_id = ?", (ids[1],))
    assert ("encounter.close",) in audit


def test_contents_hold_notes_observations_and_list_items_of_this_visit_only() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, entries = Visits(r), ClinicalEntries(r)
    visit, other = visits.start(pid, "Fever"), visits.start(pid, "Rash")
    first = visits.add_note(visit.id)
    assert first.body == SOAP_TEMPLATE and first.encounter_id == visit.id
    second = visits.add_note(visit.id, "Phoned the lab.")
    visits.add_note(other.id, "Other visit.")
    temp = {"code": "8310-5", "value": "38.2", "unit": "Cel", "observed_at": "2026-12-04T09:10"}
    entries.add("observation", pid, {**temp, "encounter_id": visit.id})
    entries.add("observation", pid, {**temp, "value": "37.0", "encounter_id": other.id})
    # A problem recorded in the visit carries encounter_id (the problems form stores it);
    # one recorded outside any visit does not show.
    _add_list_item(
        r,
        pid,
        "problems",
        {"description": "Otitis media", "status": "active", "encounter_id": visit.id},
    )
    entries.add_to_list(pid, "problems", {"description": "Asthma"})
    _add_list_item(r, pid, "medications", {"name": "Amoxicillin", "encounter_id": visit.id})

    got = visits.contents(visit.id)
    assert [n.id for n in got.notes] == [first.id, second.id]
    assert [o["value"] for o in got.observations] == ["38.2"]
    assert [p["description"] for p in got.problems] == ["Otitis media"]
    assert [m["name"] for m in got.medications] == ["Amoxicillin"]
    assert visit_list_items(r, pid, other.id) == {"problems": [], "medications": []}


def _add_list_item(r: ClinicRecords, pid: str, field: str, value: dict[str, Any]) -> None:
    """A list item as the problem/medication forms of issue #10 will store it."""

    def add(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.add(doc, field, value, hlc, r.actor)

    with r.db.write(r.actor, f"{field}.add", "patient", pid) as tx:
        change(tx, r.actor, pid, "patient", add)


def test_saving_the_same_text_again_writes_nothing() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    note = Visits(r).add_note(Visits(r).start(pid).id)
    before = r.db.query("SELECT count(*) FROM oplog")
    Notes(r).edit(note.id, note.body)
    assert r.db.query("SELECT count(*) FROM oplog") == before


def test_concurrent_visit_field_edits_and_closing_are_conflicts_that_converge() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    pid = _patient(a)
    visit = Visits(a).start(pid, "Cough")
    sync_pair(b, a)
    ClinicalEntries(a).update("encounter", visit.id, {"reason": "Cough and fever"})
    ClinicalEntries(b).update("encounter", visit.id, {"reason": "Wheeze"})
    Visits(a).close(visit.id)
    Visits(b).close(visit.id)
    sync_pair(b, a)
    assert_converged([a, b])
    for r in (a, b):
        # Both closings show: who closed differs (the two closing times may agree to the
        # millisecond in a test, and identical values are no conflict).
        fields = {c.field for c in r.conflicts(visit.id)}
        assert {"closed_by", "reason"} <= fields <= {"closed_at", "closed_by", "reason"}
        [closing] = [c for c in r.conflicts(visit.id) if c.field == "closed_by"]
        assert {c.value for c in closing.candidates} == {"ann", "bob"}
        assert Visits(r).get(visit.id).status == "closed"


def test_v4_migration_keeps_visits_of_the_previous_schema_as_open(tmp_path: Path) -> None:
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    path = tmp_path / "v2.db"
    previous = [m for m in MIGRATIONS if m[0] < 4]
    old = Database.create(path, key, migrations=tuple(previous))
    with old.write("t", "encounter.create", "encounter", "e1") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Okafor', 'Ngozi', '1960-02-02', 'o', 'x', 'x')"
        )
        tx.execute(
            "INSERT INTO encounters (id, patient_id, started_at, reason, clinician) "
            "VALUES ('e1', 'p1', '2026-11-30T10:00', 'Headache', 'dr.ade')"
        )
    old.close()
    db = Database.open(path, key)
    [visit] = Visits(ClinicRecords(db, "t")).list_visits("p1", open_only=True)
    assert (visit.id, visit.reason, visit.clinician) == ("e1", "Headache", "dr.ade")
    assert (visit.status, visit.appointment_id, visit.closed_at) == ("open", None, None)
    assert db.integrity_problems() == []
    db.close()


def test_an_editor_started_before_a_synced_edit_keeps_both_edits() -> None:
    """The editor on A sends its whole text with the text it started from; B's edit,
    synced in meanwhile, stays."""
    a, b = new_replica("ann"), new_replica("bob")
    pid = _patient(a)
    visit = Visits(a).start(pid, "Cough")
    base = "Subjective:\nCough.\n\nPlan:\nReview.\n"
    note = Visits(a).add_note(visit.id, base)
    sync_pair(b, a)
    Notes(b).edit(note.id, "Subjective:\nCough.\n\nPlan:\nReview in 2 weeks.\n")
    sync_pair(b, a)
    typed = "Subjective:\nCough for 3 days, dry.\n\nPlan:\nReview.\n"  # A's screen
    saved = Notes(a).edit(note.id, typed, base)
    assert saved.body == "Subjective:\nCough for 3 days, dry.\n\nPlan:\nReview in 2 weeks.\n"
    sync_pair(b, a)
    assert Notes(b).get(note.id).body == saved.body


def test_merge_edits_keeps_both_where_both_changed_the_same_words() -> None:
    assert (
        crdt.merge_edits("BP normal.", "BP 150/95.", "BP high.")
        == "BP 150/95. [also from another workstation: high.]"
    )
    assert crdt.merge_edits("a b", "a x b", "a b y") == "a x b y"
    assert crdt.merge_edits("a b", "a b", "a c") == "a c"


def test_a_visit_from_an_appointment_is_the_booked_clinicians() -> None:
    r = new_replica("nurse.jo")
    r.add_user("dr.lee", "Dr Sam Lee", "clinician", "a long enough password")
    pid = _patient(r)
    today = dt.date.today()
    appt = ClinicalEntries(r).add(
        "appointment",
        pid,
        {"starts_at": f"{today}T09:00", "ends_at": f"{today}T09:15",
         "clinician": "dr.lee", "status": "arrived"},
    )  # fmt: skip
    # The nurse starts it (rooming the patient); it is still Dr Lee's visit.
    at_nine = dt.datetime.combine(today, dt.time(9, 5))
    visits = Visits(r, clock=lambda: at_nine)
    assert visits.start(pid, appointment_id=appt).clinician == "dr.lee"


def test_nothing_is_written_under_another_patients_visit_by_any_write_path() -> None:
    """The generic writes refuse it as the vitals, problem and medication forms do (remote
    apply quarantines such a record: core/records/visit_chart.py), and write nothing."""
    r = new_replica("dr.ade")
    pid, other = _patient(r), r.add_patient("Roy", "Lee", "1960-01-01").id
    visit = Visits(r, lambda: NOW).start(pid).id
    entries = ClinicalEntries(r)
    reading = {"code": "8867-4", "value": "72", "unit": "/min", "observed_at": "2026-12-04 09:00"}
    refused = "is not a visit of this patient"
    with pytest.raises(ValidationError, match=refused):
        Notes(r).create(other, "wrong chart", visit)
    with pytest.raises(ValidationError, match=refused):
        entries.add("observation", other, {**reading, "encounter_id": visit})
    with pytest.raises(ValidationError, match=refused):
        entries.add_to_list(other, "problems", {"description": "Asthma", "encounter_id": visit})
    kept = entries.add("observation", other, reading)
    with pytest.raises(ValidationError, match=refused):
        entries.update("observation", kept, {"encounter_id": visit})
    with pytest.raises(ValidationError, match=refused):
        Notes(r).create(pid, "no such visit", "no-such-visit")
    assert Notes(r).for_patient(other) == []
    assert entries.get("observation", kept)["encounter_id"] is None
    assert visit_list_items(r, other, visit) == {"problems": [], "medications": []}
    assert ClinicalEntries(r).for_patient("observation", other)[0]["id"] == kept
    note = Notes(r).create(pid, "right chart", visit)  # its own visit: written
    entries.update("observation", entries.add("observation", pid, reading), {"encounter_id": visit})
    assert [n.id for n in Visits(r).contents(visit).notes] == [note.id]


def test_a_dose_change_made_in_a_visit_is_listed_there_with_the_old_dose_it_stopped() -> None:
    """The visit (and so its view and printed note) shows the stop of the old dose and the
    new dose: the new dose alone would read as a new medication, the old one alone as the
    medication stopped."""
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, meds = Visits(r), Medications(r)
    earlier = visits.start(pid, "Diabetes review")
    metformin = meds.start(
        pid, {"name": "Metformin", "strength": "500 mg", "start": "2025-01-10",
              "encounter_id": earlier.id},
    )  # fmt: skip
    visits.close(earlier.id)
    today = visits.start(pid, "Follow-up")
    higher = meds.change_dose(
        metformin.id, {"strength": "1000 mg"}, "2025-06-01", encounter_id=today.id
    )
    assert higher.encounter_id == today.id

    listed = visits.contents(today.id).medications
    assert [(m["strength"], m["start"], m["stop"], m.get("changed_to")) for m in listed] == [
        ("500 mg", "2025-01-10", "2025-06-01", higher.id),
        ("1000 mg", "2025-06-01", None, None),
    ]
    # The visit it was started in still lists it, now as a dose changed, not the new dose.
    [old] = visits.contents(earlier.id).medications
    assert (old["strength"], old["stop"], old["changed_to"]) == ("500 mg", "2025-06-01", higher.id)


def test_a_dose_started_and_changed_in_one_visit_lists_each_dose_once() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, meds = Visits(r), Medications(r)
    visit = visits.start(pid, "Knee pain")
    ibuprofen = meds.start(
        pid, {"name": "Ibuprofen", "strength": "400 mg", "frequency": "three times daily",
              "encounter_id": visit.id},
    )  # fmt: skip
    lower = meds.change_dose(
        ibuprofen.id, {"strength": "200 mg", "frequency": "twice daily"}, encounter_id=visit.id
    )
    listed = visits.contents(visit.id).medications
    assert [(m["strength"], m["frequency"], m["status"]) for m in listed] == [
        ("400 mg", "three times daily", "stopped"),
        ("200 mg", "twice daily", "active"),
    ]
    assert listed[0]["changed_to"] == lower.id


def test_a_dose_change_is_refused_under_another_patients_visit_and_writes_nothing() -> None:
    r = new_replica("dr.ade")
    pid, other = _patient(r), r.add_patient("Roy", "Lee", "1960-01-01").id
    theirs = Visits(r).start(other, "Cough")
    meds = Medications(r)
    aspirin = meds.start(pid, {"name": "Aspirin", "strength": "75 mg"})
    with pytest.raises(ValidationError, match="is not a visit of this patient"):
        meds.change_dose(aspirin.id, {"strength": "150 mg"}, encounter_id=theirs.id)
    assert [m.id for m in meds.list(pid, include_past=True)] == [aspirin.id]


def test_a_medication_stopped_in_a_visit_is_listed_there_stopped() -> None:
    """Stopping a drug during today's visit left the visit reading as if nothing changed:
    the stopped medication (started elsewhere) is now listed in the visit it was stopped
    in, and still in the visit it was started in."""
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, meds = Visits(r), Medications(r)
    earlier = visits.start(pid, "Knee pain")
    ibuprofen = meds.start(
        pid, {"name": "Ibuprofen", "strength": "400 mg", "start": "2025-01-10",
              "encounter_id": earlier.id},
    )  # fmt: skip
    visits.close(earlier.id)
    today = visits.start(pid, "Stomach pain")
    stopped = meds.stop(ibuprofen.id, "2025-06-01", encounter_id=today.id)
    # The stopped copy keeps the visit it was started in: the stop's is named by the change.
    assert (stopped.status, stopped.encounter_id) == ("stopped", earlier.id)
    for visit in (today, earlier):
        [listed] = visits.contents(visit.id).medications
        assert (listed["id"], listed["name"], listed["strength"]) == (
            stopped.id, "Ibuprofen", "400 mg",
        )  # fmt: skip
        assert (listed["status"], listed["stop"], listed.get("changed_to")) == (
            "stopped", "2025-06-01", None,
        )  # fmt: skip


def test_a_problem_resolved_in_a_visit_is_listed_there_resolved() -> None:
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, problems = Visits(r), Problems(r)
    asthma = problems.add(pid, code="J45.909", onset="2019")  # recorded in no visit
    today = visits.start(pid, "Review")
    resolved = problems.resolve(asthma.id, "2025-06-01", encounter_id=today.id)
    assert resolved.encounter_id is None
    [listed] = visits.contents(today.id).problems
    assert (listed["id"], listed["code"], listed["status"], listed["resolved"]) == (
        resolved.id, "J45.909", "resolved", "2025-06-01",
    )  # fmt: skip


def test_stopped_or_resolved_in_no_visit_is_listed_in_none_and_once_where_made() -> None:
    """Without a visit nothing changes (the item is in the visit it was recorded in, only);
    a problem added and resolved in one visit is listed once."""
    r = new_replica("dr.ade")
    pid = _patient(r)
    visits, meds, problems = Visits(r), Medications(r), Problems(r)
    visit = visits.start(pid, "Cough")
    aspirin = meds.start(pid, {"name": "Aspirin", "strength": "75 mg"})
    cough = problems.add(pid, uncoded="Cough", encounter_id=visit.id)
    meds.stop(aspirin.id)
    resolved = problems.resolve(cough.id, encounter_id=visit.id)
    contents = visits.contents(visit.id)
    assert contents.medications == ()
    assert [(p["id"], p["status"]) for p in contents.problems] == [(resolved.id, "resolved")]


def test_a_stop_or_resolution_under_another_patients_visit_is_refused_and_writes_nothing() -> None:
    r = new_replica("dr.ade")
    pid, other = _patient(r), r.add_patient("Roy", "Lee", "1960-01-01").id
    theirs = Visits(r).start(other, "Cough")
    meds, problems = Medications(r), Problems(r)
    aspirin = meds.start(pid, {"name": "Aspirin", "strength": "75 mg"})
    asthma = problems.add(pid, code="J45.909")
    for visit in (theirs.id, "no-such-visit"):
        with pytest.raises(ValidationError, match=f"'{visit}' is not a visit of this patient"):
            meds.stop(aspirin.id, encounter_id=visit)
        with pytest.raises(ValidationError, match=f"'{visit}' is not a visit of this patient"):
            problems.resolve(asthma.id, encounter_id=visit)
    assert [(m.id, m.status) for m in meds.list(pid, include_past=True)] == [(aspirin.id, "active")]
    assert [(p.id, p.status) for p in problems.list(pid, include_resolved=True)] == [
        (asthma.id, "active")
    ]
    assert Visits(r).contents(theirs.id).medications == ()


def test_a_stop_made_in_a_visit_reaches_another_workstations_visit() -> None:
    """The visit is named by the change itself, so it syncs with it."""
    a, b = new_replica("dr.ade"), new_replica("dr.bo")
    pid = _patient(a)
    aspirin = Medications(a).start(pid, {"name": "Aspirin", "strength": "75 mg"})
    visit = Visits(a).start(pid, "Bleeding gums")
    stopped = Medications(a).stop(aspirin.id, encounter_id=visit.id)
    sync_pair(a, b)
    assert [m["id"] for m in Visits(b).contents(visit.id).medications] == [stopped.id]

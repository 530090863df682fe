"""Forged ops that a workstation's genuine device key signs, its own checks removed (as in
test_authz_hostile.py), reach an honest workstation by real sync: break-glass grants made
for anyone, never expiring or already reviewed (security review S2); staff changes authored
"recovery-key" (S3); a restricted chart's records moved to another chart (S4); a record
made under, or moved under, another patient's visit, or a visit the desk does not hold. Each is
quarantined with the reason naming it and nothing of it applied, while the work these
records really come from still syncs: a break-glass opening and its review by an admin, a
password reset with the recovery key, a merge of two patients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import authorize, crdt, op_trust
from core.records.break_glass import BreakGlass
from core.records.break_glass_audit import stamp
from core.records.changes import change
from core.records.chart_access import set_restricted
from core.records.clinic import ClinicRecords, clean_item, new_id
from core.records.entries import ClinicalEntries
from core.records.errors import NotAllowedError
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.spec import Mutation
from core.records.types import LISTS
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from core.store import oplog
from core.store.database import Database, utc_now
from core.sync.responder import Responder
from core.sync.session import SyncReport, sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.strict_authors, pytest.mark.strict_authz]

NEW_PASSWORD = "a brand new harbour"


@dataclass
class Desks:
    a: Workstation  # the honest one, where the clinic began
    b: Workstation  # joined it; hostile in the forgery tests
    b_recovery_key: str

    def records(self, desk: Workstation, actor: str) -> ClinicRecords:
        return ClinicRecords(desk.database, actor)


def _sync(desks: Desks) -> SyncReport:
    """B pushes to A and pulls from it (A applies B's ops; B applies A's)."""
    return sync(desks.b.database, LocalTransport(Responder(desks.a.database)), "admin")


@pytest.fixture
def desks(tmp_path: Path, no_keyring: None) -> Iterator[Desks]:
    """A clinic of an admin, a clinician (clin), a nurse (nurse1, first password to
    change) and the front desk (desk), on desk A and on desk B, synced."""
    a = Workstation(tmp_path / "a", kdf_params=FAST_PARAMS)
    a.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    b = Workstation(tmp_path / "b", kdf_params=FAST_PARAMS)
    b.prepare_join("admin", PASSWORD)
    for desk in (a, b):
        join_test_clinic(desk.database)
    a.sign_in("admin", PASSWORD)
    a.records.add_user("clin", "Cal Clinician", "clinician", PASSWORD)
    a.records.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    a.add_staff("nurse1", "Nia Nurse", "nurse", PASSWORD)
    _sync(Desks(a, b, ""))
    b.sign_in("admin", PASSWORD)
    found = Desks(a, b, b.new_recovery_key())  # B's recovery key, made by its admin
    try:
        yield found
    finally:
        a.lock()
        b.lock()


def _forge(
    db: Database, author: str, record_id: str, type_name: str, values: dict[str, Any]
) -> oplog.Op:
    """What a workstation whose own checks were removed writes: ``values`` into a record,
    as ``author``, signed with its genuine device key."""

    def mutate(doc: crdt.RecordDoc, hlc: str) -> None:
        for name, value in values.items():
            crdt.write(doc, name, value, hlc, author)

    return _forge_with(db, author, record_id, type_name, mutate)


def _forge_with(
    db: Database, author: str, record_id: str, type_name: str, mutate: Mutation
) -> oplog.Op:
    """As :func:`_forge`, the change made by ``mutate(doc, hlc)``."""
    authorize.ENFORCING = False
    try:
        with db.write(author, "test.forge", type_name, record_id) as tx:
            change(tx, author, record_id, type_name, mutate)
    finally:
        authorize.ENFORCING = True
    op = oplog.ops_after(db, {}, 100_000)[-1]
    assert (op.record_id, op.author, op.signer) == (record_id, author, "device")
    return op


def _refused(desks: Desks, forged: oplog.Op, why: str) -> None:
    """The op is refused at sync with ``why``, kept in A's quarantine with it, unapplied."""
    report = _sync(desks)
    assert [(o, s) for o, s, _ in report.refused] == [(forged.origin, forged.seq)]
    assert why in report.refused[0][2]
    [held] = op_trust.quarantined(desks.a.database)
    assert (held.origin, held.seq, held.author) == (forged.origin, forged.seq, forged.author)
    assert why in held.reason
    assert oplog.version_vector(desks.a.database).get(forged.origin, 0) < forged.seq


def _restricted_chart(desks: Desks) -> str:
    """A restricted chart, with a visit and a note, whose care team is clin alone."""
    clin = desks.records(desks.a, "clin")
    patient = clin.add_patient("Secret", "Sam", "1970-01-01")
    visit = Visits(clin).start(patient.id, reason="follow-up")
    Visits(clin).add_note(visit.id, "HIV positive")
    set_restricted(clin, patient.id, True)
    _sync(desks)
    return patient.id


def _nurse_reads_notes(desk: Workstation, patient_id: str) -> bool:
    try:
        Notes(ClinicRecords(desk.database, "nurse1")).for_patient(patient_id)
    except NotAllowedError:
        return False
    return True


# ----- S2: break-glass grants --------------------------------------------------------------


def _grant(author: str, **changes: Any) -> dict[str, Any]:
    """A grant as BreakGlass.open writes it, opened now for an hour, with ``changes``."""
    now = datetime.now(UTC)
    values = {
        "patient_id": "",
        "username": author,
        "reason": "collapsed in the waiting room",
        "opened_at": stamp(now),
        "expires_at": stamp(now + timedelta(minutes=60)),
        "created_at": stamp(now),
    }
    return {**values, **changes}


@pytest.mark.parametrize(
    ("author", "changes", "why"),
    [
        (  # the review's report: from 2020 until 2099, already reviewed by the admin
            "nurse1",
            {"opened_at": "2020-01-01T00:00:00.000+00:00",
             "expires_at": "2099-01-01T00:00:00.000+00:00",
             "reviewed_by": "admin", "reviewed_at": "2020-01-01T00:05:00.000+00:00"},
            "it opens a break-glass grant that also writes reviewed_at, reviewed_by",
        ),
        (
            "nurse1",
            {"expires_at": stamp(datetime.now(UTC) + timedelta(days=3650))},
            "at most 720 minutes",
        ),
        (
            "nurse1",
            {"opened_at": "2020-01-01T00:00:00.000+00:00",
             "expires_at": "2020-01-01T01:00:00.000+00:00"},
            "at a time more than a day from the op's own",
        ),
        ("nurse1", {"username": "clin"}, "only the person it is for may open one"),
        ("desk", {}, "only they may break the glass"),
    ],
)  # fmt: skip
def test_a_forged_break_glass_grant_is_quarantined(
    desks: Desks, author: str, changes: dict[str, Any], why: str
) -> None:
    pid = _restricted_chart(desks)
    values = _grant(author, patient_id=pid, **changes)
    forged = _forge(desks.b.database, author, new_id(), "break_glass", values)
    _refused(desks, forged, why)
    admin = desks.records(desks.a, "admin")
    assert BreakGlass(admin).openings() == []
    assert not _nurse_reads_notes(desks.a, pid)


def test_a_break_glass_opening_and_its_review_sync_and_forged_reviews_do_not(
    desks: Desks,
) -> None:
    pid = _restricted_chart(desks)
    assert not _nurse_reads_notes(desks.b, pid)
    grant = BreakGlass(desks.records(desks.b, "nurse1")).open(pid, "unconscious", 30)
    assert _sync(desks).refused == []
    assert _nurse_reads_notes(desks.a, pid)  # the grant counts on A too
    admin_a = desks.records(desks.a, "admin")
    assert [g.id for g in BreakGlass(admin_a).pending()] == [grant.id]
    BreakGlass(admin_a).mark_reviewed(grant.id)
    assert _sync(desks).refused == []
    reviewed = BreakGlass(desks.records(desks.b, "admin")).get(grant.id)
    assert reviewed.reviewed_by == "admin"
    assert op_trust.quarantined(desks.a.database) == []
    assert op_trust.quarantined(desks.b.database) == []

    # From B now: the nurse extends her own grant, already reviewed.
    later = stamp(datetime.now(UTC) + timedelta(days=30))
    forged = _forge(desks.b.database, "nurse1", grant.id, "break_glass", {"expires_at": later})
    _refused(desks, forged, "it changes expires_at of a break-glass grant after it was opened")
    assert BreakGlass(admin_a).get(grant.id).expires_at == grant.expires_at


@pytest.mark.parametrize(
    ("author", "review", "why"),
    [
        ("nurse1", {"reviewed_by": "admin"}, "reviewing break-glass openings needs an admin"),
        ("admin", {"reviewed_by": "clin"}, "a review is recorded by the person who made it"),
    ],
)
def test_a_forged_review_is_quarantined(
    desks: Desks, author: str, review: dict[str, str], why: str
) -> None:
    pid = _restricted_chart(desks)
    grant = BreakGlass(desks.records(desks.b, "nurse1")).open(pid, "unconscious", 30)
    _sync(desks)
    values = {**review, "reviewed_at": stamp(datetime.now(UTC))}
    forged = _forge(desks.b.database, author, grant.id, "break_glass", values)
    _refused(desks, forged, why)
    admin_a = desks.records(desks.a, "admin")
    assert [g.id for g in BreakGlass(admin_a).pending()] == [grant.id]


# ----- S3: the recovery key ----------------------------------------------------------------


def test_a_staff_change_authored_by_the_recovery_key_is_quarantined(desks: Desks) -> None:
    values = {"role": "admin", "staff_role": "admin"}
    forged = _forge(desks.b.database, op_trust.RECOVERY_AUTHOR, "user:desk", "user", values)
    _refused(desks, forged, "it is authored by the recovery key and changes role, staff_role")
    desk = desks.a.records.user("desk")
    assert desk is not None and desk.role == "front_desk"


def test_a_password_reset_with_the_recovery_key_reaches_the_other_desk(desks: Desks) -> None:
    nurse = desks.a.records.user("nurse1")
    assert nurse is not None and nurse.must_change_password
    desks.b.recover_password(desks.b_recovery_key, "nurse1", NEW_PASSWORD)
    made = oplog.ops_after(desks.b.database, {}, 100_000)[-1]
    assert (made.record_id, made.author) == ("user:nurse1", op_trust.RECOVERY_AUTHOR)
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.a.database) == []
    desks.a.sign_out()
    assert desks.a.sign_in("nurse1", NEW_PASSWORD).must_change_password is False


# ----- S4: records moved off a chart -------------------------------------------------------


def _record_on(records: ClinicRecords, type_name: str, patient_id: str) -> str:
    """A record of ``type_name`` on the patient's chart, made through the API."""
    if type_name == "note":
        return Notes(records).create(patient_id, "HIV positive").id
    if type_name == "encounter":
        return Visits(records).start(patient_id, reason="follow-up").id
    fields = {
        "observation": {"code": "8867-4", "value": "72", "unit": "/min",
                        "observed_at": "2024-05-01 09:00"},
        "attachment": {"filename": "result.pdf", "media_type": "application/pdf",
                       "size": "10", "sha256": "ab" * 32},
    }[type_name]  # fmt: skip
    return ClinicalEntries(records).add(type_name, patient_id, fields)


def _patient_of(desk: Workstation, type_name: str, record_id: str) -> str:
    table = {"note": "notes", "observation": "observations", "encounter": "encounters",
             "attachment": "attachments"}[type_name]  # fmt: skip
    rows = desk.database.query(f"SELECT patient_id FROM {table} WHERE id = ?", (record_id,))
    return str(rows[0][0])


@pytest.mark.parametrize("type_name", ["note", "observation", "encounter", "attachment"])
@pytest.mark.parametrize("author", ["nurse1", "clin"])  # off the care team, and on it
def test_a_record_moved_to_another_chart_is_quarantined(
    desks: Desks, type_name: str, author: str
) -> None:
    secret = _restricted_chart(desks)
    clin = desks.records(desks.a, "clin")
    record = _record_on(clin, type_name, secret)
    open_chart = clin.add_patient("Open", "Olga", "1980-02-02").id
    _sync(desks)
    forged = _forge(desks.b.database, author, record, type_name, {"patient_id": open_chart})
    _refused(desks, forged, f"it moves a {type_name} to another patient's chart")
    assert _patient_of(desks.a, type_name, record) == secret


def test_a_record_put_under_another_visit_needs_access_to_its_chart(desks: Desks) -> None:
    """Another visit of its own chart (one of another chart's is refused whoever moves it:
    below)."""
    secret = _restricted_chart(desks)
    clin = desks.records(desks.a, "clin")
    reading = _record_on(clin, "observation", secret)
    visit = Visits(clin).start(secret, reason="check-up").id
    _sync(desks)
    forged = _forge(desks.b.database, "nurse1", reading, "observation", {"encounter_id": visit})
    _refused(desks, forged, "record vitals needs a nurse or a clinician (on the care team")
    assert Visits(clin).contents(visit).observations == ()


# ----- A record under another patient's visit ---------------------------------------------

VITALS = {"code": "8867-4", "value": "72", "unit": "/min", "observed_at": "2024-05-01 09:00"}
NOUNS = {"note": "note", "observation": "vital-signs reading"}


def _visit_of(desks: Desks, patient_id: str) -> str:
    [visit] = Visits(desks.records(desks.a, "clin")).list_visits(patient_id)
    return visit.id


def _new_record(type_name: str, author: str, patient_id: str, visit: str) -> dict[str, Any]:
    """A note or a reading's fields as the API writes them, under ``visit``."""
    made = {"patient_id": patient_id, "encounter_id": visit, "created_at": utc_now()}
    return {**made, **({"author": author} if type_name == "note" else VITALS)}


def _visit_holds(desks: Desks, visit: str) -> tuple[list[str], int, int]:
    """What desk A shows in the visit, to a clinician who may read every chart: its notes'
    bodies, how many readings and problems."""
    seen = Visits(desks.records(desks.a, "clin")).contents(visit)
    return [n.body for n in seen.notes], len(seen.observations), len(seen.problems)


@pytest.mark.parametrize("type_name", ["note", "observation"])
@pytest.mark.parametrize("author", ["nurse1", "clin"])  # off the visit's care team, and on it
def test_a_record_made_under_another_patients_visit_is_quarantined(
    desks: Desks, type_name: str, author: str
) -> None:
    """Made on a chart its author may write, it would show in the restricted chart's visit
    (and a nurse off its care team would have written there)."""
    secret = _restricted_chart(desks)
    visit = _visit_of(desks, secret)
    other = desks.records(desks.a, "clin").add_patient("Open", "Olga", "1980-02-02").id
    _sync(desks)
    values = _new_record(type_name, author, other, visit)
    forged = _forge(desks.b.database, author, new_id(), type_name, values)
    _refused(desks, forged, f"it puts a {NOUNS[type_name]} under another patient's visit")
    assert _visit_holds(desks, visit) == (["HIV positive"], 0, 0)
    entries = ClinicalEntries(desks.records(desks.a, "clin"))
    assert entries.for_patient("observation", other) == []
    assert Notes(desks.records(desks.a, "clin")).for_patient(other) == []


def test_a_reading_moved_under_another_patients_visit_is_quarantined(desks: Desks) -> None:
    """The clinician may write on both charts: the visit, not a permission, refuses it."""
    secret = _restricted_chart(desks)
    visit = _visit_of(desks, secret)
    clin = desks.records(desks.a, "clin")
    other = clin.add_patient("Open", "Olga", "1980-02-02").id
    reading = _record_on(clin, "observation", other)
    _sync(desks)
    forged = _forge(desks.b.database, "clin", reading, "observation", {"encounter_id": visit})
    _refused(desks, forged, "it puts a vital-signs reading under another patient's visit")
    assert _visit_holds(desks, visit) == (["HIV positive"], 0, 0)
    assert ClinicalEntries(clin).get("observation", reading)["encounter_id"] is None


def test_a_problem_listed_under_another_patients_visit_is_quarantined(desks: Desks) -> None:
    secret = _restricted_chart(desks)
    visit = _visit_of(desks, secret)
    other = desks.records(desks.a, "clin").add_patient("Open", "Olga", "1980-02-02").id
    _sync(desks)
    item = clean_item(LISTS["problems"], {"description": "Asthma", "encounter_id": visit})

    def add(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.add(doc, "problems", item, hlc, "clin")

    forged = _forge_with(desks.b.database, "clin", other, "patient", add)
    _refused(desks, forged, "it puts a problem under another patient's visit")
    assert _visit_holds(desks, visit) == (["HIV positive"], 0, 0)
    assert Problems(desks.records(desks.a, "clin")).list(other) == []


@pytest.mark.parametrize("list_name", ["medications", "problems"])
def test_a_stop_or_resolution_made_under_another_patients_visit_is_quarantined(
    desks: Desks, list_name: str
) -> None:
    """A medication stopped (a problem resolved) "in" the restricted chart's visit: the
    change's history entry names the visit, which would list it."""
    secret = _restricted_chart(desks)
    visit = _visit_of(desks, secret)
    clin = desks.records(desks.a, "clin")
    other = clin.add_patient("Open", "Olga", "1980-02-02").id
    if list_name == "medications":
        item = Medications(clin).start(other, {"name": "Aspirin", "strength": "75 mg"}).id
        ended = {"status": "stopped", "stop": "2026-12-06"}
    else:
        item = Problems(clin).add(other, uncoded="Cough").id
        ended = {"status": "resolved", "resolved": "2026-12-06"}
    _sync(desks)

    def end_in_visit(doc: crdt.RecordDoc, hlc: str) -> None:
        old = crdt.drop(doc, list_name, item)
        assert old is not None
        new = crdt.new_write_id()
        crdt.restore(doc, list_name, new, {**old, **ended}, hlc, "clin")
        crdt.record_change(
            doc, list_name, hlc, "clin", {new: {**old, **ended}}, {item: old}, visit=visit
        )

    forged = _forge_with(desks.b.database, "clin", other, "patient", end_in_visit)
    noun = "medication's stop" if list_name == "medications" else "problem's resolution"
    _refused(desks, forged, f"it puts a {noun} under another patient's visit")
    seen = Visits(clin).contents(visit)
    assert (seen.problems, seen.medications) == ((), ())
    if list_name == "medications":
        assert [m.status for m in Medications(clin).list(other, include_past=True)] == ["active"]
    else:
        assert [p.status for p in Problems(clin).list(other, include_resolved=True)] == ["active"]


def test_a_stop_and_a_resolution_in_the_patients_own_visit_sync(desks: Desks) -> None:
    clin_b = desks.records(desks.b, "clin")
    patient = clin_b.add_patient("Open", "Olga", "1980-02-02").id
    aspirin = Medications(clin_b).start(patient, {"name": "Aspirin", "strength": "75 mg"})
    cough = Problems(clin_b).add(patient, uncoded="Cough")
    assert _sync(desks).refused == []
    visit = Visits(clin_b).start(patient, reason="review").id
    stopped = Medications(clin_b).stop(aspirin.id, encounter_id=visit)
    resolved = Problems(clin_b).resolve(cough.id, encounter_id=visit)
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.a.database) == []
    seen = Visits(desks.records(desks.a, "clin")).contents(visit)
    assert [m["id"] for m in seen.medications] == [stopped.id]
    assert [p["id"] for p in seen.problems] == [resolved.id]


def test_a_record_under_a_visit_this_desk_does_not_hold_is_quarantined(desks: Desks) -> None:
    other = desks.records(desks.a, "clin").add_patient("Open", "Olga", "1980-02-02").id
    _sync(desks)
    values = _new_record("note", "clin", other, "no-such-visit")
    forged = _forge(desks.b.database, "clin", new_id(), "note", values)
    _refused(desks, forged, "under visit 'no-such-visit', which this replica does not hold")
    assert Notes(desks.records(desks.a, "clin")).for_patient(other) == []


def test_a_visit_and_the_work_in_it_sync_together_and_apart(desks: Desks) -> None:
    """The visit in the same batch as the note and reading under it, or in an earlier one."""
    clin_b = desks.records(desks.b, "clin")
    patient = clin_b.add_patient("Open", "Olga", "1980-02-02").id
    visit = Visits(clin_b).start(patient, reason="cough").id
    Visits(clin_b).add_note(visit, "dry cough")
    VitalSigns(clin_b).record(patient, {"pulse": "72"}, encounter_id=visit)
    Problems(clin_b).add(patient, uncoded="Cough", encounter_id=visit)
    assert _sync(desks).refused == []
    Visits(clin_b).add_note(visit, "better")
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.a.database) == []
    assert _visit_holds(desks, visit) == (["dry cough", "better"], 1, 1)


def test_a_merge_moves_the_duplicates_records_on_every_desk(desks: Desks) -> None:
    clin_b = desks.records(desks.b, "clin")
    duplicate = clin_b.add_patient("Lovelace", "Ada", "1915-12-10").id
    survivor = clin_b.add_patient("Lovelace", "Augusta Ada", "1915-12-10").id
    note = Notes(clin_b).create(duplicate, "asthma since childhood").id
    Merges(clin_b).merge(duplicate, survivor, "the same person")
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.a.database) == []
    clin_a = desks.records(desks.a, "clin")
    assert [n.id for n in Notes(clin_a).for_patient(survivor)] == [note]


def test_two_reviews_made_apart_are_settled_by_an_admin_and_the_settling_syncs(
    desks: Desks,
) -> None:
    """Settling the conflict writes the other admin's review under the settling admin's
    name: a value the grant already held, so it is no forged review."""
    desks.a.records.add_user("admin2", "Abe Admin", "admin", PASSWORD)
    pid = _restricted_chart(desks)
    grant = BreakGlass(desks.records(desks.b, "nurse1")).open(pid, "unconscious", 30)
    _sync(desks)
    BreakGlass(desks.records(desks.a, "admin")).mark_reviewed(grant.id)
    BreakGlass(desks.records(desks.b, "admin2")).mark_reviewed(grant.id)
    assert _sync(desks).refused == []
    admin_a = desks.records(desks.a, "admin")
    conflicts = admin_a.conflicts(grant.id)
    # The names differ; the times too unless both were made in the same millisecond.
    fields = sorted(c.field for c in conflicts)
    assert fields in (["reviewed_at", "reviewed_by"], ["reviewed_by"])
    nurse = desks.records(desks.a, "nurse1")
    with pytest.raises(NotAllowedError, match="Only an admin can open this conflict"):
        nurse.resolve_conflict(conflicts[0].id, choose=conflicts[0].candidates[0].id)
    for conflict in conflicts:
        [theirs] = [c for c in conflict.candidates if c.author == "admin2"]
        admin_a.resolve_conflict(conflict.id, choose=theirs.id)
    assert _sync(desks).refused == []
    assert op_trust.quarantined(desks.b.database) == []
    admin_b = desks.records(desks.b, "admin")
    assert admin_b.conflicts(grant.id) == []  # settled there too
    assert BreakGlass(admin_b).get(grant.id).reviewed_by == "admin2"

"""Merges are replicated ops that converge: the same pair merged on two workstations at once,
a pair merged in opposite directions at once, and a merge while another workstation edits
the duplicate (issue #16 section 4)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import chart_access, crdt, op_trust, unknown
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.dismissals import dismissed_pairs
from core.records.errors import NotAllowedError, ValidationError
from core.records.merges import Merges
from core.records.notes import Notes
from core.records.types import PATIENT, RECORD_TYPES
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic, two_desks
from tests.conftest import PASSWORD
from tests.unit.sync.replicas import assert_converged, before_v15, new_replica, sync_pair


def _two_workstations() -> tuple[ClinicRecords, ClinicRecords, str, str]:
    """Two replicas holding the same two registrations of one person."""
    a, b = new_replica("admin"), new_replica("admin")
    first = a.add_patient("Okafor", "Chinedu", "1984-02-02").id
    second = b.add_patient("Okafur", "Chinedu", "1984-02-02").id
    sync_pair(a, b)
    sync_pair(b, a)
    return a, b, first, second


def _settle(a: ClinicRecords, b: ClinicRecords) -> None:
    sync_pair(a, b)
    sync_pair(b, a)
    assert_converged([a, b])


def test_the_same_merge_made_twice_converges_without_a_conflict() -> None:
    a, b, first, second = _two_workstations()
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(second, first, "same person")
    _settle(a, b)
    for r in (a, b):
        assert [p.id for p in r.list_patients()] == [first]
        assert r.open_chart(second).patient.id == first
        assert r.conflicts() == []


def test_opposite_merges_at_once_keep_the_lowest_id_on_every_workstation() -> None:
    a, b, first, second = _two_workstations()
    a.add_allergy(first, "Latex")
    b.add_allergy(second, "Penicillin")
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(first, second, "same person")
    _settle(a, b)
    lowest = min(first, second)
    for r in (a, b):
        assert [p.id for p in r.list_patients()] == [lowest]
        for pid in (first, second):
            chart = r.open_chart(pid)
            assert chart.patient.id == lowest
            assert {x.substance for x in chart.allergies} == {"Latex", "Penicillin"}
    # Undoing the merge that kept the loop closed splits the charts again, everywhere.
    other = max(first, second)
    Merges(a).unmerge(other)
    _settle(a, b)
    for r in (a, b):
        assert sorted(p.id for p in r.list_patients()) == sorted((first, second))


def test_an_edit_to_the_duplicate_made_during_a_merge_shows_on_the_survivor() -> None:
    a, b, first, second = _two_workstations()
    Merges(a).merge(second, first, "same person")
    # Workstation b has not heard of the merge: it records on the duplicate.
    b.add_allergy(second, "Peanut")
    note = Notes(b).create(second, "Seen for cough.")
    b.update_patient(second, {"phone": "555-0100"})
    _settle(a, b)
    for r in (a, b):
        assert [x.substance for x in r.open_chart(first).allergies] == ["Peanut"]
        assert [n.id for n in Notes(r).for_patient(first)] == [note.id]
        [(duplicate, merge)] = Merges(r).merged_from(first)
        assert (duplicate.phone, merge.reason) == ("555-0100", "same person")


def test_a_duplicate_merged_into_two_survivors_at_once_is_a_conflict_to_settle() -> None:
    a, b, first, second = _two_workstations()
    third = a.add_patient("Okafor", "C", "1984-02-02").id
    _settle(a, b)
    Merges(a).merge(second, first, "same person")
    Merges(b).merge(second, third, "same person")
    _settle(a, b)
    [conflict] = [c for c in a.conflicts() if c.field == "merged_into"]
    assert {c.value for c in conflict.candidates} == {first, third}
    a.resolve_conflict(conflict.id, value=first)
    _settle(a, b)
    for r in (a, b):
        assert r.open_chart(second).patient.id == first


@pytest.mark.strict_authors
@pytest.mark.strict_authz
def test_a_merge_by_someone_without_the_merge_permission_is_quarantined(
    tmp_path: Path, no_keyring: None
) -> None:
    """Remote apply checks an op setting ``merged_into`` against ``merge_patients``: a
    front-desk account's merge (from a tampered workstation) is held, not applied; a
    clinician's is applied."""
    a, b = two_desks(tmp_path)
    a.add_staff("desk", "Dee Desk", "front_desk", PASSWORD)
    a.add_staff("lee", "Dr Lee", "clinician", PASSWORD)
    first = a.records.add_patient("Ames", "Bo", "1984-02-02").id
    second = a.records.add_patient("Ames", "Bo", "1984-02-02").id
    third = a.records.add_patient("Ames", "Bo", "1984-02-02").id
    sync(b.database, LocalTransport(Responder(a.database)), "admin")

    def merge(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.write(doc, "merged_into", first, hlc, "desk")
        crdt.write(doc, "merge_reason", "same", hlc, "desk")

    # Written as the front desk, bypassing the records API that would refuse it.
    with b.database.write("desk", "patient.update", "patient", second) as tx:
        change(tx, "desk", second, "patient", merge)
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    held = op_trust.quarantined(a.database)
    assert [q.record_id for q in held] == [second]
    assert "merge patients needs a clinician" in held[0].reason
    assert len(a.records.list_patients()) == 3

    # A clinician's merge, made on desk A, is applied on desk B (authorized there too).
    lee = ClinicRecords(a.database, "lee", FAST_PARAMS)
    Merges(lee).merge(third, first, "same person")
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    assert b.database.query("SELECT merged_into FROM patients WHERE id = ?", (third,)) == [(first,)]
    assert op_trust.quarantined(b.database) == []
    a.lock()
    b.lock()


@pytest.mark.strict_authors
@pytest.mark.strict_authz
def test_a_merge_into_a_chart_its_author_may_not_touch_is_quarantined(
    tmp_path: Path, no_keyring: None
) -> None:
    """Remote apply checks merge_patients on both charts, as the local merge does: a
    clinician's merge of an ordinary chart into a restricted one whose care team she is not
    on (made on a tampered workstation) is held; the same merge by the care team's
    clinician is applied."""
    a, b = two_desks(tmp_path)
    a.add_staff("lee", "Dr Lee", "clinician", PASSWORD)
    a.add_staff("kim", "Dr Kim", "clinician", PASSWORD)
    survivor = a.records.add_patient("Ames", "Bo", "1984-02-02").id
    duplicate = a.records.add_patient("Ames", "Bo", "1984-02-02").id
    chart_access.add_to_care_team(a.records, survivor, "kim")
    chart_access.set_restricted(a.records, survivor, True)
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    with pytest.raises(NotAllowedError):  # refused locally
        Merges(ClinicRecords(b.database, "lee", FAST_PARAMS)).merge(duplicate, survivor, "same")

    def merge(doc: crdt.RecordDoc, hlc: str) -> None:
        crdt.write(doc, "merged_into", survivor, hlc, "lee")
        crdt.write(doc, "merge_reason", "same", hlc, "lee")

    # Lee may merge the duplicate's chart, not the restricted survivor's: written bypassing
    # the records API (a tampered workstation), as an op on the duplicate only.
    with b.database.write("lee", "patient.update", "patient", duplicate) as tx:
        change(tx, "lee", duplicate, "patient", merge)
    sync(b.database, LocalTransport(Responder(a.database)), "admin")
    held = op_trust.quarantined(a.database)
    assert [q.record_id for q in held] == [duplicate]
    assert "merge patients needs a clinician" in held[0].reason
    assert a.database.query("SELECT merged_into FROM patients WHERE id = ?", (duplicate,)) == [
        ("",)
    ]

    kim = ClinicRecords(a.database, "kim", FAST_PARAMS)
    Merges(kim).merge(duplicate, survivor, "same person")
    c = Workstation(tmp_path / "c", kdf_params=FAST_PARAMS)
    c.prepare_join("admin", PASSWORD)
    join_test_clinic(c.database)
    sync(c.database, LocalTransport(Responder(a.database)), "admin")
    assert c.database.query("SELECT merged_into FROM patients WHERE id = ?", (duplicate,)) == [
        (survivor,)
    ]
    assert op_trust.quarantined(c.database) == []
    for w in (a, b, c):
        w.lock()


@contextmanager
def previous_code() -> Iterator[None]:
    """Run as the previous release while entered: a patient without the merge fields (its
    lists and everything else as now). Record types are looked up at call time."""
    saved = RECORD_TYPES["patient"]
    older = dataclasses.replace(
        PATIENT,
        fields=tuple(f for f in PATIENT.fields if f.name not in MERGE_FIELDS),
        columns=tuple(c for c in PATIENT.columns or () if getattr(c, "name", c) != "merged_into"),
    )
    RECORD_TYPES["patient"] = older
    try:
        yield
    finally:
        RECORD_TYPES["patient"] = saved


MERGE_FIELDS = ("merged_into", "merge_reason")


def test_a_workstation_on_the_previous_release_relays_a_merge() -> None:
    """A merge made on an upgraded workstation reaches another one through a workstation
    still on the previous release, which keeps the fields it does not know and shows them
    once upgraded."""
    new, relay, far = new_replica("admin"), new_replica("admin"), new_replica("admin")
    first = new.add_patient("Okafor", "Chinedu", "1984-02-02").id
    second = new.add_patient("Okafur", "Chinedu", "1984-02-02").id
    Merges(new).merge(second, first, "same person")
    with previous_code():
        sync_pair(relay, new)
        # The old release shows both charts and lists the record as not fully understood.
        assert len(relay.list_patients()) == 2
        assert relay.db.query("SELECT type FROM unknown_records WHERE id = ?", (second,))
    sync_pair(far, relay)
    assert [p.id for p in far.list_patients()] == [first]
    # The relay is upgraded: migration V12 lists its patients, which are re-derived.
    with relay.db.write("upgrade", "records.rederive", "record_states", "patients") as tx:
        tx.execute(
            "INSERT OR IGNORE INTO unknown_records (id, type, parts) "
            "SELECT id, type, 'recheck' FROM record_states WHERE type = 'patient'"
        )
    unknown.refresh(relay.db)
    assert_converged([new, relay, far])


def test_a_workstation_before_v15_relays_an_imports_source_and_flag() -> None:
    """A likely duplicate imported on an upgraded workstation reaches another through one
    still on the release before, which keeps the fields it does not know: the far side
    lists the pair for review and skips the bundle patient on a re-run."""
    new, relay, far = new_replica("admin"), new_replica("admin"), new_replica("admin")
    first = new.add_patient("Okafor", "Chinedu", "1984-02-02", mrn="M-1").id
    extra = {"source": "fhir:abc", "duplicate_of": first}
    second = new.add_patient("Someone", "Else", "1990-01-01", extra=extra).id
    with before_v15():
        sync_pair(relay, new)
        assert len(relay.list_patients()) == 2
        assert relay.db.query("SELECT type FROM unknown_records WHERE id = ?", (second,))
    sync_pair(far, relay)
    assert far.db.query("SELECT source, duplicate_of FROM patients WHERE id = ?", (second,)) == [
        ("fhir:abc", first)
    ]
    [pair] = Merges(far).candidates()
    assert (pair.first.id, pair.second.id) == (first, second)
    assert_converged([new, far])


def test_not_a_duplicate_leaves_the_list_on_every_workstation_until_undone() -> None:
    """Dismissing a pair is a replicated, audited op: the pair stays off the review list on
    the other workstation too (and after both dismiss it at once), until one undoes it."""
    a, b, first, second = _two_workstations()
    assert len(Merges(b).candidates()) == 1
    Merges(a).dismiss(first, second)
    Merges(b).dismiss(second, first)  # the same pair, the other way round, at once
    _settle(a, b)
    assert Merges(a).candidates() == [] and Merges(b).candidates() == []
    assert a.db.query("SELECT count(*) FROM relations WHERE relation = 'not_duplicate'") == [(1,)]
    Merges(b).undismiss(first, second)
    _settle(a, b)
    assert [(p.first.id, p.second.id) for p in Merges(a).candidates()] == [(first, second)]
    actions = [
        str(r[0])
        for r in b.db.query("SELECT action FROM audit_log WHERE action LIKE 'patient.not_dup%'")
    ]
    assert actions == ["patient.not_duplicate", "patient.not_duplicate_undo"]
    with pytest.raises(ValidationError, match="are not dismissed"):
        Merges(a).undismiss(first, second)


@pytest.mark.strict_authz
def test_only_those_who_may_merge_dismiss_a_pair() -> None:
    a = new_replica("admin")
    a.set_up_clinic("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    first = a.add_patient("Okafor", "Chinedu", "1984-02-02").id
    second = a.add_patient("Okafur", "Chinedu", "1984-02-02").id
    a.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    with pytest.raises(NotAllowedError, match="Only a clinician with access to the charts"):
        Merges(ClinicRecords(a.db, "desk", FAST_PARAMS)).dismiss(first, second)
    assert dismissed_pairs(a.db) == set()

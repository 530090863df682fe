"""A sync session's report says which records it changed here, by type (not a dict read by
key): what was pulled, what a snapshot brought, and the conflicts among them."""

from __future__ import annotations

import json

from tests.unit.sync.replicas import new_replica, sync_pair


def test_a_session_reports_the_records_it_pulled() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Ferreira", "Ana", "1964-08-21")
    q = a.add_patient("Okafor", "Chinedu", "1990-06-15")
    sync_pair(b, a)
    a.update_patient(p.id, {"phone": "555-0100"})
    report = sync_pair(b, a)
    assert report.changes.records == {"patient": frozenset({p.id})}
    assert not report.changes.touches(q.id)
    assert not report.changes.local  # arrived from elsewhere
    # Pushing changes nothing here.
    b.add_allergy(q.id, "Latex")
    pushed = sync_pair(b, a)
    assert pushed.pushed == 1 and not pushed.changes


def test_a_first_download_reports_every_record_it_brought() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Ferreira", "Ana", "1964-08-21")
    user = a.add_user("nurse.joy", "Joy Mensah", "clinician", "correct horse battery")
    report = sync_pair(b, a)
    assert report.snapshot_records >= 2
    assert p.id in report.changes.patients
    assert user.id in report.changes.of_type("user")


def test_a_pulled_conflict_is_named_and_the_report_is_json() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Ferreira", "Ana", "1964-08-21")
    sync_pair(b, a)
    a.update_patient(p.id, {"phone": "555-0001"})
    b.update_patient(p.id, {"phone": "555-0002"})
    report = sync_pair(b, a)
    assert report.changes.conflicted == {p.id}
    document = json.loads(json.dumps(report.to_dict()))
    assert document["changed"] == {"patient": 1}
    assert document["pulled"] == report.pulled == 1

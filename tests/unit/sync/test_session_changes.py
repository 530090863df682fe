"""A sync session's report says which records it changed here, by type (not a dict read by
key): what was pulled, what a snapshot brought, and the conflicts among them."""

from __future__ import annotations

import json

import pytest

from core.sync import protocol as p
from core.sync import session
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


def test_a_large_first_download_reports_counts_per_type_not_every_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A clinic network's snapshot: more records than a report lists (scaled down here, and
    # brought in pages of four). Its report stays small and still says what changed.
    monkeypatch.setattr(session, "LIST_SNAPSHOT_RECORDS", 5)
    monkeypatch.setattr(p, "MAX_RECORDS_PER_PAGE", 4)
    a, b, c = new_replica("ann"), new_replica("bob"), new_replica("cid")
    patients = [a.add_patient(f"Fam{i}", "G", "1980-01-01") for i in range(9)]
    sync_pair(c, a)
    a.update_patient(patients[0].id, {"phone": "555-0001"})
    c.update_patient(patients[0].id, {"phone": "555-0002"})
    sync_pair(c, a)  # a now holds an open conflict on the first patient
    rows = a.db.query("SELECT type, count(*) FROM record_states GROUP BY type")
    held = {str(t): int(n) for t, n in rows}

    report = sync_pair(b, a)

    assert report.snapshot_records == sum(held.values()) > session.LIST_SNAPSHOT_RECORDS
    changes = report.changes
    assert not changes.patients  # not listed: counted
    assert changes.counts() == held and report.to_dict()["changed"] == held
    assert changes.changed("patient") and changes.touches(patients[5].id)
    assert changes.changed_besides("patient", {patients[5].id})
    assert not changes.changed("appointment")  # none in the clinic
    assert changes.conflicted == {patients[0].id}  # named all the same
    assert changes.may_change_conflicts(set())
    # A screen refreshes from it, and the next session lists again.
    assert changes
    b.update_patient(patients[3].id, {"phone": "555-0003"})
    sync_pair(b, a)
    a.update_patient(patients[4].id, {"phone": "555-0004"})
    again = sync_pair(b, a).changes
    assert again.records == {"patient": frozenset({patients[4].id})} and not again.unlisted


def test_a_first_download_within_the_bound_lists_its_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(session, "LIST_SNAPSHOT_RECORDS", 50)
    monkeypatch.setattr(p, "MAX_RECORDS_PER_PAGE", 4)
    a, b = new_replica("ann"), new_replica("bob")
    patients = {a.add_patient(f"Fam{i}", "G", "1980-01-01").id for i in range(9)}
    report = sync_pair(b, a)
    assert report.changes.patients == patients and not report.changes.unlisted

"""Looking at conflicts shows clinical values, so it leaves an audit trail like a chart."""

from __future__ import annotations

import json

from core.records.clinic import ClinicRecords
from tests.unit.sync.replicas import new_replica, sync_pair


def _views(r: ClinicRecords) -> list[tuple[str, str, dict[str, object]]]:
    rows = r.db.query(
        "SELECT actor, entity_id, details FROM audit_log WHERE action = 'conflicts.view'"
    )
    return [(str(a), str(e), json.loads(d)) for a, e, d in rows]


def test_reviewing_conflicts_is_audited_with_the_records_shown() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    patient = a.add_patient("Garcia", "Maria", "1980-01-01")
    sync_pair(b, a)
    a.update_patient(patient.id, {"phone": "555-0101"})
    b.update_patient(patient.id, {"phone": "555-0202"})
    sync_pair(b, a)
    assert _views(a) == []  # counting conflicts for a badge shows no values
    assert len(a.conflicts()) == 1
    assert _views(a) == []
    shown = a.review_conflicts()
    assert [c.field for c in shown] == ["phone"]
    assert _views(a) == [("ann", "inbox", {"records": [patient.id]})]


def test_an_empty_inbox_writes_nothing() -> None:
    a = new_replica("ann")
    before = a.db.query("SELECT count(*) FROM audit_log")
    assert a.review_conflicts() == []
    assert a.db.query("SELECT count(*) FROM audit_log") == before

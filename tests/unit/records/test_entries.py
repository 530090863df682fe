from __future__ import annotations

import hashlib

import pytest

from core.records.entries import ClinicalEntries
from core.records.errors import NotFoundError, ValidationError
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def test_appointment_encounter_observation_attachment_round_trip() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Luis", "1991-01-01")
    e = ClinicalEntries(a)
    appt = e.add(
        "appointment",
        p.id,
        {"starts_at": "2026-12-01T09:00", "ends_at": "2026-12-01T09:15", "status": "booked"},
    )
    enc = e.add("encounter", p.id, {"started_at": "2026-12-01T09:05", "reason": "check-up"})
    obs = e.add(
        "observation",
        p.id,
        {
            "encounter_id": enc,
            "code": "bp-systolic",
            "value": "128",
            "unit": "mmHg",
            "observed_at": "2026-12-01T09:10",
        },
    )
    digest = hashlib.sha256(b"scan").hexdigest()
    att = e.add(
        "attachment",
        p.id,
        {"filename": "scan.pdf", "media_type": "application/pdf", "size": "4", "sha256": digest},
    )
    sync_pair(b, a)
    eb = ClinicalEntries(b)
    assert eb.get("appointment", appt)["status"] == "booked"
    assert eb.get("observation", obs)["value"] == "128"  # a string, never a float
    assert eb.get("attachment", att)["sha256"] == digest
    assert [x["id"] for x in eb.for_patient("encounter", p.id)] == [enc]
    eb.update("appointment", appt, {"status": "arrived"})
    sync_pair(a, b)
    assert e.get("appointment", appt)["status"] == "arrived"
    e.delete("observation", obs)
    sync_pair(b, a)
    with pytest.raises(NotFoundError):
        eb.get("observation", obs)
    assert materialized(a) == materialized(b)


def test_concurrent_appointment_edits_conflict() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Ana", "1991-01-01")
    appt = ClinicalEntries(a).add(
        "appointment",
        p.id,
        {"starts_at": "2026-12-01T09:00", "ends_at": "2026-12-01T09:15", "status": "booked"},
    )
    sync_pair(b, a)
    ClinicalEntries(a).update("appointment", appt, {"status": "cancelled"})
    ClinicalEntries(b).update("appointment", appt, {"status": "arrived"})
    sync_pair(b, a)
    [conflict] = a.conflicts()
    assert (conflict.record_type, conflict.field) == ("appointment", "status")


def test_a_typed_resolution_is_checked_like_any_entry_of_the_field() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Soto", "Ana", "1991-01-01")
    appt = ClinicalEntries(a).add(
        "appointment",
        p.id,
        {"starts_at": "2026-12-01T09:00", "ends_at": "2026-12-01T09:15", "status": "booked"},
    )
    sync_pair(b, a)
    ClinicalEntries(a).update("appointment", appt, {"starts_at": "2026-12-01T10:00"})
    ClinicalEntries(b).update("appointment", appt, {"starts_at": "2026-12-01T11:00"})
    sync_pair(b, a)
    [conflict] = a.conflicts()
    with pytest.raises(ValidationError, match="starts_at: 'noon' is not a date and time"):
        a.resolve_conflict(conflict.id, value="noon")
    assert a.conflicts() == [conflict]  # nothing was written
    a.resolve_conflict(conflict.id, value="2026-12-01 10:30")
    assert a.conflicts() == []
    assert ClinicalEntries(a).get("appointment", appt)["starts_at"] == "2026-12-01T10:30"


@pytest.mark.parametrize(
    ("type_name", "fields", "field"),
    [
        (
            "appointment",
            {"starts_at": "tomorrow", "ends_at": "2026-01-01T10:00", "status": "booked"},
            "starts_at",
        ),
        (
            "appointment",
            {"starts_at": "2026-01-01T10:00", "ends_at": "2026-01-01T10:30", "status": "maybe"},
            "status",
        ),
        ("observation", {"code": "hr", "observed_at": "2026-01-01T10:00"}, "value"),
        (
            "attachment",
            {"filename": "x", "media_type": "y", "size": "1.5", "sha256": "0" * 64},
            "size",
        ),
        ("attachment", {"filename": "x", "media_type": "y", "size": "1", "sha256": "zz"}, "sha256"),
        ("surgery", {}, "type"),
    ],
)
def test_bad_fields_are_named(type_name: str, fields: dict[str, str], field: str) -> None:
    r = new_replica("ann")
    p = r.add_patient("X", "Y", "1990-01-01")
    with pytest.raises(ValidationError) as info:
        ClinicalEntries(r).add(type_name, p.id, fields)
    assert info.value.field == field


def test_problems_and_medications_are_add_wins_sets() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Park", "Jae", "1970-01-01")
    metformin = ClinicalEntries(a).add_to_list(
        p.id, "medications", {"name": "Metformin", "dose": "500 mg"}
    )
    sync_pair(b, a)
    ClinicalEntries(b).remove_from_list(p.id, "medications", metformin)
    ClinicalEntries(a).add_to_list(p.id, "problems", {"description": "Type 2 diabetes"})
    ClinicalEntries(b).add_to_list(p.id, "problems", {"description": "Hypertension"})
    sync_pair(b, a)
    for r in (a, b):
        problems = r.db.query("SELECT description, status FROM conditions ORDER BY description")
        assert problems == [("Hypertension", "active"), ("Type 2 diabetes", "active")]
        assert r.db.query("SELECT count(*) FROM medications")[0][0] == 0
    with pytest.raises(NotFoundError):
        ClinicalEntries(a).remove_from_list(p.id, "medications", metformin)

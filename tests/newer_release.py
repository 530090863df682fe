"""A stand-in for the next release of Careline, to test mixed versions before it exists.

Clinics upgrade one machine at a time, so this release must keep and relay what the next
one writes. "Newer" here is this code with what a next release would plausibly add: a new
record type (``referral``, with its own table), a new field of a known type (a patient's
``preferred_name``, shown in a new column) and a new value of a known list's items (a
medication's ``pharmacy``), and the migration creating their columns. ``newer_code()``
makes the process run as that release while it is entered: record types are looked up at
call time, so a replica used inside it behaves as the newer release, outside as this one.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt, permissions
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.spec import Field
from core.records.types import MEDICATIONS, PATIENT, RECORD_TYPES, RecordType
from core.store.database import Database, utc_now
from core.store.migrations import LATEST_VERSION, MIGRATIONS, Migrations
from tests.clinic_identity import join_test_clinic

REFERRAL = RecordType(
    "referral",
    "referrals",
    (
        Field("patient_id", "Patient"),
        Field("to_clinic", "Referred to"),
        Field("reason", "Reason"),
    ),
)
NEWER_MEDICATIONS = dataclasses.replace(
    MEDICATIONS,
    items=(*MEDICATIONS.items, Field("pharmacy", "Pharmacy")),
    row_order=(*MEDICATIONS.row_order, "pharmacy") if MEDICATIONS.row_order else None,
)
NEWER_PATIENT = dataclasses.replace(
    PATIENT,
    fields=(*PATIENT.fields, Field("preferred_name", "Preferred name")),
    columns=(*(PATIENT.columns or ()), "preferred_name"),
    lists=tuple(NEWER_MEDICATIONS if s.name == "medications" else s for s in PATIENT.lists),
)
NEWER_VERSION = LATEST_VERSION + 1
NEWER_MIGRATIONS: Migrations = (
    *MIGRATIONS,
    (
        NEWER_VERSION,
        "CREATE TABLE referrals (id TEXT PRIMARY KEY, patient_id TEXT, to_clinic TEXT, "
        "reason TEXT);\nALTER TABLE patients ADD COLUMN preferred_name TEXT;\n"
        "ALTER TABLE medications ADD COLUMN pharmacy TEXT;\n"
        # As every migration changing what a type derives must: its records are listed
        # for one re-derivation by the upgraded code (core.records.unknown.refresh).
        "INSERT OR IGNORE INTO unknown_records (id, type, parts) "
        "SELECT id, type, 'recheck' FROM record_states WHERE type = 'patient';",
    ),
)


@contextmanager
def newer_code() -> Iterator[None]:
    """Run as the next release while entered."""
    saved = dict(RECORD_TYPES)
    saved_actions = dict(permissions.MATRIX)
    RECORD_TYPES["patient"] = NEWER_PATIENT
    RECORD_TYPES["referral"] = REFERRAL
    # The next release lists its new action in its permission matrix, as this one must.
    permissions.MATRIX["referral.create"] = permissions.Rule(
        "write_note", "patient", "refer a patient"
    )
    try:
        yield
    finally:
        RECORD_TYPES.clear()
        RECORD_TYPES.update(saved)
        permissions.MATRIX.clear()
        permissions.MATRIX.update(saved_actions)


def refer(records: ClinicRecords, patient_id: str, to_clinic: str, reason: str) -> str:
    """Record a referral as the newer release does (call inside ``newer_code``)."""
    record_id = new_id()
    values = {"patient_id": patient_id, "to_clinic": to_clinic, "reason": reason}
    with records.db.write(records.actor, "referral.create", "referral", record_id) as tx:
        change(tx, records.actor, record_id, "referral", records.setter(
            {**values, "created_at": utc_now()}
        ))  # fmt: skip
    return record_id


def set_preferred_name(records: ClinicRecords, patient_id: str, name: str) -> None:
    """Write the newer release's new patient field (call inside ``newer_code``)."""
    with records.db.write(records.actor, "patient.update", "patient", patient_id) as tx:
        change(tx, records.actor, patient_id, "patient", records.setter({"preferred_name": name}))


def add_medication(records: ClinicRecords, patient_id: str, name: str, pharmacy: str) -> None:
    """Add a medication whose item carries the newer release's ``pharmacy`` value."""

    def mutate(doc: RecordDoc, hlc: str) -> None:
        crdt.add(doc, "medications", {"name": name, "pharmacy": pharmacy}, hlc, records.actor)

    with records.db.write(records.actor, "medication.add", "patient", patient_id) as tx:
        change(tx, records.actor, patient_id, "patient", mutate)


def newer_replica(actor: str) -> ClinicRecords:
    """An in-memory replica of the newer release (its schema included), a signing device
    of the test clinic like any replica of this release (tests/clinic_identity.py)."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    db = Database.in_memory(key, NEWER_MIGRATIONS)
    join_test_clinic(db)
    return ClinicRecords(db, actor, FAST_PARAMS)


def newer_chart(records: ClinicRecords) -> str:
    """A patient with everything the newer release adds: a preferred name, a referral and a
    medication with its pharmacy. Returns the patient's id."""
    with newer_code():
        pid = records.add_patient("Okafor", "Ada", "1980-02-03").id
        set_preferred_name(records, pid, "Dee")
        refer(records, pid, "Cardiology", "Murmur heard at the visit")
        add_medication(records, pid, "Metformin", "Main Street Pharmacy")
    return pid

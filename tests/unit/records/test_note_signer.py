"""Who signed a note: a nurse drafts, a clinician signs, and every replica, the printed
visit and the FHIR export name the clinician as the signer and the nurse as the author
(a note was once shown and printed as signed by whoever wrote it)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt, unknown
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.fhir.document import note_to_fhir
from core.records.notes import Notes
from core.records.spec import Mutation
from core.records.types import RECORD_TYPES
from core.records.visits import Visits
from core.reports import data
from core.store.database import Database
from core.store.migrations import MIGRATIONS
from tests.clinic_identity import join_test_clinic
from tests.unit.sync.replicas import NOTE_BEFORE_V20, new_replica, sync_pair


def test_the_signer_is_who_signed_on_every_replica() -> None:
    desk, consult = new_replica("nora"), new_replica("doug")
    patient = desk.add_patient("Roe", "Jane", "1970-03-12")
    drafted = Notes(desk).create(patient.id, "Wheeze, peak flow 300.")
    assert drafted.signed_by is None
    sync_pair(consult, desk)
    Notes(consult).sign(drafted.id)
    sync_pair(consult, desk)
    for replica in (desk, consult):
        note = Notes(replica).get(drafted.id)
        assert (note.author, note.signed_by) == ("nora", "doug")
    authenticator = note_to_fhir(Notes(desk).get(drafted.id)).authenticator
    assert authenticator is not None and authenticator.identifier is not None
    assert authenticator.identifier.value == "doug"


def test_the_printed_visit_names_the_signer() -> None:
    records = new_replica("admin")
    patient = records.add_patient("Roe", "Jane", "1970-03-12")
    visit = Visits(records).start(patient.id, reason="cough")
    nurse = ClinicRecords(records.db, "nora", FAST_PARAMS)
    note = Visits(nurse).add_note(visit.id, "Cough for a week.")
    Notes(ClinicRecords(records.db, "doug", FAST_PARAMS)).sign(note.id)
    (line,) = data.visit_report(records, visit.id).notes
    assert (line.author, line.signed_by) == ("nora", "doug")


BEFORE_V19 = dataclasses.replace(
    NOTE_BEFORE_V20, columns=tuple(c for c in NOTE_BEFORE_V20.column_names[1:] if c != "signed_by")
)


def _as_before_v19(db: Database, actor: str, action: str, note_id: str, fn: Mutation) -> None:
    """Write a note as the release before V19 did: its derived row has no signed_by."""
    saved = RECORD_TYPES["note"]
    RECORD_TYPES["note"] = BEFORE_V19
    try:
        with db.write(actor, action, "note", note_id) as tx:
            change(tx, actor, note_id, "note", fn)
    finally:
        RECORD_TYPES["note"] = saved


def test_a_file_from_before_v19_names_its_signers_after_the_upgrade(tmp_path: Path) -> None:
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    path = tmp_path / "clinic.db"
    db = Database.create(path, key, tuple(m for m in MIGRATIONS if m[0] < 19))
    join_test_clinic(db)
    patient = ClinicRecords(db, "nora", FAST_PARAMS).add_patient("Roe", "Jane", "1970-03-12")
    note_id = new_id()

    def draft(doc: RecordDoc, hlc: str) -> None:
        for field, value in (("patient_id", patient.id), ("author", "nora")):
            crdt.write(doc, field, value, hlc, "nora")
        crdt.text(doc, "body").insert(0, "Seen for wheeze.")

    def sign(doc: RecordDoc, hlc: str) -> None:
        crdt.write(doc, "signed_body", "Seen for wheeze.", hlc, "doug")
        crdt.write(doc, "signed_at", "2026-12-06T01:00:00+00:00", hlc, "doug")

    _as_before_v19(db, "nora", "note.create", note_id, draft)
    _as_before_v19(db, "doug", "note.sign", note_id, sign)
    db.close()

    upgraded = Database.open(path, key)  # V19 adds the column and lists notes to derive
    assert upgraded.query("SELECT author, signed_by FROM notes") == [("nora", None)]
    unknown.refresh(upgraded)
    signed = Notes(ClinicRecords(upgraded, "nora", FAST_PARAMS)).get(note_id)
    assert (signed.author, signed.signed_by) == ("nora", "doug")
    upgraded.close()

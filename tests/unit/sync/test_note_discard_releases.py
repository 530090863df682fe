"""A discarded draft and the release before V20, which has no discards: it keeps and relays
the discard as a field it does not know (and keeps showing the draft), a workstation of
this release behind it hides the draft, and once upgraded (V20 on its file, then the
re-derivation) it hides it too."""

from __future__ import annotations

import os
from pathlib import Path

from core.crypto.secure_memory import SecureMemory
from core.records import crdt, signed_notes, unknown
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.notes import Notes
from core.records.spec import Mutation
from core.records.visits import Visits
from core.store.database import Database
from core.store.migrations import MIGRATIONS
from tests.clinic_identity import join_test_clinic
from tests.unit.sync.replicas import assert_converged, before_v20, new_replica, sync_pair

# V20 recorded on a replica's file: what the migration lists for re-derivation.
RECHECK_NOTES = (
    "INSERT OR IGNORE INTO unknown_records (id, type, parts) "
    "SELECT id, type, 'recheck' FROM record_states WHERE type = 'note'"
)


def _visible(r: ClinicRecords, visit_id: str) -> list[str]:
    """The ids of the visit's notes as its release's notes table lists them."""
    return [str(i) for (i,) in r.db.query(
        "SELECT id FROM notes WHERE encounter_id = ? AND discarded_at IS NULL", (visit_id,)
    )]  # fmt: skip


def test_a_workstation_before_v20_relays_a_discard_and_keeps_showing_the_draft() -> None:
    new, relay, far = new_replica("ann"), new_replica("ann"), new_replica("ann")
    visit = Visits(new).start(new.add_patient("Roe", "Jane", "1970-03-12").id, "Cough")
    note = Visits(new).add_note(visit.id, "Wrong chart: chest pain.")
    with before_v20():
        sync_pair(relay, new)
    Notes(new).discard(note.id)
    with before_v20():
        sync_pair(relay, new)
        assert _visible(relay, visit.id) == [note.id]  # shown: it knows no discards
        [(parts,)] = relay.db.query("SELECT parts FROM unknown_records WHERE id = ?", (note.id,))
        assert "field:discarded_at" in parts
    sync_pair(far, relay)  # relayed whole: the workstation behind it hides the draft
    assert _visible(far, visit.id) == []
    assert Notes(far).get(note.id).discarded_at == Notes(new).get(note.id).discarded_at
    # The relay upgrades: V20 lists its notes, the re-derivation hides the draft.
    with relay.db.write("upgrade", "records.rederive", "record_states", "notes") as tx:
        tx.execute(RECHECK_NOTES)
    unknown.refresh(relay.db)
    assert _visible(relay, visit.id) == []
    assert_converged([new, relay, far])


def test_v20_hides_a_draft_discarded_on_a_newer_workstation_before_the_upgrade(
    tmp_path: Path,
) -> None:
    """A file of the previous release (schema 19) holding a draft whose discard a newer
    workstation wrote: V20 adds the column and lists the notes, the re-derivation fills it;
    a draft not discarded stays on the chart."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    path = tmp_path / "clinic.db"
    db = Database.create(path, key, tuple(m for m in MIGRATIONS if m[0] < 20))
    join_test_clinic(db)
    with before_v20():
        old = ClinicRecords(db, "nora")
        patient = old.add_patient("Roe", "Jane", "1970-03-12").id
        kept, gone = new_id(), new_id()
        for note_id, text in ((kept, "Seen for wheeze."), (gone, "Wrong chart.")):
            _write(old, "note.create", note_id, _draft(patient, text))
        _write(old, "note.edit", gone, signed_notes.discard("doug", "2026-12-06T09:00:00+00:00"))
        assert {str(i) for (i,) in db.query("SELECT id FROM notes")} == {kept, gone}
    db.close()

    upgraded = Database.open(path, key)
    assert upgraded.query("SELECT discarded_at FROM notes") == [(None,), (None,)]
    unknown.refresh(upgraded)
    records = ClinicRecords(upgraded, "nora")
    assert [n.id for n in Notes(records).for_patient(patient)] == [kept]
    assert Notes(records).get(gone).discarded_at == "2026-12-06T09:00:00+00:00"
    assert upgraded.query("SELECT count(*) FROM unknown_records") == [(0,)]
    upgraded.close()


def _draft(patient_id: str, text: str) -> Mutation:
    def create(doc: RecordDoc, hlc: str) -> None:
        for field, value in (("patient_id", patient_id), ("author", "nora")):
            crdt.write(doc, field, value, hlc, "nora")
        crdt.text(doc, "body").insert(0, text)

    return create


def _write(records: ClinicRecords, action: str, note_id: str, fn: Mutation) -> None:
    with records.db.write(records.actor, action, "note", note_id) as tx:
        change(tx, records.actor, note_id, "note", fn)

"""A signed note stays as signed on every replica, whatever a remote replica sends.

The local API already refuses to edit a signed note; these tests forge the ops a hostile
or broken replica could send instead (raw document changes through the one write path)
and check that the receiving replica refuses them by name and keeps the note unchanged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from pycrdt import Map

from core.records import crdt
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.notes import Notes
from core.records.replication import (
    ApplyError,
    RecordState,
    SnapshotPage,
    apply_ops,
    apply_snapshot_page,
    replica_id,
)
from core.store.oplog import Op, format_hlc, identity
from core.store.state_codec import unpack_state
from core.sync.session import SyncError
from tests.clinic_identity import certificate_of, signed_as
from tests.fuzz.campaign import CORPUS
from tests.unit.sync.replicas import dump_diff, full_dump, materialized, new_replica, sync_pair

Forgery = Callable[[RecordDoc, str], object]


def _forge(r: ClinicRecords, note_id: str, forgery: Forgery) -> None:
    """Change the note's document directly, as a replica running other code could."""
    with r.db.write(r.actor, "note.edit", "note", note_id) as tx:

        def forge(doc: RecordDoc, hlc: str) -> None:
            forgery(doc, hlc)

        change(tx, r.actor, note_id, "note", forge)


def _signed_note_on_two_replicas() -> tuple[ClinicRecords, ClinicRecords, str, str]:
    a, b = new_replica("ann"), new_replica("mallory")
    patient = a.add_patient("Roy", "Lee", "1960-01-01")
    note = Notes(a).create(patient.id, "Seen today.")
    Notes(a).sign(note.id)
    Notes(a).add_addendum(note.id, "BP normal.")
    sync_pair(b, a)  # b has seen the signature
    return a, b, note.id, patient.id


def _remove_addenda(doc: RecordDoc, hlc: str) -> None:
    for element in crdt.elements(doc, "addenda"):
        crdt.remove(doc, "addenda", element.element_id, hlc, "mallory")


def _rewrite_addenda(doc: RecordDoc, hlc: str) -> None:
    for element in crdt.elements(doc, "addenda"):
        crdt.restore(doc, "addenda", element.element_id, {"body": "BP high."}, hlc, "mallory")


FORGERIES: dict[str, tuple[Forgery, str]] = {
    "edit the text": (
        lambda doc, _hlc: crdt.replace_text(doc, "body", "Never seen."),
        "edits the text of a signed note",
    ),
    "replace the signed text": (
        lambda doc, hlc: crdt.write(doc, "signed_body", "Forged text.", hlc, "mallory"),
        "changes the signed_body of a signed note",
    ),
    "unsign": (
        lambda doc, hlc: crdt.write(doc, "signed_at", None, hlc, "mallory"),
        "clears the signed_at of a signed note",
    ),
    "delete the signature entry": (
        lambda doc, _hlc: [
            doc.get("r", type=Map).pop(f"signed_at/{e.write_id}")
            for e in crdt.live(doc, "signed_at")
        ],
        "removes the signed_at of a signed note",
    ),
    "remove an addendum": (_remove_addenda, "removes an addendum of a signed note"),
    "rewrite an addendum": (_rewrite_addenda, "rewrites an addendum of a signed note"),
    "move it to another chart": (
        lambda doc, hlc: crdt.write(doc, "patient_id", "someone-else", hlc, "mallory"),
        "changes the patient_id of a signed note",
    ),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_a_forged_change_to_a_signed_note_is_refused_and_changes_nothing(name: str) -> None:
    a, b, note_id, _ = _signed_note_on_two_replicas()
    forgery, reason = FORGERIES[name]
    _forge(b, note_id, forgery)
    before = materialized(a)
    vector = a.db.query("SELECT origin, seq FROM oplog ORDER BY origin, seq")
    with pytest.raises(SyncError, match=f"{reason} \\({note_id}\\)"):
        sync_pair(b, a)
    assert materialized(a) == before
    assert a.db.query("SELECT origin, seq FROM oplog ORDER BY origin, seq") == vector
    shown = Notes(a).get(note_id)
    assert (shown.body, [x.body for x in shown.addenda]) == ("Seen today.", ["BP normal."])
    assert shown.signed_at is not None


def test_honest_changes_to_a_signed_note_still_sync() -> None:
    a, b, note_id, _ = _signed_note_on_two_replicas()
    Notes(b).add_addendum(note_id, "Follow up in 2 weeks.")
    sync_pair(b, a)
    for r in (a, b):
        assert [x.body for x in Notes(r).get(note_id).addenda] == [
            "BP normal.",
            "Follow up in 2 weeks.",
        ]
    assert materialized(a) == materialized(b)


def test_two_people_signing_at_once_is_a_conflict_they_can_resolve() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    patient = a.add_patient("Kim", "Min", "1985-01-01")
    note = Notes(a).create(patient.id, "Plan: review.")
    sync_pair(b, a)
    Notes(b).edit(note.id, "Plan: review in 2 weeks.")
    Notes(a).sign(note.id)
    Notes(b).sign(note.id)
    sync_pair(b, a)  # neither signing saw the other: both are kept, as a conflict
    fields = {c.field for c in a.conflicts()}
    assert "signed_body" in fields
    conflict = next(c for c in a.conflicts() if c.field == "signed_body")
    bobs = next(c for c in conflict.candidates if c.value == "Plan: review in 2 weeks.")
    a.resolve_conflict(conflict.id, choose=bobs.id)
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).body == "Plan: review in 2 weeks."
        assert "signed_body" not in {c.field for c in r.conflicts()}
    assert materialized(a) == materialized(b)


def test_a_body_conflict_names_who_signed_and_who_edited() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    patient = a.add_patient("Roy", "Lee", "1960-01-01")
    note = Notes(a).create(patient.id, "Seen today.")
    sync_pair(b, a)
    Notes(a).sign(note.id)
    Notes(b).edit(note.id, "Seen today. BP high.")
    sync_pair(b, a)
    [conflict] = a.conflicts()
    sides = {c.id: c for c in conflict.candidates}
    assert (sides["signed"].author, sides["unsigned-edit"].author) == ("ann", "bob")
    assert sides["signed"].replica == replica_id(a.db)
    assert sides["unsigned-edit"].replica == replica_id(b.db)
    assert all(side.time for side in sides.values())


def test_a_snapshot_page_that_unsigns_a_note_is_refused() -> None:
    a, b, note_id, _ = _signed_note_on_two_replicas()
    _forge(b, note_id, FORGERIES["unsign"][0])
    [(state,)] = b.db.query("SELECT state FROM record_states WHERE id = ?", (note_id,))
    page = SnapshotPage({}, (RecordState(note_id, "note", unpack_state(state)),), None)
    before = materialized(a)
    with pytest.raises(ApplyError, match=f"signed_at of a signed note \\({note_id}\\)"):
        apply_snapshot_page(a.db, page, "peer")
    assert materialized(a) == before


def _entry_with_bad_json(doc: RecordDoc) -> None:
    doc.get("r", type=Map)["signed_at/forged"] = "{not json"


def _entry_with_bad_hlc(doc: RecordDoc) -> None:
    entry = {"v": "x", "h": "12345;789.0000.zz", "a": "mallory"}
    doc.get("r", type=Map)["patient_id/forged"] = json.dumps(entry)


def _forged_note(
    r: ClinicRecords, note_id: str, forgery: Callable[[RecordDoc], None]
) -> tuple[Op, str]:
    """An op of another replica's that puts what no Careline writes into the note (the local
    write path would refuse to store it, so the update is made on the document itself),
    and the forger's certificate: it is a device of the clinic and signs the op, so only
    the content is wrong."""
    forger_db = new_replica("mallory").db
    forger = identity(forger_db)
    [(state,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (note_id,))
    doc = crdt.load(unpack_state(state), forger.client_id)
    deps = doc.get_state()
    forgery(doc)
    hlc = format_hlc(int(time.time() * 1000), 0, forger.replica_id)
    op = Op(forger.replica_id, 1, note_id, "note", doc.get_update(deps), deps, hlc, "mallory")
    [signed] = signed_as(forger_db, [op])
    return signed, certificate_of(forger_db)


@pytest.mark.parametrize("forgery", [_entry_with_bad_json, _entry_with_bad_hlc])
def test_an_op_leaving_a_malformed_entry_in_a_signed_note_is_refused(
    forgery: Callable[[RecordDoc], None],
) -> None:
    # Found by fuzzing (tests/fuzz/corpus/sync_client/crash-signed-note-malformed-entry and
    # .../sync_responder/crash-push-entry-with-bad-hlc): the signed-note check, or deriving
    # the note's rows, raised the parser's own error (stopping sync with a traceback).
    a, _, note_id, _ = _signed_note_on_two_replicas()
    op, certificate = _forged_note(a, note_id, forgery)
    before = full_dump(a)
    with pytest.raises(ApplyError, match="malformed entry"):
        apply_ops(a.db, [op], "peer", [certificate])
    assert dump_diff(before, full_dump(a)) == {}


def test_a_snapshot_state_with_a_malformed_entry_is_refused() -> None:
    a, _, note_id, _ = _signed_note_on_two_replicas()
    op, _ = _forged_note(a, note_id, _entry_with_bad_hlc)
    [(state,)] = a.db.query("SELECT state FROM record_states WHERE id = ?", (note_id,))
    doc = crdt.load(unpack_state(state), 4243)
    doc.apply_update(op.update)
    page = SnapshotPage({}, (RecordState(note_id, "note", doc.get_update()),), None)
    before = full_dump(a)
    with pytest.raises(ApplyError, match="malformed entry"):
        apply_snapshot_page(a.db, page, "peer")
    assert dump_diff(before, full_dump(a)) == {}


def test_a_snapshot_state_that_pycrdt_cannot_encode_is_refused() -> None:
    # Found by fuzzing (tests/fuzz/corpus/crdt_update/crash-state-panics-pycrdt-on-encoding):
    # this note state applies, but encoding the document again makes pycrdt panic.
    data = (CORPUS / "crdt_update" / "crash-state-panics-pycrdt-on-encoding").read_bytes()
    a = new_replica("ann")
    page = SnapshotPage({}, (RecordState("fuzz-note", "note", data[2:]),), None)
    before = full_dump(a)
    with pytest.raises(ApplyError) as refused:
        apply_snapshot_page(a.db, page, "peer")
    assert str(refused.value) == "record fuzz-note: the record's state is not a valid Yjs update"
    assert dump_diff(before, full_dump(a)) == {}


def test_a_note_state_without_its_author_is_refused() -> None:
    # Found by fuzzing (tests/fuzz/corpus/crdt_update/crash-note-state-without-author): the
    # note's derived row broke the notes table's NOT NULL author, an IntegrityError.
    a, b, note_id, _ = _signed_note_on_two_replicas()
    [(state,)] = b.db.query("SELECT state FROM record_states WHERE id = ?", (note_id,))
    doc = crdt.load(unpack_state(state), 4244)
    registers = doc.get("r", type=Map)
    for key in [k for k in registers if k.startswith("author/")]:
        del registers[key]
    page = SnapshotPage({}, (RecordState("another-note", "note", doc.get_update()),), None)
    before = full_dump(a)
    with pytest.raises(ApplyError, match="cannot be stored"):
        apply_snapshot_page(a.db, page, "peer")
    assert dump_diff(before, full_dump(a)) == {}

"""Discarding a draft: a note started on the wrong chart or visit (or left as only its
headings) leaves every listing, on every replica it syncs to; a signed note never does
(a concurrent signing wins); a discard made while the note was edited elsewhere is a
conflict a person settles either way. Replicas here sync for real (``sync_pair``)."""

from __future__ import annotations

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import crdt
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.errors import NotAllowedError, ValidationError
from core.records.fhir.export import export_bundle
from core.records.notes import SOAP_TEMPLATE, Note, Notes
from core.records.visits import Visits
from core.reports import data
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def _draft_on_two_replicas(
    text: str = "Wrong chart: chest pain.",
) -> tuple[ClinicRecords, ClinicRecords, Note, str]:
    """A draft written in a visit on ``a`` (edited once), synced to ``b``."""
    a, b = new_replica("ann"), new_replica("bob")
    patient = a.add_patient("Roe", "Jane", "1970-03-12")
    visit = Visits(a).start(patient.id, "Cough")
    note = Notes(a).edit(Visits(a).add_note(visit.id).id, text)
    sync_pair(b, a)
    return a, b, note, visit.id


def _shown(r: ClinicRecords, note: Note, visit_id: str) -> bool:
    """Whether the note is on the chart and in its visit (each listing agrees)."""
    on_chart = note.id in [n.id for n in Notes(r).for_patient(note.patient_id)]
    in_visit = note.id in [n.id for n in Visits(r).visit_notes(visit_id)]
    in_contents = note.id in [n.id for n in Visits(r).contents(visit_id).notes]
    assert on_chart == in_visit == in_contents
    return on_chart


def test_a_discarded_draft_leaves_every_listing_and_stays_readable() -> None:
    a, b, note, visit_id = _draft_on_two_replicas()
    discarded = Notes(a).discard(note.id)
    assert discarded.discarded_at is not None and discarded.body == note.body
    assert not _shown(a, note, visit_id)
    # Still readable by id (the audit, the history), and says it is discarded.
    assert Notes(a).get(note.id).discarded_at == discarded.discarded_at
    printed = data.visit_report(a, visit_id)
    assert printed.notes == ()
    assert "DocumentReference" not in export_bundle(a, note.patient_id).counts
    audit = a.db.query(
        "SELECT actor, entity FROM audit_log WHERE action = 'note.discard' AND entity_id = ?",
        (note.id,),
    )
    assert audit == [("ann", "note")]
    # Synced: gone from the other replica too, byte-for-byte the same rows.
    sync_pair(b, a)
    assert not _shown(b, note, visit_id)
    assert materialized(a) == materialized(b)


def test_a_template_only_draft_can_be_discarded() -> None:
    r = new_replica("ann")
    visit = Visits(r).start(r.add_patient("Li", "Wei", "1990-01-01").id)
    note = Visits(r).add_note(visit.id, SOAP_TEMPLATE)  # never edited: no edit entry
    Notes(r).discard(note.id)
    assert Visits(r).visit_notes(visit.id) == []


def test_a_signed_or_discarded_note_is_refused_with_the_reason() -> None:
    r = new_replica("ann")
    patient = r.add_patient("Li", "Wei", "1990-01-01")
    signed = Notes(r).create(patient.id, "Seen for wheeze.")
    Notes(r).sign(signed.id)
    with pytest.raises(ValidationError, match="a signed note is the legal record") as refused:
        Notes(r).discard(signed.id)
    assert refused.value.field == "discarded_at"
    draft = Notes(r).create(patient.id, "Wrong chart.")
    Notes(r).discard(draft.id)
    with pytest.raises(ValidationError, match="the note is already discarded"):
        Notes(r).discard(draft.id)
    with pytest.raises(ValidationError, match="discarded and is no longer on the chart; it "
                       "cannot be edited"):  # fmt: skip
        Notes(r).edit(draft.id, "More text.")
    with pytest.raises(ValidationError, match="cannot be signed"):
        Notes(r).sign(draft.id)
    assert [n.id for n in Notes(r).for_patient(patient.id)] == [signed.id]
    assert r.db.query("SELECT count(*) FROM audit_log WHERE action = 'note.discard'") == [(1,)]


@pytest.mark.strict_authz
def test_who_may_write_a_note_may_discard_it_and_no_one_else() -> None:
    r = new_replica("admin")
    r.set_up_clinic("Riverside", "admin", "Ada Admin", "correct horse battery")
    note = Notes(r).create(r.add_patient("Li", "Wei", "1990-01-01").id, "Wrong chart.")
    r.add_user("desk", "Front Desk", "front_desk", "correct horse battery")
    with pytest.raises(NotAllowedError, match="can discard a draft note"):
        Notes(ClinicRecords(r.db, "desk", FAST_PARAMS)).discard(note.id)
    assert Notes(r).get(note.id).discarded_at is None
    r.add_user("nora", "Nora Nurse", "nurse", "correct horse battery")
    assert Notes(ClinicRecords(r.db, "nora", FAST_PARAMS)).discard(note.id).discarded_at


def test_a_discard_concurrent_with_signing_leaves_the_note_signed() -> None:
    a, b, note, visit_id = _draft_on_two_replicas()
    Notes(a).discard(note.id)
    Notes(b).sign(note.id)
    sync_pair(b, a)
    for r in (a, b):
        kept = Notes(r).get(note.id)
        assert kept.signed_at is not None and kept.discarded_at is None
        assert _shown(r, note, visit_id)
        assert r.conflicts() == []
    assert materialized(a) == materialized(b)


def test_a_remote_discard_of_a_signed_note_does_not_hide_it() -> None:
    """Written straight to the document (as another replica's code could, after seeing
    the signature): applied like any write of a note, and ignored by every replica."""
    a, b, note, visit_id = _draft_on_two_replicas()
    Notes(a).sign(note.id)
    sync_pair(b, a)

    def discard_anyway(doc: RecordDoc, hlc: str) -> None:
        crdt.write(doc, "discarded_at", "2026-01-01T00:00:00+00:00", hlc, "bob")

    with b.db.write("bob", "note.edit", "note", note.id) as tx:
        change(tx, "bob", note.id, "note", discard_anyway)
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).discarded_at is None
        assert _shown(r, note, visit_id)


def _discard_against_an_edit() -> tuple[ClinicRecords, ClinicRecords, Note, str]:
    a, b, note, visit_id = _draft_on_two_replicas()
    Notes(a).discard(note.id)
    Notes(b).edit(note.id, "Wrong chart: chest pain. Troponin sent.")  # before b saw it
    sync_pair(b, a)
    return a, b, note, visit_id


def test_a_discard_concurrent_with_an_edit_keeps_the_note_as_a_conflict() -> None:
    a, b, note, visit_id = _discard_against_an_edit()
    for r in (a, b):
        assert _shown(r, note, visit_id)  # kept until a person decides
        [conflict] = r.conflicts()
        assert (conflict.record_id, conflict.field) == (note.id, "discarded_at")
        by_id = {c.id: c for c in conflict.candidates}
        assert set(by_id) == {"discard", "keep"}
        assert (by_id["discard"].author, by_id["keep"].author) == ("ann", "bob")
        assert by_id["discard"].value is not None and by_id["keep"].value is None
    assert materialized(a) == materialized(b)


@pytest.mark.parametrize(("choice", "shown"), [("discard", False), ("keep", True)])
def test_the_discard_conflict_is_settled_either_way(choice: str, shown: bool) -> None:
    a, b, note, visit_id = _discard_against_an_edit()
    b.resolve_conflict(b.conflicts()[0].id, choose=choice)
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == []
        assert _shown(r, note, visit_id) is shown
        assert Notes(r).get(note.id).body == "Wrong chart: chest pain. Troponin sent."
    assert materialized(a) == materialized(b)
    if shown:  # kept: it is a draft like any other, and can be discarded later
        Notes(a).edit(note.id, "Right chart after all.")
        Notes(a).discard(note.id)
        assert not _shown(a, note, visit_id)


def test_the_discard_conflict_takes_no_typed_value() -> None:
    a, _b, _note, _visit = _discard_against_an_edit()
    conflict = a.conflicts()[0]
    with pytest.raises(ValidationError, match="choose whether to discard the draft or keep it"):
        a.resolve_conflict(conflict.id, value="yes")
    assert a.conflicts() == [conflict]


def test_two_people_discarding_the_same_draft_is_no_conflict() -> None:
    a, b, note, visit_id = _draft_on_two_replicas()
    Notes(a).discard(note.id)
    Notes(b).discard(note.id)
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == [] and not _shown(r, note, visit_id)


def test_who_discarded_a_draft_where_and_when_is_read_on_every_replica() -> None:
    """The note editor names the discard's author, workstation and time (a sync brought
    it, or another window made it); nothing while the note is on the chart."""
    a, b, note, _visit_id = _draft_on_two_replicas()
    assert Notes(b).discarding(note.id) is None
    discarded = Notes(a).discard(note.id)
    sync_pair(b, a)
    found = Notes(b).discarding(note.id)
    assert found is not None
    assert (found.by, found.at) == ("ann", discarded.discarded_at)
    replica_a = a.db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0]
    assert found.replica == replica_a

from __future__ import annotations

import pytest

from core.records.errors import ValidationError
from core.records.notes import Notes
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def test_note_lifecycle_sign_then_addenda_only() -> None:
    r = new_replica("dr.ade")
    p = r.add_patient("Bello", "Ada", "1970-01-01")
    notes = Notes(r)
    note = notes.create(p.id, "Cough for 3 days.")
    note = notes.edit(note.id, "Cough for 3 days. No fever.")
    assert note.body == "Cough for 3 days. No fever."
    signed = notes.sign(note.id)
    assert signed.signed_at is not None
    with pytest.raises(ValidationError, match="signed; add an addendum"):
        notes.edit(note.id, "Changed after signing")
    after = notes.add_addendum(note.id, "Chest X-ray normal.")
    assert after.body == "Cough for 3 days. No fever."
    assert [a.body for a in after.addenda] == ["Chest X-ray normal."]
    assert [a.recorded_by for a in after.addenda] == ["dr.ade"]
    assert [n.id for n in notes.for_patient(p.id)] == [note.id]


def test_concurrent_edits_to_different_parts_of_a_note_merge() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Kim", "Min", "1985-01-01")
    note = Notes(a).create(p.id, "History: asthma.\nPlan: review.")
    sync_pair(b, a)
    Notes(a).edit(note.id, "History: asthma since 2001.\nPlan: review.")
    Notes(b).edit(note.id, "History: asthma.\nPlan: review in 2 weeks.")
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).body == "History: asthma since 2001.\nPlan: review in 2 weeks."
    assert materialized(a) == materialized(b)


def test_edit_concurrent_with_signing_is_kept_as_a_conflict_then_addendum() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Roy", "Lee", "1960-01-01")
    note = Notes(a).create(p.id, "Seen today.")
    sync_pair(b, a)
    Notes(a).sign(note.id)
    Notes(b).edit(note.id, "Seen today. BP high.")
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).body == "Seen today."  # the signed text is what shows
        [conflict] = r.conflicts()
        assert conflict.field == "body"
        assert {c.value for c in conflict.candidates} == {"Seen today.", "Seen today. BP high."}
    a.resolve_conflict(a.conflicts()[0].id, choose="unsigned-edit")
    sync_pair(b, a)
    for r in (a, b):
        shown = Notes(r).get(note.id)
        assert shown.body == "Seen today."
        assert [x.body for x in shown.addenda] == ["Seen today. BP high."]
        assert r.conflicts() == []

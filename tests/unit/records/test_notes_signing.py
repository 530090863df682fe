"""Signing freezes a note for good, so a note that says nothing yet is refused: an empty
one, or an untouched SOAP template (its headings and nothing else)."""

from __future__ import annotations

import pytest

from core.records import crdt
from core.records.changes import change
from core.records.errors import ValidationError
from core.records.notes import SOAP_TEMPLATE, Notes
from core.records.visits import Visits
from tests.unit.sync.replicas import new_replica

HEADINGS_ONLY = "the note holds only its headings; write the note before signing it"


@pytest.mark.parametrize(
    "body",
    [
        SOAP_TEMPLATE,
        "  Subjective:\n\nObjective:\nAssessment:\n\n\n  Plan:  \n\n",  # spacing changed
        "Subjective:\n\nPlan:\n",  # some headings removed, nothing written
        "SUBJECTIVE: objective: Assessment: PLAN:",
    ],
)
def test_a_note_of_only_soap_headings_cannot_be_signed(body: str) -> None:
    r = new_replica("dr.ade")
    visit = Visits(r).start(r.add_patient("Bello", "Ada", "1970-01-01").id, "Cough")
    note = Visits(r).add_note(visit.id, body)
    with pytest.raises(ValidationError, match=HEADINGS_ONLY) as refused:
        Notes(r).sign(note.id)
    assert refused.value.field == "body"
    assert Notes(r).get(note.id).signed_at is None  # still open for writing


def test_a_note_with_one_line_under_a_heading_is_signed() -> None:
    r = new_replica("dr.ade")
    visit = Visits(r).start(r.add_patient("Bello", "Ada", "1970-01-01").id, "Cough")
    note = Visits(r).add_note(visit.id)
    body = SOAP_TEMPLATE.replace("Plan:\n", "Plan:\nReview in 2 weeks.\n")
    Notes(r).edit(note.id, body)
    signed = Notes(r).sign(note.id)
    assert signed.signed_at is not None and signed.body == body


def test_a_note_emptied_by_a_synced_edit_cannot_be_signed() -> None:
    """Editing refuses an empty text, but a document can still come to hold one (written
    straight to it here, as another replica's op could): signing checks what it freezes."""
    r = new_replica("ann")
    note = Notes(r).create(r.add_patient("Li", "Wei", "1990-01-01").id, "Cough.")
    with r.db.write("ann", "note.edit", "note", note.id) as tx:
        change(tx, "ann", note.id, "note", lambda doc, _hlc: crdt.replace_text(doc, "body", ""))
    with pytest.raises(ValidationError, match="the note is empty; write the note before"):
        Notes(r).sign(note.id)


def test_a_note_still_holding_both_peoples_text_cannot_be_signed() -> None:
    r = new_replica("dr.ade")
    note = Notes(r).create(r.add_patient("Li", "Wei", "1990-01-01").id, "BP 120/80")
    Notes(r).edit(note.id, crdt.merge_edits("BP 120/80", "BP 130/80", "BP 120/90"))
    with pytest.raises(ValidationError, match="choose what stays before signing"):
        Notes(r).sign(note.id)
    Notes(r).edit(note.id, "BP 130/80")  # the clinician chose
    assert Notes(r).sign(note.id).signed_at is not None

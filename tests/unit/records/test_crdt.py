"""Field kinds on record documents, as people see them after their changes merge.

A note's text is edited by handing the whole new body to ``crdt.replace_text``, which turns
it into character edits; those edits must stay anchored to what the person actually
changed, or two people's concurrent edits merge into text neither of them wrote.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.records import crdt
from core.records.notes import Notes
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def test_a_sentence_added_next_to_one_deleted_elsewhere_survives_intact() -> None:
    """Ann adds "RR normal." between two sentences while Bob deletes the first one. A
    character diff expressed Ann's insertion by reusing the letters of "BP normal." (which
    read the same), so Bob's deletion took them along and both replicas showed
    " normal. RRHR normal." -- neither person's text, in a clinical record."""
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    note = Notes(a).create(pid, "BP normal. HR normal.")
    sync_pair(b, a)
    Notes(a).edit(note.id, "BP normal. RR normal. HR normal.")
    Notes(b).edit(note.id, "HR normal.")
    sync_pair(b, a)
    assert materialized(a) == materialized(b)  # they agree, at least
    body = Notes(a).get(note.id).body
    assert "BP normal." not in body  # Bob's deletion applies
    assert "RR normal." in body and "HR normal." in body  # Ann's sentence and the rest stand


@given(
    # Accents, CJK and emoji: pycrdt positions are UTF-8 bytes, not characters.
    old=st.text(alphabet="ab .,\n\u00e9\u65e5\U0001f600", max_size=40),
    new=st.text(alphabet="ab .,\n\u00e9\u65e5\U0001f600", max_size=40),
)
def test_replacing_a_text_always_yields_exactly_the_new_text(old: str, new: str) -> None:
    doc = crdt.load(None, 1)
    crdt.text(doc, "body").insert(0, old)
    crdt.replace_text(doc, "body", new)
    assert str(crdt.text(doc, "body")) == new


def test_a_word_changed_in_the_middle_is_one_small_edit() -> None:
    """Only the changed word is replaced: the rest of the text keeps its identity, so a
    concurrent edit elsewhere in it still merges."""
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    note = Notes(a).create(pid, "Cough for 3 days. Plan: review.")
    sync_pair(b, a)
    Notes(a).edit(note.id, "Cough for 5 days. Plan: review.")
    Notes(b).edit(note.id, "Cough for 3 days. Plan: review in 2 weeks.")
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).body == "Cough for 5 days. Plan: review in 2 weeks."


def test_concurrent_edits_of_accented_text_merge_letter_for_letter() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Müller", "Zoë", "1990-01-01").id
    note = Notes(a).create(pid, "Douleur thoracique. Fièvre légère. 痛み.")
    sync_pair(b, a)
    Notes(a).edit(note.id, "Douleur thoracique aiguë. Fièvre légère. 痛み.")
    Notes(b).edit(note.id, "Douleur thoracique. Fièvre modérée. 痛み.")
    sync_pair(b, a)
    for r in (a, b):
        assert Notes(r).get(note.id).body == "Douleur thoracique aiguë. Fièvre modérée. 痛み."


# A patient's snapshot state with bytes changed by fuzzing
# (tests/fuzz/corpus/crdt_update/crash-update-panics-pycrdt): yrs 0.28 divides by zero on it
# and pycrdt raises pyo3's PanicException, a BaseException.
# (The input's first two bytes choose the record and the dependencies' length, 0.)
PANICKING_UPDATE = (
    Path(__file__).parents[2] / "fuzz/corpus/crdt_update/crash-update-panics-pycrdt"
).read_bytes()[2:]


def test_an_update_that_makes_pycrdt_panic_is_a_malformed_update() -> None:
    doc = crdt.load(None, 7)
    with pytest.raises(ValueError, match="could not be decoded"):
        crdt.apply_update(doc, PANICKING_UPDATE)

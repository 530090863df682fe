"""A note saved by an editor that was open while another workstation's edit arrived: the
three-way merge keeps both people's edits, and never splices their words into a value
neither typed ("BP 130/80" and "BP 120/90" must not become "BP 130/90")."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.records import crdt
from core.records.notes import Notes
from tests.unit.sync.replicas import new_replica, sync_pair

OTHER = "another workstation"
MARK = re.compile(
    r"\[also from another workstation: ([^\]]*)\]|\[another workstation removed: ([^\]]*)\]"
)


def test_two_changes_of_one_blood_pressure_keep_both_values_not_a_mix() -> None:
    merged = crdt.merge_edits("BP 120/80", "BP 130/80", "BP 120/90")
    assert "130/90" not in merged
    assert merged == "BP 130/80 [also from another workstation: 120/90]"


def test_two_changes_of_one_temperature_keep_both_values_not_a_mix() -> None:
    merged = crdt.merge_edits("Temp 37.2 C", "Temp 37.5 C", "Temp 38.2 C")
    assert "38.5" not in merged
    assert merged == "Temp 37.5 [also from another workstation: 38.2] C"


def test_a_change_next_to_the_others_change_is_not_spliced_into_one_dose() -> None:
    """ "5 mg" changed to "10 mg" here and to "5 mcg" there: "10 mcg" is a dose nobody
    wrote, so neighbouring words count as the same place."""
    merged = crdt.merge_edits("Dose 5 mg daily.", "Dose 10 mg daily.", "Dose 5 mcg daily.")
    assert "10 mcg" not in merged
    assert merged == "Dose 10 mg [also from another workstation: 5 mcg] daily."


def test_a_value_the_other_removed_is_named_not_silently_kept() -> None:
    merged = crdt.merge_edits("BP 120/80 HR 70", "BP 130/80 HR 70", "BP HR 70")
    assert merged == "BP 130/80 [another workstation removed: 120/80] HR 70"


def test_edits_of_separate_words_both_stay_without_a_mark() -> None:
    merged = crdt.merge_edits(
        "Cough for 3 days. Plan: review.",
        "Cough for 5 days. Plan: review.",
        "Cough for 3 days. Plan: review in 2 weeks.",
    )
    assert merged == "Cough for 5 days. Plan: review in 2 weeks."


def test_a_note_saved_over_a_synced_change_of_the_same_value_keeps_both() -> None:
    """Through Notes.edit, as the editor saves: A's screen started from the text before
    B's change of the same blood pressure arrived."""
    a, b = new_replica("ann"), new_replica("bob")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    base = "Objective:\nBP 120/80, T 37.2 C.\n"
    note = Notes(a).create(pid, base)
    sync_pair(b, a)
    Notes(b).edit(note.id, "Objective:\nBP 120/90, T 38.2 C.\n")
    sync_pair(b, a)
    saved = Notes(a).edit(note.id, "Objective:\nBP 130/80, T 37.5 C.\n", base)
    assert "130/90" not in saved.body and "38.5" not in saved.body
    assert "BP 130/80, [also from another workstation: 120/90,]" in saved.body
    assert "T 37.5 [also from another workstation: 38.2] C." in saved.body


_WORD = st.sampled_from(
    ["BP", "120/80", "130/80", "120/90", "37.2", "37.5", "38.2", "5", "10", "mg", "mcg",
     "mmHg", "C", "5mg", "1.5", "x", "HR", "70", "-", "/", ".", ",", "%", "q8h", "2.5%"]
)  # fmt: skip
_SPACE = st.sampled_from([" ", "  ", "\n", "\n\n", ", ", " / "])


@st.composite
def _texts(draw: st.DrawFn) -> str:
    words = draw(st.lists(_WORD, max_size=8))
    out = ""
    for word in words:
        out += word + draw(st.one_of(_SPACE, st.just("")))  # "" glues words: "37.2C"
    return out


def _words(text: str) -> set[str]:
    return set(text.split())


@given(base=_texts(), ours=_texts(), theirs=_texts())
def test_a_merge_never_holds_a_word_nobody_wrote(base: str, ours: str, theirs: str) -> None:
    merged = crdt.merge_edits(base, ours, theirs)
    # The mark's own words aside, every word (a run without whitespace) was written by
    # someone, whole.
    shown = MARK.sub(lambda m: f" {m.group(1) or m.group(2)} ", merged)
    assert _words(shown) <= _words(base) | _words(ours) | _words(theirs)
    # Nothing either person typed is lost: their new words are all on show.
    assert _words(ours) - _words(base) <= _words(shown)
    assert _words(theirs) - _words(base) <= _words(shown)


@given(base=_texts(), ours=_texts())
def test_with_no_edit_elsewhere_a_merge_is_exactly_this_persons_text(base: str, ours: str) -> None:
    assert crdt.merge_edits(base, ours, base) == ours
    assert crdt.merge_edits(base, base, ours) == ours


@pytest.mark.xfail(
    strict=True,
    reason="Known, not fixed here: two replicas each edit one value offline with "
    "crdt.replace_text and the Yjs merge of their character edits splices it ('BP 130/90'). "
    "Needs concurrent overlapping text edits detected at sync and shown as a conflict.",
)
def test_one_value_edited_offline_on_two_replicas_is_not_spliced_by_sync() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    note = Notes(a).create(a.add_patient("Li", "Wei", "1990-01-01").id, "BP 120/80")
    sync_pair(b, a)
    Notes(a).edit(note.id, "BP 130/80")
    Notes(b).edit(note.id, "BP 120/90")
    sync_pair(b, a)
    assert "130/90" not in Notes(a).get(note.id).body

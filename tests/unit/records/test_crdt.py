"""Field kinds on record documents, as people see them after their changes merge.

A note's text is edited by handing the whole new body to ``crdt.replace_text``, which turns
it into character edits; those edits must stay anchored to what the person actually
changed, or two people's concurrent edits merge into text neither of them wrote.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pycrdt import Map

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
    with pytest.raises(crdt.InvalidUpdateError) as refused:
        crdt.apply_update(doc, PANICKING_UPDATE)
    # In Careline's words: the panic's own text ("attempt to divide by zero") is yrs's.
    assert str(refused.value) == "the update is not a valid Yjs update"
    assert isinstance(refused.value, ValueError)


def test_bytes_pycrdt_cannot_decode_are_named_the_same_way() -> None:
    doc = crdt.load(None, 7)
    with pytest.raises(crdt.InvalidUpdateError) as refused:
        crdt.apply_update(doc, b"\x01\x02\x03", crdt.STATE)
    # Not pycrdt's "Cannot decode update: while trying to read more data ...".
    assert str(refused.value) == "the record's state is not a valid Yjs update"


def _json_form(doc: crdt.RecordDoc, root: str) -> dict[str, Any]:
    """A root map read the way ``crdt._read_root`` read every root before it read them
    entry by entry: serialised to JSON by pycrdt, then parsed."""
    with doc.transaction() as txn:
        native: Any = txn._txn
        data: dict[str, Any] = crdt.parse_json(
            doc._doc.get_or_insert_map(native, root).to_json(native)
        )
        return data


_ENTRY = '{"a":"x","h":"1","s":[],"v":"y"}'


@pytest.mark.parametrize(
    "value",
    [_ENTRY, _ENTRY.encode(), 5, 1.5, True, None, [1, 2], {"v": "y"}, "map", "text", "array"],
)
def test_registers_read_entry_by_entry_read_exactly_as_their_json_form(value: object) -> None:
    """Registers and sets are read entry by entry (``_read_root``), which is only the same
    as reading their JSON form for text entries: any other value a malformed update may
    leave (bytes pycrdt returns raw, a nested text it would serialise as its string) must
    be read, accepted or refused exactly as before, as older replicas do."""
    from pycrdt import Array, Map, Text

    shared: dict[str, Any] = {"map": Map({"v": "y"}), "text": Text(_ENTRY), "array": Array([1])}
    doc = crdt.load(None, 1)
    registers: Map[Any] = doc.get("r", type=Map)
    registers["given/abd"] = _ENTRY
    registers["phone/abc"] = shared.get(value, value) if isinstance(value, str) else value
    expected = _json_form(doc, "r")
    assert crdt._read_root(doc, "r", False) == expected
    assert crdt.live_ids(doc) == {"given": frozenset({"abd"}), "phone": frozenset({"abc"})}
    try:
        crdt.all_live(crdt.load(doc.get_update(), 2), cache=False)
    except (TypeError, ValueError) as exc:
        refused: str | None = type(exc).__name__
    else:
        refused = None
    # What the JSON form gives: text entries parse, anything else is refused.
    parses = all(isinstance(raw, str) for raw in expected.values())
    assert (refused is None) == parses


def test_a_set_change_names_the_visit_it_was_made_in_and_only_a_text_names_one() -> None:
    """``"e"`` in a history entry (a stop or a resolution made during a visit); a value that
    is not a text (no release writes one) names no visit rather than refusing the record."""
    doc = crdt.empty(1)
    hlc = "0000000000001.0000.r1"
    crdt.record_change(doc, "medications", hlc, "ann", added={"x": {"name": "A"}}, visit="v1")
    crdt.record_change(doc, "medications", hlc, "ann", added={"y": {"name": "B"}})
    with doc.transaction():
        odd = json.dumps({"h": hlc, "a": "ann", "e": 7})
        doc.get("h", type=Map)["medications/odd"] = odd
    changes = crdt.all_history(doc)["medications"]
    assert sorted((list(c.added), c.visit) for c in changes) == [
        ([], None), (["x"], "v1"), (["y"], None),
    ]  # fmt: skip

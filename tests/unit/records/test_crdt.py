"""Field kinds on record documents, as people see them after their changes merge.

A note's text is edited by handing the whole new body to ``crdt.replace_text``, which turns
it into character edits; those edits must stay anchored to what the person actually
changed, or two people's concurrent edits merge into text neither of them wrote.
"""

from __future__ import annotations

from core.records.notes import Notes
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def test_a_sentence_added_next_to_one_deleted_elsewhere_survives_intact() -> None:
    """Ann adds "RR normal." between two sentences while Bob deletes the first one. Today
    the text diff expresses Ann's insertion by reusing characters of "BP normal." (which
    reads the same), so Bob's deletion takes them with it: both replicas show
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

"""Resolving a conflict is one audited op that supersedes every live value, and once it has
synced the conflict is gone from every replica's inbox.

Register conflicts, edit-vs-delete conflicts and a note edited while it was signed; each
made on two replicas and resolved on a third that made neither change (list conflicts are
covered in test_set_conflicts.py). Real SQLCipher replicas, real sync sessions.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.records import crdt
from core.records.clinic import ClinicRecords
from core.records.errors import NotFoundError
from core.records.models import Conflict
from core.records.notes import Notes
from core.store import oplog
from core.store.database import Row
from core.store.state_codec import unpack_state
from tests.unit.sync.replicas import assert_converged, dump_diff, full_dump, new_replica, sync_pair


def _three_desks() -> tuple[ClinicRecords, ClinicRecords, ClinicRecords, str]:
    a, b, c = new_replica("ann"), new_replica("bob"), new_replica("cy")
    pid = a.add_patient("Li", "Wei", "1990-01-01").id
    for r in (b, c):
        sync_pair(r, a)
    return a, b, c, pid


def _spread(replicas: list[ClinicRecords]) -> None:
    """Full sync through the first replica: two rounds reach everyone."""
    for _ in range(2):
        for r in replicas[1:]:
            sync_pair(r, replicas[0])


def _only_conflict(r: ClinicRecords) -> Conflict:
    [conflict] = r.conflicts()
    return conflict


def _resolve(r: ClinicRecords, conflict: Conflict, **how: Any) -> Row:
    """Resolve on ``r``, checking it wrote exactly one op and one audit entry; the op."""
    before = full_dump(r)
    r.resolve_conflict(conflict.id, **how)
    changed = dump_diff(before, full_dump(r))
    ops_added, ops_removed = changed["oplog"]
    assert ops_removed == [] and len(ops_added) == 1
    [op] = ops_added
    _rowid, origin, _seq, record_id, record_type, _update, _deps, _hlc, author, *_sig = op
    assert (origin, record_id, record_type, author) == (
        oplog.identity(r.db).replica_id, conflict.record_id, conflict.record_type, r.actor,
    )  # fmt: skip
    audit_added, audit_removed = changed["audit_log"]
    assert audit_removed == [] and len(audit_added) == 1
    [entry] = audit_added
    assert entry[3:7] == (r.actor, "conflict.resolve", conflict.record_type, conflict.record_id)
    details = json.loads(entry[7])
    assert (details["conflict_id"], details["field"]) == (conflict.id, conflict.field)
    return op


def _live(r: ClinicRecords, record_id: str, field: str) -> list[crdt.RegisterEntry]:
    [(state,)] = r.db.query("SELECT state FROM record_states WHERE id = ?", (record_id,))
    return crdt.live(crdt.load(unpack_state(state), 1), field)


@pytest.mark.parametrize("how", ["choose bob's", "new value"])
def test_resolving_a_register_conflict(how: str) -> None:
    a, b, c, pid = _three_desks()
    a.update_patient(pid, {"given": "Wei-Ming"})
    b.update_patient(pid, {"given": "Weiming"})
    _spread([a, b, c])
    conflict = _only_conflict(c)
    assert conflict.field == "given"
    candidates = {x.id for x in conflict.candidates}
    bobs = next(x for x in conflict.candidates if x.author == "bob")
    if how == "new value":
        _resolve(c, conflict, value="Wei Ming")
        expected = "Wei Ming"
    else:
        _resolve(c, conflict, choose=bobs.id)
        expected = "Weiming"
    # One value is left, and it supersedes every value that was live.
    [winner] = _live(c, pid, "given")
    assert winner.value == expected and candidates <= set(winner.supersedes)
    assert c.conflicts() == []
    _spread([c, a, b])
    for r in (a, b, c):
        assert r.conflicts() == []
        assert r.get_patient(pid).given == expected
    assert_converged([a, b, c])


@pytest.mark.parametrize("keep", ["deletion", "edit"])
def test_resolving_an_edit_versus_delete_conflict(keep: str) -> None:
    a, b, c, pid = _three_desks()
    a.delete_patient(pid)
    b.update_patient(pid, {"phone": "555-0199"})
    _spread([a, b, c])
    conflict = _only_conflict(c)
    assert conflict.field == "deleted"
    chosen = next(x for x in conflict.candidates if (x.field == "deleted") == (keep == "deletion"))
    deletes = {x.id for x in conflict.candidates if x.field == "deleted"}
    _resolve(c, conflict, choose=chosen.id)
    [decision] = _live(c, pid, "deleted")
    assert decision.value is (keep == "deletion") and deletes <= set(decision.supersedes)
    # The decision observed the edit, so the edit is no longer "unseen by the deletion".
    assert {x.id for x in conflict.candidates if x.field == "phone"} <= set(decision.observes)
    _spread([c, a, b])
    for r in (a, b, c):
        assert r.conflicts() == []
        if keep == "deletion":
            with pytest.raises(NotFoundError):
                r.get_patient(pid)
        else:
            assert r.get_patient(pid).phone == "555-0199"
    assert_converged([a, b, c])


@pytest.mark.parametrize("choose", ["signed", "unsigned-edit"])
def test_resolving_a_note_edited_while_it_was_signed(choose: str) -> None:
    a, b, c, pid = _three_desks()
    note = Notes(a).create(pid, "Seen today.")
    _spread([a, b, c])
    Notes(a).sign(note.id)
    Notes(b).edit(note.id, "Seen today. BP high.")
    _spread([a, b, c])
    conflict = _only_conflict(c)
    assert (conflict.record_type, conflict.field) == ("note", "body")
    _resolve(c, conflict, choose=choose)
    assert c.conflicts() == []
    _spread([c, a, b])
    addenda = ["Seen today. BP high."] if choose == "unsigned-edit" else []
    for r in (a, b, c):
        assert r.conflicts() == []
        shown = Notes(r).get(note.id)
        assert shown.body == "Seen today."  # the signed text stands
        assert [x.body for x in shown.addenda] == addenda
    assert_converged([a, b, c])


def test_deleting_a_record_after_seeing_its_conflict_settles_the_conflict() -> None:
    a, b, c, pid = _three_desks()
    a.update_patient(pid, {"given": "Wei-Ming"})
    b.update_patient(pid, {"given": "Weiming"})
    _spread([a, b, c])
    c.delete_patient(pid)  # a person who saw both names deletes the record
    _spread([c, a, b])
    for r in (a, b, c):
        with pytest.raises(NotFoundError):
            r.get_patient(pid)
        # The inbox must not offer a choice about a record nobody can open any more.
        assert r.conflicts() == []

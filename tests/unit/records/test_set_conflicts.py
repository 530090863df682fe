"""List conflicts: the same allergy, problem or medication changed on two replicas at once.

Real SQLCipher replicas synced through the real responder; every assertion is about what
a person sees (the list, the conflict inbox) or what the clinic can rely on (the audit log,
every replica agreeing).
"""

from __future__ import annotations

import json

import pytest
from pycrdt import Map

from core.records.changes import load_record
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.errors import ValidationError
from core.records.materialize import MalformedRecordError, derive
from core.records.models import Conflict, ConflictSide
from core.records.types import PATIENT
from tests.unit.sync.replicas import materialized, new_replica, sync_pair


def substances(r: ClinicRecords, patient_id: str) -> list[str]:
    return sorted(f"{a.substance}/{a.reaction}" for a in r.allergies(patient_id))


def two_desks() -> tuple[ClinicRecords, ClinicRecords, str]:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Haddad", "Omar", "1975-03-03")
    sync_pair(b, a)
    return a, b, p.id


def removal_raced_by_re_add() -> tuple[ClinicRecords, ClinicRecords, str, str]:
    """Bob removes Penicillin (entered in error) while Ann records it again, with detail."""
    a, b, pid = two_desks()
    old = a.add_allergy(pid, "Penicillin", reaction="rash")
    a.add_allergy(pid, "Latex")
    sync_pair(b, a)
    b.remove_allergy(old.id)
    a.add_allergy(pid, "penicillin", reaction="anaphylaxis", severity="severe")
    sync_pair(b, a)
    return a, b, pid, old.id


def removal_and_addition(conflict: Conflict) -> tuple[ConflictSide, ConflictSide]:
    """The two sides by what they did. (Their order is by clock, and edits made in the same
    millisecond on two desks order by replica id, which is random.)"""
    [removal] = [side for side in conflict.sides if side.removed and not side.added]
    [addition] = [side for side in conflict.sides if side.added and not side.removed]
    return removal, addition


def only_conflict(r: ClinicRecords) -> Conflict:
    [conflict] = r.conflicts()
    assert conflict.kind == "set"
    return conflict


def test_removal_raced_by_a_re_add_is_a_conflict_with_both_sides_and_nothing_lost() -> None:
    a, b, pid, old = removal_raced_by_re_add()
    for r in (a, b):
        # The merge is still add-wins: the new entry is on the chart, the removal stands.
        assert substances(r, pid) == ["Latex/None", "penicillin/anaphylaxis"]
    conflict = only_conflict(a)
    assert only_conflict(b).to_dict() == conflict.to_dict()  # every replica: the same
    assert (conflict.record_id, conflict.field) == (pid, "allergies")
    assert len(conflict.sides) == 2
    removal, addition = removal_and_addition(conflict)
    assert [(e.label, e.author) for e in removal.removed] == [("Penicillin (rash)", "bob")]
    assert removal.added == ()
    assert [(e.label, e.author) for e in addition.added] == [
        ("penicillin (anaphylaxis, severe)", "ann")
    ]
    assert removal.removed[0].replica != addition.added[0].replica
    assert removal.removed[0].time.startswith("20")  # an ISO time a person can read
    # Latex was not touched by either side: it is not part of the conflict.
    assert {i.label for i in conflict.items} == {
        "Penicillin (rash)",
        "penicillin (anaphylaxis, severe)",
    }
    assert conflict.merged == (addition.added[0].item,)  # what the chart shows now
    assert removal.keep == () and set(addition.keep) == {old, addition.added[0].item}
    assert {i.id for i in conflict.items if not i.present} == {old}


def test_applying_the_removal_side_is_one_audited_op_that_clears_every_inbox() -> None:
    a, b, pid, _ = removal_raced_by_re_add()
    conflict = only_conflict(b)
    removal, _ = removal_and_addition(conflict)
    ops_before = b.db.query("SELECT count(*) FROM oplog")[0][0]
    b.resolve_conflict(conflict.id, choose=removal.id)
    assert b.db.query("SELECT count(*) FROM oplog")[0][0] == ops_before + 1
    [(action, details)] = b.db.query(
        "SELECT action, details FROM audit_log ORDER BY seq DESC LIMIT 1"
    )
    assert action == "conflict.resolve"
    audited = json.loads(details)
    assert audited["choice"] == removal.id and audited["field"] == "allergies"
    assert audited["removed"] == list(conflict.merged)  # ids only, no clinical text
    assert b.conflicts() == []
    assert a.conflicts() != []  # until the resolution arrives
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == []
        assert substances(r, pid) == ["Latex/None"]
    assert materialized(a) == materialized(b)


def test_keeping_the_merged_list_changes_nothing_but_settles_it() -> None:
    a, b, pid, _ = removal_raced_by_re_add()
    a.resolve_conflict(only_conflict(a).id, choose="merged")
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == []
        assert substances(r, pid) == ["Latex/None", "penicillin/anaphylaxis"]


def test_applying_the_addition_side_restores_what_the_other_side_removed() -> None:
    a, b, pid, old = removal_raced_by_re_add()
    conflict = only_conflict(a)
    _, addition = removal_and_addition(conflict)
    a.resolve_conflict(conflict.id, choose=addition.id)
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == []
        assert substances(r, pid) == ["Latex/None", "Penicillin/rash", "penicillin/anaphylaxis"]
        assert old in {x.id for x in r.allergies(pid)}  # the same entry, back under its id


def test_both_adding_the_same_substance_is_a_duplicate_to_settle_by_choosing_items() -> None:
    a, b, pid = two_desks()
    mine = a.add_allergy(pid, "Peanut", severity="severe")
    theirs = b.add_allergy(pid, "PEANUT ", reaction="hives")
    sync_pair(b, a)
    conflict = only_conflict(a)
    assert sorted(len(s.added) for s in conflict.sides) == [1, 1]
    assert set(conflict.merged) == {mine.id, theirs.id}
    a.resolve_conflict(conflict.id, keep=[mine.id])
    sync_pair(b, a)
    for r in (a, b):
        assert r.conflicts() == []
        assert [x.id for x in r.allergies(pid)] == [mine.id]


def test_each_removing_a_different_duplicate_is_a_conflict_not_a_silent_loss() -> None:
    a, b, pid = two_desks()
    one = a.add_allergy(pid, "Codeine")
    two = a.add_allergy(pid, "Codeine", reaction="nausea")
    sync_pair(b, a)
    a.remove_allergy(one.id)
    b.remove_allergy(two.id)
    sync_pair(b, a)
    assert a.allergies(pid) == []  # the merge: both gone
    conflict = only_conflict(b)
    side_a = next(s for s in conflict.sides if s.removed[0].item == one.id)
    b.resolve_conflict(conflict.id, choose=side_a.id)  # Ann's view: she kept "nausea"
    sync_pair(b, a)
    for r in (a, b):
        assert [x.id for x in r.allergies(pid)] == [two.id]
        assert r.conflicts() == []


def test_changes_to_different_items_and_identical_removals_are_no_conflict() -> None:
    a, b, pid = two_desks()
    dust = a.add_allergy(pid, "Dust")
    a.add_allergy(pid, "Latex")
    sync_pair(b, a)
    a.remove_allergy(dust.id)
    b.add_allergy(pid, "Peanut")  # another item: nothing was overridden
    sync_pair(b, a)
    latex = next(x for x in a.allergies(pid) if x.substance == "Latex")
    a.remove_allergy(latex.id)
    b.remove_allergy(latex.id)  # the same decision, made twice
    sync_pair(b, a)
    assert a.conflicts() == b.conflicts() == []
    assert substances(a, pid) == ["Peanut/None"]


def test_medication_dose_changed_on_two_desks_is_a_conflict() -> None:
    a, b, pid = two_desks()
    metformin = ClinicalEntries(a).add_to_list(pid, "medications", {"name": "Metformin"})
    sync_pair(b, a)
    for r, dose in ((a, "1000 mg"), (b, "850 mg")):
        entries = ClinicalEntries(r)
        entries.remove_from_list(pid, "medications", metformin)
        entries.add_to_list(pid, "medications", {"name": "metformin", "dose": dose})
    sync_pair(b, a)
    conflict = only_conflict(a)
    assert conflict.field == "medications"
    for side in conflict.sides:
        assert [e.label for e in side.removed] == ["Metformin"]
        assert len(side.added) == 1
    assert {i.label for i in conflict.items if i.present} == {
        "metformin (1000 mg)",
        "metformin (850 mg)",
    }


def test_a_later_ordinary_edit_does_not_settle_the_conflict() -> None:
    a, b, pid, _ = removal_raced_by_re_add()
    c = new_replica("cy")
    sync_pair(c, a)
    c.add_allergy(pid, "Sulfa")  # Cy saw both sides but never looked at the conflict
    c.remove_allergy(next(x.id for x in c.allergies(pid) if x.substance == "Latex"))
    for r in (a, b):
        sync_pair(r, c)
        sync_pair(c, r)
    for r in (a, b, c):
        assert only_conflict(r).to_dict() == only_conflict(a).to_dict()


def test_a_resolution_settles_only_what_it_had_seen() -> None:
    a, b, pid = two_desks()
    c = new_replica("cy")
    sync_pair(c, a)
    old = a.add_allergy(pid, "Penicillin", reaction="rash")
    sync_pair(b, a)
    sync_pair(c, a)
    b.remove_allergy(old.id)
    a.add_allergy(pid, "Penicillin", reaction="anaphylaxis")
    sync_pair(b, a)
    a.resolve_conflict(only_conflict(a).id, choose="merged")
    c.add_allergy(pid, "Penicillin", reaction="wheeze")  # Cy saw neither side, nor the fix
    for r in (a, b):
        sync_pair(r, c)
        sync_pair(c, r)
    conflict = only_conflict(a)  # open again: Cy's entry was never reviewed
    assert "Penicillin (wheeze)" in {e.label for s in conflict.sides for e in s.edits}
    assert only_conflict(b).to_dict() == only_conflict(c).to_dict() == conflict.to_dict()
    c.resolve_conflict(conflict.id, choose="merged")
    for r in (a, b):
        sync_pair(r, c)
    assert a.conflicts() == b.conflicts() == c.conflicts() == []
    assert substances(a, pid) == ["Penicillin/anaphylaxis", "Penicillin/wheeze"]


def test_three_desks_each_get_a_side_even_after_one_merged_the_others() -> None:
    a, b, pid = two_desks()
    d = new_replica("dee")
    sync_pair(d, a)
    old = a.add_allergy(pid, "Penicillin")
    sync_pair(b, a)
    a.remove_allergy(old.id)
    sync_pair(d, a)  # Dee sees Ann's removal, not Bob's entry
    b.add_allergy(pid, "Penicillin", reaction="rash")
    sync_pair(b, a)  # Ann now holds Bob's entry and adds her own on top
    a.add_allergy(pid, "Penicillin", reaction="hives")
    d.add_allergy(pid, "Penicillin", reaction="wheeze")
    for r in (a, b):
        sync_pair(r, d)
        sync_pair(d, r)
    conflict = only_conflict(d)
    assert len(conflict.sides) == 3  # one per workstation
    ann = next(s for s in conflict.sides if s.edits[0].author == "ann")
    assert {(e.action, e.label) for e in ann.edits} == {
        ("removed", "Penicillin"),
        ("added", "Penicillin (hives)"),
    }
    # Applying Ann's side: the list as she left it (she had seen Bob's entry, not Dee's).
    labels = {i.id: i.label for i in conflict.items}
    assert {labels[i] for i in ann.keep} == {"Penicillin (rash)", "Penicillin (hives)"}
    d.resolve_conflict(conflict.id, choose=ann.id)
    for r in (a, b):
        sync_pair(r, d)
    for r in (a, b, d):
        assert r.conflicts() == []
        assert substances(r, pid) == ["Penicillin/hives", "Penicillin/rash"]


def test_resolution_input_is_checked() -> None:
    a, _, _, _ = removal_raced_by_re_add()
    conflict = only_conflict(a)
    with pytest.raises(ValidationError, match="'nope' is not one of the choices"):
        a.resolve_conflict(conflict.id, choose="nope")
    with pytest.raises(ValidationError, match="is not one of the items in conflict"):
        a.resolve_conflict(conflict.id, keep=["0000"])
    with pytest.raises(ValidationError, match="settled by 'merged'"):
        a.resolve_conflict(conflict.id, value="Penicillin")
    with pytest.raises(ValidationError, match="settled by 'merged'"):
        a.resolve_conflict(conflict.id, choose="merged", keep=[])
    assert a.conflicts() == [conflict]  # nothing was written


def test_register_conflicts_refuse_items_to_keep() -> None:
    a, b, pid = two_desks()
    a.update_patient(pid, {"phone": "555-0001"})
    b.update_patient(pid, {"phone": "555-0002"})
    sync_pair(b, a)
    [conflict] = a.conflicts()
    assert conflict.kind == "register" and "items" not in conflict.to_dict()
    with pytest.raises(ValidationError, match="only a list conflict"):
        a.resolve_conflict(conflict.id, keep=[])


def test_a_malformed_set_history_entry_is_refused() -> None:
    a, _, pid = two_desks()
    with a.db.write("test", "inspect", "patient", pid) as tx:
        doc = load_record(tx, pid, "patient", 1).doc
    # A peer's update could carry anything: an item that is not an object is refused.
    doc.get("h", type=Map)["allergies/bad"] = json.dumps({"h": "1.0.x", "a": "x", "+": {"e": 1}})
    with pytest.raises(MalformedRecordError, match=r"set.s history holds a malformed entry"):
        derive(pid, PATIENT, doc)


def test_a_list_item_that_is_not_an_item_is_refused() -> None:
    a, _, pid = two_desks()
    with a.db.write("test", "inspect", "patient", pid) as tx:
        doc = load_record(tx, pid, "patient", 1).doc
    # A bare string where an allergy's fields belong (it once escaped as an AttributeError:
    # a crash, a 500 from the server, instead of a refusal naming the record).
    hlc = "1796421966426.000001.3b573299fe18acb0"
    doc.get("s", type=Map)["allergies/bare"] = json.dumps({"v": "Peanut", "h": hlc, "a": "x"})
    with pytest.raises(MalformedRecordError, match="malformed"):
        derive(pid, PATIENT, doc)

"""What a write changed, worked out from the op log: record ids by type, conflicts, origin."""

from __future__ import annotations

from core.records import changeset
from core.records.changeset import Changes
from tests.unit.sync.replicas import new_replica, sync_pair


def test_a_local_write_reports_its_record_by_type() -> None:
    a = new_replica("ann")
    before = changeset.mark(a.db)
    p = a.add_patient("Ferreira", "Ana", "1964-08-21")
    a.add_allergy(p.id, "Aspirin")  # an allergy lives in the patient record
    changes = changeset.changes_since(a.db, before)
    assert changes.records == {"patient": frozenset({p.id})}
    assert changes.local and not changes.conflicted
    assert changes.touches(p.id) and changes.patients == {p.id}

    mark = changeset.mark(a.db)
    user = a.add_user("nurse.joy", "Joy Mensah", "clinician", "correct horse battery")
    changes = changeset.changes_since(a.db, mark)
    assert changes.of_type("user") == {user.id} and not changes.patients
    # Nothing written since: nothing to report.
    assert not changeset.changes_since(a.db, changeset.mark(a.db))


def test_others_only_leaves_out_this_replicas_own_writes() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    sync_pair(b, a)
    before = changeset.mark(a.db)
    mine = a.add_patient("Okafor", "Chinedu", "1990-06-15")
    theirs = b.add_patient("Nguyen", "Bao", "2012-09-09")
    sync_pair(b, a)  # b pushes its patient to a
    assert changeset.changes_since(a.db, before).patients == {mine.id, theirs.id}
    others = changeset.changes_since(a.db, before, others_only=True)
    assert others.patients == {theirs.id} and not others.local


def test_a_conflict_is_named_and_settling_it_may_change_the_count() -> None:
    a, b = new_replica("ann"), new_replica("bob")
    p = a.add_patient("Ferreira", "Ana", "1964-08-21")
    sync_pair(b, a)
    before = changeset.mark(a.db)
    a.update_patient(p.id, {"phone": "555-0001"})
    b.update_patient(p.id, {"phone": "555-0002"})
    sync_pair(b, a)
    changes = changeset.changes_since(a.db, before)
    assert changes.conflicted == {p.id}
    assert changes.may_change_conflicts(set())

    # Settled: the record has no conflict any more, but it had one, so screens recount.
    [conflict] = a.conflicts()
    mark = changeset.mark(a.db)
    a.resolve_conflict(conflict.id, choose=conflict.candidates[0].id)
    settled = changeset.changes_since(a.db, mark)
    assert not settled.conflicted
    assert settled.may_change_conflicts({p.id})
    assert not settled.may_change_conflicts({"another-record"})


def test_changes_merge_and_count() -> None:
    one = Changes({"patient": frozenset({"p1"})}, local=True)
    two = Changes({"patient": frozenset({"p2"}), "user": frozenset({"u1"})}, frozenset({"p2"}))
    both = one | two
    assert both.patients == {"p1", "p2"} and both.of_type("user") == {"u1"}
    assert both.conflicted == {"p2"} and both.local
    assert both.counts() == {"patient": 2, "user": 1}
    assert both.ids == {"p1", "p2", "u1"}
    assert not Changes()


def test_unlisted_changes_may_touch_any_record_of_their_type() -> None:
    # A large snapshot download: 1,000 patients counted, not listed.
    snapshot = Changes(unlisted={"patient": 1000})
    assert snapshot and not snapshot.patients
    assert snapshot.changed("patient") and not snapshot.changed("appointment")
    assert snapshot.touches("any-patient")
    assert snapshot.changed_besides("patient", {"p1"})
    assert snapshot.may_change_conflicts({"p1"})
    pulled = Changes({"patient": frozenset({"p1"}), "user": frozenset({"u1"})})
    assert not pulled.changed_besides("patient", {"p1"})
    assert pulled.changed_besides("patient", {"p2"})
    both = snapshot | pulled
    assert both.counts() == {"patient": 1001, "user": 1}
    assert both.unlisted == {"patient": 1000} and both.patients == {"p1"}
    assert not Changes(unlisted={"patient": 0})

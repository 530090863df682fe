"""Property: whatever the edits, partitions and message faults, replicas converge and no
concurrent clinical value or allergy is silently lost.

`make test` runs 300 examples; `make soak` runs 10,000 (CARELINE_PROPERTY_EXAMPLES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from core.records import crdt
from core.records.changes import load_record
from core.records.clinic import ClinicRecords
from core.records.types import PATIENT
from tests.unit.sync.replicas import assert_converged, faulty_sync, new_replica, sync_pair

EXAMPLES = int(os.environ.get("CARELINE_PROPERTY_EXAMPLES", "300"))
FIELDS = ("family", "given", "phone")
VALUES = ("Ames", "Bo", "Cruz", "Diaz")
SUBSTANCES = ("Latex", "Penicillin", "Peanut")
FAULTS = ("none", "none", "drop_request", "drop_reply", "duplicate", "replay")

edit = st.tuples(st.just("edit"), st.integers(0, 4), st.integers(0, 1), st.sampled_from(FIELDS),
                 st.sampled_from(VALUES))  # fmt: skip
add = st.tuples(st.just("add"), st.integers(0, 4), st.integers(0, 1), st.sampled_from(SUBSTANCES))
remove = st.tuples(st.just("remove"), st.integers(0, 4), st.integers(0, 1), st.integers(0, 3))
delete = st.tuples(st.just("delete"), st.integers(0, 4), st.integers(0, 1))
resolve = st.tuples(st.just("resolve"), st.integers(0, 4), st.integers(0, 1))
link = st.tuples(st.just("sync"), st.integers(0, 4), st.integers(0, 4), st.sampled_from(FAULTS))
actions = st.lists(
    st.one_of(edit, edit, add, remove, delete, resolve, link, link, link), max_size=30
)


@dataclass(frozen=True)
class ListChange:
    """An allergy-list change as the test saw it made: what it had seen, what it touched."""

    id: str
    seen: frozenset[str]  # ids of the list changes its replica held when it was made
    substance: str | None = None
    added: str | None = None
    removed: str | None = None
    resolution: bool = False


@dataclass
class Oracle:
    """What the test itself saw happen, independently of the replicas' final state."""

    writes: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (patient, field)
    superseded: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    delete_observed: dict[str, set[str]] = field(default_factory=dict)
    list_changes: dict[str, list[ListChange]] = field(default_factory=dict)  # by patient


def _history_ids(r: ClinicRecords, pid: str) -> set[str]:
    with r.db.write("test", "inspect", "patient", pid) as tx:
        doc = load_record(tx, pid, "patient", 1).doc
        return {c.change_id for c in crdt.all_history(doc).get("allergies", [])}


def _track_list_change(
    o: Oracle, r: ClinicRecords, pid: str, before: set[str], **what: Any
) -> None:
    [new] = _history_ids(r, pid) - before  # every list change is recorded, once
    o.list_changes.setdefault(pid, []).append(ListChange(new, frozenset(before), **what))


def _expected_list_conflict(changes: list[ListChange]) -> set[str]:
    """Allergy ids two unsettled concurrent changes disagree on (the oracle's own rule:
    same substance, neither saw the other, not the same removal twice, no resolution that
    saw both)."""
    involved: set[str] = set()
    for i, x in enumerate(changes):
        for y in changes[i + 1 :]:
            if x.substance is None or x.substance != y.substance:
                continue
            if x.id in y.seen or y.id in x.seen:
                continue
            if x.added is None and y.added is None and x.removed == y.removed:
                continue
            if any(r.resolution and {x.id, y.id} <= r.seen | {r.id} for r in changes):
                continue
            involved |= {e for e in (x.added, x.removed, y.added, y.removed) if e}
    return involved


def _live(r: ClinicRecords, pid: str, fname: str) -> list[crdt.RegisterEntry]:
    with r.db.write("test", "inspect", "patient", pid) as tx:
        doc = load_record(tx, pid, "patient", 1).doc
        return crdt.live(doc, fname)


def _track_write(o: Oracle, r: ClinicRecords, pid: str, fname: str, before: set[str]) -> None:
    after = {e.write_id for e in _live(r, pid, fname)}
    new = after - before
    assert len(new) == 1
    o.writes.setdefault((pid, fname), set()).update(new)
    o.superseded |= before


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(n=st.integers(3, 5), script=actions)
def test_replicas_converge_without_silent_loss(n: int, script: list[tuple[Any, ...]]) -> None:
    replicas = [new_replica(f"user{i}") for i in range(n)]
    patients = [replicas[0].add_patient(f"Seed{i}", "Patient", "1980-01-01").id for i in range(2)]
    for r in replicas[1:]:
        sync_pair(r, replicas[0])
    oracle, stale = Oracle(), list[bytes]()
    for action in script:
        kind = action[0]
        if kind == "sync":
            a, b, fault = int(action[1]) % n, int(action[2]) % n, str(action[3])
            if a != b:
                if fault == "none":
                    sync_pair(replicas[a], replicas[b])
                else:
                    faulty_sync(replicas[a], replicas[b], fault, stale)
            continue
        r = replicas[int(action[1]) % n]
        pid = patients[int(action[2])]
        visible = bool(r.db.query("SELECT 1 FROM patients WHERE id = ?", (pid,)))
        if kind == "edit" and visible:
            fname = str(action[3])
            before = {e.write_id for e in _live(r, pid, fname)}
            r.update_patient(pid, {fname: str(action[4])})
            if r.get_patient(pid).to_dict()[fname] == action[4] and before != {
                e.write_id for e in _live(r, pid, fname)
            }:
                _track_write(oracle, r, pid, fname, before)
        elif kind == "add" and visible:
            before = _history_ids(r, pid)
            added = r.add_allergy(pid, str(action[3]))
            oracle.added.add(added.id)
            _track_list_change(oracle, r, pid, before, substance=added.substance, added=added.id)
        elif kind == "remove" and visible:
            present = r.allergies(pid)
            if present:
                victim = present[int(action[3]) % len(present)]
                before = _history_ids(r, pid)
                r.remove_allergy(victim.id)
                oracle.removed.add(victim.id)  # only ever an allergy this replica could see
                _track_list_change(
                    oracle, r, pid, before, substance=victim.substance, removed=victim.id
                )
        elif kind == "resolve" and visible:
            listed = [c for c in r.conflicts(pid) if c.kind == "set"]
            if listed:
                before = _history_ids(r, pid)
                r.resolve_conflict(listed[0].id, choose="merged")  # the list stays as shown
                _track_list_change(oracle, r, pid, before, resolution=True)
        elif kind == "delete" and visible:
            seen = {e.write_id for f in PATIENT.registers for e in _live(r, pid, f)}
            r.delete_patient(pid)
            oracle.delete_observed.setdefault(pid, set()).update(seen)

    # Heal every partition: two rounds through replica 0 reach everyone.
    for _ in range(2):
        for r in replicas[1:]:
            sync_pair(r, replicas[0])

    assert_converged(replicas)  # same ops, byte-for-byte the same derived state

    final = replicas[0]
    conflicts = {(c.record_id, c.field): c for c in final.conflicts()}
    for (pid, fname), ids in oracle.writes.items():
        live = {e.write_id: e for e in _live(final, pid, fname)}
        for write_id in ids:
            # Every write is live (value or conflict) unless a later write observed it.
            assert write_id in live or write_id in oracle.superseded
        if len({e.value for e in live.values()}) > 1:
            conflict = conflicts[(pid, fname)]
            assert {c.id for c in conflict.candidates} == set(live)

    kept = {row[0] for row in final.db.query("SELECT id FROM allergies")}
    assert kept <= oracle.added  # nothing appears from nowhere
    assert not kept & oracle.removed  # a remove that observed an allergy removes it
    # Every other allergy added anywhere is still on the chart (unless the patient is gone).
    assert oracle.added - oracle.removed - _deleted_patients_allergies(final, oracle) <= kept

    for pid in patients:
        # A list conflict is open exactly when two unsettled concurrent changes disagree
        # about the same substance, and it names every allergy they touched.
        visible = bool(final.db.query("SELECT 1 FROM patients WHERE id = ?", (pid,)))
        expected = _expected_list_conflict(oracle.list_changes.get(pid, []))
        open_list = conflicts.get((pid, "allergies"))
        event("open list conflict" if open_list else "no list conflict")
        assert (open_list is not None) == (visible and bool(expected))
        if open_list is not None:
            assert {i.id for i in open_list.items} == expected
            assert {i.id for i in open_list.items if i.present} <= kept
        if not visible:
            # Gone only if the deletion saw every live edit (edit-vs-delete is a conflict).
            remaining = {e.write_id for f in PATIENT.registers for e in _live(final, pid, f)}
            assert remaining <= oracle.delete_observed.get(pid, set())


def _deleted_patients_allergies(final: ClinicRecords, oracle: Oracle) -> set[str]:
    """Allergies of deleted patients are not shown, by design: they are kept in the document."""
    hidden: set[str] = set()
    for pid in oracle.delete_observed:
        if not final.db.query("SELECT 1 FROM patients WHERE id = ?", (pid,)):
            with final.db.write("test", "inspect", "patient", pid) as tx:
                doc = load_record(tx, pid, "patient", 1).doc
                hidden |= {e.element_id for e in crdt.elements(doc, "allergies")}
    return hidden

"""Property: whatever the edits, partitions and message faults, replicas converge and no
concurrent clinical value or allergy is silently lost.

`make test` runs 300 examples; `make soak` runs 10,000 (CARELINE_PROPERTY_EXAMPLES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.records import crdt
from core.records.changes import load_record
from core.records.clinic import ClinicRecords
from core.records.types import PATIENT
from tests.unit.sync.replicas import faulty_sync, materialized, new_replica, sync_pair

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
link = st.tuples(st.just("sync"), st.integers(0, 4), st.integers(0, 4), st.sampled_from(FAULTS))
actions = st.lists(st.one_of(edit, edit, add, remove, delete, link, link, link), max_size=30)


@dataclass
class Oracle:
    """What the test itself saw happen, independently of the replicas' final state."""

    writes: dict[tuple[str, str], set[str]] = field(default_factory=dict)  # (patient, field)
    superseded: set[str] = field(default_factory=set)
    added: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    delete_observed: dict[str, set[str]] = field(default_factory=dict)


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
            oracle.added.add(r.add_allergy(pid, str(action[3])).id)
        elif kind == "remove" and visible:
            present = r.allergies(pid)
            if present:
                victim = present[int(action[3]) % len(present)].id
                r.remove_allergy(victim)
                oracle.removed.add(victim)  # only ever an allergy this replica could see
        elif kind == "delete" and visible:
            seen = {e.write_id for f in PATIENT.registers for e in _live(r, pid, f)}
            r.delete_patient(pid)
            oracle.delete_observed.setdefault(pid, set()).update(seen)

    # Heal every partition: two rounds through replica 0 reach everyone.
    for _ in range(2):
        for r in replicas[1:]:
            sync_pair(r, replicas[0])

    first = materialized(replicas[0])
    for r in replicas[1:]:
        assert materialized(r) == first  # byte-for-byte the same derived state

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
        if not final.db.query("SELECT 1 FROM patients WHERE id = ?", (pid,)):
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

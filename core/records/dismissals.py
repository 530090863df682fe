""" "Not a duplicate": a pair on the review list that a person judged to be two people.

The dismissal is a ``relation`` record, ``patient:A#not_duplicate@patient:B`` (A the lower
id): its record id is the same on every replica (``relations.relation_id``), so two
workstations dismissing the same pair write one record and converge, and undoing it sets
``granted`` false (a dismissal and an undo made at once settle as any tuple does). A
relation is a type every release since V10 stores and relays, so older replicas keep
syncing; the authorization model has no such relation, so it grants nothing. Remote apply
checks its author as for any tuple on a chart (manage_access on A, which the model grants
to exactly those holding merge_patients); the local write needs merge_patients on both
charts and is audited as ``patient.not_duplicate`` / ``patient.not_duplicate_undo``.
"""

from __future__ import annotations

from core.authz.tuples import RelationTuple
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.relations import PATIENT_PREFIX, write_tuple
from core.store.database import Database, Transaction

RELATION = "not_duplicate"


def _tuple(first: str, second: str) -> RelationTuple:
    low, high = sorted((first, second))
    return RelationTuple(PATIENT_PREFIX + low, RELATION, PATIENT_PREFIX + high)


def dismissed_pairs(db: Database | Transaction) -> set[tuple[str, str]]:
    """Every dismissed pair in force, as (lower id, higher id)."""
    rows = db.query(
        "SELECT object, subject FROM relations WHERE relation = ? AND granted = 1", (RELATION,)
    )
    cut = len(PATIENT_PREFIX)
    return {(str(o)[cut:], str(s)[cut:]) for o, s in rows}


def set_dismissed(records: ClinicRecords, first: str, second: str, dismissed: bool) -> None:
    """Dismiss the pair (or undo that) on behalf of the signed-in person: one replicated,
    audited op. Needs merge_patients on both charts."""
    if first == second:
        raise ValidationError("pair", "a patient cannot be a duplicate of itself")
    for pid in (first, second):
        records.get_patient(pid)  # NotFoundError names a missing one
    action = "patient.not_duplicate" if dismissed else "patient.not_duplicate_undo"
    t = _tuple(first, second)
    low, high = t.object[len(PATIENT_PREFIX) :], t.subject[len(PATIENT_PREFIX) :]
    records.require(action, high)  # the gate of the write checks the other chart
    if not dismissed and (low, high) not in dismissed_pairs(records.db):
        raise ValidationError("pair", f"{low!r} and {high!r} are not dismissed")
    details = {"other": high}
    with records.db.write(records.actor, action, "patient", low, details) as tx:
        write_tuple(tx, records.actor, t, dismissed)

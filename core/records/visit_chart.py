"""At remote apply, a record under a visit is on that visit's chart.

A note or a vital-signs reading names its visit in ``encounter_id``; a problem or a
medication on a patient's list names it in its item's ``encounter_id``, and a problem
resolved or a medication stopped during a visit in its change's history entry (``"e"``,
``crdt.record_change``): the visit lists it too (``visits.visit_list_items``). The local write
path refuses a visit of another patient (``chart_lists.check_visit``, ``VitalSigns``), so
an op that names one comes from a workstation whose checks were removed: applied, the
record would sit on one chart while it shows under another chart's visit (and would have
been judged on the chart it names, not on the one it shows under). Such an op is refused
here, as is one naming a visit this replica does not hold.

Why a visit this replica does not hold refuses the op rather than letting it through: the
local path refuses a visit it does not hold too, so an honest workstation names only
visits it held, and every replica relays ops in the order it received them
(``oplog.ops_after``): the visit's op reaches a replica before, or in the same batch
ahead of, the op of a record under it. Letting an unknown visit through would let a forged
op name a visit that has not reached this replica yet and appear under it once it does.
The refused op is quarantined, sent again at every sync and released once the visit is
here (as work waiting for a grant is); if the visit's own op was refused, so is the work
under it.

Only what the op adds is judged: the visit values it writes (every one when it gives the
record its patient, on creation), so a record stored before this check does not stop
later edits of its other fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.records import crdt

# A visit's patient as this replica holds it (the batch's earlier ops included); None when
# it holds no visit of that id. A visit never changes chart (remote_authz refuses that), so
# the answer for a visit held never changes.
VisitPatient = Callable[[str], str | None]

# Records naming their visit in a register, and the patient's lists whose items name one.
REGISTER_TYPES = frozenset({"note", "observation"})
VISIT_LISTS = ("problems", "medications")
_NOUNS = {"note": "note", "observation": "vital-signs reading",
          "problems": "problem", "medications": "medication"}  # fmt: skip
# What a list's change made in a visit is (``Problems.resolve``, ``Medications.stop``).
_CHANGE_NOUNS = {"problems": "problem's resolution", "medications": "medication's stop"}


def problem(
    record_id: str,
    type_name: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    visit_patient: VisitPatient,
) -> str | None:
    """Why an op that turned the summary ``before`` of record ``record_id`` into ``after``
    (``remote_authz.summary``) places something under a visit that is not on the record's
    chart, or None."""
    if type_name in REGISTER_TYPES:
        patient = _winner(after.get("r:patient_id"))
        named = _register_values(after.get("r:encounter_id"))
        if before.get("r:patient_id") == after.get("r:patient_id"):
            named -= _register_values(before.get("r:encounter_id"))
        return _misplaced(_NOUNS[type_name], named, patient, visit_patient)
    if type_name == "patient":
        for fld in VISIT_LISTS:
            key = f"s:{fld}"
            if before.get(key) != after.get(key):
                named = _item_visits(after.get(key)) - _item_visits(before.get(key))
                found = _misplaced(_NOUNS[fld], named, record_id, visit_patient)
                if found is not None:
                    return found
            key = f"h:{fld}"
            if before.get(key) != after.get(key):
                named = _change_visits(after.get(key), before.get(key) or {})
                found = _misplaced(_CHANGE_NOUNS[fld], named, record_id, visit_patient)
                if found is not None:
                    return found
    return None


def _misplaced(noun: str, named: set[str], patient: str, visit_patient: VisitPatient) -> str | None:
    for visit in sorted(named):
        owner = visit_patient(visit)
        if owner is None:
            return (
                f"it puts a {noun} under visit {visit[:64]!r}, which this replica does not "
                "hold (yet): a record is only made under a visit its workstation holds"
            )
        if owner != patient:
            return (
                f"it puts a {noun} under another patient's visit ({visit[:64]!r}): a record "
                "under a visit is on that visit's chart"
            )
    return None


def _winner(entries: Mapping[str, str] | None) -> str:
    parsed = crdt.parse_entries(entries or {})
    return str(parsed[0].value) if parsed and parsed[0].value else ""


def _register_values(entries: Mapping[str, str] | None) -> set[str]:
    """The visits a register's live entries name (None and "" name none)."""
    return {str(e.value) for e in crdt.parse_entries(entries or {}) if e.value}


def _item_visits(items: Mapping[str, str] | None) -> set[str]:
    """The visits a list's items name (their content as stored)."""
    named: set[str] = set()
    for raw in (items or {}).values():
        value = crdt.parse_json(raw).get("v")
        visit = value.get("encounter_id") if isinstance(value, dict) else None
        if visit:
            named.add(str(visit))
    return named


def _change_visits(changes: Mapping[str, str] | None, before: Mapping[str, str]) -> set[str]:
    """The visits the list's history entries the op wrote name (the changes made in a
    visit); entries it left as they were are not read again (a list's history grows)."""
    named: set[str] = set()
    for unique, raw in (changes or {}).items():
        if before.get(unique) == raw:
            continue
        entry = crdt.parse_json(raw)
        visit = entry.get("e") if isinstance(entry, dict) else None
        if isinstance(visit, str) and visit:  # as crdt reads it: nothing else names one
            named.add(visit)
    return named

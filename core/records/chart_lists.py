"""What problems, medications and allergies share: replacing a list item as one change.

The patient's lists are add-wins sets (``crdt``): an item is never edited in place.
Resolving a problem, stopping a medication or editing an allergy's reaction removes the
item and adds its successor in one mutation, so the old item's values stay in the set's
history and the new one (a resolved problem, a stopped medication) stays on the list as
history a person can see. Two workstations replacing the same item before seeing each
other's change raise a list conflict (``set_conflicts``), like any same-item change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from core.records import crdt
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError, RecordError, ValidationError
from core.records.list_history import people
from core.records.spec import ListSpec
from core.store.database import Transaction

Values = dict[str, crdt.Value]


def today() -> str:
    """Today's date as stored (``YYYY-MM-DD``)."""
    return dt.date.today().isoformat()


def dated(spec: ListSpec, field: str, date: str | None) -> str:
    """The date an item's ``field`` is set to (a problem resolved, a medication stopped or
    its dose changed): ``date`` checked as ``spec`` checks the field, or today when none
    was given (None: ``careline med stop`` without a date). A date given blank (a form's
    date the person emptied) is refused as required, never read as today: the change
    would be dated a day nobody typed or saw."""
    if date is None:
        return today()
    if not date.strip():
        raise ValidationError(field, "is required")
    return str(spec.item(field).clean(date))


class DuplicateWarning(RecordError):
    """What is being added is already active on the patient's list (``existing``, each a
    ``Problem`` or ``Medication`` naming when and by whom it was recorded): nothing was
    saved; add it again with the person's confirmation to save it. The list is an add-wins
    set, so two workstations may still each add it before syncing: both are kept (clinical
    safety over tidiness), this only stops the same chart being given it twice unseen."""

    # Full names of the people ``existing`` names (user name -> full name), once looked up.
    names: dict[str, str]

    def __init__(self, what: str, noun: str, existing: list[Any]) -> None:
        when = "; ".join(
            f"recorded {str(e.recorded_at or '')[:10] or 'at an unknown time'}"
            f" by {e.recorded_by or 'someone unknown'}"
            for e in existing
        )
        super().__init__(f"{what} is already an active {noun} of this patient ({when})")
        self.what = what
        self.noun = noun  # "problem", "medication": which list it is on
        self.existing = existing
        self.names = {}


def same_text(a: object, b: object) -> bool:
    """Two names (a drug's, a problem's) the same but for case and spacing."""
    return (
        isinstance(a, str)
        and isinstance(b, str)
        and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()
    )


def current_item(doc: RecordDoc, field: str, item_id: str, noun: str) -> Values:
    """The value of an item on the list now; NotFoundError if it is not (any more)."""
    for element in crdt.elements(doc, field):
        if element.element_id == item_id:
            return dict(element.value)
    raise NotFoundError(f"no {noun} {item_id!r} on this patient's list (removed elsewhere?)")


def check_visit(tx: Transaction, patient_id: str, encounter_id: str | None) -> None:
    """Refuse a visit id that is not one of this patient's visits."""
    if encounter_id is None:
        return
    rows = tx.query("SELECT patient_id FROM encounters WHERE id = ?", (encounter_id,))
    if not rows or rows[0][0] != patient_id:
        raise ValidationError("encounter_id", f"{encounter_id!r} is not a visit of this patient")


class ListWriter:
    """Writes to one of the patient's lists through the one write path."""

    def __init__(self, records: ClinicRecords, spec: ListSpec) -> None:
        self.records = records
        self.spec = spec

    def patient_of(self, item_id: str, noun: str) -> str:
        """The patient whose list holds ``item_id``; NotFoundError names a missing item."""
        rows = self.records.db.query(
            f"SELECT {self.spec.parent} FROM {self.spec.table} WHERE id = ?", (item_id,)
        )
        if not rows:
            raise NotFoundError(f"no {noun} with id {item_id!r}")
        return str(rows[0][0])

    def write(
        self,
        action: str,
        patient_id: str,
        details: Mapping[str, str],
        mutate: Callable[[Transaction, RecordDoc, str], list[str]],
    ) -> list[str]:
        """Run ``mutate(tx, doc, hlc)`` on the patient's record as one audited change;
        the ids of the items it added."""
        records = self.records
        records.get_patient(patient_id)
        added: list[str] = []
        try:
            with records.db.write(
                records.actor, action, "patient", patient_id, {"patient_id": patient_id, **details}
            ) as tx:

                def apply(doc: RecordDoc, hlc: str) -> None:
                    added.extend(mutate(tx, doc, hlc))

                change(tx, records.actor, patient_id, "patient", apply)
        except DuplicateWarning as exc:
            # Rolled back (nothing written): who recorded what is there already, by full
            # name, for the warning to say.
            exc.names = records.full_names(people(exc.existing))
            raise
        return added

    def add(self, doc: RecordDoc, value: Values, hlc: str, prescribed: bool = False) -> str:
        """Add an item (one recorded change; ``prescribed``: its author prescribed it, see
        ``crdt.record_change``); its id."""
        return crdt.add(doc, self.spec.name, value, hlc, self.records.actor, prescribed)

    def replace(
        self,
        doc: RecordDoc,
        item_id: str,
        successors: list[Values],
        hlc: str,
        visit: str | None = None,
        prescribed: bool = False,
    ) -> list[str]:
        """Remove ``item_id`` and add ``successors`` as one recorded change; their ids.
        ``visit``: the visit the change was made in (a stop or a resolution during one),
        named in the change's history entry, not in the items: the successors keep the
        visit the item was recorded in (``visits.visit_list_items`` reads both)."""
        field, actor = self.spec.name, self.records.actor
        old = crdt.drop(doc, field, item_id)
        if old is None:
            raise NotFoundError(f"no item {item_id!r} on this patient's list")
        added: dict[str, Values] = {}
        for value in successors:
            new_id = crdt.new_write_id()
            crdt.restore(doc, field, new_id, value, hlc, actor)  # puts it under a new id
            added[new_id] = value
        crdt.record_change(
            doc, field, hlc, actor, added=added, removed={item_id: old}, visit=visit,
            prescribed=prescribed,
        )  # fmt: skip
        return list(added)

"""Visits (encounters): started from an appointment or as a walk-in, closed when done (and
reopened if closed by mistake), and what was done in them (notes, observations, problems
and medication changes).

An encounter is an ordinary chart entry (``ClinicalEntries``); this module adds what a
visit means: who the clinician is, which appointment it came from, and closing it. Every
write goes through the one write path, so a concurrent edit of a visit's field on two
workstations is a conflict like any other register's.

A visit started from an appointment and the appointment's status move together: starting
sets the (arrived) appointment in visit and creates the encounter in one transaction, and
closing marks the appointment done in the closing's transaction. A visit is never started
from a booking that stays booked (and could be cancelled with the visit open), and neither
write lands without the other: the schedule starts visits of arrived patients only, and the
chart's Start visit, whose person has the patient in front of them, marks a booking of
today arrived in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.records import crdt, merged
from core.records.changes import change
from core.records.clinic import ClinicRecords
from core.records.entries import PATIENT_LISTS, ClinicalEntries, entry_row
from core.records.errors import NotFoundError, ValidationError
from core.records.list_history import dose_changes
from core.records.notes import ON_CHART, Note, Notes, load_note, started_order
from core.records.notes import SOAP_TEMPLATE as SOAP_TEMPLATE  # defined with the notes
from core.records.schedule import Appointment, Schedule, now_local, refuse_wrong_time
from core.records.types import ENCOUNTER, OBSERVATION
from core.store.database import utc_now
from core.store.state_codec import unpack_state


@dataclass(frozen=True)
class Visit:
    """One visit as the chart shows it."""

    id: str
    patient_id: str
    started_at: str
    reason: str | None
    clinician: str | None
    appointment_id: str | None
    status: str  # open or closed
    closed_at: str | None
    closed_by: str | None
    created_at: str
    # True in the clinic's list when the reason is withheld (see ``Visits.list_visits``).
    reason_withheld: bool = False

    @property
    def is_open(self) -> bool:
        """True until someone closes the visit."""
        return self.status == "open"

    def to_dict(self) -> dict[str, Any]:
        """As ``--json`` prints it."""
        return asdict(self)

    def withheld(self) -> Visit:
        """This visit without its clinical part (the reason)."""
        return replace(self, reason=None, reason_withheld=True)


@dataclass(frozen=True)
class VisitContents:
    """What was done in a visit."""

    visit: Visit
    notes: tuple[Note, ...]
    observations: tuple[dict[str, Any], ...]
    problems: tuple[dict[str, Any], ...]
    medications: tuple[dict[str, Any], ...]


_COLUMNS = ENCOUNTER.column_names
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM encounters"


def _visit(row: tuple[Any, ...]) -> Visit:
    return Visit(**dict(zip(_COLUMNS, row, strict=True)))


def visit_list_items(
    records: ClinicRecords, patient_id: str, visit_id: str
) -> dict[str, list[dict[str, Any]]]:
    """The patient's problems and medications recorded in this visit: list items that carry
    the visit's id as ``encounter_id`` (items recorded without one belong to no visit),
    then those stopped or resolved in it: the stopped or resolved copy a change naming the
    visit in the list's history added (``ListWriter.replace``), listed once.

    A medication whose dose was changed in the visit comes with the stopped old dose just
    before it (whichever visit, if any, that was started in): the visit changed it, and
    the new dose alone would read as a new medication. A stopped medication whose dose was
    changed carries ``changed_to`` (the new dose's item id), so it reads "dose changed",
    not "stopped".

    The one place that knows how a list item names its visit, so the problem and medication
    forms only need to store ``encounter_id`` on the items they add.
    """
    rows = records.db.query("SELECT state FROM record_states WHERE id = ?", (patient_id,))
    if not rows:
        return {name: [] for name in PATIENT_LISTS}
    doc = crdt.load(unpack_state(rows[0][0]), 1)
    sets = crdt.all_elements(doc)
    history = crdt.all_history(doc)
    found: dict[str, list[dict[str, Any]]] = {}
    for name in PATIENT_LISTS:
        live = {e.element_id: e.value for e in sets.get(name, [])}
        items = [
            {"id": item_id, **value}
            for item_id, value in live.items()
            if value.get("encounter_id") == visit_id
        ]
        listed = {item["id"] for item in items}
        for item_id in _changed_in(history.get(name, []), visit_id):
            if item_id in live and item_id not in listed:  # still on the list, not yet shown
                listed.add(item_id)
                items.append({"id": item_id, **live[item_id]})
        if name == "medications":
            items = _with_old_doses(items, live, dose_changes(history.get(name, [])))
        found[name] = items
    return found


def _changed_in(changes: list[crdt.SetChange], visit_id: str) -> list[str]:
    """The items added by the changes made in the visit (a stop, a resolution), in the
    order they were made."""
    return [i for c in changes if c.visit == visit_id and not c.resolution for i in c.added]


def _with_old_doses(
    items: list[dict[str, Any]],
    live: dict[str, dict[str, crdt.Value]],
    changes: dict[str, str],
) -> list[dict[str, Any]]:
    """``items`` with each new dose's stopped old dose (still on the list) just before it,
    once, and every old dose marked ``changed_to``."""
    changed_to = {old: new for new, old in changes.items()}
    shown: list[dict[str, Any]] = []
    seen: set[str] = set()

    def show(item_id: str, value: dict[str, Any]) -> None:
        if item_id in seen:
            return
        seen.add(item_id)
        mark = {"changed_to": changed_to[item_id]} if item_id in changed_to else {}
        shown.append({**value, "id": item_id, **mark})

    for item in items:
        old = changes.get(item["id"])
        if old is not None and old in live:
            show(old, dict(live[old]))
        show(item["id"], item)
    return shown


class Visits:
    """Visit operations on behalf of the signed-in person."""

    def __init__(
        self, records: ClinicRecords, clock: Callable[[], dt.datetime] = now_local
    ) -> None:
        self.records = records
        self.entries = ClinicalEntries(records)
        self.notes = Notes(records)
        self.clock = clock  # the clinic's local time now (tests set their own)

    def start(
        self,
        patient_id: str,
        reason: str | None = None,
        clinician: str | None = None,
        appointment_id: str | None = None,
        arrived_now: bool = False,
    ) -> Visit:
        """Start a visit now: a walk-in, or from ``appointment_id`` (see ``_start_from``).
        The clinician defaults to the appointment's (a nurse starting the doctor's
        appointment starts the doctor's visit), else to the signed-in person, and must be a
        user of the clinic. ``arrived_now``: the person starting it has the patient in
        front of them (the chart's Start visit), so a booked appointment of today is
        marked arrived first, in the same transaction."""
        self.records.get_patient(patient_id)
        # Only its clinician is read, to default the visit's: starting is checked by the
        # write (manage_visit), and the appointment's status below by the schedule's own.
        appointment = (
            entry_row(self.records.db, "appointment", appointment_id) if appointment_id else {}
        )
        booked_with = str(appointment.get("clinician") or "")
        who = (clinician or "").strip() or booked_with or self.records.actor
        if who != self.records.actor and self.records.user(who) is None:
            raise ValidationError("clinician", f"{who!r} is not a user of this clinic")
        now = self.clock()
        fields = {"started_at": now.isoformat(timespec="minutes"), "reason": reason,
                  "clinician": who, "appointment_id": None}  # fmt: skip
        if appointment_id:
            return self._start_from(appointment_id, patient_id, fields, now, arrived_now)
        return self._get(self.entries.add("encounter", patient_id, fields))

    def _start_from(
        self,
        appointment_id: str,
        patient_id: str,
        fields: dict[str, str | None],
        now: dt.datetime,
        arrived_now: bool = False,
    ) -> Visit:
        """The patient's own appointment, today, arrived (or already set in visit by the
        schedule, with no visit yet; or booked, when ``arrived_now``: it is marked arrived
        first): in one transaction the appointment becomes in visit and the encounter is
        created, taking the appointment's reason unless another is given. Anything else is
        refused, naming the appointment's status."""
        schedule = Schedule(self.records, lambda: now)
        # One transaction for the checks and both writes (each keeps its own audit entry):
        # nothing can change the appointment between them, and neither lands alone.
        with self.records.db.batch():
            appointment = schedule.get(appointment_id)
            if appointment.patient_id != patient_id:
                raise ValidationError("appointment_id", "is another patient's appointment")
            taken = self.records.db.query(
                "SELECT id FROM encounters WHERE appointment_id = ?", (appointment_id,)
            )
            if taken:
                raise ValidationError(
                    "appointment_id", f"visit {taken[0][0]} was already started from it"
                )
            if appointment.status == "booked" and arrived_now:
                # On the appointment's day only (set_status refuses another day's).
                appointment = schedule.set_status(appointment_id, "arrived")
            if appointment.status == "arrived":
                schedule.set_status(appointment_id, "in_visit")
            elif appointment.status == "in_visit":
                refuse_wrong_time(appointment, "in_visit", now)
            else:
                raise ValidationError(
                    "appointment_id",
                    f"is {appointment.status_label.lower()}; a visit is started from an "
                    "appointment only once the patient has arrived",
                )
            fields = {**fields, "appointment_id": appointment_id,
                      "reason": fields["reason"] or appointment.reason}  # fmt: skip
            visit_id = self.entries.add("encounter", patient_id, fields)
        return self._get(visit_id)

    def appointments_to_start(self, patient_id: str) -> list[Appointment]:
        """The patient's appointments today that a visit can still start from (booked,
        arrived, or in visit with no visit yet), by time: what the chart's Start visit
        offers. None for someone who may not see the schedule (nor is that refusal
        audited: the walk-in is all they are offered)."""
        if not self.records.may("schedule"):
            return []
        schedule = Schedule(self.records, self.clock)
        today = [
            a
            for a in schedule.day(self.clock().date())
            if a.patient_id == patient_id and a.status in ("booked", "arrived", "in_visit")
        ]
        if not today:
            return []
        marks = ", ".join("?" for _ in today)
        taken = {
            str(row[0])
            for row in self.records.db.query(
                f"SELECT appointment_id FROM encounters WHERE appointment_id IN ({marks})",
                tuple(a.id for a in today),
            )
        }
        return [a for a in today if a.id not in taken]

    def close(self, visit_id: str) -> Visit:
        """Close an open visit (who and when are recorded); the appointment it was started
        from, if it is in visit, becomes done in the same transaction."""
        actor = self.records.actor
        closing = self.records.setter({"closed_at": utc_now(), "closed_by": actor})
        with self.records.db.batch():
            visit = self._get(visit_id)  # the change is checked by its write
            if not visit.is_open:
                raise ValidationError("status", "the visit is already closed")
            with self.records.db.write(actor, "encounter.close", "encounter", visit_id) as tx:
                change(tx, actor, visit_id, "encounter", closing)
            if visit.appointment_id:
                self._finish(visit.appointment_id)
        return self._get(visit_id)

    def reopen(self, visit_id: str) -> Visit:
        """Open a closed visit again (one closed by mistake, before its note was written):
        it takes new notes again. The audit entry names who reopened it and who had closed
        it when; closing it again records the new closing. The appointment it came from
        stays done: done is final on the schedule (the patient's appointment is over either
        way), and closing again leaves it so."""
        actor = self.records.actor
        reopening = self.records.setter({"closed_at": None, "closed_by": None})
        with self.records.db.batch():
            visit = self._get(visit_id)  # the change is checked by its write
            if visit.is_open:
                raise ValidationError("status", "the visit is open")
            details = {"closed_at": visit.closed_at, "closed_by": visit.closed_by}
            with self.records.db.write(
                actor, "encounter.reopen", "encounter", visit_id, details
            ) as tx:
                change(tx, actor, visit_id, "encounter", reopening)
        return self._get(visit_id)

    def _finish(self, appointment_id: str) -> None:
        """The visit's appointment is done. Only from in visit: one the front desk has
        since moved on (back to waiting, or settled in a conflict) is theirs to change,
        and one not synced to this replica yet has nothing to mark."""
        schedule = Schedule(self.records, self.clock)
        try:
            appointment = schedule.get(appointment_id)
        except NotFoundError:
            return
        if appointment.status == "in_visit":
            schedule.set_status(appointment_id, "done")

    def get(self, visit_id: str) -> Visit:
        """One visit; refused (audited) unless the signed-in person may see visits on its
        patient's chart (``visits.list``: on a restricted chart, its care team or a
        break-glass grant)."""
        visit = self._get(visit_id)
        self.records.require("visits.list", visit.patient_id)
        return visit

    def _get(self, visit_id: str) -> Visit:
        """One visit, unchecked: for this class's own flows, after a check or a write."""
        rows = self.records.db.query(f"{_SELECT} WHERE id = ?", (visit_id,))
        if not rows:
            raise NotFoundError(f"no visit with id {visit_id!r}")
        return _visit(rows[0])

    def list_visits(self, patient_id: str | None = None, open_only: bool = False) -> list[Visit]:
        """Visits, newest first: one patient's or the clinic's, all or only the open ones.

        One patient's needs ``visits.list`` on the chart. The clinic's (who is in a visit,
        with whom, since when: the front desk's view of the day, walk-ins included) lists
        every visit, but a visit on a chart the signed-in person may not read clinically
        (the front desk's, or a restricted chart off their care team) comes with its reason
        withheld (``reason`` None, ``reason_withheld`` True): the reason is clinical."""
        where, params = [], []
        if patient_id is not None:
            self.records.get_patient(patient_id)
            self.records.require("visits.list", patient_id)
            where.append(merged.IN_CHART)
            params.append(merged.chart_ids_json(self.records.db, patient_id))
        if open_only:
            where.append("status = 'open'")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.records.db.query(
            f"{_SELECT}{clause} ORDER BY started_at DESC, created_at DESC, id DESC", tuple(params)
        )
        found = [_visit(r) for r in rows]
        if patient_id is not None:
            return found
        readable = {p for p in {v.patient_id for v in found} if self._readable(p)}
        return [v if v.patient_id in readable else v.withheld() for v in found]

    def add_note(self, visit_id: str, body: str = SOAP_TEMPLATE) -> Note:
        """Start a note in an open visit (by default the SOAP headings)."""
        visit = self._get(visit_id)  # the change is checked by its write
        if not visit.is_open:
            raise ValidationError("encounter_id", "the visit is closed; notes cannot be added")
        return self.notes.create(visit.patient_id, body, visit_id)

    def visit_notes(self, visit_id: str) -> list[Note]:
        """The visit's notes, in the order they were started (discarded drafts left out);
        refused as :meth:`get` is."""
        return self._notes(self.get(visit_id))

    def _notes(self, visit: Visit) -> list[Note]:
        """The notes of a visit whose chart was checked: a note naming the visit but on
        another chart (none Careline writes) only if that chart is readable too."""
        rows = self.records.db.query(
            f"SELECT id, patient_id FROM notes WHERE encounter_id = ? AND {ON_CHART}",
            (visit.id,),
        )
        ids = [str(i) for i, pid in rows if pid == visit.patient_id or self._readable(pid)]
        return [load_note(self.records.db, i) for i in started_order(self.records.db, ids)]

    def _readable(self, patient_id: str | None) -> bool:
        """Whether the signed-in person may read the chart's clinical data."""
        return patient_id is not None and self.records.may("view_clinical", patient_id)

    def contents(self, visit_id: str) -> VisitContents:
        """The visit and everything recorded in it; refused as :meth:`get` is."""
        visit = self.get(visit_id)
        columns = OBSERVATION.column_names
        observations = [
            dict(zip(columns, r, strict=True))
            for r in self.records.db.query(
                f"SELECT {', '.join(columns)} FROM observations WHERE encounter_id = ? "
                "ORDER BY observed_at, id",
                (visit_id,),
            )
        ]
        items = visit_list_items(self.records, visit.patient_id, visit_id)
        return VisitContents(
            visit,
            tuple(self._notes(visit)),
            tuple(
                o
                for o in observations
                if o["patient_id"] == visit.patient_id or self._readable(o["patient_id"])
            ),
            tuple(items.get("problems", [])),
            tuple(items.get("medications", [])),
        )

"""The clinic's schedule: booking, moving, cancelling and checking in appointments.

Appointments are ``appointment`` records (``core/records/types.py``) written through the one
write path. This module adds what a schedule needs on top of the generic chart entries:

- **Times** are the clinic's local wall-clock time, to the minute, without an offset
  (``validation.local_datetime``): every workstation of a clinic is in the clinic's time
  zone, and a 09:30 appointment stays at 09:30 across a daylight-saving change. When a
  patient arrives, ``arrived_at`` records the workstation's local time to the second; the
  waiting room counts from it.
- **Status** moves along ``TRANSITIONS``: booked -> arrived -> in_visit -> done, and
  booked -> cancelled / no_show. A few ways back are allowed because people make mistakes
  at the front desk (an arrival marked on the wrong patient goes back to booked, a
  cancelled appointment is reinstated, a no-show who turns up late is checked in, a visit
  started by mistake goes back to waiting). ``done`` is final here: only a person settling
  a conflict in the conflict inbox may put another value on a finished appointment.
- **When**: a patient is checked in (arrived) or called in (in visit) only on the
  appointment's own day by the clinic's clock, and marked a no-show only once the
  appointment's start time has passed (``refuse_wrong_time``); a visit started from an
  appointment (``Visits.start``) sets it in visit in the same transaction.
- **Overlaps** (the same clinician, or the same patient with any clinician, overlapping
  times, neither cancelled nor a no-show) are warned, not forbidden: ``book``/``move``
  refuse with ``OverlapError`` naming the clashes unless the caller says the person has
  seen them (``allow_overlap=True``); the check and the write are one transaction.
- Two workstations moving the same appointment write the same registers concurrently,
  so the move shows in the conflict inbox (both times kept until a person chooses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from core.records import merged
from core.records import validation as v
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.errors import NotFoundError, RecordError, ValidationError
from core.records.types import APPOINTMENT_STATUSES, choice_label
from core.store.database import Transaction, utc_now

# Where each status may go from a schedule screen or command (see the module docstring).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "booked": ("arrived", "cancelled", "no_show"),
    "arrived": ("in_visit", "booked", "cancelled", "no_show"),
    "in_visit": ("done", "arrived"),
    "done": (),
    "cancelled": ("booked",),
    "no_show": ("arrived", "booked"),
}
# "In visit", "No-show": as every screen, command and printed day list names a status.
STATUS_LABELS = {status: choice_label(status) for status in APPOINTMENT_STATUSES}
# Statuses that no longer hold the clinician's time (they never clash).
INACTIVE = ("cancelled", "no_show")
MAX_MINUTES = 12 * 60
CLINICIAN_ROLES = ("clinician", "admin")

# The patient's name is the chart's that holds the appointment now (a merged duplicate's
# appointment shows its survivor's name: core/records/merged.py).
_PATIENT_JOIN = f"LEFT JOIN patients p ON p.id = {merged.survivor_sql('a.patient_id')}"
_COLUMNS = (
    "a.id, a.patient_id, p.family, p.given, a.starts_at, a.ends_at, a.reason, a.status, "
    "a.clinician, a.arrived_at, a.cancel_reason"
)


@dataclass(frozen=True)
class Appointment:
    """One appointment as the schedule shows it (the patient's name read alongside)."""

    id: str
    patient_id: str
    patient_name: str  # FAMILY, Given ("" if the patient is not on this replica yet)
    starts_at: str
    ends_at: str
    reason: str | None
    status: str
    clinician: str | None
    arrived_at: str | None
    cancel_reason: str | None

    @property
    def minutes(self) -> int:
        """Length in minutes."""
        delta = dt.datetime.fromisoformat(self.ends_at) - dt.datetime.fromisoformat(self.starts_at)
        return int(delta.total_seconds() // 60)

    @property
    def status_label(self) -> str:
        """``In visit`` for ``in_visit``."""
        return STATUS_LABELS.get(self.status, self.status)

    def waiting_minutes(self, now: dt.datetime) -> int | None:
        """Whole minutes since the patient arrived (None if not waiting)."""
        if self.status != "arrived" or not self.arrived_at:
            return None
        waited = now - dt.datetime.fromisoformat(self.arrived_at)
        return max(int(waited.total_seconds() // 60), 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**asdict(self), "minutes": self.minutes}


@dataclass(frozen=True)
class Clinician:
    """A member of staff who sees patients."""

    username: str
    full_name: str

    @property
    def label(self) -> str:
        """How lists name them."""
        return self.full_name or self.username


class OverlapError(RecordError):
    """The clinician (``clashes``) or the patient (``patient_clashes``, with any
    clinician) already has appointments at that time; nothing was written."""

    def __init__(
        self, clashes: list[Appointment], patient_clashes: list[Appointment] | None = None
    ) -> None:
        patient_clashes = patient_clashes or []
        parts = []
        if clashes:
            parts.append("the clinician is already booked then: " + _listed(clashes))
        if patient_clashes:
            parts.append("the patient already has an appointment then: " + _listed(patient_clashes))
        super().__init__("; and ".join(parts))
        self.clashes = clashes
        self.patient_clashes = patient_clashes

    def everything(self) -> list[Appointment]:
        """Every clash once (the patient's own appointment with the same clinician is in
        both lists), by start time."""
        seen = {a.id: a for a in (*self.clashes, *self.patient_clashes)}
        return sorted(seen.values(), key=lambda a: (a.starts_at, a.id))


def _listed(appointments: list[Appointment]) -> str:
    return "; ".join(describe(a) for a in appointments)


class TransitionError(ValidationError):
    """A status change the schedule does not allow (names what is allowed)."""


def describe(a: Appointment, with_id: bool = True) -> str:
    """``2026-12-07 09:30-09:45 GARCIA, Maria (booked, id ...)`` for messages."""
    day, start = a.starts_at.split("T")
    end = a.ends_at.split("T")[1]
    who = a.patient_name or a.patient_id
    ident = f", id {a.id}" if with_id else ""
    return f"{day} {start}-{end} {who} ({a.status_label.lower()}{ident})"


def refuse_wrong_time(a: Appointment, status: str, now: dt.datetime) -> None:
    """TransitionError unless ``status`` may be set on ``a`` at ``now`` (the clinic's local
    time): arrived and in visit only on the appointment's day, no-show only after it
    started. Other statuses may be set at any time."""
    day = a.starts_at[:10]
    label = STATUS_LABELS.get(status, status).lower()
    if status in ("arrived", "in_visit") and now.date().isoformat() != day:
        raise TransitionError(
            "status",
            f"the appointment is on {day}: it can only be marked {label} on that day "
            f"(today is {now.date().isoformat()})",
        )
    if status == "no_show" and now <= dt.datetime.fromisoformat(a.starts_at):
        raise TransitionError(
            "status",
            f"the appointment starts at {a.starts_at.replace('T', ' ')}: it can only be "
            "marked a no-show after that",
        )


def now_local() -> dt.datetime:
    """The workstation's local wall-clock time (the clinic's), without an offset."""
    return dt.datetime.now().replace(microsecond=0)


def week_start(day: dt.date) -> dt.date:
    """The Monday of ``day``'s week."""
    return day - dt.timedelta(days=day.weekday())


def _row(r: Any) -> Appointment:
    name = f"{str(r[2]).upper()}, {r[3]}" if r[2] is not None else ""
    return Appointment(r[0], r[1], name, r[4], r[5], r[6], r[7], r[8], r[9], r[10])


def _end(starts_at: str, minutes: int | str | None, ends_at: str | None) -> str:
    """The end time, from a length in minutes or a typed end (exactly one)."""
    if (minutes is None) == (ends_at is None):
        raise ValidationError("minutes", "give either a length in minutes or an end time")
    start = dt.datetime.fromisoformat(starts_at)
    if ends_at is not None:
        end = dt.datetime.fromisoformat(v.local_datetime("ends_at", ends_at) or "")
        if end <= start:
            raise ValidationError("ends_at", "must be after the start")
    else:
        end = start + dt.timedelta(minutes=length_in_minutes(minutes))
    return end.isoformat(timespec="minutes")


def length_in_minutes(minutes: int | str | None) -> int:
    """An appointment's length as typed (``"20"``): a whole number of minutes from 1 to
    ``MAX_MINUTES``, else ValidationError on ``minutes`` (a form checks it with the rest
    before booking)."""
    text = str(minutes if minutes is not None else "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_MINUTES:
        raise ValidationError(
            "minutes", f"{text!r} is not a length from 1 to {MAX_MINUTES} minutes"
        )
    return int(text)


class Schedule:
    """The schedule's operations, as the signed-in person."""

    def __init__(
        self, records: ClinicRecords, clock: Callable[[], dt.datetime] = now_local
    ) -> None:
        self.records = records
        self.clock = clock  # the clinic's local time now (tests set their own)

    # ----- reading ----------------------------------------------------------------------

    def get(self, appointment_id: str) -> Appointment:
        """One appointment; NotFoundError names a missing id."""
        rows = self.records.db.query(
            f"SELECT {_COLUMNS} FROM appointments a {_PATIENT_JOIN} WHERE a.id = ?",
            (merged.survivors_json(self.records.db), appointment_id),
        )
        if not rows:
            raise NotFoundError(f"no appointment with id {appointment_id!r}")
        return _row(rows[0])

    def between(
        self, first: dt.date, last: dt.date, clinician: str | None = None
    ) -> list[Appointment]:
        """Appointments starting on days ``first`` to ``last`` (inclusive), by start time."""
        self.records.require("schedule.view")
        low = first.isoformat()
        high = (last + dt.timedelta(days=1)).isoformat()
        sql = (
            f"SELECT {_COLUMNS} FROM appointments a {_PATIENT_JOIN} "
            "WHERE a.starts_at >= ? AND a.starts_at < ?"
        )
        params: tuple[Any, ...] = (merged.survivors_json(self.records.db), low, high)
        if clinician is not None:
            sql += " AND a.clinician = ?"
            params += (clinician,)
        rows = self.records.db.query(sql + " ORDER BY a.starts_at, a.clinician, a.id", params)
        return [_row(r) for r in rows]

    def day(self, day: dt.date, clinician: str | None = None) -> list[Appointment]:
        """One day's appointments (of one clinician, or the whole clinic)."""
        return self.between(day, day, clinician)

    def week(self, day: dt.date, clinician: str | None = None) -> list[Appointment]:
        """The appointments of ``day``'s week, Monday to Sunday."""
        monday = week_start(day)
        return self.between(monday, monday + dt.timedelta(days=6), clinician)

    def waiting(self, today: dt.date | None = None) -> list[Appointment]:
        """Patients checked in today and not yet seen, longest waiting first."""
        day = today or self.clock().date()
        found = [a for a in self.day(day) if a.status == "arrived"]
        return sorted(found, key=lambda a: (a.arrived_at or "", a.starts_at))

    def clinicians(self) -> list[Clinician]:
        """Active staff who see patients (clinicians and administrators), by name."""
        marks = ", ".join("?" for _ in CLINICIAN_ROLES)
        rows = self.records.db.query(
            f"SELECT username, full_name FROM users WHERE active = 1 AND role IN ({marks}) "
            "ORDER BY full_name, username",
            CLINICIAN_ROLES,
        )
        return [Clinician(str(r[0]), str(r[1] or "")) for r in rows]

    def overlaps(
        self, clinician: str, starts_at: str, ends_at: str, excluding: str | None = None
    ) -> list[Appointment]:
        """The clinician's active appointments overlapping ``[starts_at, ends_at)``."""
        return self._overlaps(self.records.db, clinician, starts_at, ends_at, excluding)

    @staticmethod
    def _overlaps(
        db: Any, clinician: str, starts_at: str, ends_at: str, excluding: str | None
    ) -> list[Appointment]:
        marks = ", ".join("?" for _ in INACTIVE)
        rows = db.query(
            f"SELECT {_COLUMNS} FROM appointments a {_PATIENT_JOIN} "
            f"WHERE a.clinician = ? AND a.starts_at < ? AND a.ends_at > ? "
            f"AND a.status NOT IN ({marks}) AND a.id IS NOT ? ORDER BY a.starts_at, a.id",
            (merged.survivors_json(db), clinician, ends_at, starts_at, *INACTIVE, excluding),
        )
        return [_row(r) for r in rows]

    @staticmethod
    def _patient_overlaps(
        db: Any, patient_id: str, starts_at: str, ends_at: str, excluding: str | None
    ) -> list[Appointment]:
        """The patient's active appointments (with any clinician) overlapping the slot; a
        merged duplicate's count as the chart's that holds them now."""
        marks = ", ".join("?" for _ in INACTIVE)
        survivors = merged.survivors_json(db)
        rows = db.query(
            f"SELECT {_COLUMNS} FROM appointments a {_PATIENT_JOIN} "
            f"WHERE {merged.survivor_sql('a.patient_id')} = {merged.survivor_sql('?')} "
            f"AND a.starts_at < ? AND a.ends_at > ? "
            f"AND a.status NOT IN ({marks}) AND a.id IS NOT ? ORDER BY a.starts_at, a.id",
            (survivors, survivors, survivors, patient_id, patient_id, ends_at, starts_at,
             *INACTIVE, excluding),
        )  # fmt: skip
        return [_row(r) for r in rows]

    # ----- writing ----------------------------------------------------------------------

    def book(
        self,
        patient_id: str,
        starts_at: str,
        clinician: str,
        minutes: int | str | None = None,
        ends_at: str | None = None,
        reason: str | None = None,
        allow_overlap: bool = False,
    ) -> Appointment:
        """Book an appointment (status booked); ``OverlapError`` names the clinician's
        appointments at that time unless ``allow_overlap`` (the person saw them)."""
        start = v.local_datetime("starts_at", starts_at) or ""
        fields = {
            "patient_id": patient_id,
            "starts_at": start,
            "ends_at": _end(start, minutes, ends_at),
            "reason": v.optional_text("reason", reason),
            "status": "booked",
            "clinician": self._clinician(clinician),
            "created_at": utc_now(),
        }
        self.records.get_patient(patient_id)
        appointment_id, actor = new_id(), self.records.actor
        with self.records.db.write(
            actor, "appointment.create", "appointment", appointment_id
        ) as tx:
            if not allow_overlap:
                self._refuse_overlap(tx, fields, None)
            change(tx, actor, appointment_id, "appointment", self.records.setter(fields))
        return self.get(appointment_id)

    def move(
        self,
        appointment_id: str,
        starts_at: str,
        minutes: int | str | None = None,
        ends_at: str | None = None,
        clinician: str | None = None,
        allow_overlap: bool = False,
    ) -> Appointment:
        """Move a booked appointment to another time (its length kept unless given), or
        to another clinician; overlaps as for ``book``."""
        current = self.get(appointment_id)
        if current.status != "booked":
            raise TransitionError(
                "starts_at",
                "only a booked appointment can be moved; this one is "
                + current.status_label.lower(),
            )
        start = v.local_datetime("starts_at", starts_at) or ""
        if minutes is None and ends_at is None:
            minutes = current.minutes
        fields = {"starts_at": start, "ends_at": _end(start, minutes, ends_at)}
        who = self._clinician(clinician) if clinician is not None else current.clinician
        if who != current.clinician:
            fields["clinician"] = who or ""
        changed = {f: x for f, x in fields.items() if getattr(current, f) != x}
        if not changed:
            return current
        if "starts_at" in changed or "ends_at" in changed:
            # The slot is one choice: its start and end are always written together, so
            # moves made on two workstations at once never show one's start with the
            # other's end (each register's winner is then the same move).
            changed.update(starts_at=fields["starts_at"], ends_at=fields["ends_at"])
        actor = self.records.actor
        details = {"fields": sorted(changed)}
        with self.records.db.write(
            actor, "appointment.move", "appointment", appointment_id, details
        ) as tx:
            self._require_status(tx, appointment_id, ("booked",))
            if not allow_overlap:
                slot = {**fields, "clinician": who, "patient_id": current.patient_id}
                self._refuse_overlap(tx, slot, appointment_id)
            change(tx, actor, appointment_id, "appointment", self.records.setter(changed))
        return self.get(appointment_id)

    def cancel(self, appointment_id: str, reason: str | None = None) -> Appointment:
        """Cancel an appointment (kept on the schedule as cancelled, with the reason)."""
        cleaned = v.optional_text("cancel_reason", reason)
        return self._set(appointment_id, "cancelled", {"cancel_reason": cleaned})

    def set_status(
        self, appointment_id: str, status: str, allow_overlap: bool = True
    ) -> Appointment:
        """Move an appointment to ``status`` along ``TRANSITIONS`` (TransitionError names
        the statuses allowed from where it is) at a time that status allows
        (``refuse_wrong_time``). Arriving records the local time.

        An appointment that held no time (cancelled, a no-show) put back on the schedule
        (booked, arrived) may now overlap the clinician's others: with ``allow_overlap``
        False that raises ``OverlapError`` as ``book`` does (the schedule page asks first);
        the command line, as before, allows it."""
        wanted = v.choice("status", status, APPOINTMENT_STATUSES)
        if wanted is None:
            raise ValidationError("status", "is required")
        if wanted == "cancelled":
            return self.cancel(appointment_id)
        now = self.clock().replace(microsecond=0)
        extra: dict[str, str | None] = {}
        if wanted == "arrived":
            extra["arrived_at"] = now.isoformat()
        elif wanted == "booked":
            extra |= {"arrived_at": None, "cancel_reason": None}
        return self._set(appointment_id, wanted, extra, now, allow_overlap)

    def start_visit(self, appointment_id: str) -> Appointment:
        """The clinician has called the patient in: status in_visit (from arrived), with no
        visit record; ``Visits.start`` from the appointment does both in one transaction."""
        return self.set_status(appointment_id, "in_visit")

    def _set(
        self,
        appointment_id: str,
        status: str,
        extra: dict[str, str | None],
        now: dt.datetime | None = None,
        allow_overlap: bool = True,
    ) -> Appointment:
        current = self.get(appointment_id)
        if current.status == status:
            return current
        allowed = TRANSITIONS.get(current.status, ())
        actor = self.records.actor
        details = {"from": current.status, "to": status}
        action = "appointment.cancel" if status == "cancelled" else "appointment.status"
        with self.records.db.write(actor, action, "appointment", appointment_id, details) as tx:
            self._require_status(tx, appointment_id, (current.status,))
            if status not in allowed:
                names = ", ".join(STATUS_LABELS[s].lower() for s in allowed) or "nothing"
                raise TransitionError(
                    "status",
                    f"an appointment that is {current.status_label.lower()} cannot become "
                    f"{STATUS_LABELS[status].lower()} (it may become {names})",
                )
            if now is not None:
                refuse_wrong_time(current, status, now)
            back = current.status in INACTIVE and status not in INACTIVE
            if back and not allow_overlap:
                slot = {"clinician": current.clinician, "patient_id": current.patient_id,
                        "starts_at": current.starts_at, "ends_at": current.ends_at}  # fmt: skip
                self._refuse_overlap(tx, slot, appointment_id)
            fields = {"status": status, **extra}
            change(tx, actor, appointment_id, "appointment", self.records.setter(fields))
        return self.get(appointment_id)

    # ----- checks -----------------------------------------------------------------------

    def _clinician(self, username: str) -> str:
        name = (username or "").strip().lower()
        if not name:
            raise ValidationError("clinician", "is required")
        if name not in {c.username for c in self.clinicians()}:
            raise ValidationError(
                "clinician", f"{username!r} is not an active clinician of this clinic"
            )
        return name

    @staticmethod
    def _require_status(tx: Transaction, appointment_id: str, expected: tuple[str, ...]) -> None:
        # Re-read inside the write: a sync may have changed it since it was shown.
        rows = tx.query("SELECT status FROM appointments WHERE id = ?", (appointment_id,))
        if not rows:
            raise NotFoundError(f"no appointment with id {appointment_id!r}")
        if rows[0][0] not in expected:
            raise TransitionError(
                "status", f"the appointment is now {STATUS_LABELS.get(rows[0][0], rows[0][0])}"
                " (changed meanwhile): look again"
            )  # fmt: skip

    def _refuse_overlap(
        self, tx: Transaction, fields: dict[str, Any], excluding: str | None
    ) -> None:
        start, end = fields["starts_at"], fields["ends_at"]
        who = fields.get("clinician")
        clashes = self._overlaps(tx, who, start, end, excluding) if who else []
        mine = self._patient_overlaps(tx, fields["patient_id"], start, end, excluding)
        if clashes or mine:
            raise OverlapError(clashes, mine)

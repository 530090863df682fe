"""Recording and reading vital signs: observation records described by the catalogue in
``core/records/vitals.py``.

A set of vitals taken together is ONE store transaction (``Database.write``): one
observation record per vital, each with its document, derived row and op, and one audit
entry ``vitals.record`` naming the codes (never the values). Either the whole set is stored
or none of it.

The readings of one set share a ``set_id``, and a set is shown as one row (the chart's
table and plot, the printed summary, the visit view, FHIR's blood-pressure Observation):
two sets measured in the same minute (a recheck) stay two rows, and the two numbers of a
blood pressure always come from the same recording (``recordings`` says how readings
recorded before set ids existed are grouped, never combining two recordings).

BMI is never stored: it is worked out when read, from each weight and the latest height
measured at or before it, so correcting a weight or a height can never leave a stale BMI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.records import crdt, merged
from core.records import validation as v
from core.records import vitals as cat
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.errors import NotFoundError, ValidationError
from core.records.measured_time import not_ahead, this_computer_now
from core.records.types import OBSERVATION, SOURCE
from core.store.database import Database, utc_now
from core.store.state_codec import unpack_state

_COLUMNS = OBSERVATION.column_names


@dataclass(frozen=True)
class Reading:
    """One stored vital sign."""

    id: str
    patient_id: str
    encounter_id: str | None
    code: str
    value: str  # canonical
    unit: str | None  # canonical UCUM
    observed_at: str
    entered_value: str | None
    entered_unit: str | None  # UCUM of the unit typed
    flag: str | None  # "high", "low" or None
    set_id: str | None = None  # shared by the readings recorded together (None: older)
    created_at: str | None = None  # when recorded (UTC); None only on rows not re-derived
    # Who recorded it (user name; "" unknown): filled by ``VitalSigns.readings``, from the
    # record's document (see ``recorders``), not a column of its row.
    recorded_by: str = ""

    @property
    def vital(self) -> cat.Vital | None:
        """The catalogue entry (None: an observation that is not a known vital)."""
        return cat.BY_CODE.get(self.code)

    @property
    def number(self) -> Decimal:
        """The canonical value as a number."""
        return Decimal(self.value)

    @property
    def text(self) -> str:
        """As entered (``102 °F``), or the stored value and unit for older records."""
        return cat.as_entered(self.code, asdict(self))

    def as_json(self) -> dict[str, Any]:
        """For ``--json`` output."""
        vital = self.vital
        return {
            "id": self.id,
            "patient_id": self.patient_id,
            "encounter_id": self.encounter_id,
            "code": self.code,
            "vital": vital.key if vital else None,
            "label": vital.label if vital else self.code,
            "value": self.value,
            "unit": self.unit,
            "entered_value": self.entered_value,
            "entered_unit": self.entered_unit,
            "flag": self.flag,
            "observed_at": self.observed_at,
            "set_id": self.set_id,
            "recorded_by": self.recorded_by or None,
        }


@dataclass(frozen=True)
class VitalSet:
    """The vitals recorded together (one recording: see ``recordings``)."""

    observed_at: str
    encounter_id: str | None
    readings: dict[str, Reading] = field(default_factory=dict)  # by vital key
    bmi: Decimal | None = None  # worked out, see the module docstring
    bmi_flag: str | None = None
    recorded_at: str = ""  # when it was recorded (orders two sets of the same minute)
    recorded_by: str = ""  # who recorded it (user name; "" unknown)


def recordings(readings: Iterable[Reading]) -> list[list[Reading]]:
    """The readings as they were recorded together, newest first (by the time measured,
    then the time recorded): one list per recording.

    Readings recorded together share a ``set_id``. Readings made before set ids existed
    (an older release, or this one before V18) have none: those recorded by one
    ``VitalSigns.record`` share their ``created_at`` (one time written for the whole set),
    and one added alone has a time of its own. A group is also kept to one time measured
    and one visit. Whatever the key, a group holding two readings of the same code cannot
    be one recording (a set holds each vital once), and which of its readings belong
    together is then unknown: each is shown alone rather than paired with a value from
    another recording (never a systolic from one and a diastolic from another).
    """
    groups: dict[tuple[str, ...], list[Reading]] = {}
    for r in readings:
        where = (r.observed_at, r.encounter_id or "")
        if r.set_id:
            key: tuple[str, ...] = ("set", r.set_id, *where)
        elif r.created_at:
            key = ("recorded", r.created_at, *where)
        else:
            key = ("reading", r.id)
        groups.setdefault(key, []).append(r)
    out: list[list[Reading]] = []
    for group in groups.values():
        codes = [r.code for r in group]
        if len(set(codes)) < len(codes):
            out += [[r] for r in group]
        else:
            out.append(group)
    out.sort(key=lambda g: (g[0].observed_at, g[0].created_at or "", g[0].set_id or g[0].id))
    out.reverse()
    return out


def observed_time(typed: str | None, now: dt.datetime | None = None) -> str:
    """When a set was measured, as stored: what was typed, or now when no time was given
    (None: ``careline vitals add`` without ``--at``). Checked as every local time is
    (``validation.timestamp``: a date and a time to the minute, no time zone), and refused
    when more than ``FUTURE_SLACK`` ahead of ``now`` (``measured_time.not_ahead``: this
    workstation's clock, read when not given; a form passes the clock its "Measured at"
    follows).

    A time given blank (a form's "Measured at" the person emptied) is refused as required,
    never read as now: the set would be stored at a time nobody typed or saw."""
    now = now or this_computer_now()
    when = v.timestamp("observed_at", now.isoformat(timespec="minutes") if typed is None else typed)
    when = when or ""
    not_ahead("observed_at", when, now)
    return when


def measure_all(
    values: Mapping[str, str], units: Mapping[str, str] | None = None
) -> tuple[list[cat.Measurement], dict[str, ValidationError]]:
    """Read every typed value (by vital key; blank ones skipped): the measurements, and
    what is wrong with each refused field (key -> error), so a form can show all."""
    units = units or {}
    found: list[cat.Measurement] = []
    errors: dict[str, ValidationError] = {}
    for key, typed in values.items():
        vital = cat.vital(key)
        if not typed.strip():
            continue
        try:
            found.append(cat.measure(vital, typed, units.get(key)))
        except ValidationError as exc:
            errors[key] = exc
    by_key = {m.vital.key: m.value for m in found}
    if not ({"systolic", "diastolic"} & errors.keys()):
        try:
            cat.check_pressure(by_key.get("systolic"), by_key.get("diastolic"))
        except ValidationError as exc:
            errors[exc.field] = exc
    return found, errors


class VitalSigns:
    """Vital signs on a patient's chart, as the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records

    def record(
        self,
        patient_id: str,
        values: Mapping[str, str],
        units: Mapping[str, str] | None = None,
        observed_at: str | None = None,
        encounter_id: str | None = None,
        sources: Mapping[str, str] | None = None,
        now: dt.datetime | None = None,
    ) -> list[Reading]:
        """Store a set of vitals (by vital key: ``{"temperature": "102"}`` with
        ``units={"temperature": "[degF]"}``, or ``"102F"``) in one transaction.

        Refuses the whole set (ValidationError naming the first field) if any value is
        impossible, and an empty set; flags each value outside the normal range for the
        patient's age on the day measured. ``sources``: by LOINC code, the import each
        reading came from (kept on its record: core/records/types.py ``SOURCE``). ``now``:
        the clock the time is checked against (``observed_time``; default this computer's).
        """
        patient = self.records.get_patient(patient_id)
        measurements, errors = measure_all(values, units)
        if errors:
            raise next(iter(errors.values()))
        if not measurements:
            raise ValidationError("vitals", "has no values: type at least one measurement")
        when = observed_time(observed_at, now)
        visit = v.optional_text("encounter_id", encounter_id)
        if visit is not None:
            self._check_visit(patient_id, visit)
        years = cat.age_in_years(
            dt.date.fromisoformat(patient.birth_date), dt.date.fromisoformat(when[:10])
        )
        # One recording: one time and one set id for all its readings (see ``recordings``).
        actor, created, set_id = self.records.actor, utc_now(), new_id()
        rows: list[tuple[str, dict[str, Any]]] = []
        for m in measurements:
            fields: dict[str, Any] = {
                "patient_id": patient_id,
                "encounter_id": visit,
                "code": m.vital.code,
                "value": m.vital.show(m.value),
                "unit": m.vital.canonical.ucum,
                "observed_at": when,
                "entered_value": m.entered_value,
                "entered_unit": m.entered_unit.ucum,
                "flag": cat.flag(m.vital, m.value, years),
                "set_id": set_id,
                "created_at": created,
                SOURCE: (sources or {}).get(m.vital.code),
            }
            rows.append((new_id(), {k: val for k, val in fields.items() if val is not None}))
        details = {"codes": [f["code"] for _, f in rows], "observations": [i for i, _ in rows]}
        with self.records.db.write(actor, "vitals.record", "patient", patient_id, details) as tx:
            for record_id, fields in rows:
                change(tx, actor, record_id, "observation", self.records.setter(fields))
        return [
            replace(load_reading(self.records.db, record_id), recorded_by=actor)
            for record_id, _ in rows
        ]

    def _check_visit(self, patient_id: str, encounter_id: str) -> None:
        rows = self.records.db.query(
            "SELECT patient_id FROM encounters WHERE id = ?", (encounter_id,)
        )
        if not rows:
            raise NotFoundError(f"no visit with id {encounter_id!r}")
        if rows[0][0] != patient_id:
            raise ValidationError("encounter_id", f"visit {encounter_id!r} is another patient's")

    def correct(self, observation_id: str, typed: str, unit: str | None = None) -> Reading:
        """Replace a stored vital's value (a typo found later): value, as entered and flag
        are written together; a concurrent correction elsewhere becomes a conflict."""
        # The change is checked by its write.
        reading = load_reading(self.records.db, observation_id)
        vital = reading.vital
        if vital is None or vital.computed:
            raise ValidationError("code", f"{reading.code!r} is not a vital sign typed by staff")
        m = cat.measure(vital, typed, unit)
        patient = self.records.get_patient(reading.patient_id)
        years = cat.age_in_years(
            dt.date.fromisoformat(patient.birth_date),
            dt.date.fromisoformat(reading.observed_at[:10]),
        )
        fields = {
            "value": vital.show(m.value),
            "entered_value": m.entered_value,
            "entered_unit": m.entered_unit.ucum,
            "flag": cat.flag(vital, m.value, years),
        }
        actor = self.records.actor
        details = {"fields": sorted(fields)}
        with self.records.db.write(
            actor, "observation.update", "observation", observation_id, details
        ) as tx:
            change(tx, actor, observation_id, "observation", self.records.setter(fields))
        return load_reading(self.records.db, observation_id)

    # ----- reading ------------------------------------------------------------------------

    def get(self, observation_id: str) -> Reading:
        """One stored observation; refused (audited) unless the signed-in person may see
        vital signs on its patient's chart (``vitals.list``)."""
        reading = load_reading(self.records.db, observation_id)
        self.records.require("vitals.list", reading.patient_id)
        return reading

    def readings(self, patient_id: str, code: str | None = None) -> list[Reading]:
        """A patient's vitals (of one code or all), newest first."""
        self.records.require("vitals.list", patient_id)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM observations WHERE {merged.IN_CHART}"
        params: tuple[str, ...] = (merged.chart_ids_json(self.records.db, patient_id),)
        if code is not None:
            sql += " AND code = ?"
            params += (code,)
        rows = self.records.db.query(sql + " ORDER BY observed_at DESC, code, id", params)
        return with_recorders(self.records.db, [Reading(*r) for r in rows])

    def for_visit(self, encounter_id: str) -> list[Reading]:
        """The vitals taken in one visit, newest first (the visit view lists them); refused
        (audited) unless the signed-in person may see vital signs on the visit's chart."""
        rows = self.records.db.query(
            "SELECT patient_id FROM encounters WHERE id = ?", (encounter_id,)
        )
        if not rows:
            raise NotFoundError(f"no visit with id {encounter_id!r}")
        self.records.require("vitals.list", str(rows[0][0]))
        return [
            r for r in visit_readings(self.records.db, encounter_id)
            if r.patient_id == rows[0][0] or self.records.may("view_clinical", r.patient_id)
        ]  # fmt: skip

    def set_of(self, patient_id: str, readings: Iterable[Reading]) -> VitalSet | None:
        """The set that ``readings`` (what one :meth:`record` returned) are, with its BMI
        as the chart shows it (worked out, and flagged like a reading)."""
        ids = {r.id for r in readings}
        return next(
            (s for s in self.sets(patient_id) if any(r.id in ids for r in s.readings.values())),
            None,
        )

    def sets(self, patient_id: str) -> list[VitalSet]:
        """The patient's vitals as recorded, one set per recording (``recordings``), newest
        first, each with its BMI where a weight and an earlier or same-time height allow
        one."""
        patient = self.records.get_patient(patient_id)
        return vital_sets(self.readings(patient_id), dt.date.fromisoformat(patient.birth_date))


def load_reading(db: Database, observation_id: str) -> Reading:
    """One stored observation with NO permission check: for core's own flows that checked
    the read or write they make. Anyone else: ``VitalSigns.get``."""
    rows = db.query(
        f"SELECT {', '.join(_COLUMNS)} FROM observations WHERE id = ?", (observation_id,)
    )
    if not rows:
        raise NotFoundError(f"no observation with id {observation_id!r}")
    return Reading(*rows[0])


def visit_readings(db: Database, encounter_id: str) -> list[Reading]:
    """The observations naming a visit, newest first, with NO permission check: for core's
    own flows that checked the visit's chart (printing it, after ``print.visit``). Anyone
    else: ``VitalSigns.for_visit``."""
    rows = db.query(
        f"SELECT {', '.join(_COLUMNS)} FROM observations WHERE encounter_id = ? "
        "ORDER BY observed_at DESC, code, id",
        (encounter_id,),
    )
    return with_recorders(db, [Reading(*r) for r in rows])


def with_recorders(db: Database, readings: list[Reading]) -> list[Reading]:
    """``readings`` with who recorded each: the author of its ``code``, written once, when
    the reading was recorded (a correction changes the value, never the code), on whichever
    workstation that was. No column holds it (that would need a schema change), so it is
    read from the record's document: one per recording, whose readings one person recorded
    in one transaction."""
    who: dict[str, str] = {}
    for group in recordings(readings):
        rows = db.query("SELECT state FROM record_states WHERE id = ?", (group[0].id,))
        entry = crdt.winner(crdt.load(unpack_state(rows[0][0]), 1), "code") if rows else None
        for r in group:
            who[r.id] = entry.author if entry is not None else ""
    return [replace(r, recorded_by=who.get(r.id, "")) for r in readings]


def vital_sets(readings: Iterable[Reading], born: dt.date) -> list[VitalSet]:
    """Readings (of one patient) as the sets they were recorded in, newest first, each with
    its BMI; observations that are not vital signs of the catalogue are left out."""
    vitals = [r for r in readings if r.vital is not None]
    # Newest first; of two in the same minute, the one recorded later.
    heights = sorted(
        (r for r in vitals if r.code == cat.HEIGHT.code),
        key=lambda r: (r.observed_at, r.created_at or ""),
        reverse=True,
    )
    out: list[VitalSet] = []
    for group in recordings(vitals):
        found = {r.vital.key: r for r in group if r.vital is not None}
        first = group[0]
        value, flag = bmi_at(found.get("weight"), heights, born, found.get("height"))
        out.append(
            VitalSet(
                first.observed_at,
                first.encounter_id,
                found,
                value,
                flag,
                first.created_at or "",
                first.recorded_by,
            )
        )
    return out


def bmi_at(
    weight: Reading | None,
    heights_newest_first: list[Reading],
    born: dt.date,
    same_set: Reading | None = None,
) -> tuple[Decimal | None, str | None]:
    """The BMI for a weight reading from the height measured with it (``same_set``), else
    the latest height at or before it, and its flag."""
    if weight is None:
        return None, None
    height = same_set or next(
        (h for h in heights_newest_first if h.observed_at <= weight.observed_at), None
    )
    if height is None:
        return None, None
    value = cat.bmi(weight.number, height.number)
    years = cat.age_in_years(born, dt.date.fromisoformat(weight.observed_at[:10]))
    return value, cat.flag(cat.BMI, value, years)

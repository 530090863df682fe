"""Appointments, encounters, observations (vitals), attachment metadata, problems and
medications: the rest of the chart, through the same one write path."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

from core.records import crdt
from core.records import validation as v
from core.records.changes import change
from core.records.clinic import ClinicRecords, new_id
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError, ValidationError
from core.records.types import record_type
from core.store.database import utc_now

Check = Callable[[str, str | None], str | None]


def _timestamp(field: str, value: str | None) -> str | None:
    raw = (value or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            field, f"{raw!r} is not a date and time like 2026-11-28T09:30"
        ) from None
    return parsed.isoformat(timespec="minutes")


def _text(field: str, value: str | None) -> str | None:
    return v.text(field, value)


def _optional(field: str, value: str | None) -> str | None:
    return v.text(field, value, required=False)


def _digits(field: str, value: str | None) -> str | None:
    # Kept as a string: pycrdt would hand numbers back as floats.
    if not (value or "").isdigit():
        raise ValidationError(field, f"{value!r} is not a whole number")
    return value


def _sha256(field: str, value: str | None) -> str | None:
    if not re.fullmatch(r"[0-9a-f]{64}", value or ""):
        raise ValidationError(field, "is not a SHA-256 hex digest")
    return value


def _choice(*allowed: str) -> Check:
    def check(field: str, value: str | None) -> str | None:
        return v.choice(field, value, allowed)

    return check


# Per type: field -> (required?, check). patient_id is checked against the patients table.
FIELDS: dict[str, dict[str, tuple[bool, Check]]] = {
    "appointment": {
        "starts_at": (True, _timestamp),
        "ends_at": (True, _timestamp),
        "reason": (False, _optional),
        "status": (True, _choice("booked", "arrived", "cancelled", "done")),
    },
    "encounter": {
        "started_at": (True, _timestamp),
        "reason": (False, _optional),
        "clinician": (False, _optional),
    },
    "observation": {
        "encounter_id": (False, _optional),
        "code": (True, _text),
        "value": (True, _text),
        "unit": (False, _optional),
        "observed_at": (True, _timestamp),
    },
    "attachment": {
        "filename": (True, _text),
        "media_type": (True, _text),
        "size": (True, _digits),
        "sha256": (True, _sha256),
    },
}

SETS: dict[str, tuple[str, ...]] = {
    "problems": ("description", "code", "status", "onset"),
    "medications": ("name", "dose", "route", "frequency"),
}


class ClinicalEntries:
    """Operations on the chart's other records, as the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records

    def _clean(
        self, type_name: str, fields: Mapping[str, str | None], creating: bool
    ) -> dict[str, Any]:
        spec = FIELDS.get(type_name)
        if spec is None:
            raise ValidationError("type", f"{type_name!r} is not one of {', '.join(FIELDS)}")
        unknown = sorted(set(fields) - set(spec))
        if unknown:
            raise ValidationError(unknown[0], f"is not a {type_name} field")
        cleaned: dict[str, Any] = {}
        for name, (required, check) in spec.items():
            if name in fields:
                value = fields[name]
                cleaned[name] = check(name, value) if (required or value) else None
            elif creating and required:
                raise ValidationError(name, "is required")
        return cleaned

    def add(self, type_name: str, patient_id: str, fields: Mapping[str, str | None]) -> str:
        """Create an appointment, encounter, observation or attachment record."""
        self.records.get_patient(patient_id)
        cleaned = self._clean(type_name, fields, creating=True)
        cleaned |= {"patient_id": patient_id, "created_at": utc_now()}
        record_id, actor = new_id(), self.records.actor
        with self.records.db.write(actor, f"{type_name}.create", type_name, record_id) as tx:
            change(tx, actor, record_id, type_name, self.records.setter(cleaned))
        return record_id

    def update(self, type_name: str, record_id: str, fields: Mapping[str, str | None]) -> None:
        """Change fields of such a record; the audit entry names the fields only."""
        self.get(type_name, record_id)
        cleaned = self._clean(type_name, fields, creating=False)
        actor = self.records.actor
        details = {"fields": sorted(cleaned)}
        with self.records.db.write(
            actor, f"{type_name}.update", type_name, record_id, details
        ) as tx:
            change(tx, actor, record_id, type_name, self.records.setter(cleaned))

    def delete(self, type_name: str, record_id: str) -> None:
        """Delete such a record (an edit made concurrently elsewhere becomes a conflict)."""
        self.get(type_name, record_id)
        actor = self.records.actor
        with self.records.db.write(actor, f"{type_name}.delete", type_name, record_id) as tx:
            change(tx, actor, record_id, type_name, self.records.deleter(type_name))

    def get(self, type_name: str, record_id: str) -> dict[str, Any]:
        """One record's materialized row."""
        table = record_type(type_name).table
        cursor_rows = self.records.db.query(f"SELECT * FROM {table} WHERE id = ?", (record_id,))
        if not cursor_rows:
            raise NotFoundError(f"no {type_name} with id {record_id!r}")
        columns = [r[1] for r in self.records.db.query(f"PRAGMA table_info({table})")]
        return dict(zip(columns, cursor_rows[0], strict=True))

    def for_patient(self, type_name: str, patient_id: str) -> list[dict[str, Any]]:
        """A patient's records of one type."""
        table = record_type(type_name).table
        columns = [r[1] for r in self.records.db.query(f"PRAGMA table_info({table})")]
        rows = self.records.db.query(
            f"SELECT * FROM {table} WHERE patient_id = ? ORDER BY id", (patient_id,)
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    # ----- problems and active medications (add-wins sets on the patient) --------------

    def add_to_list(self, patient_id: str, field: str, values: Mapping[str, str | None]) -> str:
        """Add a problem or an active medication; concurrent additions all survive."""
        columns = SETS.get(field)
        if columns is None:
            raise ValidationError("list", f"{field!r} is not one of {', '.join(SETS)}")
        self.records.get_patient(patient_id)
        element: dict[str, crdt.Value] = {
            c: v.text(c, values.get(c), required=(i == 0)) for i, c in enumerate(columns)
        }
        if field == "problems":
            element["status"] = element["status"] or "active"
        holder: list[str] = []
        actor = self.records.actor

        def add(doc: RecordDoc, hlc: str) -> None:
            holder.append(crdt.add(doc, field, element, hlc, actor))

        with self.records.db.write(actor, f"{field}.add", "patient", patient_id) as tx:
            change(tx, actor, patient_id, "patient", add)
        return holder[0]

    def remove_from_list(self, patient_id: str, field: str, element_id: str) -> None:
        """Remove a problem or medication this replica can see."""
        actor = self.records.actor

        def remove(doc: RecordDoc, hlc: str) -> None:
            if not crdt.remove(doc, field, element_id, hlc, actor):
                raise NotFoundError(f"no {field} entry {element_id!r} on this patient")

        details = {"element_id": element_id}
        with self.records.db.write(actor, f"{field}.remove", "patient", patient_id, details) as tx:
            change(tx, actor, patient_id, "patient", remove)

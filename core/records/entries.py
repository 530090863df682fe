"""Appointments, encounters, observations (vitals), attachment metadata, problems and
medications: the rest of the chart, through the same one write path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.records import crdt, merged
from core.records.changes import change
from core.records.chart_lists import check_visit
from core.records.clinic import ClinicRecords, clean_item, new_id
from core.records.crdt import RecordDoc
from core.records.errors import NotFoundError, ValidationError
from core.records.types import LISTS, PATIENT, RECORD_TYPES, SOURCE, record_type
from core.store.database import Database, utc_now

# The types added to a chart here, and the patient's lists, as their specs declare
# (allergies have their own calls on ClinicRecords, audited as allergy.add/remove).
CHART_ENTRIES = tuple(t.name for t in RECORD_TYPES.values() if t.chart_entry)
PATIENT_LISTS = tuple(s.name for s in PATIENT.lists if s.name != "allergies")


# The read a list of chart entries is (permission matrix names).
_LIST_READS = {
    "observation": "vitals.list",
    "encounter": "visits.list",
    "attachment": "attachments.list",
    "appointment": "schedule.view",
}


def list_read(type_name: str) -> str:
    """The read (permission matrix name) that a chart entry of ``type_name`` needs."""
    return _LIST_READS.get(type_name, "notes.list")


def entry_row(db: Database, type_name: str, record_id: str) -> dict[str, Any]:
    """One record's materialized row with NO permission check: for core's own flows that
    have checked the read or write they make (an update's or delete's existence check,
    whose write the gate checks; the attachment store after ``Attachments.get``). Anyone
    else: ``ClinicalEntries.get``."""
    rtype = record_type(type_name)
    columns = rtype.column_names
    rows = db.query(f"SELECT {', '.join(columns)} FROM {rtype.table} WHERE id = ?", (record_id,))
    if not rows:
        raise NotFoundError(f"no {type_name} with id {record_id!r}")
    return dict(zip(columns, rows[0], strict=True))


class ClinicalEntries:
    """Operations on the chart's other records, as the signed-in person."""

    def __init__(self, records: ClinicRecords) -> None:
        self.records = records

    def _clean(
        self, type_name: str, fields: Mapping[str, str | None], creating: bool
    ) -> dict[str, Any]:
        if type_name not in CHART_ENTRIES:
            raise ValidationError("type", f"{type_name!r} is not one of {', '.join(CHART_ENTRIES)}")
        spec = record_type(type_name).writable
        unknown = sorted(set(fields) - {f.name for f in spec})
        if unknown:
            raise ValidationError(unknown[0], f"is not a {type_name} field")
        cleaned: dict[str, Any] = {}
        for field in spec:
            if field.name in fields:
                cleaned[field.name] = field.clean(fields[field.name])
            elif creating and field.required:
                raise ValidationError(field.name, "is required")
        return cleaned

    def add(
        self,
        type_name: str,
        patient_id: str,
        fields: Mapping[str, str | None],
        source: str | None = None,
    ) -> str:
        """Create an appointment, encounter, observation or attachment record (``source``:
        the import it came from, kept on the record: core/records/types.py ``SOURCE``)."""
        self.records.get_patient(patient_id)
        cleaned = self._clean(type_name, fields, creating=True)
        cleaned |= {"patient_id": patient_id, "created_at": utc_now()}
        if source is not None:
            cleaned[SOURCE] = source
        record_id, actor = new_id(), self.records.actor
        with self.records.db.write(actor, f"{type_name}.create", type_name, record_id) as tx:
            # A reading under a visit of this patient only (remote apply: visit_chart).
            check_visit(tx, patient_id, cleaned.get("encounter_id"))
            change(tx, actor, record_id, type_name, self.records.setter(cleaned))
        return record_id

    def update(self, type_name: str, record_id: str, fields: Mapping[str, str | None]) -> None:
        """Change fields of such a record; the audit entry names the fields only."""
        row = entry_row(self.records.db, type_name, record_id)  # the write is checked
        cleaned = self._clean(type_name, fields, creating=False)
        actor = self.records.actor
        details = {"fields": sorted(cleaned)}
        with self.records.db.write(
            actor, f"{type_name}.update", type_name, record_id, details
        ) as tx:
            check_visit(tx, str(row.get("patient_id")), cleaned.get("encounter_id"))
            change(tx, actor, record_id, type_name, self.records.setter(cleaned))

    def delete(self, type_name: str, record_id: str) -> None:
        """Delete such a record (an edit made concurrently elsewhere becomes a conflict)."""
        entry_row(self.records.db, type_name, record_id)  # exists; the write is checked
        actor = self.records.actor
        with self.records.db.write(actor, f"{type_name}.delete", type_name, record_id) as tx:
            change(tx, actor, record_id, type_name, self.records.deleter(type_name))

    def get(self, type_name: str, record_id: str) -> dict[str, Any]:
        """One record's materialized row; refused (audited) unless the signed-in person may
        read records of its type on its patient's chart (the read its list needs:
        ``visits.list`` for an encounter, ``schedule.view`` for an appointment...)."""
        row = entry_row(self.records.db, type_name, record_id)
        self.records.require(list_read(type_name), row.get("patient_id"))
        return row

    def for_patient(self, type_name: str, patient_id: str) -> list[dict[str, Any]]:
        """A patient's records of one type."""
        self.records.require(list_read(type_name), patient_id)
        rtype = record_type(type_name)
        columns = rtype.column_names
        rows = self.records.db.query(
            f"SELECT {', '.join(columns)} FROM {rtype.table} WHERE {merged.IN_CHART} ORDER BY id",
            (merged.chart_ids_json(self.records.db, patient_id),),
        )
        return [dict(zip(columns, r, strict=True)) for r in rows]

    # ----- problems and active medications (add-wins sets on the patient) --------------

    def add_to_list(self, patient_id: str, field: str, values: Mapping[str, str | None]) -> str:
        """Add a problem or an active medication; concurrent additions all survive."""
        if field not in PATIENT_LISTS:
            raise ValidationError("list", f"{field!r} is not one of {', '.join(PATIENT_LISTS)}")
        self.records.get_patient(patient_id)
        element = clean_item(LISTS[field], values)
        holder: list[str] = []
        actor = self.records.actor

        def add(doc: RecordDoc, hlc: str) -> None:
            holder.append(crdt.add(doc, field, element, hlc, actor))

        with self.records.db.write(actor, f"{field}.add", "patient", patient_id) as tx:
            visit = element.get("encounter_id")
            check_visit(tx, patient_id, None if visit is None else str(visit))
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

"""Derive the queryable tables (and the FTS index, via triggers) from record documents.

Materialized rows are a pure function of the document, so replicas holding the same
documents hold byte-for-byte the same rows. Runs inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.types import PATIENT, SYSTEM_REGISTERS, RecordType
from core.store.database import Transaction

_SET_TABLES = {
    "allergies": ("allergies", ("substance", "reaction", "severity")),
    "problems": ("conditions", ("code", "description", "status", "onset")),
    "medications": ("medications", ("name", "dose", "route", "frequency")),
}


class MalformedRecordError(ValueError):
    """A document holds entries that are not valid Careline values."""


def sort_key(family: str, given: str) -> str:
    """Case- and accent-insensitive ordering key for the patient list."""
    text = f"{family}\x1f{given}".casefold()
    return "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )


def hlc_time(hlc: str) -> str:
    """ISO-8601 UTC time of an HLC's wall-clock part."""
    wall = int(hlc.split(".", 1)[0])
    return datetime.fromtimestamp(wall / 1000, UTC).isoformat(timespec="milliseconds")


def conflict_id(record_id: str, field: str) -> str:
    """Stable id of the conflict on one field of one record (the same on every replica)."""
    return hashlib.sha256(f"{record_id}|{field}".encode()).hexdigest()[:16]


def _live(doc: RecordDoc, field: str) -> list[crdt.RegisterEntry]:
    try:
        return crdt.live(doc, field)
    except (ValueError, KeyError, TypeError) as exc:
        raise MalformedRecordError(f"field {field!r} holds a malformed entry: {exc}") from exc


Unseen = list[tuple[str, crdt.RegisterEntry]]


def deletion_state(doc: RecordDoc, rtype: RecordType) -> tuple[bool, Unseen]:
    """(deleted?, (field, edit) pairs made concurrently with the deletion, unobserved by it)."""
    deletes = [e for e in _live(doc, "deleted") if e.value is True]
    if not deletes:
        return False, []
    observed = set().union(*(set(e.observes) for e in deletes))
    unseen: Unseen = []
    for field in rtype.registers:
        unseen += [(field, e) for e in _live(doc, field) if e.write_id not in observed]
    return True, unseen


def _conflicts(tx: Transaction, record_id: str, rtype: RecordType, doc: RecordDoc) -> None:
    tx.execute("DELETE FROM conflicts WHERE record_id = ?", (record_id,))
    for field in rtype.registers:
        entries = _live(doc, field)
        # Identical values written concurrently (two people typing the same fix) agree.
        if len({json.dumps(e.value) for e in entries}) > 1:
            _insert_conflict(tx, record_id, rtype, field, [(field, e) for e in entries])
    deleted, unseen = deletion_state(doc, rtype)
    if deleted and unseen:
        deletes = [("deleted", e) for e in _live(doc, "deleted") if e.value is True]
        _insert_conflict(tx, record_id, rtype, "deleted", deletes + unseen)


def _insert_conflict(
    tx: Transaction,
    record_id: str,
    rtype: RecordType,
    field: str,
    entries: Unseen,
) -> None:
    candidates = [
        {
            "id": e.write_id,
            "field": entry_field,
            "value": e.value,
            "author": e.author,
            "replica": e.replica,
            "time": hlc_time(e.hlc),
            "hlc": e.hlc,
        }
        for entry_field, e in entries
    ]
    tx.execute(
        "INSERT INTO conflicts (id, record_id, record_type, field, candidates) "
        "VALUES (?, ?, ?, ?, ?)",
        (
            conflict_id(record_id, field),
            record_id,
            rtype.name,
            field,
            json.dumps(candidates, sort_keys=True),
        ),
    )


def _values(doc: RecordDoc, rtype: RecordType) -> dict[str, Any]:
    values: dict[str, Any] = {}
    latest = ""
    for field in (*rtype.registers, *SYSTEM_REGISTERS):
        entries = _live(doc, field)
        values[field] = entries[0].value if entries else None
        latest = max([latest, *(e.hlc for e in entries)])
    values["updated_at"] = hlc_time(latest) if latest else None
    return values


def materialize(tx: Transaction, record_id: str, rtype: RecordType, doc: RecordDoc) -> None:
    """Rewrite every derived row of one record, and its conflicts."""
    values = _values(doc, rtype)
    deleted, unseen = deletion_state(doc, rtype)
    # Edit-vs-delete keeps the record visible (with its conflict) until a person decides.
    visible = not deleted or bool(unseen)
    if rtype is PATIENT:
        _patient(tx, record_id, doc, values, visible)
    elif rtype.name == "user":
        _user(tx, record_id, values, visible)
    else:
        _generic(tx, record_id, rtype, doc, values, visible)
    _conflicts(tx, record_id, rtype, doc)


def _patient(
    tx: Transaction, record_id: str, doc: RecordDoc, values: dict[str, Any], visible: bool
) -> None:
    for table, _ in _SET_TABLES.values():
        tx.execute(f"DELETE FROM {table} WHERE patient_id = ?", (record_id,))
    if not visible or values["family"] is None:
        tx.execute("DELETE FROM patients WHERE id = ?", (record_id,))
        return
    tx.execute(
        "INSERT INTO patients (id, family, given, birth_date, sex, mrn, phone, sort_key, "
        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET family = excluded.family, given = excluded.given, "
        "birth_date = excluded.birth_date, sex = excluded.sex, mrn = excluded.mrn, "
        "phone = excluded.phone, sort_key = excluded.sort_key, "
        "created_at = excluded.created_at, updated_at = excluded.updated_at",
        (
            record_id,
            values["family"],
            values["given"] or "",
            values["birth_date"] or "",
            values["sex"],
            values["mrn"],
            values["phone"],
            sort_key(values["family"], values["given"] or ""),
            values["created_at"] or "",
            values["updated_at"] or "",
        ),
    )
    for set_field, (table, columns) in _SET_TABLES.items():
        for element in crdt.elements(doc, set_field):
            row = [element.value.get(c) for c in columns]
            if table == "allergies":
                row += [hlc_time(element.hlc), element.author]
                cols = (*columns, "recorded_at", "recorded_by")
            else:
                cols = columns
            marks = ", ".join("?" for _ in range(len(cols) + 2))
            tx.execute(
                f"INSERT INTO {table} (id, patient_id, {', '.join(cols)}) VALUES ({marks})",
                (element.element_id, record_id, *row),
            )


def _user(tx: Transaction, record_id: str, values: dict[str, Any], visible: bool) -> None:
    if not visible or values["username"] is None:
        tx.execute("DELETE FROM users WHERE id = ?", (record_id,))
        return
    tx.execute(
        "INSERT INTO users (id, username, full_name, role, verifier, active, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
        "username = excluded.username, full_name = excluded.full_name, role = excluded.role, "
        "verifier = excluded.verifier, active = excluded.active, "
        "created_at = excluded.created_at, updated_at = excluded.updated_at",
        (
            record_id,
            values["username"],
            values["full_name"] or "",
            values["role"] or "front_desk",
            values["verifier"] or "",
            0 if values["active"] is False else 1,
            values["created_at"] or "",
            values["updated_at"] or "",
        ),
    )


def _generic(
    tx: Transaction,
    record_id: str,
    rtype: RecordType,
    doc: RecordDoc,
    values: dict[str, Any],
    visible: bool,
) -> None:
    tx.execute(f"DELETE FROM {rtype.table} WHERE id = ?", (record_id,))
    if not visible:
        return
    columns = list(rtype.registers)
    row = [values[c] for c in columns]
    for text_field in rtype.texts:
        columns.append(text_field)
        row.append(str(crdt.text(doc, text_field)))
    if rtype.table == "attachments":
        columns.append("created_at")
        row.append(values["created_at"] or "")
    marks = ", ".join("?" for _ in range(len(columns) + 1))
    tx.execute(
        f"INSERT INTO {rtype.table} (id, {', '.join(columns)}) VALUES ({marks})",
        (record_id, *row),
    )

"""The record-type declarations and the hand-written migrations describe the same schema.

Tables are created by migrations (never from the specs: a replica's schema only changes
through a tested migration), so a spec change without its migration, or a migration
without its spec change, must fail here, naming the table and columns that differ.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from core.crypto.secure_memory import SecureMemory
from core.records.models import Allergy, Patient, PatientSummary
from core.records.spec import Field
from core.records.types import (
    ALLERGIES,
    APPOINTMENT,
    FIELD_LABELS,
    PATIENT,
    RECORD_TYPES,
    RecordType,
    field_label,
)
from core.store.database import Database
from core.store.migrations import LATEST_VERSION, MIGRATIONS, Migrations

# Tables that are not derived from record documents: replica bookkeeping, the op log, the
# record states themselves, the conflict inbox, the audit chain, the records kept for a
# newer version, and op trust (device certificates, quarantined ops, our ops refused
# elsewhere: core.records.op_trust).
BOOKKEEPING = {"meta", "record_states", "oplog", "version_vector", "conflicts", "audit_log",
               "schema_version", "unknown_records", "device_certs", "quarantine",
               "refused_elsewhere", "device_audit",
               "authz_writes"}  # fmt: skip


def _migrated(migrations: Migrations = MIGRATIONS) -> Database:
    return Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))), migrations)


def _columns(db: Database, table: str) -> set[str]:
    return {str(r[1]) for r in db.query(f"PRAGMA table_info({table})")}


def schema_differences(db: Database, types: Iterable[RecordType]) -> list[str]:
    """What the migrated schema and the specs disagree on, one line each."""
    wanted: dict[str, set[str]] = {}
    search: dict[str, tuple[str, ...]] = {}
    for t in types:
        wanted[t.table] = set(t.column_names)
        if t.search:
            search[f"{t.table}_fts"] = (*t.search, *t.search_computed)
        for child in t.lists:
            wanted[child.table] = {*child.column_names, *child.sql_only}
    rows = db.query("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
    virtual = {str(n) for n, sql in rows if str(sql).upper().startswith("CREATE VIRTUAL")}
    shadows = {str(n) for n, _ in rows if any(str(n).startswith(f"{v}_") for v in virtual)}
    tables = {str(n) for n, _ in rows} - virtual - shadows - BOOKKEEPING
    out = [f"table {t} has no record type" for t in sorted(tables - wanted.keys())]
    for table, columns in sorted(wanted.items()):
        if table not in tables:
            out.append(f"table {table} is not created by any migration")
            continue
        have = _columns(db, table)
        if have != columns:
            out.append(f"{table}: migrations give {sorted(have - columns)} more and "
                       f"{sorted(columns - have)} fewer columns than the spec")  # fmt: skip
    for fts in sorted(virtual - search.keys()):
        out.append(f"full-text index {fts} is not any type's search fields")
    for fts, fields in sorted(search.items()):
        if fts not in virtual or _columns(db, fts) != set(fields):
            out.append(f"{fts} does not index exactly {', '.join(fields)}")
    return out


def test_migrated_schema_matches_every_record_type() -> None:
    db = _migrated()
    assert schema_differences(db, RECORD_TYPES.values()) == []
    db.close()


def test_a_spec_change_without_a_migration_is_caught() -> None:
    db = _migrated()
    roomed = dataclasses.replace(APPOINTMENT, fields=(*APPOINTMENT.fields, Field("room", "Room")))
    types = [roomed if t is APPOINTMENT else t for t in RECORD_TYPES.values()]
    assert schema_differences(db, types) == [
        "appointments: migrations give [] more and ['room'] fewer columns than the spec"
    ]
    unsearched = dataclasses.replace(PATIENT, search=("family", "given"))
    types = [unsearched if t is PATIENT else t for t in RECORD_TYPES.values()]
    assert schema_differences(db, types) == [
        "patients_fts does not index exactly family, given, names"
    ]
    db.close()


def test_a_migration_without_a_spec_change_is_caught() -> None:
    extra = (
        (
            LATEST_VERSION + 1,
            "ALTER TABLE encounters ADD COLUMN room TEXT; CREATE TABLE vitals (id TEXT);",
        ),
    )
    db = _migrated((*MIGRATIONS, *extra))
    assert schema_differences(db, RECORD_TYPES.values()) == [
        "table vitals has no record type",
        "encounters: migrations give ['room'] more and [] fewer columns than the spec",
    ]
    db.close()


def test_every_spec_is_consistent() -> None:
    for t in RECORD_TYPES.values():
        names = {f.name for f in (*t.fields, *t.texts)} | {"created_at", "updated_at"}
        # Every plain column reads a field (a computed one names itself).
        assert {n for n, _, compute in t.plan if compute is None} <= names, t.name
        assert t.row_requires is None or t.row_requires in t.column_names, t.name
        assert set(t.search) <= set(t.column_names), t.name
        for child in t.lists:
            items = {f.name for f in child.items}
            assert set(child.key) <= items, child.name
            assert set(child.value_columns) == items, child.name
    # A label names one field wherever it appears (or the name needs its record type).
    assert FIELD_LABELS["birth_date"] == "Date of birth"
    assert "name" not in FIELD_LABELS  # the clinic's name and a medication's name differ


def test_the_models_read_columns_of_the_spec_tables() -> None:
    assert {f.name for f in dataclasses.fields(Patient)} <= set(PATIENT.column_names)
    assert {f.name for f in dataclasses.fields(PatientSummary)} <= set(PATIENT.column_names)
    assert [f.name for f in dataclasses.fields(Allergy)] == list(ALLERGIES.column_names)


def test_labels_come_from_the_specs() -> None:
    assert field_label("birth_date") == "Date of birth"
    assert field_label("name", "clinic") == "Clinic name"
    assert field_label("name", "patient") == "Name"  # no such patient field: plain words
    assert field_label("allergies", "patient") == "Allergies"
    assert field_label("body", "note") == "Note text"
    assert field_label("deleted", "appointment") == "Deleted or kept"
    assert field_label("starts_at") == "Starts"

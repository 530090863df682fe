"""Schema migrations on real encrypted files: upgrade, failure half-way, a newer file."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from core.crypto.secure_memory import SecureMemory
from core.records import types
from core.records.clinic import ClinicRecords
from core.records.derived_check import derived_differences
from core.records.vital_signs import VitalSigns
from core.store import search
from core.store.database import Database
from core.store.errors import MigrationError, SchemaTooNewError
from core.store.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migrations,
    current_version,
    migrate,
)
from core.store.search import NAME_JOINERS, fold_letters
from tests.unit.store.disk import snapshot
from tests.unit.sync.replicas import before_v15

# Test-only later versions, passed in as the code of a future Careline would ship them.
_V2 = """
CREATE TABLE referrals (id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, clinic TEXT NOT NULL);
ALTER TABLE patients ADD COLUMN preferred_name TEXT;
UPDATE patients SET preferred_name = given;
"""
_V3 = "CREATE INDEX referrals_by_patient ON referrals (patient_id);"
# Versions are pre-assigned to parallel branches, so they increase without being contiguous.
FUTURE: Migrations = (*MIGRATIONS, (LATEST_VERSION + 1, _V2), (LATEST_VERSION + 2, _V3))
# The version numbers each migration list records (issue #10 pre-assigned numbers to
# branches, so a branch may skip one: only increasing order is required).
SHIPPED = [v for v, _ in MIGRATIONS]
WITH_FUTURE = [v for v, _ in FUTURE]


@pytest.fixture
def key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


@pytest.fixture
def current_file(tmp_path: Path, key: SecureMemory) -> Path:
    """A database written by today's Careline, with one patient, closed."""
    db = Database.create(tmp_path / "clinic.db", key)
    with db.write("t", "patient.create", "patient", "p1") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Okafor', 'Ngozi', '1960-02-02', 'o', 'x', 'x')"
        )
    db.close()
    return tmp_path / "clinic.db"


def _versions(db: Database) -> list[int]:
    return [row[0] for row in db.query("SELECT version FROM schema_version ORDER BY version")]


def _columns(db: Database, table: str) -> list[str]:
    return [row[1] for row in db.query(f"PRAGMA table_info({table})")]


def _tables(db: Database) -> set[str]:
    return {row[0] for row in db.query("SELECT name FROM sqlite_master")}


def test_upgrade_runs_each_newer_migration_in_order(current_file: Path, key: SecureMemory) -> None:
    db = Database.open(current_file, key, migrations=FUTURE)
    assert _versions(db) == [v for v, _ in FUTURE]
    assert "preferred_name" in _columns(db, "patients")
    assert {"referrals", "referrals_by_patient"} <= _tables(db)
    # The data came along, and the migration's own UPDATE ran on it.
    assert db.query("SELECT family, preferred_name FROM patients") == [("Okafor", "Ngozi")]
    db.close()
    # Recorded on disk: opening again with the same code has nothing left to do.
    again = Database.open(current_file, key, migrations=FUTURE)
    assert _versions(again) == [v for v, _ in FUTURE]
    assert again.integrity_problems() == []
    again.close()


def test_failed_migration_rolls_back_entirely(current_file: Path, key: SecureMemory) -> None:
    broken: Migrations = (
        *MIGRATIONS,
        # Two statements succeed, then the third fails: all three must be undone.
        (LATEST_VERSION + 1, _V2 + "INSERT INTO no_such_table VALUES (1);"),
    )
    before = snapshot(current_file.parent)
    with pytest.raises(MigrationError) as caught:
        Database.open(current_file, key, migrations=broken)
    assert (
        f"database file {current_file}: migration to schema version {LATEST_VERSION + 1} "
        "failed and was rolled back "
        f"(the schema is still at version {LATEST_VERSION}): no such table: no_such_table"
    ) in str(caught.value)
    assert snapshot(current_file.parent) == before
    db = Database.open(current_file, key)
    assert _versions(db) == [v for v, _ in MIGRATIONS]
    assert "preferred_name" not in _columns(db, "patients")
    assert "referrals" not in _tables(db)
    assert db.query("SELECT given FROM patients") == [("Ngozi",)]
    db.close()


# Columns whose CHECK constraint a placeholder value would break.
_FILL_OVERRIDES = {("users", "role"): "admin"}


def _at_version(path: Path, key: SecureMemory, version: int) -> Any:
    """A raw connection to an encrypted file migrated by the shipped list up to ``version``
    (0: a new file, nothing but the version table)."""
    conn = sqlcipher3.connect(str(path), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    conn.execute("PRAGMA foreign_keys = ON")
    earlier = tuple(m for m in MIGRATIONS if m[0] <= version)
    if earlier:
        migrate(conn, earlier)
    else:
        current_version(conn)
    return conn


def _data_tables(conn: Any) -> list[str]:
    """Ordinary tables holding rows (full-text shadow tables included, the virtual table
    itself left out), in creation order, so a referenced table comes first."""
    kinds = {row[1]: row[2] for row in conn.execute("PRAGMA table_list")}
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid"
        )
        if kinds.get(name) in ("table", "shadow")
    ]


def _fill(conn: Any) -> None:
    """One row in every table the schema has at this version, whatever the version: a
    placeholder per column by its declared type, the same text in every text column (so
    references between tables hold)."""
    kinds = {row[1]: row[2] for row in conn.execute("PRAGMA table_list")}
    for table in _data_tables(conn):
        if kinds[table] != "table" or table == "schema_version":
            continue
        columns = list(conn.execute(f'PRAGMA table_info("{table}")'))
        values: list[object] = []
        for column in columns:
            name, declared = column[1], str(column[2]).upper()
            if (table, name) in _FILL_OVERRIDES:
                values.append(_FILL_OVERRIDES[(table, name)])
            elif "INT" in declared:
                values.append(1)
            elif "REAL" in declared or "FLOA" in declared:
                values.append(1.5)
            elif "BLOB" in declared:
                values.append(b"\x01")
            else:
                values.append("r1")
        names = ", ".join(f'"{c[1]}"' for c in columns)
        marks = ", ".join("?" * len(columns))
        conn.execute(f'INSERT INTO "{table}" ({names}) VALUES ({marks})', values)


def _state(conn: Any) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    """Schema, recorded versions and every table's rows."""
    schema = list(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"))
    versions = list(conn.execute("SELECT version FROM schema_version ORDER BY version"))
    rows = {
        table: sorted(map(repr, conn.execute(f'SELECT * FROM "{table}"')))
        for table in _data_tables(conn)
    }
    return schema, versions, rows


@pytest.mark.parametrize("target", [v for v, _ in MIGRATIONS], ids=lambda v: f"V{v}")
def test_a_migration_that_fails_midway_leaves_the_database_as_it_was(
    tmp_path: Path, key: SecureMemory, target: int
) -> None:
    """Every shipped migration, failing after its own last statement ran, on a file at the
    version before it with a row in every table: schema, version and data are unchanged,
    and the error names the version that failed."""
    previous = max((v for v, _ in MIGRATIONS if v < target), default=0)
    conn = _at_version(tmp_path / "clinic.db", key, previous)
    _fill(conn)
    before = _state(conn)
    assert all(before[2][t] for t in _data_tables(conn) if t != "schema_version" and "fts" not in t)
    given = dict(MIGRATIONS)[target]
    script = given(conn) if callable(given) else given  # V10 is worked out from the schema
    broken: Migrations = (
        *(m for m in MIGRATIONS if m[0] < target),
        (target, script + "\nINSERT INTO no_such_table VALUES (1);"),
    )
    with pytest.raises(MigrationError) as caught:
        migrate(conn, broken)
    assert f"migration to schema version {target} failed and was rolled back" in str(caught.value)
    assert f"(the schema is still at version {previous})" in str(caught.value)
    assert not conn.in_transaction
    assert _state(conn) == before
    conn.close()


def _open_error(path: Path, key: SecureMemory) -> str:
    """The refusal's message."""
    try:
        Database.open(path, key)
    except SchemaTooNewError as exc:
        return str(exc)
    raise AssertionError("a database newer than this code was opened")


def test_newer_schema_is_refused_and_left_unchanged(current_file: Path, key: SecureMemory) -> None:
    Database.open(current_file, key, migrations=FUTURE).close()  # a newer Careline was here
    before = snapshot(current_file.parent)
    assert _open_error(current_file, key) == (
        f"database file {current_file} has schema version {LATEST_VERSION + 2}, newer than "
        f"the {LATEST_VERSION} this Careline supports: it was written by a newer Careline. "
        "Update Careline to open it; the file was not changed"
    )
    assert snapshot(current_file.parent) == before
    # And the newer Careline still opens it as it left it.
    db = Database.open(current_file, key, migrations=FUTURE)
    assert _versions(db) == [v for v, _ in FUTURE]
    db.close()


def test_newer_schema_leaves_no_connection_open(current_file: Path, key: SecureMemory) -> None:
    Database.open(current_file, key, migrations=FUTURE).close()
    before = snapshot(current_file.parent)
    with pytest.raises(SchemaTooNewError) as caught:
        Database.open(current_file, key)
    assert snapshot(current_file.parent) == before, caught.value  # the error is still held


def test_v2_makes_names_searchable_without_their_marks_on_v1_data(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A clinic file written before V2 (V1 schema and rows) upgrades in place: every
    patient is still there, and O'Brien is now found by ``obrien``."""
    path = tmp_path / "v1.db"
    v1 = Database.create(path, key, migrations=MIGRATIONS[:1])
    rows = [
        ("p1", "O'Brien", "Siobhán", "1984-02-02", "MRN-1"),
        ("p2", "Jean-Baptiste", "Marie Claire", "1990-05-06", None),
        ("p3", "Okafor", "Chinedu", "1984-02-02", "MRN-3"),
    ]
    with v1.write("t", "patient.create", "patient", "p") as tx:
        for pid, family, given, born, mrn in rows:
            tx.execute(
                "INSERT INTO patients (id, family, given, birth_date, mrn, sort_key, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, 'x', 'x')",
                (pid, family, given, born, mrn, family.lower()),
            )
    assert _versions(v1) == [1]
    v1.close()

    db = Database.open(path, key)
    assert _versions(db) == [v for v, _ in MIGRATIONS]  # V2 and every later one
    assert db.query("SELECT id, family, given, birth_date, mrn FROM patients ORDER BY id") == rows
    assert "patients_by_birth_date" in _tables(db)
    assert db.integrity_problems() == []
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")

    def found(text: str) -> list[str]:
        return [p.id for p in ClinicRecords(db, "t").search_patients(text)]

    for text in ("obrien", "o'brien", "o brien", "OBRIEN", "siobhan"):
        assert found(text) == ["p1"], text
    assert found("jeanbaptiste") == found("jean baptiste") == ["p2"]
    assert found("marieclaire") == ["p2"]
    assert found("okafor") == ["p3"]
    assert found("MRN-3") == ["p3"]
    assert found("1984-02-02") == ["p1", "p3"]
    db.close()


def test_v3_gives_appointments_a_clinician_arrival_and_cancel_reason_on_v2_data(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A clinic file at V2 with appointments upgrades in place: every appointment is kept
    as it was, the new columns are empty (no clinician named, never checked in), and the
    schedule reads them by day."""
    import datetime as dt

    from core.records.schedule import Schedule

    path = tmp_path / "v2.db"
    v2 = Database.create(path, key, migrations=MIGRATIONS[:2])
    rows = [
        ("a1", "p1", "2026-12-07T09:00", "2026-12-07T09:15", "Cough", "booked"),
        ("a2", "p1", "2026-12-07T10:00", "2026-12-07T10:30", None, "arrived"),
    ]
    with v2.write("t", "appointment.create", "appointment", "a") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Okafor', 'Ngozi', '1960-02-02', 'o', 'x', 'x')"
        )
        tx.executemany(
            "INSERT INTO appointments (id, patient_id, starts_at, ends_at, reason, status) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    assert _versions(v2) == [1, 2]
    v2.close()

    db = Database.open(path, key)
    assert _versions(db) == [v for v, _ in MIGRATIONS]
    kept = "SELECT id, patient_id, starts_at, ends_at, reason, status FROM appointments"
    assert db.query(kept + " ORDER BY id") == rows
    assert db.query("SELECT clinician, arrived_at, cancel_reason FROM appointments") == [
        (None, None, None),
        (None, None, None),
    ]
    assert {"appointments_by_start", "appointments_by_clinician"} <= _tables(db)
    assert db.integrity_problems() == []
    day = Schedule(ClinicRecords(db, "t")).day(dt.date(2026, 12, 7))
    assert [(a.id, a.patient_name, a.clinician, a.minutes) for a in day] == [
        ("a1", "OKAFOR, Ngozi", None, 15),
        ("a2", "OKAFOR, Ngozi", None, 30),
    ]
    db.close()


def test_v5_keeps_observations_and_adds_the_as_entered_columns_on_v2_data(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A clinic file at V2 with observations upgrades in place: old rows are kept with no
    entered value or flag (their documents hold none), and vitals can be recorded after."""
    path = tmp_path / "v2.db"
    v2 = Database.create(path, key, migrations=MIGRATIONS[:2])
    with v2.write("t", "observation.create", "observation", "o1") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Okafor', 'Ngozi', '1960-02-02', 'o', 'x', 'x')"
        )
        tx.execute(
            "INSERT INTO observations (id, patient_id, encounter_id, code, value, unit, "
            "observed_at) VALUES ('o1', 'p1', 'e1', '8867-4', '72', '/min', '2025-01-01T09:00')"
        )
    assert _versions(v2) == [1, 2]
    v2.close()

    db = Database.open(path, key)
    assert _versions(db) == [v for v, _ in MIGRATIONS]
    assert db.query("SELECT * FROM observations") == [
        # V18's set id and time recorded last: no document here to fill them.
        ("o1", "p1", "e1", "8867-4", "72", "/min", "2025-01-01T09:00", *(None,) * 5)
    ]
    assert "observations_by_encounter" in _tables(db)
    [reading] = VitalSigns(ClinicRecords(db, "t")).record(
        "p1", {"temperature": "102F"}, observed_at="2026-01-01T09:00"
    )
    assert (reading.value, reading.entered_value, reading.entered_unit, reading.flag) == (
        "38.89", "102", "[degF]", "high",
    )  # fmt: skip
    assert db.integrity_problems() == []
    db.close()


def test_v9_and_v10_accept_nurses_keep_users_and_add_the_relations_tables(
    tmp_path: Path, key: SecureMemory
) -> None:
    """From V8: V9 lets a user be a nurse and keeps every account; V10 adds the tuples'
    derived table and the history remote apply judges ops by."""
    conn = _at_version(tmp_path / "clinic.db", key, 8)
    conn.executescript(
        "BEGIN; INSERT INTO users (id, username, full_name, role, verifier, created_at, "
        "updated_at) VALUES ('user:ada', 'ada', 'Ada', 'admin', 'v', 't', 't'); COMMIT;"
    )
    migrate(conn, MIGRATIONS)
    conn.execute(
        "INSERT INTO users (id, username, full_name, role, verifier, created_at, updated_at) "
        "VALUES ('user:nina', 'nina', 'Nina', 'nurse', 'v', 't', 't')"
    )
    rows = conn.execute(
        "SELECT username, role, must_change_password, totp_secret FROM users ORDER BY 1"
    ).fetchall()
    assert rows == [("ada", "admin", 0, ""), ("nina", "nurse", 0, "")]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"relations", "authz_writes"} <= tables


def test_v14_shrinks_the_search_index_and_search_finds_the_same_on_v13_data(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A V13 clinic file upgrades in place: the full-text index is rebuilt without
    positions and token counts, and every search finds what it found before."""
    path = tmp_path / "v13.db"
    v13 = Database.create(path, key, migrations=MIGRATIONS[:13])
    assert _versions(v13)[-1] == 13
    old = ClinicRecords(v13, "t")
    with before_v15():  # V13's release had no patient source fields
        for family, given, born, mrn in (
            ("O'Brien", "Siobhán", "1984-02-02", "MRN-1"),
            ("Jean-Baptiste", "Marie Claire", "1990-05-06", None),
            ("Okafor", "Chinedu", "1984-02-02", "MRN-3"),
            ("Smith", "Anna", "1970-01-01", None),
            ("Smithers", "Ann", "1971-01-01", None),
        ):
            old.add_patient(family, given, born, mrn=mrn)
    searches = ("obrien", "o brien", "siob", "jeanbaptiste", "jean baptiste", "marie cl",
                "okafor", "MRN-3", "mrn", "1984-02-02", "1984", "s", "sm", "smi", "smith",
                "smith ann", "ann smith", "an", "zzz")  # fmt: skip

    def found(records: ClinicRecords) -> dict[str, list[str]]:
        return {text: [p.id for p in records.search_patients(text)] for text in searches}

    with before_v15():
        before = found(old)
    assert before["smi"] and before["1984"] and not before["zzz"]
    v13.close()

    db = Database.open(path, key)
    assert _versions(db) == SHIPPED
    [(sql,)] = db.query("SELECT sql FROM sqlite_master WHERE name = 'patients_fts'")
    assert "detail = column" in sql and "columnsize = 0" in sql
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    assert db.integrity_problems() == []
    records = ClinicRecords(db, "t")
    assert found(records) == before
    # And the triggers keep the rebuilt index current.
    records.add_patient("Smithson", "Ada", "1960-01-01")
    assert len(records.search_patients("smith")) == len(before["smith"]) + 1


def test_v15_fills_an_imports_source_relayed_before_the_upgrade(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A V13 workstation (the previous release) stores a patient imported on a newer one,
    keeping the fields it does not know; V15 adds the columns and its re-derivation fills
    them, so the re-run of that import skips the patient and the pair is listed."""
    from core.records import unknown
    from core.records.merges import Merges

    previous = MIGRATIONS[: SHIPPED.index(15)]
    db = Database.create(tmp_path / "clinic.db", key, previous)
    with before_v15():
        records = ClinicRecords(db, "admin")
        first = records.add_patient("Okafor", "Chinedu", "1984-02-02").id
        extra = {"source": "fhir:abc", "duplicate_of": first}
        second = records.add_patient("Someone", "Else", "1990-01-01", extra=extra).id
    assert "source" not in _columns(db, "patients")
    db.close()
    db = Database.open(tmp_path / "clinic.db", key)
    assert 15 in _versions(db)
    unknown.refresh(db)
    assert db.query("SELECT source, duplicate_of FROM patients WHERE id = ?", (second,)) == [
        ("fhir:abc", first)
    ]
    [pair] = Merges(ClinicRecords(db, "admin")).candidates()
    assert (pair.first.id, pair.second.id) == (first, second)
    db.close()


def test_v16_lets_the_permission_history_load_without_reading_every_record(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A V15 clinic (this release before V16) upgrades: the reads of user and tuple records
    that every remote batch makes (remote_authz.load_history) and every open makes
    (relations) use the new index instead of scanning the patients' record states."""
    from core.records import relations, remote_authz

    path = tmp_path / "v15.db"
    v15 = Database.create(path, key, migrations=MIGRATIONS[: SHIPPED.index(16)])
    records = ClinicRecords(v15, "t")
    records.set_up_clinic("Clinic", "ada", "Ada Admin", "correct horse battery staple")
    for i in range(20):
        records.add_patient(f"Fam{i}", "G", "1980-01-01")
    held = sorted(
        v15.query("SELECT id, type FROM record_states WHERE type IN ('user', 'relation')")
    )
    v15.close()

    db = Database.open(path, key)
    assert _versions(db) == SHIPPED
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    remote_authz.load_history(db)
    relations.upgrade_clinicians(db)
    db._conn.set_trace_callback(None)
    reads = [s for s in statements if "FROM record_states" in s]
    assert len(reads) >= 3
    for sql in reads:
        plan = " ".join(str(row[-1]) for row in db.query("EXPLAIN QUERY PLAN " + sql))
        assert "INDEX record_states_authz" in plan, (sql, plan)
    assert (
        sorted(db.query("SELECT id, type FROM record_states WHERE type IN ('user', 'relation')"))
        == held
    )


def test_v17_deflates_every_record_state_of_v16_data_and_reads_them_back_the_same(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A V16 clinic (the previous release, which stored each state as its plain Yjs update)
    upgrades: every state is stored deflated, reads back as exactly the same update, the
    charts, search and the snapshot pages peers receive are as before, and it keeps working."""
    from core.records.audit_review import AuditFilter, list_entries
    from core.records.derived_check import derived_differences
    from core.records.replication import apply_snapshot_page, snapshot_page
    from core.store.state_codec import DEFLATED, unpack_state
    from tests.unit.sync.replicas import materialized, new_replica

    path = tmp_path / "v16.db"
    v16 = Database.create(path, key, migrations=MIGRATIONS[: SHIPPED.index(17)])
    records = ClinicRecords(v16, "ada")
    records.set_up_clinic("Clinic", "ada", "Ada Admin", "correct horse battery staple")
    ids = [records.add_patient(f"Fam{i}", "Given", "1980-01-01", mrn=f"M{i}").id for i in range(30)]
    records.add_allergy(ids[0], "Penicillin", "hives", "severe")
    records.update_patient(ids[1], {"phone": "555-0101"})
    with v16.write("(unknown)", "user.sign_in_failed", "user", "ada"):
        pass  # as a mistyped password is audited (core.records.workstation)
    with v16.write("(unknown)", "user.sign_in_failed", "user", "bob"):
        pass
    ada_audit = list_entries(v16, AuditFilter(user="ada"))
    # What the previous release stored: the plain update (this code writes it deflated).
    plain = {
        str(rid): unpack_state(s) for rid, s in v16.query("SELECT id, state FROM record_states")
    }
    with v16.write("t", "test.previous_release", "record_states", "all") as tx:
        for rid, state in plain.items():
            tx.execute("UPDATE record_states SET state = ? WHERE id = ?", (state, rid))
    [(plain_bytes,)] = v16.query("SELECT sum(length(state)) FROM record_states")
    before = materialized(v16)
    page = snapshot_page(v16, None, 1000)
    chart = records.allergies(ids[0])
    v16.close()

    db = Database.open(path, key)
    assert _versions(db) == SHIPPED
    stored = {str(rid): bytes(s) for rid, s in db.query("SELECT id, state FROM record_states")}
    assert stored.keys() == plain.keys()
    assert all(
        s.startswith(DEFLATED) and unpack_state(s) == plain[rid] for rid, s in stored.items()
    )
    [(packed_bytes,)] = db.query("SELECT sum(length(state)) FROM record_states")
    assert packed_bytes * 2 < plain_bytes
    assert materialized(db) == before
    assert snapshot_page(db, None, 1000) == page  # peers receive the same plain states
    assert derived_differences(db) == []
    # An account's audit entries (its own and failed sign-ins naming it) are found as before,
    # through indexes: the failed sign-ins' partial index replaced the index by entity id.
    assert [e.seq for e in list_entries(db, AuditFilter(user="ada"))] == [e.seq for e in ada_audit]
    assert any(e.action == "user.sign_in_failed" for e in ada_audit)
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    list_entries(db, AuditFilter(user="ada"))
    db._conn.set_trace_callback(None)
    [sql] = [s for s in statements if "FROM audit_log" in s]
    plan = " ".join(str(row[-1]) for row in db.query("EXPLAIN QUERY PLAN " + sql))
    assert "INDEX audit_log_by_actor" in plan and "INDEX audit_log_failed_sign_ins" in plan
    assert db.query("SELECT v FROM patients_fts_config WHERE k = 'automerge'") == [(2,)]
    upgraded = ClinicRecords(db, "ada")
    assert upgraded.allergies(ids[0]) == chart
    assert [p.id for p in upgraded.search_patients("fam1")][:1] == [ids[1]]
    upgraded.update_patient(ids[2], {"given": "Changed"})
    assert upgraded.get_patient(ids[2]).given == "Changed"
    # A new workstation bootstrapped from the upgraded one's pages holds the same charts.
    fresh = new_replica("ada")
    apply_snapshot_page(fresh.db, snapshot_page(db, None, 1000), "peer")
    assert fresh.allergies(ids[0]) == chart and fresh.get_patient(ids[2]).given == "Changed"
    db.close()


def test_v21_finds_names_without_their_stroked_letters_on_v20_data(
    tmp_path: Path, key: SecureMemory
) -> None:
    """A V20 clinic (the release before V21) upgrades: its search index is rebuilt with Ø,
    Ł, Æ and the like as plain letters, so "odegard" finds Ødegård there (it found nobody),
    every search found before finds the same, the triggers keep the index current, and the
    MRN index serves registration's check, now regardless of letter case."""
    path = tmp_path / "v20.db"
    v20 = Database.create(path, key, migrations=MIGRATIONS[: SHIPPED.index(21)])
    old = ClinicRecords(v20, "t")
    odegard = old.add_patient("ØDEGÅRD", "Åse", "1931-02-28", mrn="TST-001").id
    lukasz = old.add_patient("Kowalczyk", "Łukasz", "1988-11-30").id
    for family, given, born in (("O'Brien", "Siobhán", "1984-02-02"),
                                ("Smith", "Ann", "1970-01-01"),
                                ("Müller", "Zoë", "1958-03-14")):  # fmt: skip
        old.add_patient(family, given, born)
    searches = ("åse", "obrien", "siob", "smith ann", "muller", "zoe",
                "tst-001", "1931", "s", "zzz")  # fmt: skip

    def found(records: ClinicRecords) -> dict[str, list[str]]:
        return {text: [p.id for p in records.search_patients(text)] for text in searches}

    before = found(old)
    assert old.search_patients("odegard") == [] and old.search_patients("lukasz") == []
    automerge = v20.query("SELECT v FROM patients_fts_config WHERE k = 'automerge'")
    v20.close()

    db = Database.open(path, key)
    assert _versions(db) == SHIPPED
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    assert db.integrity_problems() == []
    assert db.query("SELECT v FROM patients_fts_config WHERE k = 'automerge'") == automerge
    records = ClinicRecords(db, "t")
    assert found(records) == before
    for text, pid in (("odegard", odegard), ("Ødegård", odegard), ("Odegard ase", odegard),
                      ("lukasz", lukasz), ("łukasz", lukasz)):  # fmt: skip
        assert [p.id for p in records.search_patients(text)] == [pid], text
        assert [p.id for p in records.search_patients(text, broad_at=0)] == [pid], text
    # The names are kept as typed: only the index reads them folded.
    assert records.get_patient(odegard).family == "ØDEGÅRD"
    # The triggers keep the rebuilt index current, folded alike.
    added = records.add_patient("Ødegård", "Bjørn", "1960-01-01").id
    assert {p.id for p in records.search_patients("odeg")} == {odegard, added}
    records.update_patient(added, {"given": "Pål"})
    assert records.search_patients("bjorn") == []
    assert [p.id for p in records.search_patients("odegard pal")] == [added]
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    # Registration's MRN check reads the MRN index.
    plan = db.query(
        "EXPLAIN QUERY PLAN SELECT mrn FROM patients WHERE mrn = ? COLLATE NOCASE AND id != ?",
        ("tst-001", ""),
    )
    assert any("patients_by_mrn" in str(row[-1]) for row in plan), plan
    db.close()


def _v21_names(family: object, given: object) -> object:
    """What the search index's names column held under V21 (nothing spelled out)."""
    if not isinstance(family, str) or not isinstance(given, str):
        return None
    return " ".join(
        fold_letters(n).translate(str.maketrans("", "", NAME_JOINERS)) for n in (family, given)
    )


def _v21_sort_key(family: str, given: str) -> str:
    """The patient list's sort key under V21 (Ø, Ł and the like left as they are)."""
    text = unicodedata.normalize("NFKD", f"{family}\x1f{given}".casefold())
    return "".join(ch for ch in text if not unicodedata.combining(ch))


def test_v22_finds_names_spelled_out_and_sorts_them_on_v21_data(
    tmp_path: Path, key: SecureMemory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A V21 clinic (the release before V22, its index and sort keys written by that
    release's functions) upgrades: "aase" finds Åse and "mueller" Müller (they found
    nobody), every search found before finds the same, the index stays whole as those
    patients are renamed and new ones added (a row's delete names the words it was indexed
    with), and Ødegård is listed among the O's (after Z before)."""
    path = tmp_path / "v21.db"
    with monkeypatch.context() as old_code:
        old_code.setattr(search, "search_names", _v21_names)
        old_code.setattr(types, "sort_key", _v21_sort_key)
        v21 = Database.create(path, key, migrations=MIGRATIONS[: SHIPPED.index(22)])
        old = ClinicRecords(v21, "t")
        ase = old.add_patient("Ødegård", "Åse", "1931-02-28").id
        muller = old.add_patient("Müller", "Zoë", "1958-03-14").id
        for family, given, born in (("O'Brien", "Siobhán", "1984-02-02"),
                                    ("Smith", "Ann", "1970-01-01")):  # fmt: skip
            old.add_patient(family, given, born)
        searches = ("åse", "ase", "odegard", "obrien", "siob", "smith ann", "muller", "zoe", "s")
        before = {text: [p.id for p in old.search_patients(text)] for text in searches}
        assert old.search_patients("aase") == [] and old.search_patients("mueller") == []
        assert [p.family for p in old.list_patients()][-1] == "Ødegård"
        v21.close()

    db = Database.open(path, key)
    assert _versions(db) == SHIPPED
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    records = ClinicRecords(db, "t")
    assert [p.family for p in records.list_patients()] == ["Müller", "O'Brien", "Ødegård", "Smith"]
    assert derived_differences(db) == []  # the sort keys are what deriving gives now
    assert {text: [p.id for p in records.search_patients(text)] for text in searches} == before
    for text, pid in (("aase", ase), ("oedegaard aase", ase), ("Mueller", muller),
                      ("mueller zoe", muller)):  # fmt: skip
        assert [p.id for p in records.search_patients(text)] == [pid], text
        assert [p.id for p in records.search_patients(text, broad_at=0)] == [pid], text
    records.update_patient(ase, {"given": "Åsa"})
    records.update_patient(muller, {"family": "Möller"})
    added = records.add_patient("Jørgensen", "Tove", "1960-01-01").id
    assert [p.id for p in records.search_patients("aasa")] == [ase]
    assert records.search_patients("mueller") == []
    assert [p.id for p in records.search_patients("moeller")] == [muller]
    assert [p.id for p in records.search_patients("joergensen")] == [added]
    db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")
    db.close()

"""The PostgreSQL schema's migrations, and which server code may run on which schema.

Several server processes share one database, and during a rolling upgrade they run
different releases at once. Each migration therefore says whether code written for the
schema before it can keep running on it:

* **additive** ("expand"): new tables, new nullable columns, new indexes. Old code never
  looks at them, so old processes keep serving, and an old process may even start again
  on the newer schema.
* **breaking** ("contract"): a dropped or renamed table or column, a column whose meaning
  changed, a constraint old code would violate. Old code would misread or corrupt data.

Every applied version is recorded in ``schema_version`` with ``min_compatible``: the
oldest schema version whose code may run on it. An additive migration keeps its
predecessor's value, a breaking one sets its own version; a row without a value (written
by a release before this scheme) counts as its own version. A process whose code knows
schema ``K`` starts on a database at version ``V > K`` only if ``min_compatible(V) <= K``;
one that would apply a breaking migration first checks the live server processes
(:mod:`.nodes`) and refuses while any of them runs code older than the new
``min_compatible``, or while a session that is no registered process's is open.

Version 2 adds that node table (additive). Release 0.1.0 predates all this and refuses any
schema newer than version 1: its processes already running keep running after the upgrade
to version 2, but one restarted is refused with its own message ("newer than this
careline-server understands"), so upgrade every process before restarting it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from core.errors import CarelineError
from core.server.registry import ACCOUNT_CHECKS_DDL, earlier_certificates_ddl

TENANT_ROLE = "careline_tenant"
TENANT_TABLES = ("replica_vectors", "replica_ops", "replica_records", "replica_meta",
                 "replica_audit")  # fmt: skip
# Every clinic table now (schema 3 added the quarantine, secured by its own migration).
ALL_TENANT_TABLES = (*TENANT_TABLES, "replica_quarantine", "replica_device_audit")


class SchemaRefusedError(CarelineError):
    """This process cannot run on, or may not yet migrate, the database's schema."""

    plain_template = "database schema: {detail}"


@dataclass(frozen=True)
class Migration:
    """One schema version: its DDL, and whether code of the previous version survives it."""

    version: int
    ddl: str
    breaking: bool
    summary: str
    # Run after the DDL in the same transaction (grants and policies that need the tables).
    then: Callable[[psycopg.Connection[Any]], None] | None = None


def min_compatible(previous: int, migration: Migration) -> int:
    """The oldest schema whose code may run once ``migration`` is applied on a schema whose
    own value was ``previous``."""
    return migration.version if migration.breaking else previous


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE audit_log (
    rowid BIGSERIAL UNIQUE, seq BIGINT PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL
);
CREATE TABLE clinics (
    id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL,
    ca_cert TEXT NOT NULL, ca_key_wrapped BYTEA NOT NULL
);
CREATE TABLE data_keys (
    clinic_id TEXT NOT NULL, purpose TEXT NOT NULL, wrapped BYTEA NOT NULL,
    key_version TEXT NOT NULL, PRIMARY KEY (clinic_id, purpose)
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics (id),
    name TEXT NOT NULL, token_sha256 TEXT NOT NULL, certificate TEXT NOT NULL,
    enrolled_at TEXT NOT NULL, revoked_at TEXT
);
CREATE INDEX devices_by_clinic ON devices (clinic_id);
CREATE TABLE enroll_codes (
    code_sha256 TEXT PRIMARY KEY, clinic_id TEXT NOT NULL REFERENCES clinics (id),
    expires_at TEXT NOT NULL, used_at TEXT
);

-- Clinic replicas. Ids (tenant, origin replica, blind-indexed record) are random values;
-- everything clinical is in ``sealed`` (AES-256-GCM, see columns.py).
CREATE TABLE replica_vectors (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    origin TEXT NOT NULL, seq BIGINT NOT NULL, floor BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, origin)
);
CREATE TABLE replica_ops (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    origin TEXT NOT NULL, seq BIGINT NOT NULL, pos BIGSERIAL NOT NULL,
    record_ix TEXT NOT NULL, key_gen INTEGER NOT NULL, sealed BYTEA NOT NULL,
    PRIMARY KEY (tenant, origin, seq)
);
CREATE INDEX replica_ops_arrival ON replica_ops (tenant, pos);
CREATE TABLE replica_records (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    record_ix TEXT NOT NULL, type_ix TEXT NOT NULL, key_gen INTEGER NOT NULL,
    sealed BYTEA NOT NULL, PRIMARY KEY (tenant, record_ix)
);
CREATE INDEX replica_records_by_type ON replica_records (tenant, type_ix);
CREATE TABLE replica_meta (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (tenant, key)
);
CREATE TABLE replica_audit (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    rowid BIGSERIAL NOT NULL, seq BIGINT NOT NULL, ts TEXT NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, entity TEXT NOT NULL, entity_id TEXT NOT NULL,
    details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
    PRIMARY KEY (tenant, seq)
);
"""


# Server processes sharing the database (see nodes.py): who runs which code, and whether
# they still answer. Additive: release 0.1.0 code would never read it.
_V2 = """
CREATE TABLE server_nodes (
    id TEXT PRIMARY KEY, release TEXT NOT NULL, schema_understood INTEGER NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL, expires_at TIMESTAMPTZ NOT NULL
);
"""

# Device-signed ops (additive: release 0.1.0 code never reads the new columns or table, and
# leaves them NULL where it writes). ``devices.replica_id``: the replica a device's
# certificate is bound to, one device per replica in a clinic. ``replica_ops.prev``/``sig``:
# the op's signature, beside the sealed op (which keeps the six parts 0.1.0 reads).
# ``replica_ops.signer``:
# who signed the op ("device" or "clinic-ca"; NULL: stored unsigned, by release 0.1.0 code,
# so the server vouches for it before serving it). ``replica_quarantine``: ops refused by
# verification, sealed like ops, with who sent them and when.
_V3 = """
ALTER TABLE devices ADD COLUMN replica_id TEXT;
CREATE UNIQUE INDEX devices_by_replica ON devices (clinic_id, replica_id)
    WHERE replica_id IS NOT NULL;
ALTER TABLE replica_ops ADD COLUMN prev BYTEA;
ALTER TABLE replica_ops ADD COLUMN sig BYTEA;
ALTER TABLE replica_ops ADD COLUMN signer TEXT;
CREATE INDEX replica_ops_unsigned ON replica_ops (tenant) WHERE signer IS NULL;
CREATE TABLE replica_quarantine (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    origin TEXT NOT NULL, seq BIGINT NOT NULL, key_gen INTEGER NOT NULL,
    sealed BYTEA NOT NULL, received_from TEXT NOT NULL, first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL, PRIMARY KEY (tenant, origin, seq)
);
"""

# Workstation audit entries the server keeps (issue #14, audit review): the entries each
# device proved at sync to extend the audit head the server had recorded for it
# (core.sync.audit_anchor), so the clinic's admins can list them. Each entry (it names
# people and record ids) is sealed like ops; the device and the entry's number are not.
# Additive.
_V5 = """
CREATE TABLE replica_device_audit (
    tenant TEXT NOT NULL DEFAULT current_setting('careline.tenant', true),
    device TEXT NOT NULL, seq BIGINT NOT NULL, key_gen INTEGER NOT NULL,
    sealed BYTEA NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (tenant, device, seq)
);
"""

# Multi-use enrollment codes (issue #15): as the embedded registry's version 3 (see
# core/server/registry.py). Additive: older code never reads the columns, inserts codes
# with max_uses NULL (one use) and marks a code used with used_at, which newer code honours.
_V6 = """
ALTER TABLE enroll_codes ADD COLUMN max_uses INTEGER;
ALTER TABLE enroll_codes ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
"""

# Every certificate issued to a device stays revocable: the embedded registry's version 4,
# built by the same function (core/server/registry.py, where the columns are described) with
# PostgreSQL's auto-numbered key type. Additive: release 0.1.0 code never re-certifies a
# device, and a device it enrolls (or revokes) during a rolling upgrade keeps its one
# certificate in ``devices``, which newer code reads as before.
_V7 = earlier_certificates_ddl("BIGSERIAL")

# Account checks before enrolling, counted per code: the embedded registry's version 5.
# Additive: older code neither reads nor writes the column.
_V8 = ACCOUNT_CHECKS_DDL

_IDENT = re.compile(r"[a-z_]+")


def secure_tenant_tables(conn: psycopg.Connection[Any]) -> None:
    """Row-level security, and the tenant role's grants, on every clinic table."""
    user = conn.execute("SELECT current_user").fetchone()
    assert user is not None
    conn.execute(f'GRANT {TENANT_ROLE} TO "{user[0]}"')
    _secure(conn, TENANT_TABLES)
    for sequence in ("replica_ops_pos_seq", "replica_audit_rowid_seq"):
        conn.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {TENANT_ROLE}")


def _secure_quarantine(conn: psycopg.Connection[Any]) -> None:
    _secure(conn, ("replica_quarantine",))


def _secure_device_audit(conn: psycopg.Connection[Any]) -> None:
    _secure(conn, ("replica_device_audit",))


def _secure(conn: psycopg.Connection[Any], tables: Sequence[str]) -> None:
    for table in tables:
        assert _IDENT.fullmatch(table)  # fixed names; never input
        statements = (
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY tenant_only ON {table} "
            "USING (tenant = current_setting('careline.tenant', true)) "
            "WITH CHECK (tenant = current_setting('careline.tenant', true))",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}",
        )
        for sql in statements:
            conn.execute(sql)


MIGRATIONS: tuple[Migration, ...] = (
    # Breaking by definition: no code ran on the empty database before it.
    Migration(1, _V1, True, "registry and clinic replicas", secure_tenant_tables),
    Migration(2, _V2, False, "server_nodes: live server processes"),
    Migration(3, _V3, False, "device bindings, op signers and quarantine", _secure_quarantine),
    Migration(5, _V5, False, "workstation audit entries kept", _secure_device_audit),
    Migration(6, _V6, False, "multi-use enrollment codes"),
    Migration(7, _V7, False, "earlier device certificates kept, to revoke them"),
    Migration(8, _V8, False, "account checks before enrolling, counted per code"),
)


@dataclass(frozen=True)
class SchemaState:
    """The database's newest applied version (0: empty) and its ``min_compatible``."""

    version: int
    min_compatible: int


def read_state(conn: psycopg.Connection[Any]) -> SchemaState:
    """The schema as recorded, creating the bookkeeping table (or its companion column,
    on a database release 0.1.0 made: that code reads only ``max(version)``) if missing."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version "
        "(version INTEGER NOT NULL, min_compatible INTEGER)"
    )
    conn.execute("ALTER TABLE schema_version ADD COLUMN IF NOT EXISTS min_compatible INTEGER")
    row = conn.execute(
        "SELECT version, min_compatible FROM schema_version ORDER BY version DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return SchemaState(0, 0)
    version = int(row[0])
    return SchemaState(version, version if row[1] is None else int(row[1]))


def check_runnable(state: SchemaState, migrations: Sequence[Migration], release: str) -> None:
    """Refuse a schema newer than this code unless its newest migration lets code of
    ``migrations[-1]`` keep running."""
    known = migrations[-1].version
    if state.version > known and state.min_compatible > known:
        raise SchemaRefusedError(
            f"the database is at schema version {state.version}, and code older than schema "
            f"{state.min_compatible} cannot run on it (version {state.min_compatible} changed "
            f"it in a way older servers would misread); this careline-server {release} knows "
            f"schema version {known}: upgrade it to the release the other server processes "
            "run"
        )


def plan(state: SchemaState, migrations: Sequence[Migration]) -> list[tuple[Migration, int]]:
    """The migrations still to apply, each with the ``min_compatible`` it will record."""
    floor = state.min_compatible
    steps = []
    for migration in migrations:
        if migration.version <= state.version:
            continue
        floor = min_compatible(floor, migration)
        steps.append((migration, floor))
    return steps


def apply(conn: psycopg.Connection[Any], migration: Migration, floor: int) -> None:
    """One migration and its ``schema_version`` row, in one transaction."""
    with conn.transaction():
        conn.execute(migration.ddl)  # fixed DDL text, no input
        if migration.then is not None:
            migration.then(conn)
        conn.execute(
            "INSERT INTO schema_version (version, min_compatible) VALUES (%s, %s)",
            (migration.version, floor),
        )

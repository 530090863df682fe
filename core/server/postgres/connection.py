"""PostgreSQL connections for careline-server: pool, schema, tenant-scoped transactions.

Row-level security is the second wall behind the application's own checks: every clinic
table carries a ``tenant`` column and a policy admitting only rows of the tenant named in
the transaction-local setting ``careline.tenant``. Tenant work runs as the NOLOGIN role
``careline_tenant`` (``SET LOCAL ROLE``), which neither owns the tables nor bypasses RLS:
a superuser or table owner would otherwise skip the policies. A query that forgets its
tenant filter, or names another clinic's id, still sees only the current tenant's rows.

Several server processes may share one database: pushes to a clinic are serialised by a
transaction-scoped advisory lock on the tenant, the registry's writes by one on the
registry, and migrations by a session lock, so no op is lost or stored twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from core.config.settings import ConfigError
from core.server.postgres.urls import check_url, redact

log = logging.getLogger(__name__)

TENANT_ROLE = "careline_tenant"
_MIGRATION_LOCK = 0x43524C31  # "CRL1": one process migrates at a time
_REGISTRY_LOCK = 0x43524C32
_TENANT_LOCK_SPACE = 0x43524C33
TENANT_TABLES = ("replica_vectors", "replica_ops", "replica_records", "replica_meta",
                 "replica_audit")  # fmt: skip

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

MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1),)


class PgStore:
    """A connection pool on one PostgreSQL database, migrated on open."""

    def __init__(
        self,
        url: str,
        ssl_mode: str = "verify-full",
        *,
        max_size: int = 8,
        connect_timeout: float = 15,
    ) -> None:
        check_url(url)
        self.url = url
        kwargs: dict[str, Any] = {"autocommit": False}
        if "sslmode=" not in url:
            kwargs["sslmode"] = ssl_mode
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max_size, kwargs=kwargs, open=False, timeout=30
        )
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self.pool.close()
            raise ConfigError(
                f"DATABASE_URL: cannot connect to {redact(url)} (is PostgreSQL running, and "
                f"does DATABASE_SSL_MODE={kwargs.get('sslmode', 'as in the URL')} suit it?)"
            ) from exc
        self._migrate()

    def close(self) -> None:
        """Close every pooled connection."""
        self.pool.close()

    # ----- schema ---------------------------------------------------------------------

    def _migrate(self) -> None:
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
                try:
                    self._migrate_locked(conn)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
            finally:
                conn.autocommit = False

    def _migrate_locked(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        newest = MIGRATIONS[-1][0]
        if current > newest:
            raise ConfigError(
                f"DATABASE_URL: the database schema is version {current}, newer than this "
                f"careline-server understands ({newest}); upgrade careline-server"
            )
        _ensure_role(conn)
        for version, ddl in MIGRATIONS:
            if version <= current:
                continue
            with conn.transaction():
                conn.execute(ddl)  # fixed DDL text, no input
                _secure_tenant_tables(conn)
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
            log.info("PostgreSQL schema migrated to version %s", version)

    # ----- transactions ---------------------------------------------------------------

    @contextmanager
    def registry(self, *, write: bool) -> Iterator[psycopg.Cursor[Any]]:
        """The registry tables: a transaction serialised across processes for ``write``, a
        single autocommitted read otherwise."""
        with self.pool.connection() as conn:
            if not write:
                # A single read needs no BEGIN/COMMIT round trips (each request authenticates).
                conn.autocommit = True
                try:
                    with conn.cursor() as cur:
                        yield cur
                finally:
                    conn.autocommit = False
                return
            conn.isolation_level = IsolationLevel.READ_COMMITTED
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_REGISTRY_LOCK,))
                yield cur

    @contextmanager
    def tenant(
        self, tenant_id: str, *, write: bool = False, snapshot: bool = False
    ) -> Iterator[psycopg.Cursor[Any]]:
        """A transaction that can only see and change ``tenant_id``'s rows (RLS).

        ``write`` serialises with every other writer of the same tenant, in any process;
        ``snapshot`` reads one consistent state across several statements.
        """
        with self.pool.connection() as conn:
            conn.isolation_level = (
                IsolationLevel.REPEATABLE_READ if snapshot else IsolationLevel.READ_COMMITTED
            )
            with conn.transaction(), conn.cursor() as cur:
                # One round trip: set_config('role', ..., true) is SET LOCAL ROLE.
                if write:
                    cur.execute(
                        "SELECT set_config('role', %s, true), "
                        "set_config('careline.tenant', %s, true), "
                        "pg_advisory_xact_lock(%s, hashtext(%s))",
                        (TENANT_ROLE, tenant_id, _TENANT_LOCK_SPACE, tenant_id),
                    )
                else:
                    cur.execute(
                        "SELECT set_config('role', %s, true), "
                        "set_config('careline.tenant', %s, true)",
                        (TENANT_ROLE, tenant_id),
                    )
                yield cur


def _ensure_role(conn: psycopg.Connection[Any]) -> None:
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT_ROLE,)).fetchone()
    if exists:
        return
    try:
        conn.execute(f"CREATE ROLE {TENANT_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS")
    except errors.DuplicateObject:
        pass  # another process (or database on this cluster) created it just now
    except errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"DATABASE_URL: the PostgreSQL user cannot create the role {TENANT_ROLE} that "
            f"row-level security runs under; create it once as an administrator: CREATE ROLE "
            f"{TENANT_ROLE} NOLOGIN; GRANT {TENANT_ROLE} TO <careline user>"
        ) from exc


_IDENT = re.compile(r"[a-z_]+")


def _secure_tenant_tables(conn: psycopg.Connection[Any]) -> None:
    user = conn.execute("SELECT current_user").fetchone()
    assert user is not None
    conn.execute(f'GRANT {TENANT_ROLE} TO "{user[0]}"')
    for table in TENANT_TABLES:
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
    for sequence in ("replica_ops_pos_seq", "replica_audit_rowid_seq"):
        conn.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {TENANT_ROLE}")

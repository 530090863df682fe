"""PostgreSQL connections for careline-server: pool, schema, tenant-scoped transactions.

Row-level security is the second wall behind the application's own checks: every clinic
table carries a ``tenant`` column and a policy admitting only rows of the tenant named in
the transaction-local setting ``careline.tenant``. Tenant work runs as the NOLOGIN role
``careline_tenant`` (``SET LOCAL ROLE``), which neither owns the tables nor bypasses RLS:
a superuser or table owner would otherwise skip the policies. A query that forgets its
tenant filter, or names another clinic's id, still sees only the current tenant's rows.

Several server processes may share one database: pushes to a clinic are serialised by a
transaction-scoped advisory lock on the tenant, the registry's writes by one on the
registry, and migrations by a session lock, so no op is lost or stored twice. Processes of
different releases may share it during a rolling upgrade: :mod:`.schema` says which code
runs on which schema, :mod:`.nodes` which processes are live.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel, errors
from psycopg_pool import ConnectionPool, PoolTimeout

from core.config.settings import ConfigError
from core.server.postgres import nodes, schema
from core.server.postgres.schema import TENANT_ROLE, Migration, SchemaRefusedError
from core.server.postgres.urls import check_url, redact, ssl_mode

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x43524C31  # "CRL1": one process migrates at a time
_REGISTRY_LOCK = 0x43524C32
_TENANT_LOCK_SPACE = 0x43524C33
# Every session of this code says so: a breaking migration treats any other session on the
# database as possibly older code (see _refuse_if_old_nodes).
APPLICATION_NAME = "careline-server"


class PgStore:
    """A connection pool on one PostgreSQL database, migrated on open.

    Opening it, under a session advisory lock that every release takes: refuse a schema
    this code cannot run on; apply the migrations it lacks, unless one is breaking and a
    live process runs code it would break; register this process in ``server_nodes``.
    """

    def __init__(
        self,
        url: str,
        ssl_mode: str = "verify-full",
        *,
        max_size: int = 8,
        connect_timeout: float = 15,
        migrations: Sequence[Migration] | None = None,
        heartbeat_s: float | None = None,
        wait: bool = True,
    ) -> None:
        """``migrations``: the schema this code knows (default :data:`schema.MIGRATIONS`;
        tests pass a longer or shorter list to play a newer or older release);
        ``heartbeat_s``: how often this process's node row is refreshed; ``wait``: a
        server not answering yet (still starting, or down) is waited for, up to
        ``connect_timeout``, as a service starting beside it needs; without, as a one-shot
        admin command wants, it is refused at once."""
        check_url(url)
        self.migrations = tuple(schema.MIGRATIONS if migrations is None else migrations)
        self._beat_s = nodes.HEARTBEAT_S if heartbeat_s is None else heartbeat_s
        self.node: nodes.Registration | None = None
        self.url = url
        kwargs: dict[str, Any] = {"autocommit": False, "application_name": APPLICATION_NAME}
        if "sslmode=" not in url:
            kwargs["sslmode"] = ssl_mode
        self.pool = ConnectionPool(
            url, min_size=1, max_size=max_size, kwargs=kwargs, open=False, timeout=30
        )
        _refuse_misconfigured(url, kwargs, connect_timeout, wait)
        try:
            self.pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            self.pool.close()
            raise ConfigError(_not_connected(url, kwargs)) from exc
        try:
            self._migrate()
        except BaseException:
            self.pool.close()
            raise

    def close(self) -> None:
        """Leave the node table, then close every pooled connection."""
        if self.node is not None:
            self.node.close()
            self.node = None
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
        state = schema.read_state(conn)
        schema.check_runnable(state, self.migrations, nodes.release())
        steps = schema.plan(state, self.migrations)
        if steps:
            _ensure_role(conn)
            if steps[-1][1] > state.min_compatible and nodes.table_exists(conn):
                self._refuse_if_old_nodes(conn, state, steps)
        for migration, floor in steps:
            schema.apply(conn, migration, floor)
            log.info(
                "PostgreSQL schema migrated to version %s (%s, %s)",
                migration.version,
                migration.summary,
                "breaking" if migration.breaking else "additive",
            )
        if nodes.table_exists(conn):
            self.node = nodes.Registration(self.pool, self.migrations[-1].version, self._beat_s)
            self.node.register(conn)

    def _refuse_if_old_nodes(
        self,
        conn: psycopg.Connection[Any],
        state: schema.SchemaState,
        steps: list[tuple[Migration, int]],
    ) -> None:
        """A breaking step waits until no live process runs code it would break: neither a
        registered node of older code, nor a session that is not a registered process's
        (release 0.1.0 never registers; its pool keeps a session open all the time)."""
        floor = steps[-1][1]
        old = [n.describe() for n in nodes.live_nodes(conn) if n.schema_understood < floor]
        old += [
            f"an unregistered PostgreSQL session from {addr or 'a local socket'}"
            f"{f':{port}' if port else ''} (application name {app!r}, connected "
            f"{since:%Y-%m-%d %H:%M:%S %Z}: careline-server 0.1.0, or another client)"
            for addr, port, app, since in conn.execute(
                "SELECT host(client_addr), client_port, application_name, backend_start "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_type = 'client backend' "
                "AND application_name <> %s ORDER BY backend_start",
                (APPLICATION_NAME,),
            )
        ]
        if not old:
            return
        breaking = [f"{m.version} ({m.summary})" for m, _ in steps if m.breaking]
        raise SchemaRefusedError(
            f"this careline-server {nodes.release()} would migrate the database from schema "
            f"version {state.version} to {steps[-1][0].version}, and "
            f"{'version' if len(breaking) == 1 else 'versions'} {', '.join(breaking)} "
            f"{'breaks' if len(breaking) == 1 else 'break'} code older than schema {floor}, "
            "which these may run: "
            + "; ".join(old)
            + ". Stop (or upgrade) them, then start this one again (a process that died "
            f"without stopping is forgotten {nodes.MISSED_BEATS} missed heartbeats later, "
            f"{nodes.HEARTBEAT_S * nodes.MISSED_BEATS:.0f} s by default)"
        )

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


# libpq errors no retry can cure: TLS verification and set-up, authentication, a missing
# database. (A server still starting, or unreachable for a moment, is waited for instead.)
_PERMANENT = ("SSL", "certificate", "authentication failed", "no pg_hba.conf entry",
              "does not exist", "server does not support SSL")  # fmt: skip


def _refuse_misconfigured(url: str, kwargs: dict[str, Any], timeout: float, wait: bool) -> None:
    """One direct connection first: a permanent failure (a wrong CA, TLS refused, a bad
    password) is reported at once with libpq's own reason, rather than after the pool
    has retried for ``timeout`` seconds and can only say it timed out. Unless ``wait``,
    any other failure (nothing listening) is too, before the pool's retries log a line
    each."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout)), **kwargs).close()
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if any(marker in reason for marker in _PERMANENT):
            raise ConfigError(
                f"DATABASE_URL: cannot connect to {redact(url)} with "
                f"sslmode={kwargs.get('sslmode') or _url_sslmode(url)}: {_reason(reason)}"
            ) from None
        if not wait:
            log.info("PostgreSQL at %s did not answer: %s", redact(url), reason)
            raise ConfigError(_not_connected(url, kwargs)) from None


def _not_connected(url: str, kwargs: dict[str, Any]) -> str:
    """The message for a PostgreSQL server that did not answer."""
    return (
        f"DATABASE_URL: cannot connect to {redact(url)} (is PostgreSQL running, and does "
        f"DATABASE_SSL_MODE={kwargs.get('sslmode', 'as in the URL')} suit it?)"
    )


def _url_sslmode(url: str) -> str:
    return ssl_mode(url, None)


def _reason(text: str) -> str:
    # libpq's line is "connection to server at ... failed: <reason>"; keep the reason.
    reason = text.rsplit(" failed: ", 1)[-1].strip()
    if "certificate verify failed" in reason:
        reason += (
            " (the server's certificate is not signed by the CA in sslrootcert=, or its "
            "name does not match the host)"
        )
    return reason


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

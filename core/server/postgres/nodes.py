"""The server processes sharing one PostgreSQL database, as they announce themselves.

Each process that opens the store adds a row to ``server_nodes`` (schema version 2): a
random id, its release, the newest schema version its code knows, host, pid and start
time. A background thread refreshes the row's heartbeat every ``HEARTBEAT_S`` seconds and
pushes its expiry ``3 x HEARTBEAT_S`` ahead; a clean shutdown deletes the row. A process
that dies without a word (SIGKILL, power cut, lost network) is forgotten once its row
expires. Times come from the database's clock, so hosts with skewed clocks agree.

A process about to apply a breaking migration (:mod:`.schema`) reads the live rows and
refuses while any of them runs code older than the migration allows. Releases before
schema version 2 (0.1.0) do not register; their connection pool keeps a session open,
though, and this code names its own sessions (``application_name``), so a breaking
migration also waits while any other session is open on the database (a 0.1.0 process,
or a client such as psql: the message names its address and port).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
MISSED_BEATS = 3  # a row expires after this many heartbeats in a row did not arrive


def release() -> str:
    """This code's release (the installed distribution's version)."""
    try:
        return metadata.version("careline")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


@dataclass(frozen=True)
class Node:
    """One live server process, as its row says."""

    id: str
    release: str
    schema_understood: int
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime

    def describe(self) -> str:
        """Where it runs and what, for messages."""
        return (
            f"{self.host} pid {self.pid} (careline {self.release}, schema "
            f"{self.schema_understood}, started {self.started_at:%Y-%m-%d %H:%M:%S %Z}, "
            f"last heartbeat {self.heartbeat_at:%H:%M:%S %Z})"
        )


def table_exists(conn: psycopg.Connection[Any]) -> bool:
    """Whether the schema has the node table yet (version 2 or later)."""
    row = conn.execute("SELECT to_regclass('server_nodes') IS NOT NULL").fetchone()
    return bool(row and row[0])


def live_nodes(conn: psycopg.Connection[Any]) -> list[Node]:
    """Every registered process whose heartbeat has not expired, oldest first."""
    rows = conn.execute(
        "SELECT id, release, schema_understood, host, pid, started_at, heartbeat_at "
        "FROM server_nodes WHERE expires_at > now() ORDER BY started_at, id"
    ).fetchall()
    return [Node(*row) for row in rows]


class Registration:
    """This process's row: added by :meth:`register`, refreshed by a daemon thread,
    deleted by :meth:`close`."""

    def __init__(self, pool: ConnectionPool[Any], schema_understood: int, heartbeat_s: float):
        self.pool = pool
        self.id = secrets.token_hex(8)
        self.schema_understood = schema_understood
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def _ttl(self) -> str:
        return f"{self.heartbeat_s * MISSED_BEATS} seconds"

    def register(self, conn: psycopg.Connection[Any]) -> None:
        """Add the row (on the migrating connection, under the migration lock, so a breaking
        migration elsewhere either sees this process or ran before it checked the schema),
        forget expired rows, and start the heartbeat."""
        conn.execute("DELETE FROM server_nodes WHERE expires_at < now()")
        conn.execute(
            "INSERT INTO server_nodes (id, release, schema_understood, host, pid, started_at, "
            "heartbeat_at, expires_at) VALUES (%s, %s, %s, %s, %s, now(), now(), "
            "now() + %s::interval)",
            (self.id, release(), self.schema_understood, socket.gethostname(), os.getpid(),
             self._ttl()),
        )  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="careline-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.beat()
            except (psycopg.Error, OSError) as exc:  # the database may be back next time
                log.warning("server node heartbeat failed: %s", exc)

    def beat(self) -> None:
        """Refresh the row (re-adding it if it was forgotten while this process was cut
        off), and warn if the schema has since moved beyond this code."""
        with self.pool.connection() as conn:
            conn.execute(
                "INSERT INTO server_nodes (id, release, schema_understood, host, pid, "
                "started_at, heartbeat_at, expires_at) VALUES (%s, %s, %s, %s, %s, now(), "
                "now(), now() + %s::interval) ON CONFLICT (id) DO UPDATE SET "
                "heartbeat_at = now(), expires_at = EXCLUDED.expires_at",
                (self.id, release(), self.schema_understood, socket.gethostname(),
                 os.getpid(), self._ttl()),
            )  # fmt: skip
            row = conn.execute(
                "SELECT version, min_compatible FROM schema_version ORDER BY version DESC LIMIT 1"
            ).fetchone()
            conn.commit()
        if row and row[1] is not None and int(row[1]) > self.schema_understood:
            if not self._warned:  # only after this process was cut off past its expiry
                log.error(
                    "the database schema is now version %s, which code of schema %s cannot "
                    "run on; stop this careline-server and upgrade it",
                    row[0],
                    self.schema_understood,
                )
            self._warned = True

    def close(self) -> None:
        """Stop the heartbeat and delete the row (a clean shutdown)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.heartbeat_s + 5)
            self._thread = None
            try:
                with self.pool.connection() as conn:
                    conn.execute("DELETE FROM server_nodes WHERE id = %s", (self.id,))
                    conn.commit()
            except (psycopg.Error, OSError) as exc:  # it expires on its own
                log.warning("could not remove this server node's row: %s", exc)

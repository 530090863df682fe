"""The registry (clinics, devices, enrollment codes, wrapped keys) on PostgreSQL.

Offers the same audited unit of work as the embedded SQLCipher registry, so
:class:`core.server.registry.Registry` runs unchanged on either. Registry writes are rare
(admin commands, enrollment) and serialised by an advisory lock across server processes,
which also keeps the audit chain linear. The registry holds no clinical data: clinic and
device names, certificates, SHA-256 digests of tokens and codes, and data keys wrapped by
the key provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from core.server.postgres.connection import PgStore
from core.store.database import Database, Row


def _pg(sql: str) -> str:
    # The registry's statements use "?" placeholders and contain no literal "?" or "%".
    return sql.replace("?", "%s")


class _Cursor:
    """A psycopg cursor that takes the registry's "?" statements."""

    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self._cur = cur

    def execute(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> Any:
        """Run one statement; returns the cursor (``fetchone`` works on it)."""
        return self._cur.execute(_pg(sql), params)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Read rows within the transaction."""
        return list(self._cur.execute(_pg(sql), params).fetchall())


class PgRegistryDb:
    """:class:`core.store.database.SqlStore` on PostgreSQL's registry tables."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[Row]:
        """Read rows."""
        with self.store.registry(write=False) as cur:
            return list(cur.execute(_pg(sql), params).fetchall())

    @contextmanager
    def write(
        self,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        details: dict[str, Any] | None = None,
    ) -> Iterator[_Cursor]:
        """One unit of work and its audit entry, committed together."""
        with self.store.registry(write=True) as cur:
            tx = _Cursor(cur)
            yield tx
            Database.append_audit(tx, actor, action, entity, entity_id, details)

    def close(self) -> None:
        """The pool belongs to the server; nothing to release here."""

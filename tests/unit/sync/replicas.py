"""Replicas for sync tests: real in-memory SQLCipher databases, a lossy transport, and
dumps of what a replica holds (its derived state, or every byte of every table)."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass, field

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database, Row
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncReport, sync
from core.sync.transport import LocalTransport, TransportError

Dump = dict[str, list[Row]]

# Tables every replica keeps for itself: two replicas holding the same records legitimately
# differ in them, so they are left out of the "materialized state" comparison. Every other
# table of the schema is compared, so a table added later is covered without editing this.
PER_REPLICA: dict[str, str] = {
    # The replica's own id, its Yjs client id, its clock and its audit chain's head.
    "meta": "identity, clock and audit head of this replica",
    # Who did what on this replica and when: local sessions, local timestamps, local chain.
    "audit_log": "this replica's own hash-chained history",
    # Same ops everywhere after a full sync, but rowid is the local arrival order, and a
    # replica bootstrapped from a snapshot holds no op bytes below its floor.
    "oplog": "the local sync queue (arrival order; snapshot replicas lack old op bytes)",
    # ``floor`` records whether this replica started from a snapshot; the seqs themselves
    # are compared by :func:`assert_converged`.
    "version_vector": "per-replica snapshot floors",
    "schema_version": "migration bookkeeping of this file, not clinic data",
}


def new_replica(actor: str) -> ClinicRecords:
    """A fresh replica acting as ``actor``."""
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    return ClinicRecords(Database.in_memory(key), actor, FAST_PARAMS)


def _db(replica: ClinicRecords | Database) -> Database:
    return replica.db if isinstance(replica, ClinicRecords) else replica


def _tables(db: Database) -> tuple[list[str], dict[str, list[str]]]:
    """Ordinary tables, and each virtual table's shadow tables (its own storage)."""
    rows = db.query("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
    virtual = [str(n) for n, sql in rows if str(sql).upper().startswith("CREATE VIRTUAL TABLE")]
    shadows = {v: [str(n) for n, _ in rows if str(n).startswith(f"{v}_")] for v in virtual}
    shadowed = {s for names in shadows.values() for s in names}
    plain = [str(n) for n, _ in rows if n not in virtual and n not in shadowed]
    return plain, shadows


def _all_rows(db: Database, table: str) -> list[Row]:
    """Every row of a table in a stable order (sorted on all columns: rowid-free)."""
    width = len(db.query(f"PRAGMA table_info({table})"))
    order = ", ".join(str(i) for i in range(1, width + 1))
    return db.query(f"SELECT * FROM {table} ORDER BY {order}")


def _fts_entries(db: Database, fts: str, content: str) -> list[Row]:
    """What the full-text index holds, as (content row id, column, term, offset).

    The index's own tables are keyed by local rowids (rows are inserted in arrival order, so
    they differ between replicas holding the same records); read through fts5vocab and
    mapped to the record ids they point at, the index is comparable between replicas. The
    index is first checked against its content table, so a stale entry fails here.
    """
    db.query(f"INSERT INTO {fts} ({fts}, rank) VALUES ('integrity-check', 1)")
    vocab = f"temp.{fts}_test_vocab"
    db.query(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, {fts}, instance)")
    return db.query(
        f"SELECT c.id, v.col, v.term, v.offset FROM {vocab} v "
        f"LEFT JOIN {content} c ON c.rowid = v.doc ORDER BY 1, 2, 3, 4"
    )


def materialized(replica: ClinicRecords | Database) -> Dump:
    """Every table derived from the record documents (every table of the schema but the
    ``PER_REPLICA`` ones), record states and the full-text index included, in a stable
    order: replicas holding the same documents must return equal dumps."""
    db = _db(replica)
    plain, shadows = _tables(db)
    out = {t: _all_rows(db, t) for t in plain if t not in PER_REPLICA}
    for fts in shadows:
        [(sql,)] = db.query("SELECT sql FROM sqlite_master WHERE name = ?", (fts,))
        assert "content = 'patients'" in sql, f"unexpected virtual table {fts}: {sql}"
        out[fts] = _fts_entries(db, fts, "patients")
    return out


def full_dump(replica: ClinicRecords | Database) -> Dump:
    """Every row of every table, rowids and the schema included: the op log, audit log,
    meta, version vector, record states and the full-text index's own storage. Two equal
    dumps of one replica mean nothing at all was written in between."""
    db = _db(replica)
    plain, shadows = _tables(db)
    out: Dump = {"sqlite_master": db.query("SELECT * FROM sqlite_master ORDER BY name")}
    for table in plain + [s for names in shadows.values() for s in names]:
        [(sql,)] = db.query("SELECT sql FROM sqlite_master WHERE name = ?", (table,))
        if "WITHOUT ROWID" in str(sql).upper():
            out[table] = _all_rows(db, table)
        else:
            out[table] = db.query(f"SELECT rowid, * FROM {table} ORDER BY rowid")
    return out


def dump_diff(before: Dump, after: Dump) -> dict[str, tuple[list[Row], list[Row]]]:
    """Per changed table: (rows only in ``after``, rows only in ``before``). An updated
    row shows up in both (same rowid, new content)."""
    out: dict[str, tuple[list[Row], list[Row]]] = {}
    for table in sorted(before.keys() | after.keys()):
        old, new = Counter(before.get(table, [])), Counter(after.get(table, []))
        if old != new:
            out[table] = (sorted((new - old).elements(), key=repr),
                          sorted((old - new).elements(), key=repr))  # fmt: skip
    return out


def assert_converged(replicas: list[ClinicRecords]) -> None:
    """Every replica holds the same ops (version vector) and the same derived state."""
    first = replicas[0].db.query("SELECT origin, seq FROM version_vector ORDER BY origin")
    state = materialized(replicas[0])
    for r in replicas[1:]:
        assert r.db.query("SELECT origin, seq FROM version_vector ORDER BY origin") == first
        assert materialized(r) == state  # byte-for-byte the same derived state


def sync_pair(client: ClinicRecords, server: ClinicRecords) -> SyncReport:
    """One clean session: client pulls from and pushes to server."""
    return sync(client.db, LocalTransport(Responder(server.db, "peer")), client.actor)


@dataclass
class FaultyTransport:
    """Delivers requests, but may drop, duplicate or replay stale ones (as networks do)."""

    target: Responder
    fault: str
    history: list[bytes] = field(default_factory=list)
    calls: int = 0

    def request(self, message: bytes) -> bytes:
        self.calls += 1
        if self.fault == "drop_request" and self.calls == 2:
            raise TransportError("request lost")
        if self.fault == "replay" and self.history:
            self.target.handle(self.history[0])  # a stale message arrives late
        reply = self.target.handle(message)
        if self.fault == "duplicate":
            reply = self.target.handle(message)
        self.history.append(message)
        if self.fault == "drop_reply" and self.calls == 2:
            raise TransportError("reply lost")
        return reply


def faulty_sync(
    client: ClinicRecords, server: ClinicRecords, fault: str, stale: list[bytes]
) -> None:
    """A session over a faulty link; an aborted session is fine, nothing may be corrupted."""
    transport = FaultyTransport(Responder(server.db, "peer"), fault, history=list(stale[-3:]))
    with contextlib.suppress(SyncError, TransportError):
        sync(client.db, transport, client.actor)
    stale.extend(transport.history[-3:])

"""Replicas for sync tests: real in-memory SQLCipher databases, a lossy transport, and
dumps of what a replica holds (its derived state, or every byte of every table)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlcipher3
from pycrdt import Map, Text

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt
from core.records.changes import parse_digests
from core.records.clinic import ClinicRecords
from core.records.signed_notes import DISCARDED
from core.records.types import NOTE, PATIENT, RECORD_TYPES
from core.store.database import Database, Row, _apply_key
from core.store.state_codec import unpack_state
from core.sync.responder import Responder
from core.sync.session import SyncError, SyncReport, SyncSession, sync
from core.sync.transport import LocalTransport, TransportError
from tests.clinic_identity import join_test_clinic

Dump = dict[str, list[Row]]

# Tables every replica keeps for itself: two replicas holding the same records legitimately
# differ in them, so they are left out of the "materialized state" comparison. Every other
# table of the schema is compared, so a table added later is covered without editing this.
PER_REPLICA: dict[str, str] = {
    # Values of role/active/grant registers this replica has seen with their HLCs, superseded
    # ones included: which superseded values a replica saw depends on how ops reached it
    # (remote apply judges permissions at an op's time from it, core/records/remote_authz).
    "authz_writes": "the permission history seen here (superseded values depend on arrival)",
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
    # Certificates learnt along the way, ops kept aside and refusals reported: each replica
    # meets different peers.
    "device_certs": "certificates this replica has seen",
    "quarantine": "ops refused here",
    "refused_elsewhere": "this replica's ops others refused",
}


def new_replica(actor: str) -> ClinicRecords:
    """A fresh replica acting as ``actor``."""
    db = new_store(SecureMemory.from_bytes(bytearray(os.urandom(32))))
    join_test_clinic(db)
    return ClinicRecords(db, actor, FAST_PARAMS)


# What a freshly migrated store holds: its identity (meta) and bookkeeping, no records.
_IDENTITY = {"replica_id", "yjs_client_id"}
_BOOKKEEPING = {"meta", "schema_version", "patients_fts_data", "patients_fts_config"}


@functools.cache
def _migrated() -> Any:
    """The connection of one in-memory store migrated to the latest schema (this process's
    template). Checked to hold nothing but a replica's identity, so a migration that adds
    other per-replica state fails here instead of being shared by every copy."""
    db = Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))
    meta = {str(k) for (k,) in db.query("SELECT key FROM meta")}
    tables = [str(n) for (n,) in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    filled = {t for t in tables if db.query(f'SELECT count(*) FROM "{t}"')[0][0]}
    assert (meta, filled <= _BOOKKEEPING) == (_IDENTITY, True), (meta, filled)
    return db._conn


def new_store(key: SecureMemory) -> Database:
    """``Database.in_memory(key)``, copied from :func:`_migrated` instead of migrated again
    (the migrations were most of a replica's cost, and the convergence property test makes
    3 to 5 replicas per example), with its own identity drawn as migration V1 draws it."""
    conn = sqlcipher3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA cipher_log_level = NONE")
    _apply_key(conn, key)
    _migrated().backup(conn)
    conn.execute("UPDATE meta SET value = lower(hex(randomblob(8))) WHERE key = 'replica_id'")
    conn.execute(
        "UPDATE meta SET value = CAST(abs(random()) % 4503599627370496 AS TEXT) "
        "WHERE key = 'yjs_client_id'"
    )
    # The same pragmas as any store; the migrations find the schema current.
    return Database._configure(Path(":memory:"), conn)


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


@functools.lru_cache(maxsize=8192)
def document_content(state: bytes) -> str:
    """What a record document holds, independent of how its state happens to be encoded:
    its Yjs state vector (which changes it has integrated) and every root's content.

    Equal documents need not encode to equal bytes: Yjs stores text one replica typed in
    one go as one run, but keeps the same characters as separate runs on a replica that
    received them in separate updates. (Cached: most records are unchanged between two
    dumps, and replicas holding the same document mostly hold the same bytes.)"""
    doc = crdt.load(state, 1)
    roots: dict[str, Any] = {}
    for name in sorted(doc.keys()):
        if name.startswith("t:"):
            roots[name] = str(doc.get(name, type=Text))
        else:
            roots[name] = json.loads(str(doc.get(name, type=Map)))
    vector = sorted(crdt.decode_state_vector(doc.get_state()).items())
    return json.dumps({"vector": vector, "roots": roots}, sort_keys=True)


def materialized(replica: ClinicRecords | Database) -> Dump:
    """Every table derived from the record documents (every table of the schema but the
    ``PER_REPLICA`` ones), record states and the full-text index included, in a stable
    order: replicas holding the same documents must return equal dumps."""
    db = _db(replica)
    plain, shadows = _tables(db)
    out = {t: _all_rows(db, t) for t in plain if t not in PER_REPLICA}
    # Record states are compared by the documents they hold (see document_content), and
    # by the digests of what was derived from them (whichever way they are stored: JSON
    # text before schema V14 and for unusual shapes, 24 bytes since).
    out["record_states"] = [
        (
            rid,
            rtype,
            document_content(unpack_state(state)),
            tuple(sorted(parse_digests(derived).items())),
        )
        for rid, rtype, state, derived in out["record_states"]
    ]
    for fts in shadows:
        [(sql,)] = db.query("SELECT sql FROM sqlite_master WHERE name = ?", (fts,))
        assert "content = 'patients_search'" in sql, f"unexpected virtual table {fts}: {sql}"
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
    for i, r in enumerate(replicas[1:], 1):
        assert r.db.query("SELECT origin, seq FROM version_vector ORDER BY origin") == first
        other = materialized(r)
        # Name the tables that differ: the dumps are too large for a readable diff.
        differ = dump_diff(state, other)
        assert not differ, f"replica {i} differs from replica 0 in {differ}"


def sync_pair(client: ClinicRecords, server: ClinicRecords) -> SyncReport:
    """One clean session: client pulls from and pushes to server."""
    return sync(client.db, LocalTransport(Responder(server.db, "peer")), client.actor)


FAULTS = (
    "drop_request",  # the request never arrives
    "drop_reply",  # the request is handled, its reply never arrives
    "duplicate_request",  # the request is delivered twice
    "replay",  # a request from earlier (this session or an old one) arrives again, late
    "late_replies",  # replies arrive one request late: one duplicated, the rest reordered
    "stale_reply",  # a reply from earlier is delivered instead of the current one
    "shuffle_ops",  # the ops inside pushed batches and pulled replies arrive reordered
)


@dataclass
class Wire:
    """Messages that have crossed the network, which a faulty link may deliver again."""

    requests: list[bytes] = field(default_factory=list)
    replies: list[bytes] = field(default_factory=list)

    def keep_recent(self, count: int = 6) -> None:
        """Old enough messages are gone (and the memory use stays bounded)."""
        del self.requests[:-count], self.replies[:-count]


def _shuffled(message: bytes, rng: random.Random) -> bytes:
    """The message with the ops of its batch in another order (other messages unchanged)."""
    try:
        decoded = json.loads(message)
    except ValueError:
        return message
    ops = decoded.get("ops") if isinstance(decoded, dict) else None
    if not isinstance(ops, list) or len(ops) < 2:
        return message
    rng.shuffle(ops)
    return json.dumps(decoded, separators=(",", ":")).encode()


@dataclass
class FaultyTransport:
    """Delivers messages as a bad network does: ``fault`` strikes at request number ``at``
    (and, for reordering faults, from then on); ``rng`` picks what is replayed or how a
    batch is shuffled, so the faults an example injects are the same on every run."""

    target: Responder
    fault: str
    at: int
    rng: random.Random
    wire: Wire
    calls: int = 0
    held: bytes | None = None  # a reply held back (late_replies)

    def request(self, message: bytes) -> bytes:
        self.calls += 1
        now, since = self.calls == self.at, self.calls >= self.at
        if self.fault == "shuffle_ops" and since:
            message = _shuffled(message, self.rng)
        if self.fault == "drop_request" and now:
            raise TransportError("request lost")
        if self.fault == "replay" and now and self.wire.requests:
            self.target.handle(self.rng.choice(self.wire.requests))  # arrives late
        reply = self.target.handle(message)
        if self.fault == "duplicate_request" and now:
            reply = self.target.handle(message)
        self.wire.requests.append(message)
        delivered = reply
        if self.fault == "drop_reply" and now:
            self.wire.replies.append(reply)
            raise TransportError("reply lost")
        if self.fault == "stale_reply" and now and self.wire.replies:
            delivered = self.rng.choice(self.wire.replies)
        if self.fault == "late_replies" and since and self.held is not None:
            delivered, self.held = self.held, reply
        elif self.fault == "late_replies":
            self.held = reply
        if self.fault == "shuffle_ops" and since:
            delivered = _shuffled(delivered, self.rng)
        self.wire.replies.append(reply)
        return delivered


def faulty_sync(
    client: ClinicRecords, server: ClinicRecords, fault: str, wire: Wire, at: int, seed: int
) -> None:
    """A session over a faulty link; an aborted session is fine, nothing may be corrupted
    (a refused batch or broken exchange ends it with SyncError or TransportError only)."""
    transport = FaultyTransport(Responder(server.db, "peer"), fault, at, random.Random(seed), wire)
    with contextlib.suppress(SyncError, TransportError):
        sync(client.db, transport, client.actor)
    wire.keep_recent()


def pull_from(
    into: ClinicRecords, source: ClinicRecords, protocol: int | None = None
) -> SyncReport:
    """``into`` brings ``source``'s changes here and sends nothing back (so each side
    applies ops under its own code: see tests/newer_release.py), optionally speaking an
    older sync ``protocol`` version."""
    session = SyncSession(into.db, LocalTransport(Responder(source.db, "peer")), into.actor)
    if protocol is not None:
        session.report.protocol = protocol
    return session.run(push=False)


@contextlib.contextmanager
def before_v15() -> Iterator[None]:
    """Run as a release without V15's patient fields (``source``, ``duplicate_of``)."""
    saved = RECORD_TYPES["patient"]
    older = dataclasses.replace(
        PATIENT,
        fields=tuple(f for f in PATIENT.fields if f.name not in V15_FIELDS),
        columns=tuple(c for c in PATIENT.columns or () if getattr(c, "name", c) not in V15_FIELDS),
    )
    RECORD_TYPES["patient"] = older
    try:
        yield
    finally:
        RECORD_TYPES["patient"] = saved


V15_FIELDS = ("source", "duplicate_of")


@contextlib.contextmanager
def before_v20() -> Iterator[None]:
    """Run as a release without V20's discarded drafts: a note's ``discarded_at`` is a
    field it does not know (kept and relayed, listed in unknown_records), and its notes
    table has no such column, so a discarded draft stays on its charts."""
    saved = RECORD_TYPES["note"]
    RECORD_TYPES["note"] = NOTE_BEFORE_V20
    try:
        yield
    finally:
        RECORD_TYPES["note"] = saved


NOTE_BEFORE_V20 = dataclasses.replace(
    NOTE,
    bookkeeping=tuple(b for b in NOTE.bookkeeping if b != DISCARDED),
    columns=tuple(c for c in NOTE.columns or () if getattr(c, "name", c) != DISCARDED),
)

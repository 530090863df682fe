"""The local write path beneath ClinicRecords: document change + rows + op, one transaction.

``change`` runs inside ``Database.write`` (which adds the audit entry), so a local write is
exactly one store transaction: record state, materialized rows and FTS index, op-log entry,
audit entry. Nothing is half-written.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.materialize import (
    UNKNOWN_KEY,
    UNKNOWN_TYPE,
    MalformedRecordError,
    Writes,
    mark_unknown,
    materialize,
)
from core.records.spec import Mutation
from core.records.types import AUTHZ_HISTORY, RECORD_TYPES
from core.store import oplog
from core.store.database import Database, Row, Transaction
from core.store.state_codec import pack_state, unpack_state


class RecordTypeMismatchError(ValueError):
    """A record id is already used by a record of another type."""


@dataclass
class Loaded:
    """A record document and the digests of what was last derived from it (and, until the
    document changes, its state vector if it was read along with the load)."""

    doc: RecordDoc
    derived: dict[str, str]
    vector: bytes | None = None
    # True while nothing of the record is stored (no state, so no derived rows either):
    # storing it then only inserts, with no DELETE of rows that cannot exist.
    fresh: bool = False
    # (plain, stored form) of the snapshot state the document was loaded from, when it
    # arrived in its stored form: kept as it came if the document still encodes to exactly
    # that plain state, instead of being deflated again (state_codec, ``state_forms``).
    received: tuple[bytes, bytes] | None = None


def load_record(tx: Transaction, record_id: str, type_name: str, client_id: int) -> Loaded:
    """The record's document (empty if it does not exist yet)."""
    rows = tx.query("SELECT type, state, derived FROM record_states WHERE id = ?", (record_id,))
    return loaded_from(record_id, type_name, rows[0] if rows else None, client_id)


# Ids per query when reading many records (well under SQLite's bound-parameter limit).
_READ_CHUNK = 500


def stored_records(tx: Transaction, record_ids: Iterable[str]) -> dict[str, Row]:
    """The stored ``(type, state, derived)`` of several records (those that exist), read
    with one query per few hundred ids instead of one each."""
    ids = list(dict.fromkeys(record_ids))
    found: dict[str, Row] = {}
    for start in range(0, len(ids), _READ_CHUNK):
        chunk = tuple(ids[start : start + _READ_CHUNK])
        marks = ", ".join("?" for _ in chunk)
        for row in tx.query(
            f"SELECT id, type, state, derived FROM record_states WHERE id IN ({marks})", chunk
        ):
            found[str(row[0])] = row[1:]
    return found


def loaded_from(record_id: str, type_name: str, row: Row | None, client_id: int) -> Loaded:
    """The record's document from its stored ``(type, state, derived)`` row (None: new)."""
    if row is not None and row[0] != type_name:
        raise RecordTypeMismatchError(f"record {record_id!r} is a {row[0]}, not a {type_name}")
    if row is None:
        doc, vector = crdt.load_with_vector(None, client_id)
        return Loaded(doc, {}, vector, fresh=True)
    doc, vector = crdt.load_with_vector(unpack_state(row[1]), client_id)
    return Loaded(doc, parse_digests(row[2]), vector)


_STORE_STATE = (
    "INSERT INTO record_states (id, type, state, derived) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET state = excluded.state, derived = excluded.derived"
)


# The digests ``materialize`` returns for a known record type: three parts, 16 hex digits
# each, stored as their 24 bytes (93 bytes as JSON text: about 70 bytes per record, a tenth
# of a workstation's database; README, Performance). Any other shape (a newer version's
# record, one with parts this version does not know) stays JSON text, as rows written
# before schema V14 all are: ``parse_digests`` reads both.
_DIGEST_PARTS = ("main", "children", "conflicts")
_DIGEST_BYTES = 8 * len(_DIGEST_PARTS)
_DIGEST_KEYS = frozenset(_DIGEST_PARTS)


def digests_value(digests: dict[str, str]) -> bytes | str:
    """What the ``derived`` column stores for a record's digests."""
    if digests.keys() == _DIGEST_KEYS:
        hexes = [digests[part] for part in _DIGEST_PARTS]
        if all(len(h) == 16 for h in hexes):
            joined = "".join(hexes)
            packed = bytes.fromhex(joined)
            if packed.hex() == joined:  # lowercase hex only: reads back the same
                return packed
    return json.dumps(digests, sort_keys=True)


def parse_digests(raw: object) -> dict[str, str]:
    """A record's digests from its ``derived`` column (24 bytes, or JSON text)."""
    if isinstance(raw, bytes | memoryview):
        packed = bytes(raw)
        if len(packed) != _DIGEST_BYTES:
            raise ValueError(f"stored digests are {len(packed)} bytes, not {_DIGEST_BYTES}")
        text = packed.hex()
        return {part: text[16 * i : 16 * i + 16] for i, part in enumerate(_DIGEST_PARTS)}
    parsed: dict[str, str] = crdt.parse_json(raw)
    return parsed


def store_record(tx: Transaction, record_id: str, type_name: str, loaded: Loaded) -> None:
    """Persist the document's full encoded state and re-derive its changed rows (the
    record's own row updated in its changed columns only: fewer index pages written)."""
    store_records(tx, [(record_id, type_name, loaded)], narrow=True)


def store_records(
    tx: Transaction, records: Iterable[tuple[str, str, Loaded]], narrow: bool = False
) -> None:
    """``store_record`` for several records, in order, with their SQL batched: the same
    rows as storing them one by one (see ``materialize.Writes``). ``narrow``: see
    ``materialize.materialize``; only for one record stored alone."""
    writes = Writes(tx)
    stored: list[tuple[Loaded, dict[str, str]]] = []
    permissions_changed = False
    for record_id, type_name, loaded in records:
        permissions_changed = permissions_changed or type_name in AUTHZ_HISTORY
        doc = loaded.doc
        rtype = RECORD_TYPES.get(type_name)
        # A peer's update may have left a document that pycrdt panics on reading
        # (``crdt.refusing_panics``, inlined: this runs for every record stored).
        try:
            if rtype is None:
                # A newer version's record type: kept and relayed as it came, derived once
                # this replica is upgraded (unknown.refresh).
                digests = {UNKNOWN_KEY: UNKNOWN_TYPE}
                if loaded.derived.get(UNKNOWN_KEY) != UNKNOWN_TYPE:
                    mark_unknown(writes, record_id, type_name, UNKNOWN_TYPE, loaded.fresh)
                state = doc.get_update()
            else:
                # Deriving and encoding read the same document: one pycrdt transaction.
                with doc.transaction():
                    digests = materialize(
                        tx, record_id, rtype, doc, loaded.derived, writes, loaded.fresh, narrow
                    )
                    state = doc.get_update()
        except MalformedRecordError as exc:
            # Named by record, for the refusal's reader (its log line, the peer).
            raise MalformedRecordError(f"record {record_id}: {exc}") from exc
        except BaseException as exc:
            if not crdt.is_panic(exc):
                raise
            # Applied, but pycrdt cannot read or encode the document it made (a panic, whose
            # text is yrs's: debug log only).
            problem = crdt.invalid_update(crdt.STATE, exc)
            raise MalformedRecordError(f"record {record_id}: {problem}") from None
        # The sender's stored form of ``state`` (inflates to exactly it), or deflated here.
        received = loaded.received
        same = received is not None and received[0] == state
        packed = received[1] if received is not None and same else pack_state(state)
        row = (record_id, type_name, packed, digests_value(digests))
        writes.add("record_states", record_id, _STORE_STATE, row)
        stored.append((loaded, digests))
    writes.flush()
    if permissions_changed:
        new_authz_token(tx)
    for loaded, digests in stored:
        loaded.derived = digests
        loaded.fresh = False
        loaded.received = None


# The meta key of a random token replaced whenever a user or tuple record is stored (and
# with it, ``authz_writes``): the permission history remote apply judges ops against
# (``remote_authz``) is the same while the token is, so a History built for it can be kept
# between batches. Random rather than a counter: two databases holding the same token hold
# the same history (a copy, a restored backup), and two different ones never do.
AUTHZ_TOKEN_KEY = "authz_history_token"  # noqa: S105 (a meta key, not a secret)


def authz_token(db: Database | Transaction) -> str | None:
    """The current permission-history token (None: none written yet)."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (AUTHZ_TOKEN_KEY,))
    return str(rows[0][0]) if rows else None


def new_authz_token(tx: Transaction) -> str:
    """Replace the permission-history token (a user or tuple record was just stored, in
    ``tx``); returns the new one."""
    token = secrets.token_hex(16)
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (AUTHZ_TOKEN_KEY, token),
    )
    return token


def change(
    tx: Transaction, author: str, record_id: str, type_name: str, mutate: Mutation
) -> oplog.Op:
    """Apply ``mutate(doc, hlc)`` to a record as one local op."""
    me = oplog.identity(tx)
    loaded = load_record(tx, record_id, type_name, me.client_id)
    doc = loaded.doc
    deps = doc.get_state()
    hlc = oplog.tick(tx, me.replica_id)
    with doc.transaction():
        mutate(doc, hlc)
    update = doc.get_update(deps)
    if type_name in AUTHZ_HISTORY:
        keep_authz_writes(tx, record_id, type_name, doc)
    store_record(tx, record_id, type_name, loaded)
    return oplog.append_local(tx, me.replica_id, record_id, type_name, update, deps, hlc, author)


def authz_writes(record_id: str, type_name: str, doc: RecordDoc) -> list[tuple[str, ...]]:
    """Rows of ``authz_writes`` for the live values of a user or tuple document."""
    fields = AUTHZ_HISTORY.get(type_name, ())
    return [
        (e.write_id, record_id, name, json.dumps(e.value), e.hlc)
        for name, entries in crdt.all_live(doc).items()
        if name in fields
        for e in entries
    ]


def keep_authz_writes(tx: Transaction, record_id: str, type_name: str, doc: RecordDoc) -> None:
    """Keep every value a user's role/active or a tuple's grant has held here, with its HLC
    (superseded values too: remote apply judges ops by the permissions at their time)."""
    rows = authz_writes(record_id, type_name, doc)
    if rows:
        tx.executemany(
            "INSERT INTO authz_writes (write_id, record_id, field, value, hlc) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (write_id) DO NOTHING",
            rows,
        )

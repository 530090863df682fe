"""The local write path beneath ClinicRecords: document change + rows + op, one transaction.

``change`` runs inside ``Database.write`` (which adds the audit entry), so a local write is
exactly one store transaction: record state, materialized rows and FTS index, op-log entry,
audit entry. Nothing is half-written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.materialize import materialize
from core.records.types import record_type
from core.store import oplog
from core.store.database import Transaction

Mutation = Callable[[RecordDoc, str], None]


class RecordTypeMismatchError(ValueError):
    """A record id is already used by a record of another type."""


@dataclass
class Loaded:
    """A record document and the digests of what was last derived from it."""

    doc: RecordDoc
    derived: dict[str, str]


def load_record(tx: Transaction, record_id: str, type_name: str, client_id: int) -> Loaded:
    """The record's document (empty if it does not exist yet)."""
    rows = tx.query("SELECT type, state, derived FROM record_states WHERE id = ?", (record_id,))
    if rows and rows[0][0] != type_name:
        raise RecordTypeMismatchError(f"record {record_id!r} is a {rows[0][0]}, not a {type_name}")
    if not rows:
        return Loaded(crdt.load(None, client_id), {})
    return Loaded(crdt.load(bytes(rows[0][1]), client_id), json.loads(rows[0][2]))


def store_record(tx: Transaction, record_id: str, type_name: str, loaded: Loaded) -> None:
    """Persist the document's full encoded state and re-derive its changed rows."""
    digests = materialize(tx, record_id, record_type(type_name), loaded.doc, loaded.derived)
    tx.execute(
        "INSERT INTO record_states (id, type, state, derived) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state, derived = excluded.derived",
        (record_id, type_name, loaded.doc.get_update(), json.dumps(digests, sort_keys=True)),
    )
    loaded.derived = digests


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
    store_record(tx, record_id, type_name, loaded)
    return oplog.append_local(tx, me.replica_id, record_id, type_name, update, deps, hlc, author)

"""The local write path beneath ClinicRecords: document change + rows + op, one transaction.

``change`` runs inside ``Database.write`` (which adds the audit entry), so a local write is
exactly one store transaction: record state, materialized rows and FTS index, op-log entry,
audit entry. Nothing is half-written.
"""

from __future__ import annotations

from collections.abc import Callable

from core.records import crdt
from core.records.crdt import RecordDoc
from core.records.materialize import materialize
from core.records.types import record_type
from core.store import oplog
from core.store.database import Transaction

Mutation = Callable[[RecordDoc, str], None]


class RecordTypeMismatchError(ValueError):
    """A record id is already used by a record of another type."""


def load_record(tx: Transaction, record_id: str, type_name: str, client_id: int) -> RecordDoc:
    """The record's document (empty if it does not exist yet)."""
    rows = tx.query("SELECT type, state FROM record_states WHERE id = ?", (record_id,))
    if rows and rows[0][0] != type_name:
        raise RecordTypeMismatchError(f"record {record_id!r} is a {rows[0][0]}, not a {type_name}")
    return crdt.load(bytes(rows[0][1]) if rows else None, client_id)


def store_record(tx: Transaction, record_id: str, type_name: str, doc: RecordDoc) -> None:
    """Persist the document's full encoded state and re-derive its rows."""
    tx.execute(
        "INSERT INTO record_states (id, type, state) VALUES (?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET state = excluded.state",
        (record_id, type_name, doc.get_update()),
    )
    materialize(tx, record_id, record_type(type_name), doc)


def change(
    tx: Transaction, author: str, record_id: str, type_name: str, mutate: Mutation
) -> oplog.Op:
    """Apply ``mutate(doc, hlc)`` to a record as one local op."""
    me = oplog.identity(tx)
    doc = load_record(tx, record_id, type_name, me.client_id)
    deps = doc.get_state()
    hlc = oplog.tick(tx, me.replica_id)
    with doc.transaction():
        mutate(doc, hlc)
    update = doc.get_update(deps)
    store_record(tx, record_id, type_name, doc)
    return oplog.append_local(tx, me.replica_id, record_id, type_name, update, deps, hlc, author)

"""Patients written in bulk into a replica, fast enough to seed a 1,000,000-record clinic.

The rows are exactly those the local write path (``core.records.changes.change``, one call
per patient) writes, so a server started on the replica holds what a real one would: each
patient's record state, derived rows and full-text entry (``changes.store_records``, which
batches its SQL across records), and one op per patient in the op log, with its own HLC,
signed in this replica's chain (``op_signer``) by the replica's key, as ``sign_new`` signs
a local op. What it saves: the per-record reads a write of an existing record needs (a new
patient has no state, no live values to supersede and nothing derived), one transaction per
5,000 patients instead of per 1,000, the op-log rows and the chain written with one
statement each per transaction instead of one per op. An audit entry per transaction, as
before.
"""

from __future__ import annotations

import dataclasses

from core.crypto import op_signature
from core.records import crdt
from core.records.changes import Loaded, store_records
from core.store import op_signer, oplog
from core.store.database import Database

CHUNK = 5_000  # patients per transaction
AUTHOR = "bench"
DEFAULT_FIELDS = (("given", "G"), ("birth_date", "1980-01-01"))


def patient_id(i: int) -> str:
    """The id of bench patient number ``i`` (as ``desktop_sync_bench`` numbers them)."""
    return f"p{i:07d}"


def bulk_patients(db: Database, count: int, first: int = 0, chunk: int = CHUNK) -> None:
    """``count`` new patients numbered from ``first`` (family name ``Fam{i:06d}``, given
    name ``G``, born 1980-01-01), one signed op each, ``chunk`` per transaction."""
    if count < 0 or first < 0:
        raise ValueError(f"count and first must not be negative: {count}, {first}")
    me = oplog.identity(db)
    end = first + count
    for start in range(first, end, chunk):
        stop = min(start + chunk, end)
        with db.write(AUTHOR, "patient.create", "patient", "many") as tx:
            signer = op_signer.current(tx)
            rows = tx.query("SELECT seq FROM version_vector WHERE origin = ?", (me.replica_id,))
            seq = int(rows[0][0]) if rows else 0
            chain = tx.query("SELECT value FROM meta WHERE key = ?", (op_signer.CHAIN_KEY,))
            if signer is not None and not chain and seq:
                raise ValueError("this replica holds unsigned ops of its own: sign them first")
            prev = bytes.fromhex(str(chain[0][0])) if chain else op_signature.GENESIS
            records: list[tuple[str, str, Loaded]] = []
            ops: list[oplog.Op] = []
            wall = counter = 0
            hlc = ""
            for i in range(start, stop):
                record_id = patient_id(i)
                doc = crdt.empty(me.client_id)
                deps = doc.get_state()
                # One tick per transaction, then the counter, as ticks within one
                # millisecond advance it (the wall part carries when it is full).
                if i == start:
                    wall, counter, _ = oplog.parse_hlc(oplog.tick(tx, me.replica_id))
                elif counter < oplog.HLC_MAX_COUNTER:
                    counter += 1
                else:
                    wall, counter = wall + 1, 0
                hlc = oplog.format_hlc(wall, counter, me.replica_id)
                with doc.transaction():
                    for field, value in (("family", f"Fam{i:06d}"), *DEFAULT_FIELDS):
                        crdt.write(doc, field, value, hlc, AUTHOR, supersede=[])
                update = doc.get_update(deps)
                seq += 1
                op = oplog.Op(me.replica_id, seq, record_id, "patient", update, deps, hlc, AUTHOR)
                if signer is not None:
                    chained = op_signer.op_chain(signer.clinic, op, prev)
                    sig = op_signature.sign(signer.key, chained)
                    op = dataclasses.replace(op, prev=prev, sig=sig, signer=signer.kind)
                    prev = chained
                ops.append(op)
                records.append((record_id, "patient", Loaded(doc, {}, None, fresh=True)))
            store_records(tx, records)
            # The same rows and version vector as appending them one by one.
            oplog.insert_remote(tx, ops)
            tx.execute("UPDATE meta SET value = ? WHERE key = 'hlc'", (hlc,))
            if signer is not None:
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (op_signer.CHAIN_KEY, prev.hex()),
                )

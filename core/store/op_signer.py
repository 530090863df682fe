"""This replica's op-signing key, and signing its ops (core.crypto.op_signature).

A replica signs with one of:

- ``device``: the private key of its device certificate, once that certificate is bound
  to this replica (issued at enrollment or pairing, or re-issued at the first sync after
  an upgrade). It signs the ops this replica originates.
- ``clinic-ca``: the clinic CA's key, on the clinic server. It signs the server's own ops
  and vouches for ops that existed before signing, or that a workstation running an older
  Careline pushed over its authenticated connection (recorded as signed by the clinic
  CA, never as the device's own signature).

The key is kept in ``meta`` (inside the encrypted database, like the device credential it
comes from) and parsed once per process. Ops made before a replica had a bound key stay
unsigned in its log until :func:`sign_pending` signs them; they are never sent unsigned to
a replica that verifies (core.records.op_trust).
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs, op_signature
from core.store.database import Database, Transaction

if TYPE_CHECKING:
    from core.store.oplog import Op

SIGNER_KEY = "op_signer"
CHAIN_KEY = "op_chain"  # chain value of this replica's last signed own op
SignerKind = Literal["device", "clinic-ca"]


@dataclass(frozen=True)
class Signer:
    """A parsed signing key and the clinic its signatures are for."""

    kind: SignerKind
    key: ec.EllipticCurvePrivateKey
    clinic: bytes  # op_signature.clinic_tag of the clinic CA


_cache: dict[str, Signer] = {}
_cache_lock = threading.Lock()


def install(tx: Transaction, kind: SignerKind, key_pem: str, ca_certificate: str) -> None:
    """Sign this replica's ops with ``key_pem`` from now on (the caller audits the write).

    The chain restarts from the last own op already signed, so :func:`sign_pending` must
    follow for ops made before (callers use :func:`sign_pending` right after).
    """
    certs.load_private_key(key_pem.encode("ascii"))  # refuse a malformed key now
    value = json.dumps({"kind": kind, "key": key_pem, "ca": ca_certificate})
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (SIGNER_KEY, value),
    )


def current(db: Transaction | Database) -> Signer | None:
    """This replica's signer, or None when it has no bound key yet."""
    rows = db.query("SELECT value FROM meta WHERE key = ?", (SIGNER_KEY,))
    if not rows:
        return None
    raw = str(rows[0][0])
    with _cache_lock:
        found = _cache.get(raw)
    if found is None:
        value = json.loads(raw)
        key = certs.load_private_key(str(value["key"]).encode("ascii"))
        kind: SignerKind = "clinic-ca" if value["kind"] == "clinic-ca" else "device"
        found = Signer(kind, key, op_signature.clinic_tag(str(value["ca"])))
        with _cache_lock:
            _cache[raw] = found
    return found


def op_chain(clinic: bytes, op: Op, prev: bytes) -> bytes:
    """The chain value of ``op`` after ``prev`` (see core.crypto.op_signature)."""
    digest = op_signature.digest(
        clinic, op.origin, op.seq, op.hlc, op.author, op.record_id, op.record_type, op.deps,
        op.update,
    )  # fmt: skip
    return op_signature.chain(prev, digest)


def _set_chain(tx: Transaction, value: bytes) -> None:
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (CHAIN_KEY, value.hex()),
    )


def sign_new(tx: Transaction, op: Op) -> Op:
    """``op`` (a new local op) signed, if this replica has a signer; else as it is.

    An unsigned own op before it means the chain cannot continue yet: the op is left
    unsigned too, and :func:`sign_pending` signs them all in order.
    """
    signer = current(tx)
    if signer is None:
        return op
    rows = tx.query("SELECT value FROM meta WHERE key = ?", (CHAIN_KEY,))
    if rows:
        prev = bytes.fromhex(str(rows[0][0]))
    elif tx.query("SELECT 1 FROM oplog WHERE origin = ? LIMIT 1", (op.origin,)):
        return op  # own ops made before the key: sign_pending signs them, then this chain
    else:
        prev = op_signature.GENESIS
    value = op_chain(signer.clinic, op, prev)
    _set_chain(tx, value)
    return dataclasses.replace(
        op, prev=prev, sig=op_signature.sign(signer.key, value), signer=signer.kind
    )


def sign_pending(db: Database, actor: str) -> int:
    """Sign the unsigned ops this replica may vouch for; returns how many (audited).

    A device signs its own origin's ops, made before it held a bound key. The clinic CA
    (the server) signs every unsigned op it holds: it vouches for what it accepted before
    ops were signed, and for ops pushed by workstations running an older Careline.
    """
    signer = current(db)
    if signer is None:
        return 0
    me = str(db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    if signer.kind == "clinic-ca":
        unsigned = db.query("SELECT DISTINCT origin FROM oplog WHERE signer = ''")
    else:
        unsigned = db.query(
            "SELECT DISTINCT origin FROM oplog WHERE origin = ? AND signer = ''", (me,)
        )
    if not unsigned:
        return 0
    from core.store.oplog import OP_COLUMNS, op_from_row

    signed = 0
    details = {"signer": signer.kind, "origins": sorted(str(o) for (o,) in unsigned)}
    with db.write(actor, "oplog.sign", "oplog", signer.kind, details) as tx:
        for (origin,) in unsigned:
            prev = op_signature.GENESIS
            rows = tx.query(
                f"SELECT {OP_COLUMNS} FROM oplog WHERE origin = ? ORDER BY seq", (str(origin),)
            )
            for row in rows:
                op = op_from_row(row)
                if op.signer:
                    prev = op_chain(signer.clinic, op, op.prev)
                    continue
                value = op_chain(signer.clinic, op, prev)
                tx.execute(
                    "UPDATE oplog SET prev = ?, sig = ?, signer = ? WHERE origin = ? AND seq = ?",
                    (prev, op_signature.sign(signer.key, value), signer.kind, op.origin, op.seq),
                )
                prev = value
                signed += 1
            if origin == me:
                _set_chain(tx, prev)
    return signed

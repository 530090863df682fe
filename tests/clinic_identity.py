"""One clinic CA for the whole test run, and bound device identities from it.

Replicas that sync in-process (tests/unit/sync/replicas.py and the like) join this
clinic the way an enrolled or paired workstation does: they trust its CA and sign their
ops with a device certificate bound to their replica, so every op they exchange is
verified exactly as in production (core.records.op_trust).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs, op_signature
from core.records import op_trust
from core.store import op_signer
from core.store.database import Database
from core.store.oplog import Op

if TYPE_CHECKING:
    from core.records.workstation import Workstation


@functools.cache
def test_ca() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """The test clinic's CA key and certificate."""
    return certs.create_ca("testclinic")


def issue(db: Database, device_id: str = "test-device") -> tuple[str, str]:
    """A device certificate bound to ``db``'s replica, and its private key (PEM)."""
    ca_key, ca_pem = test_ca()
    key = certs.new_private_key()
    csr = certs.make_csr(key, device_id, op_trust.binding_for(db))
    cert = certs.sign_device(ca_key, ca_pem, csr, device_id)
    return cert, certs.private_key_pem(key).decode("ascii")


def join_test_clinic(db: Database, actor: str = "setup") -> None:
    """Make ``db`` a signing device of the test clinic (once: a device keeps its key, so
    ops it signed before keep verifying)."""
    if op_signer.current(db) is not None:
        return
    cert, key = issue(db)
    op_trust.install_device(db, cert, key, test_ca()[1], actor)


def vouched(ops: Sequence[Op]) -> list[Op]:
    """``ops`` (made before signing, e.g. recorded history) signed by the test clinic's CA,
    as the clinic server vouches for ops that predate signing: each origin's ops chained in
    the order given."""
    ca_key, ca_pem = test_ca()
    clinic = op_signature.clinic_tag(ca_pem)
    chains: dict[str, tuple[int, bytes]] = {}
    out = []
    for op in ops:
        seq, prev = chains.get(op.origin, (0, op_signature.GENESIS))
        if seq + 1 != op.seq:
            prev = op_signature.GENESIS  # not the next op of its origin: a run of its own
        value = op_signer.op_chain(clinic, op, prev)
        chains[op.origin] = (op.seq, value)
        signature = op_signature.sign(ca_key, value)
        out.append(dataclasses.replace(op, prev=prev, sig=signature, signer="clinic-ca"))
    return out


def signed_as(db: Database, ops: Sequence[Op], prev: bytes = op_signature.GENESIS) -> list[Op]:
    """``ops`` signed with ``db``'s own device key, chained from ``prev`` in the order given:
    what a device running other code (or a hostile one) could send under its own name."""
    signer = op_signer.current(db)
    assert signer is not None, "the replica has joined no clinic"
    out = []
    for op in ops:
        value = op_signer.op_chain(signer.clinic, op, prev)
        out.append(dataclasses.replace(
            op, prev=prev, sig=op_signature.sign(signer.key, value), signer=signer.kind
        ))  # fmt: skip
        prev = value
    return out


def certificate_of(db: Database) -> str:
    """``db``'s own bound device certificate (sent along with its ops)."""
    me = str(db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    [pem] = op_trust.certificates_for(db, [me])
    return pem


def two_desks(root: Path) -> tuple[Workstation, Workstation]:
    """Desk A, where the Riverside clinic began (its admin signed in), and desk B, prepared
    to join it as that admin; both signing devices of the test clinic, not yet synced."""
    from core.crypto.kdf import FAST_PARAMS
    from core.records.workstation import Workstation
    from tests.conftest import PASSWORD

    a = Workstation(root / "a", kdf_params=FAST_PARAMS)
    a.init("Riverside Clinic", "admin", "Ada Admin", PASSWORD)
    b = Workstation(root / "b", kdf_params=FAST_PARAMS)
    b.prepare_join("admin", PASSWORD)
    for desk in (a, b):
        join_test_clinic(desk.database)
    a.sign_in("admin", PASSWORD)
    return a, b

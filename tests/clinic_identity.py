"""One clinic CA for the whole test run, and bound device identities from it.

Replicas that sync in-process (tests/unit/sync/replicas.py and the like) join this
clinic the way an enrolled or paired workstation does: they trust its CA and sign their
ops with a device certificate bound to their replica, so every op they exchange is
verified exactly as in production (core.records.op_trust).
"""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs
from core.records import op_trust
from core.store.database import Database


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
    """Make ``db`` a signing device of the test clinic."""
    cert, key = issue(db)
    op_trust.install_device(db, cert, key, test_ca()[1], actor)

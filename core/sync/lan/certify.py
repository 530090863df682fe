"""Binding a paired workstation's certificate to its replica after an upgrade.

A workstation paired by Careline 0.1.0 holds a device certificate that names no replica,
so it cannot sign its ops (core.records.op_trust refuses unsigned ops). Only the clinic CA
holder can issue a bound one: at the start of a LAN sync, such a workstation sends a
request naming its replica and Yjs client, with its existing key, over the mutual-TLS sync
connection (``POST /v1/certify``), which authenticates it. The CA holder keeps the device
id, refuses a replica already bound to another device, and certifies a device once: asked
again, it sends the same certificate, and a device already bound is refused. A peer that is
not the CA holder says so, and the workstation tries again with the next peer or sync.
"""

from __future__ import annotations

import logging

from core.crypto import certs
from core.records import op_trust
from core.store.database import Database
from core.sync.lan import identity as ident
from core.sync.lan.identity import LanIdentity
from core.sync.lan.transport import LanTransport
from core.sync.transport import TransportError

log = logging.getLogger(__name__)


def certify_if_unbound(db: Database, transport: LanTransport, actor: str) -> LanIdentity | None:
    """Get this workstation a bound certificate from the peer if it needs one; returns the
    new identity (kept, and signing from now on), or None if none was needed or the peer
    could not give one (logged: sync goes on, and this workstation's ops wait unsigned)."""
    identity = ident.load_identity(db)
    if identity is None or ident.is_bound(identity) or ident.has_ca_key(db):
        return None
    if db.query("SELECT 1 FROM meta WHERE key = ?", (ident.IDENTITY_KEY,)) == []:
        return None  # the server enrollment's certificate: the server re-issues it
    key = certs.load_private_key(identity.private_key_pem.encode("ascii"))
    binding = op_trust.binding_for(db)
    try:
        cert = transport.certify(certs.make_csr(key, identity.device_id, binding))
        certs.verify_device(cert, identity.ca_certificate, set())
        parsed = certs.load_certificate(cert)
    except (TransportError, certs.CertificateError) as exc:
        log.warning("this workstation's ops stay unsigned for now: %s", exc)
        return None
    if parsed.public_key() != key.public_key() or certs.binding_of(parsed) != binding:
        log.warning("the peer sent a certificate not bound to this workstation; ignored")
        return None
    bound = LanIdentity(identity.device_id, cert, identity.private_key_pem, identity.ca_certificate)
    ident.save_identity(db, bound, actor)
    return bound

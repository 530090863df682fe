"""Re-certifying a device enrolled before ops were signed (Careline 0.1.0).

Its certificate names no replica, so it cannot sign ops (core.crypto.certs: a device key
speaks for the one replica its certificate is bound to). At the start of a sync with the
server, such a workstation asks ``POST /v1/certify`` (authenticated by its device token)
for a certificate bound to its replica, with a new key, keeps the new credential and signs
its pending own ops (core.records.op_trust.install_device). A server that predates
signing (no such endpoint) leaves the credential as it is: its ops stay unsigned, and a
newer server vouches for them when it receives them.
"""

from __future__ import annotations

import dataclasses

import httpx

from core.crypto import certs
from core.errors import CarelineError
from core.records import op_trust
from core.store.database import Database
from core.sync.enroll import ServerCredential, adopt_credential, tls_trust
from core.sync.reach import unreachable
from core.sync.transport import TransportError


class CertifyError(CarelineError):
    """The server refused to bind this device's certificate; the message says why."""


def is_bound_here(db: Database, credential: ServerCredential) -> bool:
    """Whether the credential's certificate is bound to this replica."""
    try:
        binding = certs.binding_of(certs.load_certificate(credential.certificate))
    except certs.CertificateError:
        return False
    return binding is not None and binding == op_trust.binding_for(db)


def ensure_bound(db: Database, credential: ServerCredential, actor: str) -> ServerCredential:
    """The credential, re-certified first if its certificate is not bound to this replica
    (see the module docstring). CertifyError if the server refuses (a replica another
    device is bound to, for one), TransportError if it cannot be reached (as a sync would
    fail: offline); a server without the endpoint changes nothing. A credential holding
    no certificate at all has nothing to re-certify."""
    if not credential.certificate or is_bound_here(db, credential):
        return credential
    key = certs.new_private_key()
    csr = certs.make_csr(key, credential.device_id, op_trust.binding_for(db))
    url = credential.server_url.rstrip("/") + "/v1/certify"
    try:
        with httpx.Client(verify=tls_trust(credential.server_ca_pem), timeout=30) as client:
            response = client.post(
                url, json={"csr": csr}, headers={"Authorization": f"Bearer {credential.token}"}
            )
    except httpx.HTTPError as exc:
        raise TransportError(unreachable(credential.server_url, exc)) from exc
    if response.status_code in (404, 405):
        return credential  # a server that predates op signing
    if response.status_code != 200:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = None
        raise CertifyError(
            "the server refused to bind this workstation's certificate to its replica: "
            f"{detail or response.status_code}"
        )
    data = response.json()
    renewed = dataclasses.replace(
        credential,
        certificate=str(data["certificate"]),
        private_key_pem=certs.private_key_pem(key).decode("ascii"),
        ca_certificate=str(data["ca_certificate"]),
    )
    adopt_credential(db, renewed, actor)
    return renewed

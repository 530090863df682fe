"""Joining a clinic through a LAN peer that shows a pairing code.

The joiner connects to the peer's pairing listener with trust on first use, which is
acceptable only because the code authenticates both ways over that very TLS session:

- the joiner sends ``HMAC(hash(code), server certificate fingerprint | CSR)``; a man in the
  middle presents a different certificate, so the real peer rejects the relayed proof, and
  without the code it cannot compute a new one;
- the peer answers with ``HMAC(hash(code), fingerprint | certificate | CA)``, so the joiner
  knows the CA it is about to trust came from whoever showed the code.

:func:`pair_and_sync` is the whole join as ``careline pair join`` and the first-run wizard
both do it: redeem the code, keep the identity, first sync over mutual TLS.
"""

from __future__ import annotations

import hmac
import http.client
import json
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509

from core.crypto import certs
from core.errors import CarelineError
from core.records import op_trust, replication
from core.store.database import Database
from core.sync.clock import clock_hint
from core.sync.lan import identity as ident
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity
from core.sync.lan.transport import LanTransport, ReplyTooLargeError, read_reply
from core.sync.session import SyncReport, sync

log = logging.getLogger(__name__)

# A peer's pairing listener is on the port after its sync port.
PAIRING_PORT_OFFSET = 1
# A pairing reply holds two certificates and a proof (a few KiB); the peer is not trusted
# yet when it is read, so it is read no further than this.
MAX_PAIRING_REPLY = 64 * 1024


class PairingError(CarelineError):
    """Pairing was refused or failed; the message says why."""


def split_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), with a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise PairingError(f"peer address {address!r} must be HOST:PORT")
    return host.strip("[]"), int(port)


def join(
    host: str,
    pairing_port: int,
    code: str,
    binding: certs.ReplicaBinding | None = None,
    timeout: float = 30.0,
) -> LanIdentity:
    """Redeem ``code`` at the peer's pairing listener; returns this device's new identity.

    ``binding`` names the replica the certificate will sign ops for (the replica exists
    before pairing); the peer refuses it if another device is already bound to it.
    """
    key = certs.new_private_key()
    csr = certs.make_csr(key, "pending", binding)
    conn = http.client.HTTPSConnection(
        host, pairing_port, timeout=timeout, context=tls.tofu_client_context()
    )
    try:
        try:
            conn.connect()
            assert isinstance(conn.sock, ssl.SSLSocket)
            der = conn.sock.getpeercert(binary_form=True)
            if der is None:
                raise PairingError("the peer presented no certificate")
            server_pem = tls.der_to_pem(der)
            fingerprint = certs.fingerprint(server_pem)
            secret = ident.code_secret(code)
            body = json.dumps({"csr": csr, "proof": ident.client_proof(secret, fingerprint, csr)})
            conn.request(
                "POST", "/v1/pair", body=body, headers={"Content-Type": "application/json"}
            )
            response = conn.getresponse()
            payload = read_reply(response, MAX_PAIRING_REPLY, f"{host}:{pairing_port}")
        except ReplyTooLargeError as exc:
            raise PairingError(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise PairingError(_unreachable(host, pairing_port, exc)) from exc
    finally:
        conn.close()
    try:
        doc = json.loads(payload)
    except ValueError:
        doc = {}
    if response.status != 201:
        detail = doc.get("detail") if isinstance(doc, dict) else None
        raise PairingError(f"the peer refused pairing: {detail or response.status}")
    try:
        device_id, cert, ca_pem, proof = (
            doc["device_id"],
            doc["certificate"],
            doc["ca_certificate"],
            doc["proof"],
        )
    except (KeyError, TypeError):
        raise PairingError("the peer sent a malformed pairing reply") from None
    expected = ident.server_proof(secret, fingerprint, cert, ca_pem)
    if not isinstance(proof, str) or not hmac.compare_digest(expected, proof):
        raise PairingError("the peer could not prove it knows the code; not trusting it")
    try:
        certs.verify_device(cert, ca_pem, set())
        certs.verify_device(server_pem, ca_pem, set())
        issued = x509.load_pem_x509_certificate(cert.encode("ascii")).public_key()
    except (certs.CertificateError, ValueError, UnicodeEncodeError) as exc:
        raise PairingError(
            f"the peer sent an unusable certificate: {exc}{clock_hint(exc)}"
        ) from None
    if issued != key.public_key():
        raise PairingError("the peer's certificate is not for this workstation's key")
    if binding is not None and certs.binding_of(certs.load_certificate(cert)) != binding:
        raise PairingError("the peer's certificate is not bound to this workstation's replica")
    return LanIdentity(
        device_id=device_id,
        certificate=cert,
        private_key_pem=certs.private_key_pem(key).decode("ascii"),
        ca_certificate=ca_pem,
    )


@dataclass(frozen=True)
class Joined:
    """A finished LAN join: this device's identity, what the first sync did, and how many
    records this workstation holds after it (each record once: not the snapshot's records
    plus the ops pulled, which counts a record changed after the snapshot twice)."""

    identity: LanIdentity
    report: SyncReport
    records: int


def pair_and_sync(
    db: Database,
    host: str,
    port: int,
    code: str,
    actor: str,
    on_progress: Callable[[SyncReport], object] | None = None,
) -> Joined:
    """Join the clinic of the peer whose sync listener is ``host:port`` with its ``code``.

    Redeems the code at the pairing listener (``port + 1``), saves the identity in ``db``
    (audited as ``actor``), then runs the first sync over mutual TLS. Raises
    :class:`PairingError` if pairing failed (nothing was saved), or the sync's
    ``SyncError``/``TransportError`` if only the first sync failed (the identity is kept,
    so a later ``careline sync --peer`` can finish the job).
    """
    return pair_and_sync_first(db, [f"{host}:{port}"], code, actor, on_progress)


def pair_and_sync_first(
    db: Database,
    peers: Sequence[str],
    code: str,
    actor: str,
    on_progress: Callable[[SyncReport], object] | None = None,
    on_skipped: Callable[[str], object] | None = None,
) -> Joined:
    """:func:`pair_and_sync` with the first of ``peers`` (sync listeners, HOST:PORT, in the
    order given) whose pairing listener answers and proves it knows ``code``.

    mDNS names no one in particular: in a clinic with several workstations only the one
    holding the clinic's LAN CA has a pairing listener, and anyone may announce. A peer
    that fails (no listener, refused, no valid proof) is skipped and ``on_skipped`` told
    why; when every one failed, a single peer's error is raised as it is, several raise a
    :class:`PairingError` listing each address and why.
    """
    binding = op_trust.binding_for(db)
    failures: list[str] = []
    for address in peers:
        host, port = split_address(address)
        try:
            identity = join(host, port + PAIRING_PORT_OFFSET, code, binding)
        except PairingError as exc:
            if len(peers) == 1:
                raise
            failures.append(f"{address}: {exc}")
            if on_skipped is not None:
                on_skipped(f"LAN peer {address} skipped: {exc}")
            continue
        ident.save_identity(db, identity, actor)
        with LanTransport(f"{host}:{port}", identity) as transport:
            report = sync(db, transport, actor, on_progress=on_progress)
        return Joined(identity, report, replication.records_held(db))
    if not failures:
        raise PairingError("no LAN peer to pair with")
    raise PairingError(
        f"none of the {len(failures)} LAN peers seen pairs with this code ("
        + "; ".join(failures)
        + "); give the address of the workstation showing the code with --peer HOST:PORT"
    )


def _unreachable(host: str, pairing_port: int, exc: BaseException) -> str:
    """Why the pairing listener at ``host:pairing_port`` could not be reached, in words a
    person can act on (the socket's own text is logged, not shown: README "Sync")."""
    log.info("pairing with %s:%s failed: %s: %s", host, pairing_port, type(exc).__name__, exc)
    where = (
        f"the workstation at {host}, pairing port {pairing_port} (the port given with --peer "
        "is its sync port; pairing uses the next one)"
    )
    if isinstance(exc, ConnectionRefusedError):
        return (
            f"cannot reach {where}: nothing there accepted the connection (check the "
            "address, and that 'careline serve' runs there on the workstation that showed "
            "the code)"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"cannot reach {where}: it did not answer in time (check the address and network)"
    if isinstance(exc, socket.gaierror):
        return f"cannot reach {where}: no computer of that name was found (check the address)"
    return f"cannot reach {where} (check the address and this computer's network connection)"

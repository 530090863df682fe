"""TLS contexts for LAN peers, built from PEM held in memory.

``ssl.SSLContext.load_cert_chain`` only reads files. The device key is handed to it by
:func:`core.platform.tls_keys.load_cert_chain`: on Linux through an anonymous in-memory
file, on macOS through a named pipe, so it never touches the disk; on Windows through a
short-lived private temporary file, zeroed and deleted right after loading. Python cannot
wipe its own copies of the PEM strings.
"""

from __future__ import annotations

import contextlib
import logging
import os
import ssl
import tempfile

from cryptography import x509

from core.crypto import certs
from core.platform import tls_keys
from core.sync.lan.identity import LanIdentity

log = logging.getLogger(__name__)

# X509_V_FLAG_NO_CHECK_TIME (OpenSSL 1.1.0 and later); Python's ssl module names no constant.
_NO_CHECK_TIME = ssl.VerifyFlags(0x200000)


def _load_chain(context: ssl.SSLContext, identity: LanIdentity) -> None:
    tls_keys.load_cert_chain(context, identity.certificate, identity.private_key_pem)


def _base(purpose: ssl.Purpose) -> ssl.SSLContext:
    context = ssl.SSLContext(
        ssl.PROTOCOL_TLS_SERVER if purpose is ssl.Purpose.CLIENT_AUTH else ssl.PROTOCOL_TLS_CLIENT
    )
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # OpenSSL would also refuse a peer certificate that is "not yet valid" by this
    # computer's clock, so a workstation whose clock is behind could not sync at all. Its
    # date checks are off here; both sides check expiry themselves right after the
    # handshake (certs.verify_device, with the CA chain and revocation).
    context.verify_flags |= _NO_CHECK_TIME
    return context


def server_context(identity: LanIdentity, crl_pem: str | None = None) -> ssl.SSLContext:
    """Mutual TLS, server side: a client certificate chained to the clinic CA is required.

    ``crl_pem``: the clinic CA's signed revocation list. A client certificate it lists is
    then refused in the handshake itself, OpenSSL sending the TLS alert "certificate
    revoked", so the refused workstation can tell that refusal from a busy peer. A list not
    signed by this CA is left out (the server still refuses what it lists after the
    handshake, from the serials it holds)."""
    context = _base(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, identity)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=identity.ca_certificate)
    if crl_pem is not None and _usable_crl(crl_pem, identity.ca_certificate):
        _load_crl(context, crl_pem)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def _usable_crl(crl_pem: str, ca_pem: str) -> bool:
    """True if ``crl_pem`` is the clinic CA's and the CA may sign revocation lists: OpenSSL
    would otherwise refuse every client (a CRL check that cannot be done fails)."""
    try:
        certs.read_crl(crl_pem, ca_pem)
        usage = certs.load_certificate(ca_pem).extensions.get_extension_for_class(x509.KeyUsage)
    except x509.ExtensionNotFound:
        return True
    except certs.CertificateError as exc:
        log.warning("the revocation list held here is not the clinic CA's: %s", exc)
        return False
    return bool(usage.value.crl_sign)


def _load_crl(context: ssl.SSLContext, crl_pem: str) -> None:
    """Add a CRL to the context's trust store. Python loads CRLs only from a file (its
    in-memory ``cadata`` takes certificates only); a revocation list is public, so a
    temporary file, deleted at once, is fine."""
    handle, path = tempfile.mkstemp(prefix="careline-crl-", suffix=".pem")
    try:
        with os.fdopen(handle, "w", encoding="ascii") as out:
            out.write(crl_pem)
        context.load_verify_locations(cafile=path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def pairing_server_context(identity: LanIdentity) -> ssl.SSLContext:
    """Pairing listener: the joiner has no certificate yet; the pairing code authenticates."""
    context = _base(ssl.Purpose.CLIENT_AUTH)
    _load_chain(context, identity)
    context.verify_mode = ssl.CERT_NONE
    return context


def client_context(identity: LanIdentity) -> ssl.SSLContext:
    """Mutual TLS, client side: peers hold device certs (no host names), chained to our CA."""
    context = _base(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=identity.ca_certificate)
    _load_chain(context, identity)
    return context


def tofu_client_context() -> ssl.SSLContext:
    """Pairing, client side: trust on first use, acceptable only because the code's proof
    is bound to the certificate seen here."""
    context = _base(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def der_to_pem(der: bytes) -> str:
    """A DER certificate (as ``getpeercert(binary_form=True)`` returns it) as PEM."""
    return ssl.DER_cert_to_PEM_cert(der)


def fingerprint_der(der: bytes) -> str:
    """SHA-256 fingerprint of a DER certificate, in certs.fingerprint's format."""
    return certs.fingerprint(der_to_pem(der))

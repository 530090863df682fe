"""Trusting a clinic server by the SHA-256 fingerprint of its CA certificate (silent
enrollment: a fingerprint fits in an MSI property or a Group Policy string, a PEM file
does not).

The TLS handshake is made without verification only to see which certificates the server
presents (no request is sent, so no enrollment code leaves this computer); the one whose
fingerprint matches becomes the pinned CA, and the enrollment itself then runs over a fully
verified connection that trusts that certificate alone (chain and host name checked), so a
server that presents the right certificate but lacks its key is still refused.

Python 3.11 has no public way to read the chain a server presents: the private
``get_unverified_chain`` of the SSL object is used when present (CPython 3.10+), else the
server's own certificate alone is compared (enough for ``careline-server``'s generated,
self-signed certificate). A server that does not send its CA in the handshake (most send
only their own certificate and intermediates) cannot be pinned by fingerprint: give the
CA certificate as ``server_ca_file`` then.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from urllib.parse import urlsplit

from core.sync.enroll import EnrollmentError, ServerUnreachableError
from core.sync.reach import unreachable

_DER = 2  # _ssl.ENCODING_DER, which the ssl module does not re-export
_HEX = frozenset("0123456789abcdef")


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate, lowercase hex (as server_ca_fingerprint is normalised)."""
    return hashlib.sha256(der).hexdigest()


def pem_fingerprint(pem: str) -> str:
    """SHA-256 of the first certificate in ``pem``."""
    try:
        return fingerprint(ssl.PEM_cert_to_DER_cert(pem.strip()))
    except ValueError as exc:
        raise EnrollmentError(f"not a PEM certificate: {exc}", "ca_path") from None


def presented_certificates(server_url: str, timeout: float = 10) -> list[bytes]:
    """The DER certificates the server presents in its TLS handshake (not verified)."""
    parts = urlsplit(server_url)
    host = parts.hostname or ""
    port = parts.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            found: list[bytes] = []
            leaf = tls.getpeercert(binary_form=True)
            if leaf:
                found.append(leaf)
            chain = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
            for cert in chain() if callable(chain) else []:
                der = bytes(cert.public_bytes(_DER))
                if der not in found:
                    found.append(der)
            return found
    except (OSError, ssl.SSLError) as exc:
        raise ServerUnreachableError(unreachable(server_url, exc), "server_url") from exc


def colon_hex(digits: str) -> str:
    """A fingerprint's lowercase hex digits as ``careline-server`` prints them (AB:CD:...),
    for a person to compare whole."""
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2)).upper()


def typed_fingerprint(typed: str) -> str | None:
    """``typed`` read as a SHA-256 fingerprint (hex, with or without colons or spaces, any
    case): its 64 lowercase hex digits. None when it does not look like a fingerprint at
    all (a file name, say); ValueError, in words, when it looks like one but is not whole
    (too few or too many digits, cut short with "...", a SHA-1 one)."""
    text = typed.strip()
    # As ``openssl x509 -fingerprint -sha256`` prints it: "sha256 Fingerprint=AB:CD:...".
    label, equals, rest = text.partition("=")
    if equals and label.strip().lower() in ("sha256 fingerprint", "sha2-256 fingerprint"):
        text = rest.strip()
    cut = text.endswith(("...", "\u2026"))
    digits = text.rstrip(".\u2026").replace(":", "").replace(" ", "").lower()
    looks = bool(digits) and all(ch in _HEX for ch in digits)
    if not looks or (len(digits) < 16 and ":" not in text and not cut):
        return None
    if len(digits) == 64 and not cut:
        return digits
    if cut:
        why = f"it ends in “...”, so it was cut short ({len(digits)} hex digits of 64)"
    elif len(digits) == 40:
        why = "it has 40 hex digits, a SHA-1 fingerprint; the SHA-256 one has 64"
    else:
        why = f"it has {len(digits)} hex digits, and a SHA-256 fingerprint has 64"
    raise ValueError(f"that is not a whole SHA-256 fingerprint: {why}")


def ca_for_fingerprint(
    server_url: str,
    expected: str,
    given_as: str = "given as server_ca_fingerprint",
    otherwise: str = "give the CA certificate as server_ca_file",
) -> str:
    """The PEM of the certificate the server presents whose SHA-256 is ``expected``
    (normalised lowercase hex); EnrollmentError if none is, naming the fingerprint
    ``given_as`` and, whole, every certificate presented, and saying what to do
    ``otherwise``."""
    presented = presented_certificates(server_url)
    for der in presented:
        if fingerprint(der) == expected:
            return ssl.DER_cert_to_PEM_cert(der)
    # Whole, as careline-server prints them: a person compares them digit by digit.
    seen = ", ".join(colon_hex(fingerprint(d)) for d in presented) or "none"
    raise EnrollmentError(
        f"the server at {server_url} presented no certificate with the SHA-256 fingerprint "
        f"{given_as} ({colon_hex(expected)}; it presented {seen}), so nothing was sent to "
        f"it. Check the fingerprint with IT, or {otherwise}",
        "ca_path",
    )

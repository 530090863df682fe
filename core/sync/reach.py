"""Why the clinic server or a LAN peer could not be reached, in words a person can act on.

A failed connection's own text ("[Errno 111] Connection refused", "[SSL:
CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in
certificate chain (_ssl.c:1006)", an httpx class name) means nothing at a front desk. Joining
(enrollment), fetching the server's certificate for a pin and syncing (with the server or a
peer) all say instead which of a few things went wrong (nothing answered, the name was not
found, no answer in time, the certificate was not accepted) and what to check; the exception
itself goes to the log at info level, for whoever looks into it (never to a one-shot
command's stderr, which the person reads: README "Sync").
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx

from core.sync.clock import clock_hint

log = logging.getLogger(__name__)

# How OpenSSL, the resolver and httpx word what the exception classes do not tell apart
# (httpx wraps the socket's error in its own, and its message is all that is kept of some).
_CERTIFICATE_WORDS = ("certificate_verify_failed", "certificate verify failed")
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH, and their words.
_NAME_MISMATCH_CODES = (62, 64)
_NAME_MISMATCH_WORDS = ("hostname mismatch", "ip address mismatch")
_REFUSED_WORDS = ("connection refused", "actively refused")
_NAME_WORDS = (
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "no address associated",
    "temporary failure in name resolution",
)
_NO_ROUTE = (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from, outermost first."""
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def is_name_mismatch(exc: BaseException) -> bool:
    """The server's certificate is trusted but does not name the address it was reached
    by: IT can add the name at the server (TLS_NAMES), so trying again later may work."""
    return any(
        getattr(e, "verify_code", None) in _NAME_MISMATCH_CODES
        or any(w in str(e).lower() for w in _NAME_MISMATCH_WORDS)
        for e in _chain(exc)
    )


def _verification_failed(exc: BaseException) -> bool:
    return any(
        isinstance(e, ssl.SSLCertVerificationError)
        or any(w in str(e).lower() for w in _CERTIFICATE_WORDS)
        for e in _chain(exc)
    )


def is_handshake_failure(exc: BaseException) -> bool:
    """The TLS handshake failed, but not over the certificate (the server or something in
    front of it broke it off, or spoke no TLS): a server-side matter that may be mended."""
    return not _verification_failed(exc) and any(isinstance(e, ssl.SSLError) for e in _chain(exc))


def is_certificate_problem(exc: BaseException) -> bool:
    """The TLS handshake refused the server's certificate (not trusted, expired): waiting
    will not mend it. A certificate that does not name the address used, and a handshake
    broken off for other reasons, are not this: see :func:`is_name_mismatch` and
    :func:`is_handshake_failure`."""
    return _verification_failed(exc) and not is_name_mismatch(exc)


def certificate_names(server_url: str, timeout: float = 5) -> list[str] | None:
    """The names the certificate the server at ``server_url`` presents is valid for, read
    from a handshake that verifies nothing and sends nothing; None if it cannot be read."""
    from cryptography import x509

    parts = urlsplit(server_url)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((parts.hostname or "", parts.port or 443), timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        if der is None:
            return None
        cert = x509.load_der_x509_certificate(der)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound) as exc:
        log.info("could not read the names of the certificate at %s: %s", server_url, exc)
        return None
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return [*san.get_values_for_type(x509.DNSName), *ips]


def _kind(exc: BaseException) -> str:
    """Which of the few failures a person can act on ``exc`` is: ``name_mismatch``,
    ``certificate``, ``handshake``, ``timeout``, ``no_name``, ``refused``, ``no_route``,
    or ``other``."""
    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain).lower()
    if is_name_mismatch(exc):
        return "name_mismatch"
    if is_certificate_problem(exc):
        return "certificate"
    if is_handshake_failure(exc):
        return "handshake"
    if any(isinstance(e, (httpx.TimeoutException, TimeoutError)) for e in chain):
        return "timeout"
    if any(isinstance(e, socket.gaierror) for e in chain) or any(w in text for w in _NAME_WORDS):
        return "no_name"
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or any(
        w in text for w in _REFUSED_WORDS
    ):
        return "refused"
    if any(isinstance(e, OSError) and e.errno in _NO_ROUTE for e in chain):
        return "no_route"
    return "other"


def _log_detail(what: str, exc: BaseException) -> None:
    """The connection's own text, for whoever looks into it: at info level, so the
    long-running commands' logs keep it (``careline-server run``, ``careline serve``, and
    any command run with ``CARELINE_LOG_LEVEL=info``) while a person at a terminal, who is
    told in plain words, does not get it on stderr a second time."""
    log.info("cannot reach %s: %s", what, _detail(exc))


def unreachable(server_url: str, exc: BaseException) -> str:
    """A phrase saying why the server at ``server_url`` could not be reached, naming the
    address and what to check; ``exc``'s own text is logged, not returned."""
    _log_detail(f"the server at {server_url}", exc)
    kind = _kind(exc)
    host = urlsplit(server_url).hostname or server_url
    if kind == "name_mismatch":
        names = certificate_names(server_url)
        named = f" (it names: {', '.join(names)})" if names else ""
        return (
            f"cannot reach the server at {server_url}: the server's certificate does not "
            f"name {host}{named}; use one of the names it has in the server address, or ask "
            f"your IT contact to add {host} to the server's TLS_NAMES"
        )
    if kind == "certificate":
        dates = clock_hint(exc)
        if dates:
            return (
                f"cannot reach the server at {server_url}: a certificate problem, its "
                f"certificate is not valid at this computer's date{dates}"
            )
        return (
            f"cannot reach the server at {server_url}: a certificate problem, the server did "
            "not present a certificate this computer trusts for that address (check the "
            "server address and the clinic's CA certificate or fingerprint with your IT "
            "contact)"
        )
    if kind == "handshake":
        return (
            f"cannot reach the server at {server_url}: the secure (TLS) connection was broken "
            "off before it was set up, by the server or something in front of it such as a "
            "load balancer (ask your IT contact to check the server's log and the "
            "load balancer's settings); trying again later may work"
        )
    if kind == "timeout":
        return (
            f"cannot reach the server at {server_url}: it did not answer in time (timed out); "
            "check this computer's network connection and that the server is running, then "
            "try again"
        )
    if kind == "no_name":
        return (
            f"cannot reach the server at {server_url}: no computer named {host!r} was found "
            "(check the server address, and this computer's network connection)"
        )
    if kind == "refused":
        return (
            f"cannot reach the server at {server_url}: nothing there accepted the connection "
            "(check the server address and port, and that the server is running)"
        )
    if kind == "no_route":
        return (
            f"cannot reach the server at {server_url}: this computer has no network route to "
            "it (check this computer's network connection)"
        )
    return (
        f"cannot reach the server at {server_url} (check the server address and this "
        "computer's network connection, then try again)"
    )


def peer_unreachable(address: str, exc: BaseException) -> str:
    """A phrase saying why the LAN peer at ``address`` (HOST:PORT, its sync port) could
    not be reached, as :func:`unreachable` says it of the server; ``exc``'s own text is
    logged, not returned."""
    _log_detail(f"the peer {address}", exc)
    kind = _kind(exc)
    host = address.rpartition(":")[0].strip("[]") or address
    where = f"cannot reach the peer {address}"
    if kind in ("name_mismatch", "certificate"):
        dates = clock_hint(exc)
        if dates:
            return f"{where}: its certificate is not valid at this computer's date{dates}"
        return (
            f"{where}: it did not present a certificate of this clinic (check the address: "
            "it may be another clinic's workstation)"
        )
    if kind == "handshake":
        return (
            f"{where}: the secure (TLS) connection was broken off before it was set up; what "
            "answers there may not be a Careline workstation (check the address and port)"
        )
    if kind == "timeout":
        return (
            f"{where}: it did not answer in time (timed out); check the address, this "
            "computer's network connection, and that Careline runs there, then try again"
        )
    if kind == "no_name":
        return f"{where}: no computer named {host!r} was found (check the address)"
    if kind == "refused":
        return (
            f"{where}: nothing there accepted the connection (check the address and port, "
            "and that Careline runs there: the app, or 'careline serve')"
        )
    if kind == "no_route":
        return (
            f"{where}: this computer has no network route to it (check this computer's "
            "network connection)"
        )
    return f"{where} (check the address and this computer's network connection, then try again)"


def _detail(exc: BaseException) -> str:
    """Every exception in the chain, class and text, for the log."""
    return " <- ".join(f"{type(e).__name__}: {e}" for e in _chain(exc))

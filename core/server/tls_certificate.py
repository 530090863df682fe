"""The server's generated TLS certificate, and the names it is valid for.

A workstation checks that the certificate names the address it was given (the host name or
IP in ``https://...``), so the certificate must name every way the clinic reaches the
server: its full and short host names, ``localhost``, the address it listens on (every
address of the machine's interfaces when it listens on all of them), and whatever IT lists
in ``TLS_NAMES`` (the name in DNS, a load balancer's name or address).

``tls/server.pem`` is made once, at first start, and is what workstations pin (its file or
its SHA-256 fingerprint). When it does not name everything wanted now (another address,
a name added to ``TLS_NAMES``), the server issues itself a certificate under it, with its
own key, naming all of it (``tls/issued.pem``, served with ``server.pem`` as its chain): every
enrolled workstation trusts it through its pin, so nothing is enrolled again. Replacing
``server.pem`` instead would make every workstation refuse the server.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from pathlib import Path

from core.crypto import certs
from core.keys.files import exclusive_lock, replace_private

log = logging.getLogger("careline.server")

_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_DNS_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*\.?", re.ASCII)
_ANY_ADDRESS = ("0.0.0.0", "::", "")  # noqa: S104 (names, not a bind)


def parse_tls_names(text: str) -> list[str]:
    """``TLS_NAMES``: DNS names and IP addresses, comma- or space-separated (ValueError
    naming the first that is neither)."""
    found: list[str] = []
    for item in text.replace(",", " ").split():
        name = _normal(item)
        if name is None:
            raise ValueError(f"{item!r} is neither a DNS name nor an IP address")
        found.append(name)
    return found


def _normal(name: str) -> str | None:
    """``name`` as a certificate holds it (an IP address in its short form, a DNS name in
    lower case without a final dot), or None if it is neither."""
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        pass
    lowered = name.lower()
    if _DNS_NAME.fullmatch(lowered) is None or len(lowered) > 253:
        return None
    return lowered.rstrip(".")


def interface_addresses() -> list[str]:
    """Every address of this machine's network interfaces, but IPv6 link-local ones
    (which need an interface in the URL): through ifaddr, which zeroconf (LAN discovery)
    already depends on."""
    import ifaddr

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if not address.is_link_local or address.version == 4:
                found.append(str(address))
    return found


def wanted_names(host: str, listed: Iterable[str] = ()) -> list[str]:
    """What the certificate of a server listening on ``host`` must name: ``listed`` (IT's
    ``TLS_NAMES``) first, then ``host`` (every interface's address when it is 0.0.0.0 or
    ::), the machine's full and short names, ``localhost`` and the loopback address."""
    names = [*listed]
    names += interface_addresses() if host in _ANY_ADDRESS else [host]
    names += [socket.getfqdn(), socket.gethostname(), "localhost", "127.0.0.1"]
    unique: dict[str, None] = {}
    for name in names:
        normal = _normal(name)
        if normal is not None:
            unique.setdefault(normal, None)
    return list(unique)


def _missing(cert: Path, wanted: list[str]) -> list[str]:
    """What in ``wanted`` the certificate in ``cert`` does not name."""
    named = {n for name in certs.server_names(cert.read_text()) if (n := _normal(name))}
    return [name for name in wanted if name not in named]


def ensure_tls(data_dir: Path, host: str, listed: Iterable[str] = ()) -> tuple[Path, Path]:
    """The certificate (with its chain) and key to serve: ``tls/server.pem``, made at first
    start, while it names everything :func:`wanted_names` lists; else ``tls/issued.pem``
    issued under it (again whenever the names wanted change).

    Server processes sharing the data folder write under a lock; keys and certificates are
    each replaced atomically, the key first, so a certificate on disk always has its key.
    """
    folder = data_dir / "tls"
    cert, key = folder / "server.pem", folder / "server.key"
    issued, issued_key = folder / "issued.pem", folder / "issued.key"
    wanted = wanted_names(host, listed)
    if cert.exists() and not _missing(cert, wanted):
        return cert, key
    if issued.exists() and not _missing(issued, wanted):
        return issued, issued_key
    with exclusive_lock(folder / "tls.lock"):
        if not cert.exists():
            key_pem, cert_pem = certs.self_signed_server(wanted)
            replace_private(key, key_pem)
            replace_private(cert, cert_pem.encode())
            cert.chmod(0o644)
            return cert, key
        missing = _missing(cert, wanted)
        if not missing:
            return cert, key
        if issued.exists() and not _missing(issued, wanted):
            return issued, issued_key
        # Keep every name the pinned certificate has: an address workstations use now
        # must not stop working because this machine no longer has it on an interface.
        names = list(dict.fromkeys([*wanted, *certs.server_names(cert.read_text())]))
        key_pem, chain_pem = certs.issue_server(key.read_bytes(), cert.read_text(), names)
        replace_private(issued_key, key_pem)
        replace_private(issued, chain_pem.encode())
        issued.chmod(0o644)
    log.warning(
        "the generated certificate %s does not name %s: issued %s under it, naming %s "
        "(enrolled workstations trust it through the certificate they pinned)",
        cert, ", ".join(missing), issued, ", ".join(names),
    )  # fmt: skip
    return issued, issued_key

"""One connection to the clinic server kept from one sync session to the next.

A transport made per session (``ServerCredential.transport``) opens a new TCP connection
and a new TLS handshake each time: the larger part of a one-edit session's cost on the
workstation and the server (README, "Performance: the one-edit sync"). :class:`KeptTransport`
keeps the one transport, and with it httpx's connection pool and its kept-alive
connection, for as long as what it was made from stays the same: the server's address, the
device's token and certificate, and the TLS trust (the CA pinned at enrollment, or the
system's). When any of them changes (a new enrollment, a re-certification, a new pin) the
old transport is closed and a new one made. Closing it (signing out, closing the clinic)
closes the connection.

Not thread-safe: one owner (the desktop app's sync thread, a ``careline sync`` loop) uses it.
"""

from __future__ import annotations

from collections.abc import Callable

from core.sync.enroll import ServerCredential
from core.sync.transport import Transport

TransportFactory = Callable[[ServerCredential], Transport]


def _made_from(credential: ServerCredential) -> tuple[str, str, str, str | None]:
    """What a transport to the server depends on."""
    return (
        credential.server_url.rstrip("/"),
        credential.token,
        credential.certificate,
        credential.server_ca_pem,
    )


def default_factory(credential: ServerCredential) -> Transport:
    """An HTTPS transport to the server (``ServerCredential.transport``)."""
    return credential.transport()


class KeptTransport:
    """The transport for a credential, kept while the credential's connection settings
    stay the same (see the module docstring)."""

    def __init__(self, factory: TransportFactory = default_factory) -> None:
        self._factory = factory
        self._transport: Transport | None = None
        self._made_from: tuple[str, str, str, str | None] | None = None

    def get(self, credential: ServerCredential) -> Transport:
        """The kept transport, or a new one (the old one closed) if ``credential``'s server,
        token, certificate or trust differ from those it was made from."""
        wanted = _made_from(credential)
        if self._transport is None or wanted != self._made_from:
            self.close()
            self._transport = self._factory(credential)
            self._made_from = wanted
        return self._transport

    def close(self) -> None:
        """Close the kept transport (its connections); the next :meth:`get` makes a new one."""
        transport, self._transport, self._made_from = self._transport, None, None
        close = getattr(transport, "close", None)
        if callable(close):
            close()

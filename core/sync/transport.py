"""How sync messages travel. A transport carries one request and returns one reply."""

from __future__ import annotations

from typing import Protocol

from core.errors import CarelineError
from core.sync.responder import Responder


class TransportError(CarelineError):
    """The other side could not be reached or the exchange broke off."""


class Transport(Protocol):
    """Request/response carrier (HTTP to the server, mutual TLS to a LAN peer, in-process)."""

    def request(self, message: bytes) -> bytes:
        """Send one request, return the reply; raise TransportError when it cannot."""
        ...


class LocalTransport:
    """Direct call into another replica's responder in the same process."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    def request(self, message: bytes) -> bytes:
        """Hand the bytes over and back; only bytes cross, as on a real wire."""
        return self.responder.handle(bytes(message))

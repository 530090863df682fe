"""Sync to a LAN peer over mutual TLS (httpx), presenting this device's certificate.

The peer's certificate is a device certificate signed by the clinic CA, not a host-name
certificate: host names are not checked, the chain to the clinic CA is required, and the
certificate is checked again with :func:`certs.verify_device` (dates, revocation) before
any sync data is sent.
"""

from __future__ import annotations

from typing import Any

import httpx

from core.crypto import certs
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity
from core.sync.transport import TransportError


class PeerRejectedError(TransportError):
    """The peer's certificate is not one of this clinic's valid devices."""


class LanTransport:
    """POSTs each sync request to ``https://HOST:PORT/v1/sync`` over mutual TLS."""

    def __init__(
        self,
        address: str,
        identity: LanIdentity,
        revoked: set[int] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.identity = identity
        self.revoked = set(revoked or ())
        self.peer_device: str | None = None
        self._client = httpx.Client(
            base_url=f"https://{address}",
            verify=tls.client_context(identity),
            timeout=timeout,
        )

    def _check_peer(self, response: httpx.Response) -> None:
        stream: Any = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(True) if ssl_object is not None else None
        if der is None:
            raise PeerRejectedError(f"{self.address}: cannot read the peer's certificate")
        pem = tls.der_to_pem(der)
        try:
            certs.verify_device(pem, self.identity.ca_certificate, self.revoked)
        except certs.CertificateError as exc:
            raise PeerRejectedError(f"{self.address} is not trusted: {exc}") from None
        from core.sync.lan.server import device_id_of

        self.peer_device = device_id_of(pem)

    def hello(self) -> dict[str, Any]:
        """A mutual-TLS hello: proves both sides belong to the clinic; returns the peer's id."""
        try:
            response = self._client.get("/v1/hello")
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach the peer {self.address}: {exc}") from exc
        self._check_peer(response)
        if response.status_code != 200:
            raise TransportError(f"the peer {self.address} answered {response.status_code}")
        doc: dict[str, Any] = response.json()
        return doc

    def request(self, message: bytes) -> bytes:
        """Send one sync request (after a verified hello); protocol errors come back as bytes."""
        if self.peer_device is None:
            self.hello()
        try:
            response = self._client.post(
                "/v1/sync", content=message, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot reach the peer {self.address}: {exc}") from exc
        self._check_peer(response)
        if response.status_code != 200:
            raise TransportError(f"the peer {self.address} failed ({response.status_code})")
        return response.content

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> LanTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

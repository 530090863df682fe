"""Sync over HTTPS to the clinic server (httpx), authenticated by the device token."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import httpx

from core.sync.reach import unreachable
from core.sync.snapshot_image import ImageError
from core.sync.transport import TransportError


class DeviceRejectedError(TransportError):
    """The server refused the device credential (unknown or revoked device)."""

    plain_template = "the server no longer accepts this workstation ({detail}); enroll it again"


# How long an idle connection to the server is kept open for the next request: longer than
# the desktop app's minute between sessions, so a kept transport (core.sync.server_connection)
# reuses its connection from one session to the next instead of a new TLS handshake. The
# server keeps idle connections longer still (core.cli.server, SERVER_KEEPALIVE_S), so the
# client is the side that closes one, never the server under a request being sent.
KEEPALIVE_S = 75.0


class HttpTransport:
    """POSTs each sync request to ``<server>/v1/sync``, over one kept-alive connection."""

    def __init__(
        self,
        server_url: str,
        token: str,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 30.0,
    ) -> None:
        # verify: True for the system CAs, or the CA certificate pinned at enrollment.
        require_https(server_url)
        self._server_url = server_url.rstrip("/")
        self._client = httpx.Client(
            base_url=server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
            timeout=timeout,
            # httpx's own limits, but for how long an idle connection is kept.
            limits=httpx.Limits(
                max_connections=100, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_S
            ),
        )

    def request(self, message: bytes) -> bytes:
        """Send one request; protocol-level errors come back as reply bytes."""
        try:
            response = self._client.post(
                "/v1/sync", content=message, headers={"Content-Type": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise TransportError(unreachable(self._server_url, exc)) from exc
        if response.status_code == 401:
            raise DeviceRejectedError(_detail(response))
        if response.status_code >= 500:
            raise TransportError(f"the server failed ({response.status_code}): {_detail(response)}")
        if response.status_code == 413 and not response.content.startswith(b'{"protocol"'):
            raise TransportError(_detail(response))
        return response.content

    def fetch_image(
        self,
        image_id: str,
        dest: Path,
        size: int,
        on_bytes: Callable[[int], object] | None = None,
    ) -> None:
        """Stream the offered snapshot image into the new file ``dest`` (owner-only), at
        most ``size`` bytes (a longer body is refused, not written on); ``on_bytes`` hears
        how many have arrived after each chunk. ImageError when the server answers without
        it (pages, then); TransportError when the connection fails (the session ends, and
        the next one asks for the image again)."""
        written = 0
        try:
            with (
                self._client.stream("GET", f"/v1/sync/images/{image_id}") as response,
                _new_private(dest) as out,
            ):
                if response.status_code != 200:
                    response.read()
                    if response.status_code == 401:
                        raise DeviceRejectedError(_detail(response))
                    if response.status_code >= 500:
                        raise TransportError(
                            f"the server failed ({response.status_code}): {_detail(response)}"
                        )
                    # The server answered, without the file: pages instead (ImageError).
                    raise ImageError(
                        f"the server did not send the snapshot image ({response.status_code}): "
                        f"{_detail(response)}"
                    )
                for chunk in response.iter_bytes(1 << 20):
                    written += len(chunk)
                    if written > size:
                        raise ImageError(f"the snapshot image is longer than {size} bytes")
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(written)
        except httpx.HTTPError as exc:
            raise TransportError(unreachable(self._server_url, exc)) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def require_https(server_url: str) -> None:
    """Refuse anything but https: tokens, codes and records never travel in clear text."""
    if not server_url.lower().startswith("https://"):
        raise TransportError(f"the server address must start with https:// (got {server_url!r})")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or f"HTTP {response.status_code}")


def _new_private(path: Path) -> BinaryIO:
    """A new file only its owner can read (refused if it exists)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

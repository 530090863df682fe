"""Sync to a LAN peer over mutual TLS (httpx), presenting this device's certificate.

The peer's certificate is a device certificate signed by the clinic CA, not a host-name
certificate: host names are not checked, the chain to the clinic CA is required, and the
certificate is checked again with :func:`certs.verify_device` (dates, revocation) on every
connection, right after the handshake and before any request is written on it.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.crypto import certs
from core.sync.clock import clock_hint
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity
from core.sync.transport import TransportError


class PeerRejectedError(TransportError):
    """The peer's certificate is not one of this clinic's valid devices."""


class LanTransport:
    """POSTs each sync request to ``https://HOST:PORT/v1/sync`` over mutual TLS.

    Each connection's peer certificate is verified right after the handshake and before any
    request is written on it; a reconnect is verified again, so data never reaches a peer
    that was not checked on that very connection.
    """

    def __init__(
        self,
        address: str,
        identity: LanIdentity,
        revoked: set[int] | None = None,
        timeout: float = 30.0,
    ) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise TransportError(f"peer address {address!r} must be HOST:PORT")
        self.address = address
        self.identity = identity
        self.revoked = set(revoked or ())
        self.peer_device: str | None = None
        self._host, self._port, self._timeout = host.strip("[]"), int(port), timeout
        self._context = tls.client_context(identity)
        self._conn: http.client.HTTPSConnection | None = None

    def _connect(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=timeout or self._timeout
        )
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportError(
                f"cannot reach the peer {self.address}: {exc}{clock_hint(exc)}"
            ) from exc
        sock: Any = conn.sock
        der = sock.getpeercert(True) if sock is not None else None
        if der is None:
            conn.close()
            raise PeerRejectedError(f"{self.address}: cannot read the peer's certificate")
        pem = tls.der_to_pem(der)
        try:
            certs.verify_device(pem, self.identity.ca_certificate, self.revoked)
        except certs.CertificateError as exc:
            conn.close()
            raise PeerRejectedError(
                f"{self.address} is not trusted: {exc}{clock_hint(exc)}"
            ) from None
        from core.sync.lan.server import device_id_of

        self.peer_device = device_id_of(pem)
        return conn

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in (1, 2):  # one reconnect: a kept-alive connection may have been closed
            if self._conn is None:
                self._conn = self._connect()
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                return response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise TransportError(f"cannot reach the peer {self.address}: {exc}") from exc
        raise AssertionError("unreachable")

    def hello(self) -> dict[str, Any]:
        """A mutual-TLS hello: proves both sides belong to the clinic; returns the peer's id."""
        status, body = self._exchange("GET", "/v1/hello", None)
        if status != 200:
            raise TransportError(f"the peer {self.address} answered {status}")
        doc: dict[str, Any] = json.loads(body)
        return doc

    def request(self, message: bytes) -> bytes:
        """Send one sync request; protocol errors come back as reply bytes."""
        status, body = self._exchange("POST", "/v1/sync", message)
        if status != 200:
            raise TransportError(f"the peer {self.address} failed ({status})")
        return body

    def certify(self, csr_pem: str) -> str:
        """Ask the peer (the clinic CA holder) for a certificate bound to this replica;
        TransportError with the peer's reason if it refuses."""
        status, body = self._exchange("POST", "/v1/certify", json.dumps({"csr": csr_pem}).encode())
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        if not isinstance(doc, dict):
            doc = {}
        if status != 200 or not isinstance(doc.get("certificate"), str):
            detail = doc.get("detail") if isinstance(doc.get("detail"), str) else status
            raise TransportError(f"the peer {self.address} did not certify this device: {detail}")
        return str(doc["certificate"])

    def attachment_keys(self) -> dict[str, str]:
        """The clinic attachment keys the peer holds, sealed for this device's certificate
        key (key id -> base64); see core.sync.key_grants.keys_from_peer."""
        status, body = self._exchange("GET", "/v1/attachment-keys", None)
        if status != 200:
            raise TransportError(f"the peer {self.address} gave no attachment keys ({status})")
        return {str(k): str(v) for k, v in dict(json.loads(body)).items()}

    def fetch_blob(
        self,
        blob_id: str,
        dest: Path,
        sha256: str,
        progress: Callable[[int, int], None],
        timeout: float | None = None,
    ) -> None:
        """Download an encrypted attachment the peer has cached into ``dest`` (through
        ``dest.part``, resumed if present); it must have ciphertext SHA-256 ``sha256``.
        ``progress`` is called at each read (64 KiB), so a caller stopping from it stops
        promptly; ``timeout``: how long a silent peer is waited for (else the transport's)."""
        from core.sync.attachments_client import AttachmentNotFoundError
        from core.sync.blob_client import READ, finish_part, locked_part

        part = dest.with_name(dest.name + ".part")
        with locked_part(dest, lambda: progress(0, 0)) as held:
            if held is None:  # another process fetched it meanwhile
                return
            out, have = held
            conn = self._connect(timeout)  # its own connection: the body is streamed
            try:
                headers = {"Range": f"bytes={have}-"} if have else {}
                conn.request("GET", f"/v1/blobs/{blob_id}", headers=headers)
                response = conn.getresponse()
                if response.status not in (200, 206):
                    response.read()
                    # 404: the peer has not cached it (a prefetch tries it again later).
                    missing = AttachmentNotFoundError if response.status == 404 else TransportError
                    raise missing(
                        f"the peer {self.address} does not have attachment {blob_id} "
                        f"({response.status})"
                    )
                total = int(response.getheader("Content-Length") or 0) + have
                if response.status == 200 and have:
                    out.truncate(0)
                    have = 0
                done = have
                while piece := response.read(READ):
                    out.write(piece)
                    done += len(piece)
                    progress(done, total)
                out.flush()
                os.fsync(out.fileno())
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(
                    f"download of attachment {blob_id} from {self.address} was cut off: {exc}"
                ) from exc
            finally:
                conn.close()
            finish_part(part, dest, blob_id, sha256)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LanTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

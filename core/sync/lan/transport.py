"""Sync to a LAN peer over mutual TLS (httpx), presenting this device's certificate.

The peer's certificate is a device certificate signed by the clinic CA, not a host-name
certificate: host names are not checked, the chain to the clinic CA is required, and the
certificate is checked again with :func:`certs.verify_device` (dates, revocation) on every
connection, right after the handshake and before any request is written on it.

A peer's reply is read up to the sync protocol's message limit and no further (a declared
length over it is refused before any of the body is read), and an attachment up to the size
its record allows: a peer cannot make this workstation hold or store more than that.

A peer refusing this workstation's certificate says so with a TLS alert (certificate
revoked, unknown CA, ...): :class:`RefusedByPeerError`. A clinic peer that closes without
one (busy with this workstation's other sessions, stopping) is :class:`PeerClosedError`,
tried again later; a timeout or a refused connection is a plain :class:`TransportError`.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.crypto import certs
from core.sync.clock import clock_hint
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity
from core.sync.protocol import MAX_MESSAGE_BYTES
from core.sync.reach import peer_unreachable
from core.sync.transport import TransportError

# A TCP connection and TLS handshake with a peer on the LAN take milliseconds.
HANDSHAKE_TIMEOUT = 5.0
# Replies are read in pieces of this size, never more than the limit (plus one byte, to
# tell a body of exactly the limit from a longer one).
_READ = 64 * 1024


# The TLS alerts a peer sends when it refuses this workstation's certificate in the
# handshake (OpenSSL's reason names), and what each says. Only these mean "refused": any
# other failure (no answer, a connection closed or reset, a timeout) may pass.
_CERTIFICATE_ALERTS = {
    "SSLV3_ALERT_CERTIFICATE_REVOKED": "it has been revoked",
    "TLSV1_ALERT_UNKNOWN_CA": "it was not issued by the CA that peer trusts",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the peer found it not valid",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the peer found it expired",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the peer does not accept it",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "the peer does not accept it",
    "TLSV1_ALERT_ACCESS_DENIED": "the peer does not accept it",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the peer asked for one and got none",
}
REVOKED_ALERT = "SSLV3_ALERT_CERTIFICATE_REVOKED"
# How long to look for an alert already on its way once a write failed (see _alert_after).
_ALERT_PROBE_SECONDS = 1.0


def certificate_alert(exc: BaseException | None) -> str | None:
    """The TLS alert (OpenSSL's reason name) by which a peer refused this workstation's
    certificate, if ``exc`` or what it was raised from is one; None for anything else."""
    while exc is not None:
        if isinstance(exc, ssl.SSLError) and exc.reason in _CERTIFICATE_ALERTS:
            return str(exc.reason)
        exc = exc.__cause__ or exc.__context__
    return None


def _closed(exc: BaseException) -> bool:
    """The peer ended the connection without an answer (no alert said why)."""
    return isinstance(
        exc,
        ssl.SSLEOFError | ConnectionResetError | BrokenPipeError | http.client.RemoteDisconnected,
    )


# What a peer that accepted TLS and then closed without answering may mean: nothing that
# stays true. A refusal of this workstation's certificate comes as a TLS alert
# (:class:`RefusedByPeerError`).
_CLOSED = (
    "the peer closed the connection without answering: it may be busy with this "
    "workstation's other sessions or stopping (it is tried again shortly); a peer running "
    "an older Careline also closes this way on a certificate it refuses"
)


def _alert_after(conn: http.client.HTTPSConnection) -> str | None:
    """After a request failed because the peer closed: the certificate alert it sent
    first, if one is waiting to be read. A peer refusing the certificate in the handshake
    sends its alert and closes; a request written meanwhile (a push can be megabytes) may
    then fail on the closed connection before the alert was read."""
    sock: Any = conn.sock
    if sock is None:
        return None
    try:
        sock.settimeout(_ALERT_PROBE_SECONDS)
        sock.recv(1)
    except (OSError, ValueError) as exc:
        return certificate_alert(exc)
    return None


class PeerRejectedError(TransportError):
    """The peer's certificate is not one of this clinic's valid devices."""


class RefusedByPeerError(TransportError):
    """A peer proved to be a clinic device, then refused this workstation's certificate
    with a TLS alert (``alert``: OpenSSL's name for it; ``revoked``: the alert says the
    certificate was revoked). Waiting does not mend it: the clinic's administrator must."""

    def __init__(self, message: str, alert: str) -> None:
        super().__init__(message)
        self.alert = alert
        self.revoked = alert == REVOKED_ALERT


class PeerClosedError(TransportError):
    """A peer proved to be a clinic device, then closed the connection without answering
    and without an alert: busy with this workstation's other sessions, stopping, or a
    passing fault. Tried again later."""


class ReplyTooLargeError(TransportError):
    """The peer sent (or announced) more than this side accepts; the rest was not read."""


def read_reply(response: http.client.HTTPResponse, limit: int, peer: str) -> bytes:
    """The body of ``response``, refused (ReplyTooLargeError) past ``limit`` bytes: at once
    if its Content-Length says so, else as soon as more arrives. ``peer`` names the sender
    in the error. The caller closes the connection after a refusal (the rest is unread)."""
    header = (response.getheader("Content-Length") or "").strip()
    declared = int(header) if header.isdigit() else None
    if declared is not None and declared > limit:
        raise ReplyTooLargeError(
            f"the peer {peer} announced a reply of {declared} bytes, over the "
            f"{limit}-byte limit; not read"
        )
    body = bytearray()
    while piece := response.read(min(_READ, limit + 1 - len(body))):
        body += piece
        if len(body) > limit:
            raise ReplyTooLargeError(
                f"the peer {peer} sent a reply of more than {limit} bytes, over the "
                f"{limit}-byte limit; the rest was not read"
            )
    if declared is not None and len(body) < declared:
        # read(amt) returns a cut-off body without a word, where read() raised this.
        raise http.client.IncompleteRead(bytes(body), declared - len(body))
    return bytes(body)


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
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        """``timeout``: how long a silent peer is waited for once connected;
        ``handshake_timeout``: for the TCP connection, and again for the whole TLS
        handshake (a peer on the LAN completes both in milliseconds; an address that
        accepts TCP and never speaks TLS is given up on that soon)."""
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise TransportError(f"peer address {address!r} must be HOST:PORT")
        self.address = address
        self.identity = identity
        self.revoked = set(revoked or ())
        self.peer_device: str | None = None
        self._host, self._port, self._timeout = host.strip("[]"), int(port), timeout
        self._handshake_timeout = min(handshake_timeout, timeout)
        self._context = tls.client_context(identity)
        self._conn: http.client.HTTPSConnection | None = None

    def _connect(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        conn = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=self._handshake_timeout
        )
        # Never reconnect on its own (after a reply saying "Connection: close"): only
        # here, where the peer's certificate is checked again.
        conn.auto_open = 0
        try:
            conn.connect()  # CPython bounds the whole handshake, not each read, by it
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise TransportError(peer_unreachable(self.address, exc)) from exc
        try:
            self.peer_device = self._verified_peer(conn, timeout)
        except BaseException:
            conn.close()  # whatever went wrong: the socket is not left to the collector
            raise
        return conn

    def _verified_peer(self, conn: http.client.HTTPSConnection, timeout: float | None) -> str:
        """The device id of the peer on ``conn``, its certificate verified."""
        sock: Any = conn.sock
        if sock is not None:
            sock.settimeout(timeout or self._timeout)  # connected: requests get their own
        der = sock.getpeercert(True) if sock is not None else None
        if der is None:
            raise PeerRejectedError(f"{self.address}: cannot read the peer's certificate")
        pem = tls.der_to_pem(der)
        try:
            certs.verify_device(pem, self.identity.ca_certificate, self.revoked)
        except certs.CertificateError as exc:
            raise PeerRejectedError(
                f"{self.address} is not trusted: {exc}{clock_hint(exc)}"
            ) from None
        from core.sync.lan.server import device_id_of

        return device_id_of(pem)

    def _exchange(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        for attempt in (1, 2):  # one reconnect: a kept-alive connection may have been closed
            if self._conn is None:
                self._conn = self._connect()
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                # The protocol refuses a message over its limit: one is never read whole.
                return response.status, read_reply(response, MAX_MESSAGE_BYTES, self.address)
            except ReplyTooLargeError:
                self.close()  # the rest of that reply is still on the connection
                raise
            except (OSError, http.client.HTTPException) as exc:
                alert = certificate_alert(exc)
                if alert is None and _closed(exc):
                    alert = _alert_after(self._conn)
                self._conn.close()
                self._conn = None
                # Only a peer whose certificate was verified on this very connection (it
                # was: _connect checks it before any request) refuses *us*, and only its
                # TLS alert says so; a connection closed without one may be a busy peer.
                if alert is not None and self.peer_device:
                    raise RefusedByPeerError(
                        f"the peer {self.address} refuses this workstation's certificate "
                        f"({_CERTIFICATE_ALERTS[alert]}): ask the clinic's administrator",
                        alert,
                    ) from exc
                if attempt == 2:
                    if _closed(exc) and self.peer_device:
                        raise PeerClosedError(
                            f"cannot reach the peer {self.address}: {_CLOSED}"
                        ) from exc
                    raise TransportError(peer_unreachable(self.address, exc)) from exc
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
        *,
        max_bytes: int,
    ) -> None:
        """Download an encrypted attachment the peer has cached into ``dest`` (through
        ``dest.part``, resumed if present); it must have ciphertext SHA-256 ``sha256`` and
        at most ``max_bytes`` bytes (what its record's size allows), else the peer is
        refused before more is written (ReplyTooLargeError). ``progress`` is called at each
        read (64 KiB), so a caller stopping from it stops promptly; ``timeout``: how long a
        silent peer is waited for (else the transport's)."""
        from core.sync.attachments_client import AttachmentNotFoundError
        from core.sync.blob_client import READ, finish_part, locked_part

        part = dest.with_name(dest.name + ".part")
        with locked_part(dest, lambda: progress(0, 0)) as held:
            if held is None:  # another process fetched it meanwhile
                return
            out, have = held
            if have > max_bytes:  # a partial file no whole one could extend
                out.truncate(0)
                have = 0
            conn = self._connect(timeout)  # its own connection: the body is streamed
            try:
                headers = {"Range": f"bytes={have}-"} if have else {}
                conn.request("GET", f"/v1/blobs/{blob_id}", headers=headers)
                response = conn.getresponse()
                if response.status not in (200, 206):
                    response.read(_READ)  # the reason, if short; the rest is dropped
                    # 404: the peer has not cached it (a prefetch tries it again later).
                    missing = AttachmentNotFoundError if response.status == 404 else TransportError
                    raise missing(
                        f"the peer {self.address} does not have attachment {blob_id} "
                        f"({response.status})"
                    )
                if response.status == 200 and have:
                    out.truncate(0)
                    have = 0
                declared = response.getheader("Content-Length") or ""
                total = have + (int(declared) if declared.strip().isdigit() else 0)
                if total > max_bytes:
                    raise self._too_big(blob_id, f"announced {total} bytes", max_bytes)
                done = have
                while piece := response.read(READ):
                    if done + len(piece) > max_bytes:
                        out.truncate(have)  # what this peer sent is dropped, unread past it
                        raise self._too_big(blob_id, f"sent over {max_bytes} bytes", max_bytes)
                    out.write(piece)
                    done += len(piece)
                    progress(done, max(total, done))
                out.flush()
                os.fsync(out.fileno())
            except (OSError, http.client.HTTPException) as exc:
                raise TransportError(
                    f"download of attachment {blob_id} from {self.address} was cut off: {exc}"
                ) from exc
            finally:
                conn.close()
            finish_part(part, dest, blob_id, sha256)

    def _too_big(self, blob_id: str, what: str, limit: int) -> ReplyTooLargeError:
        return ReplyTooLargeError(
            f"the peer {self.address} {what} for attachment {blob_id}, more than the "
            f"{limit} its record allows; not downloaded"
        )

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> LanTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

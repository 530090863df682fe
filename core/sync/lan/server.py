"""The LAN peer server: ``POST /v1/sync`` (and, on the clinic CA holder, ``POST
/v1/certify``: a device paired before op signing gets its certificate bound to its
replica) over mutual TLS, and the pairing listener.

Every connection is handshaken in its own thread. The sync listener requires a client
certificate chained to the clinic CA and not on the clinic's signed revocation list
(OpenSSL checks both during the handshake, and refuses with a TLS alert: "unknown CA",
"certificate revoked"), then checks it again with :func:`certs.verify_device` against the
revoked serials held here. A refused peer gets no reply but that alert (a refusal after
the handshake, for a serial the list does not carry yet or an expired certificate, gets
none; the list is then read again, so its next handshake is refused with the alert); the
refusal is logged with its address and the reason (ids only, never names). A device over
its session limit is closed on without a word too: it tries again later.

On the clinic's LAN CA holder, each verified device's address is recorded now and then
(:mod:`core.sync.lan.sightings`), for Settings → Paired workstations… and ``careline pair
devices``.

The pairing listener needs no certificate, so anyone on the LAN can reach it: each source
address gets a few pairing attempts per minute (:class:`AttemptLimiter`); more are refused
with 429 and a message saying when to try again, before any code is checked.

Neither listener can be held by strangers who merely connect: connections that have not
authenticated are bounded per address and in total, the oldest giving way to a newcomer
(:mod:`core.sync.lan.admission`); handshakes and idle reads time out within seconds; and
refusals are logged at most once per address and kind every few seconds, with a count of
those left out (:mod:`core.sync.lan.refusal_log`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from core.crypto import certs
from core.crypto.key_grant import seal
from core.records import op_trust
from core.store.blobs import BLOB_ID_PATTERN, FilesystemBlobStore
from core.store.database import Database
from core.sync.lan import identity as ident
from core.sync.lan import sightings, tls
from core.sync.lan.admission import ConnectionGate, Ticket
from core.sync.lan.identity import LanIdentity
from core.sync.lan.refusal_log import RefusalLog
from core.sync.protocol import MAX_MESSAGE_BYTES
from core.sync.responder import Responder

log = logging.getLogger(__name__)
PROTOCOL_VERSION = 1
# A sync request is one protocol message, and nothing else posted here is larger (no
# attachment is uploaded to a peer: peers only fetch). The margin lets the responder, not
# the listener, refuse a message just over the protocol's limit, with the protocol's error.
MAX_BODY = MAX_MESSAGE_BYTES + 64 * 1024
# The pairing listener is reachable without a certificate: a CSR and a proof fit in 16 KiB.
MAX_PAIRING_BODY = 16 * 1024
# A genuine handshake or request on a LAN takes milliseconds; a stalled one is dropped soon.
HANDSHAKE_TIMEOUT = 5.0
IDLE_TIMEOUT = 5.0
_DRAIN_READ = 64 * 1024


PAIRING_ATTEMPTS = 5  # per source address ...
PAIRING_WINDOW = 60.0  # ... in any this many seconds
_MAX_TRACKED_ADDRESSES = 4096


class AttemptLimiter:
    """At most ``attempts`` per source address in any ``window`` seconds (sliding window).

    Thread-safe: each connection is handled in its own thread. Memory stays bounded: old
    timestamps are dropped, idle addresses are forgotten, and at most 4096 are tracked.
    """

    def __init__(
        self,
        attempts: int = PAIRING_ATTEMPTS,
        window: float = PAIRING_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, address: str) -> float | None:
        """Count an attempt from ``address``: None if allowed, else seconds until it is."""
        now = self._clock()
        with self._lock:
            if len(self._seen) >= _MAX_TRACKED_ADDRESSES:
                self._forget_idle(now)
            stamps = self._seen.setdefault(address, deque())
            while stamps and stamps[0] <= now - self.window:
                stamps.popleft()
            if len(stamps) >= self.attempts:
                return stamps[0] + self.window - now  # refused attempts do not count
            stamps.append(now)
            return None

    def blocked(self, address: str) -> float | None:
        """Seconds until ``address`` may be counted again (None: it may now), without
        counting anything."""
        now = self._clock()
        with self._lock:
            stamps = self._seen.get(address)
            if not stamps:
                return None
            while stamps and stamps[0] <= now - self.window:
                stamps.popleft()
            return stamps[0] + self.window - now if len(stamps) >= self.attempts else None

    def __len__(self) -> int:
        """How many addresses are tracked now."""
        with self._lock:
            return len(self._seen)

    def _forget_idle(self, now: float) -> None:
        for address in [a for a, s in self._seen.items() if not s or s[-1] <= now - self.window]:
            del self._seen[address]
        if len(self._seen) >= _MAX_TRACKED_ADDRESSES:
            # Still full of active addresses: forget the one that has been quiet longest.
            del self._seen[min(self._seen, key=lambda a: self._seen[a][-1])]


def device_id_of(cert_pem: str) -> str:
    """The device id in a device certificate's subject (ids only)."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii"))
    cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    value = str(cn[0].value) if cn else ""
    return value.removeprefix("careline-device-")


def _drain(conn: ssl.SSLSocket) -> None:
    """After refusing a client's certificate in the handshake (OpenSSL sent its alert):
    read and drop what the client writes meanwhile, until it hangs up, for
    HANDSHAKE_TIMEOUT and MAX_BODY bytes at most. Closing with its request unread would
    reset the connection, and the reset can reach the client before it reads the alert,
    leaving it a bare "connection reset" that a busy peer gives too."""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT
    left = MAX_BODY
    with contextlib.suppress(OSError, ValueError):
        while left > 0 and (remaining := deadline - time.monotonic()) > 0:
            conn.settimeout(remaining)
            # The plain socket's recv: the TLS session failed, the bytes are dropped unread.
            piece = socket.socket.recv(conn, min(_DRAIN_READ, left))
            if not piece:
                return
            left -= len(piece)


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # a burst of connections waits in the backlog, not dropped

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        peer: PeerServer,
        context: ssl.SSLContext,
        mutual: bool,
    ) -> None:
        self.peer = peer
        self.context = context
        self.mutual = mutual
        self.gate = ConnectionGate()
        self._workers: set[threading.Thread] = set()
        self._workers_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the accept loop: no I/O with the peer here (the handshake is done in the
        # connection's own thread), so a stalled peer cannot hold the loop.
        address = str(client_address[0])
        try:
            conn = self.context.wrap_socket(
                request, server_side=True, do_handshake_on_connect=False
            )
        except OSError:
            self.shutdown_request(request)
            return
        # A deadline for the whole handshake (CPython applies the socket timeout to the
        # handshake as a whole, not to each read).
        conn.settimeout(HANDSHAKE_TIMEOUT)
        ticket, cut = self.gate.admit(address, conn)
        for old in cut:
            self.peer.refusals.warning(
                old.address,
                "cut",
                "cut a connection from %s that had not authenticated: too many pending "
                "connections (at most %d from one address, %d in all)",
                old.address,
                self.gate.pending_per_address,
                self.gate.pending_total,
            )
        worker = threading.Thread(
            target=self._serve, args=(ticket, client_address), daemon=True, name="lan-peer-conn"
        )
        with self._workers_lock:
            self._workers.add(worker)
        try:
            worker.start()
        except BaseException:
            with self._workers_lock:
                self._workers.discard(worker)
            self.gate.release(ticket)
            conn.close()
            raise

    def _serve(self, ticket: Ticket, client_address: Any) -> None:
        try:
            self._serve_connection(ticket, client_address)
        except Exception:
            self.handle_error(ticket.sock, client_address)
        finally:
            # Released before the socket is closed: the gate may shut down only open sockets.
            self.gate.release(ticket)
            with contextlib.suppress(OSError):
                socket.socket.shutdown(ticket.sock, socket.SHUT_RDWR)
            ticket.sock.close()
            with self._workers_lock:
                self._workers.discard(threading.current_thread())

    def _serve_connection(self, ticket: Ticket, client_address: Any) -> None:
        conn = ticket.sock
        assert isinstance(conn, ssl.SSLSocket)
        where = f"{client_address[0]}:{client_address[1]}"
        try:
            conn.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            if self.mutual and not ticket.cut:
                reason = (
                    getattr(exc, "verify_message", None)
                    or getattr(exc, "reason", None)
                    or exc.__class__.__name__
                )
                self.peer.refusals.warning(
                    ticket.address,
                    "handshake",
                    "refused LAN peer %s: TLS handshake failed (%s)",
                    where,
                    reason,
                )
            if isinstance(exc, ssl.SSLCertVerificationError) and not ticket.cut:
                _drain(conn)  # the alert was sent: let the client read it, not a reset
            return
        if self.mutual:
            device = self.peer.check_client(conn, where)
            if device is None:
                return
            if not self.gate.promote(ticket, device):
                if not ticket.cut:
                    self.peer.refusals.warning(
                        ticket.address,
                        "sessions",
                        "refused LAN peer %s (device %s): too many open sessions "
                        "(at most %d per device, %d in all)",
                        where,
                        device,
                        self.gate.sessions_per_device,
                        self.gate.sessions_total,
                    )
                return
            self.peer.saw(device, ticket.address)
        # Between requests (and inside one) a quiet peer is dropped quickly; a LAN client
        # reconnects for its next request (LanTransport does).
        conn.settimeout(IDLE_TIMEOUT)
        _Handler(conn, client_address, self)

    def server_close(self) -> None:
        super().server_close()
        self.gate.close_all()
        with self._workers_lock:
            workers = list(self._workers)
        for worker in workers:
            worker.join(timeout=5)

    def handle_error(self, request: Any, client_address: Any) -> None:
        self.peer.refusals.warning(
            str(client_address[0]),
            "error",
            "LAN peer connection from %s ended with an error",
            client_address[0],
        )


class _Handler(BaseHTTPRequestHandler):
    server: _TlsServer
    protocol_version = "HTTP/1.1"
    server_version = "careline-peer"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("peer request from %s: " + format, self.client_address[0], *args)

    def _reply(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(
        self, status: int, doc: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._reply(status, json.dumps(doc).encode(), headers=headers)

    def _body(self) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        limit = MAX_BODY if self.server.mutual else MAX_PAIRING_BODY
        if length < 0 or length > limit:
            self._json(413, {"detail": "request too large"})
            return None
        return self.rfile.read(length)

    def do_GET(self) -> None:
        if self.server.mutual and self.path == "/v1/hello":
            self._json(200, {"protocol": PROTOCOL_VERSION, "device_id": self.server.peer.device_id})
        elif self.server.mutual and self.path == "/v1/attachment-keys":
            der = self.connection.getpeercert(binary_form=True)
            self._json(200, self.server.peer.sealed_keys_for(tls.der_to_pem(der)))
        elif self.server.mutual and self.path.startswith("/v1/blobs/"):
            self._send_blob(self.path.removeprefix("/v1/blobs/"))
        else:
            self._json(404, {"detail": "not found"})

    def _send_blob(self, blob_id: str) -> None:
        """An encrypted attachment from this workstation's cache (ciphertext only: the
        asking peer opens it with its own copy of the clinic attachment key)."""
        if BLOB_ID_PATTERN.fullmatch(blob_id) is None:
            self._json(400, {"detail": "malformed attachment id"})
            return
        path = self.server.peer.attachments.path_for(blob_id)
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", "") or "")
        start = int(wanted.group(1)) if wanted else 0
        try:
            src = path.open("rb")
        except OSError:
            self._json(404, {"detail": "this workstation does not have that attachment"})
            return
        with src:
            size = os.fstat(src.fileno()).st_size
            start = min(start, size)
            src.seek(start)
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size - start))
            self.end_headers()
            while piece := src.read(1024 * 1024):
                self.wfile.write(piece)

    def do_POST(self) -> None:
        body = self._body()
        if body is None:
            return
        peer = self.server.peer
        if self.server.mutual and self.path == "/v1/sync":
            der = self.connection.getpeercert(binary_form=True)
            actor = f"peer:{device_id_of(tls.der_to_pem(der))}"
            self._reply(200, Responder(peer.db, actor).handle(body))
        elif self.server.mutual and self.path == "/v1/certify":
            der = self.connection.getpeercert(binary_form=True)
            status, doc = peer.certify(tls.der_to_pem(der), body)
            self._json(status, doc)
        elif not self.server.mutual and self.path == "/v1/pair":
            where = f"{self.client_address[0]}:{self.client_address[1]}"
            wait = peer.pairing_limit.admit(self.client_address[0])
            if wait is not None:
                seconds = max(1, math.ceil(wait))
                peer.refusals.warning(
                    self.client_address[0],
                    "pairing-limit",
                    "refused pairing from %s: more than %d attempts in %g s from this address",
                    where,
                    peer.pairing_limit.attempts,
                    peer.pairing_limit.window,
                )
                detail = (
                    f"too many pairing attempts from this address; try again in {seconds} seconds"
                )
                self._json(429, {"detail": detail}, {"Retry-After": str(seconds)})
                return
            status, doc = peer.pair(body, where)
            self._json(status, doc)
        else:
            self._json(404, {"detail": "not found"})


class PeerServer:
    """A workstation serving LAN peers; ``start`` returns at once, ``stop`` ends it."""

    def __init__(
        self,
        db: Database,
        identity: LanIdentity,
        host: str = "127.0.0.1",
        port: int = 0,
        pairing_port: int | None = None,
        pairing_limit: AttemptLimiter | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.db = db
        self.pairing_limit = AttemptLimiter() if pairing_limit is None else pairing_limit
        # Refusals are logged at most once per address and kind every few seconds.
        self.refusals = RefusalLog(log) if refusals is None else refusals
        self.identity = identity
        self.device_id = identity.device_id
        self.host = host
        self._requested = (port, pairing_port)
        self._servers: list[_TlsServer] = []
        # Each listener whose serve_forever thread started, and that thread.
        self._threads: dict[_TlsServer, threading.Thread] = {}
        self.port = 0
        self.pairing_port: int | None = None
        self._fingerprint = certs.fingerprint(identity.certificate)
        # The clinic's revocation list the sync listener's TLS context was built with.
        self._crl: str | None = op_trust.crl_of(db)
        self._contexts_lock = threading.Lock()

    @property
    def attachments(self) -> FilesystemBlobStore:
        """This workstation's encrypted attachment cache (core.sync.attachments)."""
        return FilesystemBlobStore(Path(self.db.path).parent / "attachments")

    def sealed_keys_for(self, client_pem: str) -> dict[str, str]:
        """The clinic attachment keys held here, each sealed for the asking peer's
        certificate key (already verified by the mutual TLS handshake)."""
        from core.sync.attachments import keys_in
        from core.sync.key_grants import grant_aad

        public = certs.load_certificate(client_pem).public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey):
            return {}
        device = device_id_of(client_pem)
        return {
            key_id: base64.b64encode(seal(public, secret, grant_aad(device, key_id))).decode()
            for key_id, secret in keys_in(self.db).items()
        }

    def use_identity(self, identity: LanIdentity) -> bool:
        """Present ``identity`` from the next connection on (connections already open keep
        the certificate they were made with); False if it is the one presented already.

        For a device whose certificate was replaced while it served: re-certified by the
        clinic server (core.sync.certify), which revokes the certificate replaced, so
        peers that learnt of that would refuse this server until it presented the new one.
        """
        if identity == self.identity:
            return False
        with self._contexts_lock:
            self._use(identity, self._crl)
        log.info("LAN peer server now presents certificate serial %d",
                 certs.serial_of(identity.certificate))  # fmt: skip
        return True

    def _use(self, identity: LanIdentity, crl: str | None) -> None:
        """New TLS contexts for ``identity`` and the revocation list ``crl`` (made first:
        a certificate that cannot be used changes nothing); under ``_contexts_lock``."""
        contexts = [
            tls.server_context(identity, crl)
            if server.mutual
            else tls.pairing_server_context(identity)
            for server in self._servers
        ]
        self.identity = identity
        self.device_id = identity.device_id
        self._fingerprint = certs.fingerprint(identity.certificate)
        self._crl = crl
        for server, context in zip(self._servers, contexts, strict=True):
            server.context = context

    def refresh_revocations(self) -> bool:
        """Refuse in the handshake, with the TLS alert, what the clinic's revocation list
        held here now lists (one received since the listener started, or made here by a
        revocation); False if the listener already uses that list."""
        crl = op_trust.crl_of(self.db)
        with self._contexts_lock:
            if crl == self._crl:
                return False
            self._use(self.identity, crl)
        log.info("LAN peer server now refuses the certificates the clinic's latest "
                 "revocation list names")  # fmt: skip
        return True

    def saw(self, device_id: str, address: str) -> None:
        """On the clinic's LAN CA holder: note where ``device_id`` (verified) was seen
        (:mod:`core.sync.lan.sightings`); a failure to write is logged, never raised."""
        if device_id == self.device_id:
            return
        try:
            if ident.has_ca_key(self.db):
                sightings.note_seen(self.db, device_id, address)
        except Exception as exc:  # e.g. locked meanwhile: the sync itself goes on
            log.info("could not note where device %s was seen: %s", device_id, exc)

    def refresh_identity(self) -> bool:
        """Take up this device's identity and the clinic's revocation list as its database
        holds them now (see :meth:`use_identity`, :meth:`refresh_revocations`): for a
        long-running peer (``careline serve``) whose certificate another process
        (``careline sync``) replaced, or where a revocation was made or received."""
        identity = ident.load_identity(self.db)
        changed = identity is not None and self.use_identity(identity)
        return self.refresh_revocations() or changed

    def start(self) -> PeerServer:
        """Bind and serve in background threads. If any part fails (the pairing port is
        taken, say), what was bound already is closed before the error is raised: the
        sync port must be free for the next attempt, not held until garbage collection."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> PeerServer:
        port, pairing_port = self._requested
        sync_server = _TlsServer(
            (self.host, port),
            _Handler,
            self,
            tls.server_context(self.identity, self._crl),
            mutual=True,
        )
        self._servers.append(sync_server)
        self.port = sync_server.server_address[1]
        if ident.has_ca_key(self.db):
            wanted = pairing_port if pairing_port is not None else (port + 1 if port else 0)
            pair_server = _TlsServer(
                (self.host, wanted),
                _Handler,
                self,
                tls.pairing_server_context(self.identity),
                mutual=False,
            )
            self._servers.append(pair_server)
            self.pairing_port = pair_server.server_address[1]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, daemon=True, name="lan-peer")
            thread.start()
            self._threads[server] = thread
        return self

    def stop(self) -> None:
        """Stop listening and wait for the listener threads."""
        for server in self._servers:
            # shutdown() waits for serve_forever: only a listener whose thread started runs it.
            if server in self._threads:
                server.shutdown()
            server.server_close()
        for thread in self._threads.values():
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        self.refusals.flush()

    def __enter__(self) -> PeerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_client(self, conn: ssl.SSLSocket, where: str) -> str | None:
        """The peer's device id if its certificate is ours and not revoked, else None (logged)."""
        der = conn.getpeercert(binary_form=True)
        address = where.rpartition(":")[0]
        if der is None:
            self.refusals.warning(
                address, "certificate", "refused LAN peer %s: no client certificate", where
            )
            return None
        pem = tls.der_to_pem(der)
        try:
            certs.verify_device(pem, self.identity.ca_certificate, ident.revoked_serials(self.db))
        except certs.CertificateError as exc:
            self.refusals.warning(
                address,
                "certificate",
                "refused LAN peer %s (device %s, serial %d): %s",
                where,
                device_id_of(pem),
                certs.serial_of(pem),
                exc,
            )
            # Passed the handshake, so the listener's list lacks it: a newer one may list
            # it, and its next handshake is then refused with the TLS alert.
            try:
                self.refresh_revocations()
            except Exception as refresh:  # keep the list it has
                log.warning("cannot take up the clinic's revocation list: %s", refresh)
            return None
        return device_id_of(pem)

    def certify(self, client_pem: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Re-issue a paired device's certificate bound to its replica (it was issued before
        op signing). The request is authenticated by the mutual-TLS client certificate: the
        new certificate keeps that device's id and key. A device is certified once: one
        whose certificate names a replica already is refused, and one this CA holder bound
        before gets that same certificate again (its reply may have been lost), never a
        spare with a serial that a revocation would not name. Binding to a replica another
        device is bound to is refused too."""
        if not ident.has_ca_key(self.db):
            return 409, {"detail": "this workstation does not hold the clinic CA"}
        try:
            request = json.loads(body)
            csr = request["csr"]
            if not isinstance(csr, str) or not csr.isascii():
                raise TypeError
            binding = certs.csr_binding(csr)
            asked = x509.load_pem_x509_csr(csr.encode("ascii")).public_key()
        except (ValueError, KeyError, TypeError, certs.CertificateError):
            return 400, {"detail": "malformed certification request"}
        client = x509.load_pem_x509_certificate(client_pem.encode("ascii"))
        device = device_id_of(client_pem)
        held = certs.binding_of(client)
        if held is not None:
            return self._certify_refused(
                device,
                f"device {device} is already bound to replica {held.replica_id}; a bound "
                "certificate is never re-issued, and a device speaks for one replica only "
                "(pair another replica as a new device)",
            )
        if binding is None:
            return 400, {"detail": "the request names no replica to bind the certificate to"}
        if asked != client.public_key():
            return 400, {"detail": "the request's key is not this device's key"}
        try:
            _, cert, _ = ident.issue_device(
                self.db, csr, f"peer:{device}", device_id=device, unbound_only=True
            )
        except certs.CertificateError as exc:
            return 400, {"detail": str(exc)}
        except ident.LanIdentityError as exc:
            return self._certify_refused(device, str(exc))
        log.info("bound device %s to replica %s", device, binding.replica_id)
        return 200, {"certificate": cert}

    def _certify_refused(self, device: str, reason: str) -> tuple[int, dict[str, Any]]:
        # A paired device asking for what it must not have: worth the administrator's eye.
        self.refusals.warning(device, "certify", "refused to certify device %s: %s", device, reason)
        return 409, {"detail": reason}

    def pair(self, body: bytes, where: str) -> tuple[int, dict[str, Any]]:
        """Redeem a pairing request: a CSR and the code's proof bound to our certificate."""
        try:
            request = json.loads(body)
            csr = request["csr"]
            proof = request["proof"]
            if not isinstance(csr, str) or not isinstance(proof, str):
                raise TypeError
            if not (csr.isascii() and proof.isascii()):
                raise ValueError  # a PEM request and a hex proof are ASCII; the HMAC needs it
        except (ValueError, KeyError, TypeError):
            return 400, {"detail": "malformed pairing request"}
        secret = ident.redeem(self.db, proof, self._fingerprint, csr, where)
        if secret is None:
            self.refusals.warning(
                where.rpartition(":")[0],
                "pairing-code",
                "refused pairing from %s: wrong, expired or used code",
                where,
            )
            return 403, {"detail": "the pairing code is wrong, expired or already used"}
        try:
            device_id, cert, ca_pem = ident.issue_device(self.db, csr, "lan-peer", address=where)
        except certs.CertificateError as exc:
            return 400, {"detail": str(exc)}
        except ident.LanIdentityError as exc:
            return 409, {"detail": str(exc)}
        log.info("paired device %s from %s", device_id, where)
        return 201, {
            "device_id": device_id,
            "certificate": cert,
            "ca_certificate": ca_pem,
            "proof": ident.server_proof(secret, self._fingerprint, cert, ca_pem),
        }

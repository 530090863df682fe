"""A LAN peer cannot make this workstation hold more of its reply than the sync protocol
allows, nor store more of an attachment than its record allows, even a peer holding a
valid clinic certificate. The peer here is a real mutual-TLS listener on 127.0.0.1 that
answers as a hostile workstation would; the client is the real ``LanTransport``."""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.crypto import certs
from core.records.workstation import Workstation
from core.sync.lan import identity as lan_id
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity
from core.sync.lan.server import MAX_BODY, PeerServer
from core.sync.lan.transport import LanTransport, ReplyTooLargeError
from core.sync.protocol import MAX_MESSAGE_BYTES

Answer = Callable[[ssl.SSLSocket, bytes], None]  # (connection, request head) -> writes a reply
MiB = 1024 * 1024


def _clinic() -> tuple[LanIdentity, LanIdentity]:
    """Two devices of one clinic: this workstation and the hostile one."""
    ca_key, ca_pem = certs.create_ca(secrets.token_hex(8))
    devices = []
    for _ in range(2):
        device_id, key = secrets.token_hex(8), certs.new_private_key()
        cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, device_id), device_id)
        devices.append(LanIdentity(device_id, cert, certs.private_key_pem(key).decode(), ca_pem))
    return devices[0], devices[1]


@dataclass
class HostilePeer:
    """Accepts mutual-TLS connections and answers each request with ``answer``; counts the
    body bytes it managed to send (the client stops reading: the rest stays unsent)."""

    identity: LanIdentity
    answer: Answer
    sent: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._context = tls.server_context(self.identity)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._listener.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            raw.settimeout(10)
            try:
                with self._context.wrap_socket(raw, server_side=True) as conn:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(65536)
                    self.answer(conn, head)
            except OSError:
                pass  # the client hung up, as it should

    def stream(self, conn: ssl.SSLSocket, header: bytes, total: int | None) -> None:
        """Write ``header`` then spaces: ``total`` bytes of them, or until the client quits."""
        conn.sendall(header)
        chunk, sent = b" " * MiB, 0
        self.sent.append(0)
        try:
            while total is None or sent < total:
                piece = chunk[: MiB if total is None else min(MiB, total - sent)]
                conn.sendall(piece)
                sent += len(piece)
                self.sent[-1] = sent
            conn.recv(1)  # closing with the request's body unread would reset the reply
        except OSError:
            return

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.fixture
def peer_of() -> Iterator[Callable[[Answer], tuple[HostilePeer, LanIdentity]]]:
    made: list[HostilePeer] = []

    def make(answer: Answer) -> tuple[HostilePeer, LanIdentity]:
        ours, theirs = _clinic()
        made.append(HostilePeer(theirs, answer))
        return made[-1], ours

    yield make
    for peer in made:
        peer.close()


def _json_reply(length: int | None) -> bytes:
    declared = f"Content-Length: {length}\r\n" if length is not None else "Connection: close\r\n"
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{declared}\r\n".encode()


CALLS: dict[str, Callable[[LanTransport], object]] = {
    "sync": lambda t: t.request(b"{}"),
    "hello": lambda t: t.hello(),
    "attachment keys": lambda t: t.attachment_keys(),
    "certify": lambda t: t.certify("csr"),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_reply_announced_over_the_protocol_limit_is_refused_unread(
    peer_of: Callable[[Answer], tuple[HostilePeer, LanIdentity]],
    call: Callable[[LanTransport], object],
) -> None:
    size = 256 * MiB
    peer, ours = peer_of(lambda conn, _: peer.stream(conn, _json_reply(size), size))
    with (
        LanTransport(peer.address, ours) as transport,
        pytest.raises(ReplyTooLargeError) as refused,
    ):
        call(transport)
    assert str(refused.value) == (
        f"the peer {peer.address} announced a reply of {size} bytes, over the "
        f"{MAX_MESSAGE_BYTES}-byte limit; not read"
    )
    peer.close()
    assert peer.sent[0] < MAX_MESSAGE_BYTES  # what the kernel's buffers took, at most


def test_a_reply_without_a_length_is_read_no_further_than_the_limit(
    peer_of: Callable[[Answer], tuple[HostilePeer, LanIdentity]],
) -> None:
    peer, ours = peer_of(lambda conn, _: peer.stream(conn, _json_reply(None), None))
    with (
        LanTransport(peer.address, ours) as transport,
        pytest.raises(ReplyTooLargeError, match=f"more than {MAX_MESSAGE_BYTES} bytes"),
    ):
        transport.request(b"{}")
    peer.close()
    assert peer.sent[0] < 2 * MAX_MESSAGE_BYTES  # it was not read to the end: there is none


def test_a_reply_of_exactly_the_limit_is_read(
    peer_of: Callable[[Answer], tuple[HostilePeer, LanIdentity]],
) -> None:
    size = MAX_MESSAGE_BYTES
    peer, ours = peer_of(lambda conn, _: peer.stream(conn, _json_reply(size), size))
    with LanTransport(peer.address, ours) as transport:
        assert len(transport.request(b"{}")) == size


def _blob_reply(status: int, length: int | None) -> bytes:
    declared = f"Content-Length: {length}\r\n" if length is not None else "Connection: close\r\n"
    reason = "OK" if status == 200 else "Partial Content"
    return f"HTTP/1.1 {status} {reason}\r\n{declared}\r\n".encode()


def test_an_attachment_announced_larger_than_its_record_allows_is_not_stored(
    peer_of: Callable[[Answer], tuple[HostilePeer, LanIdentity]], tmp_path: Path
) -> None:
    size = 256 * MiB
    peer, ours = peer_of(lambda conn, _: peer.stream(conn, _blob_reply(200, size), size))
    dest = tmp_path / ("ab" * 32)
    with (
        LanTransport(peer.address, ours) as transport,
        pytest.raises(ReplyTooLargeError) as refused,
    ):
        transport.fetch_blob(dest.name, dest, "00" * 32, lambda done, total: None, max_bytes=MiB)
    assert str(refused.value) == (
        f"the peer {peer.address} announced {size} bytes for attachment {dest.name}, more "
        f"than the {MiB} its record allows; not downloaded"
    )
    assert not dest.exists() and dest.with_name(dest.name + ".part").stat().st_size == 0


def test_a_resumed_attachment_streamed_past_its_record_size_keeps_only_what_it_had(
    peer_of: Callable[[Answer], tuple[HostilePeer, LanIdentity]], tmp_path: Path
) -> None:
    asked: list[bytes] = []

    def answer(conn: ssl.SSLSocket, head: bytes) -> None:
        asked.append(head)
        peer.stream(conn, _blob_reply(206, None), None)

    peer, ours = peer_of(answer)
    dest = tmp_path / ("cd" * 32)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(b"x" * 1000)  # an earlier download, cut off
    seen: list[int] = []
    with (
        LanTransport(peer.address, ours) as transport,
        pytest.raises(ReplyTooLargeError, match=f"sent over {MiB} bytes for attachment"),
    ):
        transport.fetch_blob(
            dest.name, dest, "00" * 32, lambda done, total: seen.append(done), max_bytes=MiB
        )
    assert b"Range: bytes=1000-" in asked[0]
    assert part.read_bytes() == b"x" * 1000 and not dest.exists()
    assert max(seen) <= MiB


def test_the_peer_server_takes_a_request_body_up_to_the_protocol_limit_only(
    workstation: Workstation,
) -> None:
    db = workstation.database
    holder = lan_id.ensure_identity(db, "admin")
    key = certs.new_private_key()
    device, cert, ca = lan_id.issue_device(db, certs.make_csr(key, "pending"), "admin")
    client = LanIdentity(device, cert, certs.private_key_pem(key).decode(), ca)
    with PeerServer(db, holder) as server:
        # Just over the protocol's limit: read, and refused by the protocol, saying why.
        with LanTransport(f"127.0.0.1:{server.port}", client) as transport:
            reply = json.loads(transport.request(b" " * (MAX_MESSAGE_BYTES + 1)))
        assert reply["type"] == "error" and reply["code"] == "too_large"
        # Over the listener's limit: refused before a byte of the body is read.
        context = tls.client_context(client)
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw,
            context.wrap_socket(raw) as conn,
        ):
            conn.sendall(
                b"POST /v1/sync HTTP/1.1\r\nHost: peer\r\n"
                + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode()
            )
            assert conn.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert MAX_MESSAGE_BYTES + MiB >= MAX_BODY

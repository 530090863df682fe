"""LAN peers' mutual TLS works whichever way the platform hands the device key to OpenSSL
(Linux's in-memory file, macOS's named pipe, Windows's temporary file: the last two are
simulated here by hiding the Linux calls)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import ssl
import threading

import pytest

from core.crypto import certs
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity


def _devices(issued_at: dt.datetime | None = None) -> tuple[LanIdentity, LanIdentity]:
    ca_key, ca_pem = certs.create_ca(secrets.token_hex(8))
    devices = []
    for _ in range(2):
        device_id = secrets.token_hex(8)
        key = certs.new_private_key()
        csr = certs.make_csr(key, device_id)
        cert = certs.sign_device(ca_key, ca_pem, csr, device_id, issued_at)
        devices.append(
            LanIdentity(device_id, cert, certs.private_key_pem(key).decode("ascii"), ca_pem)
        )
    return devices[0], devices[1]


@pytest.mark.parametrize(
    "hidden",
    [(), ("memfd_create",), ("memfd_create", "mkfifo")],
    ids=["linux", "macos (named pipe)", "windows (temporary file)"],
)
def test_peers_complete_mutual_tls(
    monkeypatch: pytest.MonkeyPatch, hidden: tuple[str, ...]
) -> None:
    for name in hidden:
        monkeypatch.delattr(os, name, raising=False)
    server_id, client_id = _devices()
    server_ctx, client_ctx = tls.server_context(server_id), tls.client_context(client_id)
    left, right = socket.socketpair()
    seen: dict[str, bytes | None] = {}

    def serve() -> None:
        with server_ctx.wrap_socket(left, server_side=True) as conn:
            seen["client"] = conn.getpeercert(binary_form=True)
            conn.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(right) as conn:
        assert conn.recv(2) == b"ok"
        seen["server"] = conn.getpeercert(binary_form=True)
    thread.join(30)
    assert seen["server"] == ssl.PEM_cert_to_DER_cert(server_id.certificate)
    assert seen["client"] == ssl.PEM_cert_to_DER_cert(client_id.certificate)


def _handshake(server_id: LanIdentity, client_id: LanIdentity) -> bytes | None:
    """One mutual-TLS handshake; returns the server certificate the client saw."""
    server_ctx, client_ctx = tls.server_context(server_id), tls.client_context(client_id)
    left, right = socket.socketpair()

    def serve() -> None:
        with server_ctx.wrap_socket(left, server_side=True) as conn:
            conn.sendall(b"ok")

    thread = threading.Thread(target=serve)
    thread.start()
    with client_ctx.wrap_socket(right) as conn:
        assert conn.recv(2) == b"ok"
        seen = conn.getpeercert(binary_form=True)
    thread.join(30)
    return seen


def test_a_workstation_whose_clock_is_behind_still_connects() -> None:
    # Certificates issued by a CA whose clock reads two days later than this computer's.
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    server_id, client_id = _devices(ahead)
    assert _handshake(server_id, client_id) == ssl.PEM_cert_to_DER_cert(server_id.certificate)
    assert certs.verify_device(server_id.certificate, server_id.ca_certificate, set()) > 0


def test_an_expired_device_certificate_is_refused_naming_this_computers_clock() -> None:
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=certs.DEVICE_DAYS + 1)
    server_id, _ = _devices(long_ago)
    with pytest.raises(certs.CertificateError, match=r"expired on .*this computer's clock reads"):
        certs.verify_device(server_id.certificate, server_id.ca_certificate, set())

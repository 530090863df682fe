"""LAN peers' mutual TLS works whichever way the platform hands the device key to OpenSSL
(Linux's in-memory file, macOS's named pipe, Windows's temporary file: the last two are
simulated here by hiding the Linux calls)."""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import threading

import pytest

from core.crypto import certs
from core.sync.lan import tls
from core.sync.lan.identity import LanIdentity


def _devices() -> tuple[LanIdentity, LanIdentity]:
    ca_key, ca_pem = certs.create_ca(secrets.token_hex(8))
    devices = []
    for _ in range(2):
        device_id = secrets.token_hex(8)
        key = certs.new_private_key()
        cert = certs.sign_device(ca_key, ca_pem, certs.make_csr(key, device_id), device_id)
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

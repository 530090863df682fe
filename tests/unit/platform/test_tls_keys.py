"""A private key held in memory reaches an SSLContext by each platform's means: an
in-memory file (Linux), a named pipe (macOS), a zeroed temporary file (Windows). Each is
run here on Linux; each must give a context that completes a real TLS handshake."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.crypto import certs
from core.platform import tls_keys

Loader = Callable[[ssl.SSLContext, str, str], None]


class _Watched(ssl.SSLContext):
    """A real server context that notes what the paths it is given are, while it loads."""

    seen: list[dict[str, Any]]
    kept: list[int]

    def load_cert_chain(self, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        self.seen, self.kept = [], []
        for path in dict.fromkeys(p for p in (certfile, keyfile) if p is not None):
            info = os.stat(path)
            parent = Path(path).parent
            self.seen.append(
                {
                    "path": str(path),
                    "fifo": stat.S_ISFIFO(info.st_mode),
                    "mode": stat.S_IMODE(info.st_mode),
                    "folder_mode": stat.S_IMODE(parent.stat().st_mode),
                }
            )
            if stat.S_ISREG(info.st_mode) and not str(path).startswith("/proc/"):
                self.kept.append(os.open(path, os.O_RDONLY))  # to look at it after deletion
        super().load_cert_chain(certfile, keyfile, password)


@pytest.fixture(scope="module")
def server_pem() -> tuple[str, str]:
    key_pem, cert_pem = certs.self_signed_server(["127.0.0.1"])
    return cert_pem, key_pem.decode("ascii")


def _handshake(server: ssl.SSLContext, cert_pem: str) -> bytes:
    """The certificate a client sees after a full handshake with ``server``."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(cadata=cert_pem)
    left, right = socket.socketpair()
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            with server.wrap_socket(left, server_side=True) as conn:
                conn.sendall(b"ok")
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    with client.wrap_socket(right) as conn:
        assert conn.recv(2) == b"ok"
        der = conn.getpeercert(binary_form=True)
    thread.join(30)
    assert not errors
    assert der is not None
    return der


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Temporary folders are made here, so the test sees what is left behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def _load(loader: Loader, pem: tuple[str, str]) -> _Watched:
    context = _Watched(ssl.PROTOCOL_TLS_SERVER)
    loader(context, *pem)
    assert _handshake(context, pem[0]) == ssl.PEM_cert_to_DER_cert(pem[0])
    return context


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="Linux only")
def test_linux_hands_the_key_over_in_memory(server_pem: tuple[str, str], private_tmp: Path) -> None:
    context = _load(tls_keys.load_via_memfd, server_pem)
    assert [s["path"].startswith("/proc/self/fd/") for s in context.seen] == [True]
    assert list(private_tmp.iterdir()) == []


def test_fifo_hands_the_key_over_through_a_pipe_in_a_private_folder(
    server_pem: tuple[str, str], private_tmp: Path
) -> None:
    context = _load(tls_keys.load_via_fifo, server_pem)
    cert, key = context.seen
    assert (cert["fifo"], key["fifo"]) == (False, True)  # only the public part is a file
    assert key["mode"] == 0o600 and key["folder_mode"] == 0o700
    assert list(private_tmp.iterdir()) == []  # pipe, certificate and folder are gone
    for fd in context.kept:
        os.close(fd)


def test_fifo_gives_up_cleanly_when_openssl_refuses_the_certificate(
    server_pem: tuple[str, str], private_tmp: Path
) -> None:
    """OpenSSL fails before it opens the key's pipe: the writer is released, nothing hangs,
    nothing is left behind."""
    threads = threading.active_count()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.raises(ssl.SSLError):
        tls_keys.load_via_fifo(context, "not a certificate\n", server_pem[1])
    assert threading.active_count() == threads
    assert list(private_tmp.iterdir()) == []


def test_temp_file_is_private_then_zeroed_and_deleted(
    server_pem: tuple[str, str], private_tmp: Path
) -> None:
    context = _load(tls_keys.load_via_temp_file, server_pem)
    [chain] = context.seen
    assert chain["mode"] == 0o600 and chain["folder_mode"] == 0o700
    assert list(private_tmp.iterdir()) == []
    [fd] = context.kept  # still open on the deleted file: its bytes were overwritten
    with os.fdopen(fd, "rb") as fh:
        left = fh.read()
    assert len(left) == len((server_pem[0] + server_pem[1]).encode()) and not left.strip(b"\0")


@pytest.mark.parametrize(
    ("hidden", "expected"),
    [((), "memfd"), (("memfd_create",), "fifo"), (("memfd_create", "mkfifo"), "temp file")],
)
def test_each_platform_gets_its_means(
    server_pem: tuple[str, str],
    private_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
    hidden: tuple[str, ...],
    expected: str,
) -> None:
    if not hasattr(os, "memfd_create"):
        pytest.skip("needs Linux to hide its calls from")
    for name in hidden:
        monkeypatch.delattr(os, name)
    context = _load(tls_keys.load_cert_chain, server_pem)
    for fd in context.kept:
        os.close(fd)
    first = context.seen[-1]
    used = (
        "memfd"
        if first["path"].startswith("/proc/")
        else ("fifo" if first["fifo"] else "temp file")
    )
    assert used == expected

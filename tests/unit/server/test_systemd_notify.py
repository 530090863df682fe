"""sd_notify without libsystemd: the datagram reaches the socket systemd names."""

from __future__ import annotations

import logging
import secrets
import socket
import tempfile
from pathlib import Path

import pytest

from core.server.systemd_notify import notify, notify_address


def test_without_notify_socket_nothing_is_sent() -> None:
    assert notify_address({}) is None
    assert notify("READY=1", {}) is False


def test_ready_reaches_a_socket_named_by_path() -> None:
    # A short folder: a Unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        path = str(Path(folder) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(path)
            listener.settimeout(5)
            assert notify("READY=1\nSTATUS=serving", {"NOTIFY_SOCKET": path}) is True
            assert listener.recv(4096) == b"READY=1\nSTATUS=serving"


def test_ready_reaches_an_abstract_socket() -> None:
    name = f"careline-test-{secrets.token_hex(6)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0" + name)
        listener.settimeout(5)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert listener.recv(4096) == b"READY=1"


def test_a_socket_nobody_listens_on_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="careline.server"):
        assert notify("READY=1", {"NOTIFY_SOCKET": "/nonexistent/careline-notify"}) is False
    assert "could not notify systemd (READY=1)" in caplog.text


def test_a_malformed_notify_socket_is_named() -> None:
    with pytest.raises(ValueError, match="NOTIFY_SOCKET='relative/sock' is neither"):
        notify_address({"NOTIFY_SOCKET": "relative/sock"})


def test_an_address_it_cannot_use_does_not_stop_the_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # systemd 254+ may hand a VM's service "vsock:CID:PORT". notify() runs after uvicorn
    # has bound its port: raising there would stop a working server (and Restart= would
    # loop it); the start timeout reports the missing readiness instead.
    with caplog.at_level(logging.WARNING, logger="careline.server"):
        assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert "could not notify systemd (READY=1)" in caplog.text
    assert "vsock:2:1234" in caplog.text

"""The desktop app's sync sessions share one HTTPS connection to the clinic server (no new
TLS handshake per session) for as long as the server settings stay the same; a change of
trust gets a new one, and signing out closes it.

Counted at the server: every sync request's ASGI scope names the connection it came on
(its client address and port), and a new connection is a new TLS handshake.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.sync.controller import SYNCED
from core.cli.server import SERVER_KEEPALIVE_S, ensure_tls
from core.sync.enroll import load_credential, save_credential
from tests.integration.server_fixtures import live_server
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_status import FAST_SYNC, joined

WAIT_MS = 15_000


def _session(qtbot: QtBot, window: MainWindow) -> None:
    """One more session, asked for as Sync now does, run to its end."""
    with qtbot.waitSignal(window.sync.synced, timeout=WAIT_MS):
        window.sync.sync_now()
    assert window.sync.status.state == SYNCED


def test_sessions_share_one_connection_until_the_server_settings_change(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory, caplog: pytest.LogCaptureFixture
) -> None:
    connections: list[tuple[str, int]] = []

    def seen(scope: dict[str, Any]) -> None:
        if scope["path"] == "/v1/sync":
            host, port = scope["client"]
            connections.append((str(host), int(port)))

    with live_server(tmp_path / "server", on_request=seen, keep_alive_s=SERVER_KEEPALIVE_S) as live:
        ws, _, credential = joined(live, tmp_path / "desk", "Keep-Alive Clinic")
        window = make_window(ws, sync_options=FAST_SYNC)
        connections.clear()  # the set-up's own sessions
        sign_in(qtbot, window)
        qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=WAIT_MS)
        _session(qtbot, window)
        _session(qtbot, window)
        # Three sessions, several requests each, one connection.
        assert len(connections) >= 3
        assert len(set(connections)) == 1
        first = connections[0]

        # The pinned trust changes (a second CA certificate trusted beside the server's):
        # the next session's connection is a new one, made with it.
        other_ca = ensure_tls(tmp_path / "other", "127.0.0.1")[0].read_text()
        held = load_credential(ws.database)
        assert held is not None
        save_credential(
            ws.database, dataclasses.replace(held, server_ca_pem=live.ca_pem + other_ca)
        )
        connections.clear()
        _session(qtbot, window)
        _session(qtbot, window)
        assert len(set(connections)) == 1 and connections[0] != first
        second = connections[0]

        # Signing out closes it: the next person's first session makes a new one.
        window.sign_out()
        connections.clear()
        sign_in(qtbot, window)
        qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=WAIT_MS)
        _session(qtbot, window)
        assert len(set(connections)) == 1 and connections[0] not in (first, second)
        assert credential.server_url == live.url
        # uvicorn's own log (its logger does not propagate to the root one).
        caplog.set_level(logging.INFO, logger="uvicorn.error")
        uvicorn_log = logging.getLogger("uvicorn")
        uvicorn_log.addHandler(caplog.handler)
    uvicorn_log.removeHandler(caplog.handler)

    # The server stopped with this workstation's idle connection open: cut at once, not
    # closed gracefully (TLS's close waits up to 30 s for a client that is not reading).
    assert "Shutting down" in caplog.text
    assert "Waiting for connections to close" not in caplog.text

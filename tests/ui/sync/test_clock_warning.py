"""The status bar tells the person at a workstation whose clock is off by how much.

The clinic server runs as its own ``careline-server run`` process with its clock two hours
behind (libfaketime, see tests.faketime), so this workstation's clock, the real one, is two
hours ahead of it: the server's replies say what its clock reads, as at every sync.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from pytestqt.qtbot import QtBot

from app.sync.controller import SYNCED, SyncStatus
from app.sync.status import CLOCK_ADVICE, describe_status
from tests.integration.server_fixtures import add_clinic, enroll_desk, make_server
from tests.integration.server_process import ServerProcess
from tests.services import free_port
from tests.ui.conftest import WindowFactory, sign_in

FAST_SYNC = {"debounce_ms": 400, "interval_ms": 60_000, "backoff_base_ms": 1_000}
TWO_HOURS_AHEAD = "This computer's clock is 2 hours ahead of the clinic server"


def test_the_status_line_adds_the_clock_warning_after_the_rest() -> None:
    now = dt.datetime(2026, 1, 1, 9, 30, tzinfo=dt.UTC)
    status = SyncStatus(SYNCED, last_sync=now, held_back=1, clock_warning=TWO_HOURS_AHEAD)
    assert describe_status(status) == (
        "Synced at 09:30. 1 change waits until the other side's Careline is updated. "
        f"{TWO_HOURS_AHEAD}."
    )


def test_a_workstation_hours_ahead_of_the_server_is_told_in_the_status_bar(
    qtbot: QtBot,
    tmp_path: Path,
    make_window: WindowFactory,
    faketime: Callable[[str], dict[str, str]],
    no_keyring: None,
) -> None:
    data = tmp_path / "server"
    admin = make_server(data)  # set up here, then served by the process with the slow clock
    try:
        code, _ = admin.registry.issue_enroll_code(add_clinic(admin, "Slow Server Clinic"), 10)
    finally:
        admin.close()
    server = ServerProcess(data, free_port(), env=faketime("-2h"))
    server.start()
    try:
        ws, _ = enroll_desk(server.url, server.ca_pem, code, tmp_path / "desk")
        ws.records.add_patient("Mensah", "Ama", "1979-05-05")
        ws.lock()
        window = make_window(ws, sync_options=FAST_SYNC)
        sign_in(qtbot, window)
        qtbot.waitUntil(lambda: bool(window.sync.status.clock_warning), timeout=15_000)
        # The records still sync; the person is told, and what to do.
        assert window.sync.status.state == SYNCED
        assert window.sync_status.text.text().endswith(f" {TWO_HOURS_AHEAD}.")
        assert window.sync_status.toolTip() == CLOCK_ADVICE
        window.sign_out()
    finally:
        server.stop()

"""The sync thread failing on an exception that is no Exception (pycrdt panicking: pyo3's
PanicException) ends the session: the status bar says sync failed and that a background
task failed, rather than "Syncing…" for ever, and the next session runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytestqt.qtbot import QtBot

from app.sync.controller import ERROR, SYNCED
from core.records import crdt
from core.sync.enroll import ServerCredential
from core.sync.transport import Transport
from tests.fuzz.campaign import CORPUS
from tests.integration.server_fixtures import Live
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_status import FAST_SYNC, joined

# A note state pycrdt applies, and panics on encoding again (found by fuzzing).
PANICKING_STATE = (CORPUS / "crdt_update" / "crash-state-panics-pycrdt-on-encoding").read_bytes()[
    2:
]


@pytest.mark.qt_no_exception_capture  # the app's own sys.excepthook is under test
def test_a_panic_on_the_sync_thread_ends_the_session_and_is_said(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory, app_hooks: None
) -> None:
    ws, _, _ = joined(live, tmp_path / "desk", "Panicking Clinic")
    panics = [True]

    def connect(credential: ServerCredential) -> Transport:
        # The first session's connection meets a record pycrdt panics on (for real).
        if panics.pop() if panics else False:
            crdt.load(PANICKING_STATE, 1).get_update()
        return credential.transport()

    window = make_window(ws, sync_options={**FAST_SYNC, "transport_factory": connect})
    sign_in(qtbot, window)

    qtbot.waitUntil(lambda: window.sync.status.state == ERROR, timeout=10_000)
    assert window.sync_status.text.text().startswith(
        "Sync problem: Something went wrong that Careline did not expect"
    )
    # The thread's exception hook runs after the session has ended in error, and its
    # signal is queued to the GUI thread: the status bar says it soon after, not at once.
    qtbot.waitUntil(
        lambda: (
            window.statusBar()
            .currentMessage()
            .startswith(
                "A background task failed (thread careline-sync: pyo3_runtime.PanicException)."
            )
        ),
        timeout=5_000,
    )
    # Not stuck: the next session runs, and reaches the server.
    window.sync.sync_now()
    qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=10_000)

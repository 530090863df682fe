"""End to end: two desktop app instances and one ``careline-server`` process.

Two MainWindows (each on its own workstation data folder, offscreen, in this process) sync
through a live server process on 127.0.0.1: a patient registered on one appears on the
other; the same field edited on both while their sync is paused becomes one conflict in
both apps' inboxes; resolving it on one app clears it on both.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.conflicts.dialog import ConflictsDialog
from app.main_window import MainWindow
from app.sync.controller import STOPPED, SYNCED
from core.server.service import ClinicServer
from core.store.oplog import version_vector
from tests.integration.server_fixtures import join_clinic, sync_at
from tests.integration.server_process import ServerProcess
from tests.ui.conftest import WindowFactory, sign_in

# Fast schedule: push 0.3 s after a change, pull every second.
SYNC_OPTIONS = {"debounce_ms": 300, "interval_ms": 1_000, "backoff_base_ms": 500}
WAIT_MS = 20_000


def names(window: MainWindow) -> list[str]:
    model = window.workspace.patient_list.model
    return [str(model.index(row, 0).data()) for row in range(model.rowCount())]


def badge(window: MainWindow) -> str:
    return window.workspace.conflicts_action.text()


def has_badge(window: MainWindow, text: str) -> bool:
    return badge(window) == text


def synced(window: MainWindow) -> bool:
    return window.sync.status.state == SYNCED


def open_chart(qtbot: QtBot, window: MainWindow, patient_id: str) -> None:
    chart = window.workspace.chart
    window.workspace.open_chart(patient_id)
    qtbot.waitUntil(
        lambda: chart.patient is not None and chart.patient.id == patient_id, timeout=5_000
    )


def edit_phone(qtbot: QtBot, window: MainWindow, patient_id: str, phone: str) -> None:
    """Chart → Edit details… → phone → Save, as a person would."""
    open_chart(qtbot, window, patient_id)
    chart = window.workspace.chart
    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    dialog = chart.patient_dialog
    assert dialog is not None
    dialog.phone.setText(phone)
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chart.phone.text() == phone, timeout=5_000)


def open_inbox(qtbot: QtBot, window: MainWindow, count: int) -> ConflictsDialog:
    window.workspace.conflicts_action.trigger()
    dialog = window.workspace.conflicts_dialog
    assert isinstance(dialog, ConflictsDialog)
    qtbot.waitUntil(lambda: len(dialog.cards) == count and dialog.isVisible(), timeout=5_000)
    return dialog


def test_two_apps_sync_through_a_server_process_and_share_conflicts(
    qtbot: QtBot,
    server: tuple[ServerProcess, ClinicServer, str],
    tmp_path: Path,
    make_window: WindowFactory,
) -> None:
    running, admin, clinic = server
    ws_a, credential_a = join_clinic(
        admin, running.url, running.ca_pem, clinic, tmp_path / "desk-a", "desk A"
    )
    maria = ws_a.records.add_patient("Garcia", "Maria", "1984-03-02", phone="555-0000").id
    sync_at(ws_a, credential_a)
    ws_a.lock()
    ws_b, _ = join_clinic(admin, running.url, running.ca_pem, clinic, tmp_path / "desk-b", "B")
    ws_b.lock()

    window_a = make_window(ws_a, sync_options=SYNC_OPTIONS)
    window_b = make_window(ws_b, sync_options=SYNC_OPTIONS)
    for window in (window_a, window_b):
        sign_in(qtbot, window)
        qtbot.waitUntil(partial(synced, window), timeout=WAIT_MS)
    assert names(window_b) == ["GARCIA, Maria"]

    # 1. A patient registered on A (through the dialog) appears in B's list.
    workspace_a = window_a.workspace
    workspace_a.new_patient_action.trigger()
    dialog = workspace_a.patient_dialog
    assert dialog is not None
    QTest.keyClicks(dialog.family, "Haddad")
    QTest.keyClicks(dialog.given, "Yusuf")
    QTest.keyClicks(dialog.birth_date, "2001-04-17")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "HADDAD, Yusuf" in names(window_b), timeout=WAIT_MS)
    qtbot.waitUntil(partial(synced, window_a), timeout=WAIT_MS)

    # 2. Both change Maria's phone while neither can sync...
    for window in (window_a, window_b):
        window.sync.stop()
        assert window.sync.status.state == STOPPED
        assert window.sync_status.text.text() == "Sync paused."
    qtbot.waitUntil(lambda: not window_a.sync.busy and not window_b.sync.busy, timeout=WAIT_MS)
    edit_phone(qtbot, window_a, maria, "555-0001")
    edit_phone(qtbot, window_b, maria, "555-0002")
    assert badge(window_a) == badge(window_b) == "Conflicts"

    # ...then sync: one conflict, in both apps' badges and inboxes, with both values.
    window_a.sync.start()
    window_b.sync.start()
    inboxes = []
    for window in (window_a, window_b):
        qtbot.waitUntil(partial(has_badge, window, "Conflicts (1)"), timeout=WAIT_MS)
        inbox = open_inbox(qtbot, window, 1)
        [card] = inbox.cards
        assert card.conflict.record_id == maria and card.conflict.field == "phone"
        assert {c.value for c in card.conflict.candidates} == {"555-0001", "555-0002"}
        inboxes.append(inbox)
    inbox_a, inbox_b = inboxes
    inbox_b.reject()

    # 3. Resolve it on A (keep B's number): A's inbox empties, then B's badge clears.
    [card] = inbox_a.cards
    chosen = next(c for c in card.conflict.candidates if c.value == "555-0002")
    card.choose(chosen.id)
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not inbox_a.cards, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: badge(window_a) == "Conflicts", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: badge(window_b) == "Conflicts", timeout=WAIT_MS)
    inbox_b = open_inbox(qtbot, window_b, 0)
    qtbot.waitUntil(lambda: inbox_b.status.text().startswith("No conflicts"), timeout=5_000)
    inbox_b.reject()

    # Both show the chosen number, and all three replicas hold the same ops.
    open_chart(qtbot, window_b, maria)
    assert window_b.workspace.chart.phone.text() == "555-0002"
    assert window_a.workspace.chart.phone.text() == "555-0002"

    def converged() -> bool:
        server_vv = version_vector(admin.replica(clinic))
        return version_vector(ws_a.database) == server_vv == version_vector(ws_b.database)

    qtbot.waitUntil(converged, timeout=WAIT_MS)

"""Operations: every screen hears what changed, from a local edit or a sync, and refreshes
only for its own records; a stale read is superseded, never shown.

Real core throughout: a second workstation of the same clinic (the "other desk") syncs with
the window's workstation through core's responder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.chart.page import ChartPage
from app.main_window import MainWindow
from app.operations import Operations
from app.patients.list_page import PatientListModel
from app.sync.controller import SYNCED, SYNCING
from core.crypto.kdf import FAST_PARAMS
from core.records.changeset import Changes
from core.records.workstation import Workstation
from core.sync.enroll import ServerCredential, save_credential
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in

WAIT_MS = 10_000


def row_names(model: PatientListModel) -> list[str]:
    return [model.index(r, 0).data() for r in range(model.rowCount())]


def chart_openings(ws: Workstation, patient_id: str) -> int:
    rows = ws.database.query(
        "SELECT count(*) FROM audit_log WHERE action = 'chart.open' AND entity_id = ?",
        (patient_id,),
    )
    return int(rows[0][0])


def open_chart_of(qtbot: QtBot, window: MainWindow, name: str) -> ChartPage:
    """Select ``name`` in the list and press Enter, as a person would."""
    page = window.workspace.patient_list
    row = row_names(page.model).index(name)
    page.table.setFocus()
    page.table.selectRow(row)
    QTest.keyClick(page.table, Qt.Key.Key_Return)
    chart = window.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=WAIT_MS)
    return chart


class Reloads:
    """Counts the chart's reloads (the real method still runs)."""

    def __init__(self, chart: ChartPage, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = chart.reload

        def counting() -> None:
            self.count += 1
            real()

        monkeypatch.setattr(chart, "reload", counting)


def test_a_local_edit_in_the_chart_refreshes_the_patient_list(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    window = signed_in
    model = window.workspace.patient_list.model
    chart = open_chart_of(qtbot, window, "GARCIA, Maria")
    patient = chart.patient
    assert patient is not None

    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    dialog = chart.patient_dialog
    assert dialog is not None
    dialog.family.selectAll()
    QTest.keyClicks(dialog.family, "Garcia-Lopez")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    # The list behind the chart refreshed itself from the change, and so did the chart.
    qtbot.waitUntil(lambda: "GARCIA-LOPEZ, Maria" in row_names(model), timeout=WAIT_MS)
    assert "GARCIA, Maria" not in row_names(model)
    qtbot.waitUntil(lambda: chart.name.text() == "GARCIA-LOPEZ, Maria", timeout=WAIT_MS)
    assert window.windowTitle().startswith("GARCIA-LOPEZ, Maria — ")
    # A refresh of the chart on screen is no new opening in the audit log.
    assert chart_openings(clinic, patient.id) == 1


@pytest.fixture
def other_desk(clinic: Workstation, tmp_path: Path) -> Iterator[Workstation]:
    """A second workstation of the clinic, signed in; the window's workstation syncs with it
    (its "server" is this desk, through core's responder)."""
    clinic.sign_in(ADMIN, PASSWORD)
    join_test_clinic(clinic.database)
    desk = Workstation(tmp_path / "other-desk", FAST_PARAMS)
    desk.prepare_join(ADMIN, PASSWORD)
    join_test_clinic(desk.database)
    sync(desk.database, LocalTransport(Responder(clinic.database)), ADMIN)
    desk.lock()
    desk.sign_in(ADMIN, PASSWORD)
    credential = ServerCredential(
        "https://other-desk.invalid", "dev-1", "clinic-1", "Riverside", "token", "", "", "", None
    )
    save_credential(clinic.database, credential)
    clinic.lock()
    yield desk
    desk.lock()


@pytest.fixture
def synced_window(
    qtbot: QtBot, clinic: Workstation, other_desk: Workstation, make_window: WindowFactory
) -> MainWindow:
    """The main window, signed in and synced once with the other desk."""

    def to_other_desk(_credential: ServerCredential) -> Any:
        return LocalTransport(Responder(other_desk.database))

    options = {"transport_factory": to_other_desk, "interval_ms": 600_000}
    window = make_window(clinic, sync_options=options)
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: window.sync_status.sync_button.isVisible(), timeout=WAIT_MS)
    return window


def sync_now(qtbot: QtBot, window: MainWindow) -> None:
    """Click "Sync now" and wait for the session to finish."""
    with qtbot.waitSignal(window.sync.synced, timeout=WAIT_MS):
        QTest.mouseClick(window.sync_status.sync_button, Qt.MouseButton.LeftButton)


def test_sync_now_pressed_from_the_keyboard_keeps_the_keyboard(
    qtbot: QtBot, synced_window: MainWindow
) -> None:
    """Found using the app under Xvfb: "Sync now" was hidden while the sync ran, and the
    keyboard that had pressed it went to the toolbar's "New patient"."""
    button = synced_window.sync_status.sync_button
    button.setFocus(Qt.FocusReason.TabFocusReason)
    seen: list[tuple[str, bool, bool]] = []  # each state shown: the button shown, focused
    synced_window.sync.status_changed.connect(
        lambda status: seen.append((status.state, button.isVisible(), button.hasFocus()))
    )
    QTest.keyClick(button, Qt.Key.Key_Space)
    qtbot.waitUntil(
        lambda: [state for state, _, _ in seen][-2:] == [SYNCING, SYNCED], timeout=WAIT_MS
    )
    assert all(shown and focused for _, shown, focused in seen), seen
    QApplication.processEvents()
    assert QApplication.focusWidget() is button


def test_a_synced_change_of_the_open_patient_refreshes_the_chart(
    qtbot: QtBot,
    synced_window: MainWindow,
    other_desk: Workstation,
    clinic: Workstation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chart = open_chart_of(qtbot, synced_window, "GARCIA, Maria")
    patient = chart.patient
    assert patient is not None and chart.phone.text() == "Not recorded"
    reloads = Reloads(chart, monkeypatch)

    other_desk.records.update_patient(patient.id, {"phone": "555-0199"})
    other_desk.records.add_allergy(patient.id, "Latex", "Rash", "mild")
    sync_now(qtbot, synced_window)

    qtbot.waitUntil(lambda: chart.phone.text() == "555-0199", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: chart.allergy_table.rowCount() == 1, timeout=WAIT_MS)
    item = chart.allergy_table.item(0, 0)
    assert item is not None and item.text() == "Latex"
    assert reloads.count == 1
    assert chart_openings(clinic, patient.id) == 1


def test_a_synced_change_of_another_patient_does_not_reload_the_chart(
    qtbot: QtBot,
    synced_window: MainWindow,
    other_desk: Workstation,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = synced_window.workspace.patient_list.model
    chart = open_chart_of(qtbot, synced_window, "GARCIA, Maria")
    reloads = Reloads(chart, monkeypatch)
    [luis] = [p for p in other_desk.records.search_patients("garcia") if p.given == "Luis"]

    other_desk.records.update_patient(luis.id, {"given": "Lucho"})
    sync_now(qtbot, synced_window)

    # The change arrived (the list behind the chart shows it), and the chart stayed as it was.
    qtbot.waitUntil(lambda: "GARCIA, Lucho" in row_names(model), timeout=WAIT_MS)
    assert reloads.count == 0
    assert chart.name.text() == "GARCIA, Maria"


def test_a_slow_stale_chart_read_is_superseded(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    window = signed_in
    workspace = window.workspace
    chart = workspace.chart
    model = workspace.patient_list.model
    maria, bao = (
        model.patient_id(row_names(model).index(n)) for n in ("GARCIA, Maria", "NGUYEN, Bao")
    )
    shown: list[str] = []
    chart.title_changed.connect(lambda name: shown.append(name) if name else None)
    # Hold the worker so that Maria's chart is still on its way when the person moves on.
    started, release = threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        release.wait(10)

    window.worker.submit(busy, label="slow")
    assert started.wait(5)
    workspace.open_chart(maria)
    QTest.keyClick(chart.back_button, Qt.Key.Key_Escape)  # back to the list at once
    assert workspace.pages.currentWidget() is workspace.patient_list
    workspace.open_chart(bao)
    release.set()

    qtbot.waitUntil(lambda: chart.patient is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: window.worker.pending == 0, timeout=WAIT_MS)
    assert shown == ["NGUYEN, Bao"]  # Maria's chart never appeared
    assert chart.name.text() == "NGUYEN, Bao"
    # The superseded read never ran: nobody opened Maria's chart, and the log says so.
    assert chart_openings(clinic, maria) == 0
    assert chart_openings(clinic, bao) == 1


def test_a_read_already_running_is_superseded_by_a_newer_one(
    qtbot: QtBot, operations: Operations
) -> None:
    started, release = threading.Event(), threading.Event()
    delivered: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        return "stale"

    operations.read("search", slow, delivered.append)
    assert started.wait(5)
    operations.read("search", lambda: "fresh", delivered.append)
    release.set()
    qtbot.waitUntil(lambda: delivered == ["fresh"], timeout=5_000)
    qtbot.waitUntil(lambda: operations.worker.pending == 0)
    assert delivered == ["fresh"]
    assert not operations.reading("search")


def test_a_local_write_is_broadcast_as_typed_changes(qtbot: QtBot, signed_in: MainWindow) -> None:
    window = signed_in
    records = window.workspace._records
    received: list[Changes] = []
    window.operations.changed.connect(received.append)
    holder: list[str] = []

    def register() -> None:
        holder.append(records().add_patient("Haddad", "Yusuf", "1988-08-08").id)

    window.operations.submit(register)
    qtbot.waitUntil(lambda: bool(received), timeout=WAIT_MS)
    [changes] = received
    assert changes.patients == frozenset(holder)
    assert changes.local and not changes.conflicted
    # A read changes nothing and is not broadcast.
    window.operations.submit(lambda: records().count_patients())
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    qtbot.wait(50)
    assert len(received) == 1

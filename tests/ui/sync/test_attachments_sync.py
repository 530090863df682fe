"""Two desktop apps and a server process: a photo added in one app's chart is uploaded by
that app's sync (encrypted; the clinic attachment key passed on sealed for the other
device) and opens in the other app's chart."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.attachments import AttachmentsSection, ImageViewer
from app.main_window import MainWindow
from core.server.service import ClinicServer
from core.sync.attachments import HERE, PENDING
from tests.integration.server_fixtures import join_clinic, sync_at
from tests.integration.server_process import ServerProcess
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_server import SYNC_OPTIONS, WAIT_MS, open_chart, synced


def section_of(window: MainWindow) -> AttachmentsSection:
    chart = window.workspace.chart
    return next(s for s in chart.sections if isinstance(s, AttachmentsSection))


def where(section: AttachmentsSection) -> str:
    item = section.table.item(0, 4)
    return item.text() if item is not None else ""


def test_a_photo_added_in_one_app_opens_in_the_other(
    qtbot: QtBot,
    server: tuple[ServerProcess, ClinicServer, str],
    tmp_path: Path,
    make_window: WindowFactory,
) -> None:
    running, admin, clinic = server
    ws_a, cred_a = join_clinic(admin, running.url, running.ca_pem, clinic, tmp_path / "a", "A")
    rita = ws_a.records.add_patient("Osei", "Rita", "1990-09-09").id
    sync_at(ws_a, cred_a)
    ws_a.lock()
    ws_b, _ = join_clinic(admin, running.url, running.ca_pem, clinic, tmp_path / "b", "B")
    ws_b.lock()
    window_a = make_window(ws_a, sync_options=SYNC_OPTIONS)
    window_b = make_window(ws_b, sync_options=SYNC_OPTIONS)
    for window in (window_a, window_b):
        sign_in(qtbot, window)
        qtbot.waitUntil(partial(synced, window), timeout=WAIT_MS)

    image = QImage(24, 16, QImage.Format.Format_RGB32)
    image.fill(QColor("orange"))
    photo = tmp_path / "rash.png"
    assert image.save(str(photo))
    open_chart(qtbot, window_a, rita)
    on_a = section_of(window_a)
    window_a.sync.stop()  # added while not syncing: queued
    qtbot.waitUntil(lambda: not window_a.sync.busy, timeout=WAIT_MS)
    on_a.add_file(photo)
    assert on_a.add_dialog is not None
    QTest.mouseClick(on_a.add_dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: where(on_a) == PENDING, timeout=WAIT_MS)
    window_a.sync.start()

    def uploaded() -> bool:
        on_a.reload()  # availability is not a record change: ask again
        return where(on_a) == HERE

    qtbot.waitUntil(uploaded, timeout=WAIT_MS)

    open_chart(qtbot, window_b, rita)
    on_b = section_of(window_b)
    qtbot.waitUntil(lambda: on_b.table.rowCount() == 1, timeout=WAIT_MS)
    on_b.table.selectRow(0)
    QTest.mouseClick(on_b.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(on_b.viewer, ImageViewer), timeout=WAIT_MS)
    assert isinstance(on_b.viewer, ImageViewer)
    assert on_b.viewer.image.pixmap().width() == 24

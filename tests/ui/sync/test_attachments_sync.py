"""Two desktop apps and a server process: a photo added in one app's chart is uploaded by
that app's sync (encrypted; the clinic attachment key passed on sealed for the other
device) and opens in the other app's chart. The chart follows the background upload
("uploading 33%" in its "Where" column) and both the upload's end and the other app's fetch
change "Where" without the chart being opened again."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.attachments import AttachmentsSection, ImageViewer
from app.main_window import MainWindow
from core.server.service import ClinicServer
from core.sync.attachments import HERE, PENDING, REMOTE
from tests.integration.server_fixtures import join_clinic, sync_at
from tests.integration.server_process import ServerProcess
from tests.ui.conftest import WindowFactory, sign_in
from tests.ui.sync.test_server import SYNC_OPTIONS, WAIT_MS, open_chart, synced


def section_of(window: MainWindow) -> AttachmentsSection:
    chart = window.workspace.chart
    return next(s for s in chart.sections if isinstance(s, AttachmentsSection))


def where(section: AttachmentsSection, title: str | None = None) -> str:
    """The "Where" cell of the file titled ``title`` (default: the first row)."""
    rows = [i for i, a in enumerate(section._items) if title in (None, a.title)]
    item = section.table.item(rows[0], 4) if rows else None
    return item.text() if item is not None else ""


def waiting(section: AttachmentsSection, title: str) -> bool:
    return where(section, title) == PENDING


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
    scan = tmp_path / "scan.bin"
    scan.write_bytes(os.urandom(3 * 1024 * 1024))  # three pieces: progress in between
    open_chart(qtbot, window_a, rita)
    on_a = section_of(window_a)
    window_a.sync.stop()  # added while not syncing: queued
    qtbot.waitUntil(lambda: not window_a.sync.busy, timeout=WAIT_MS)
    for path in (photo, scan):
        on_a.add_file(path)
        assert on_a.add_dialog is not None
        QTest.mouseClick(on_a.add_dialog.add_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(partial(waiting, on_a, path.stem), timeout=WAIT_MS)
    # What the "Where" cell of the scan said as the sync thread's upload reported progress
    # (read in a slot connected after the tab's own, on the GUI thread).
    shown: list[str] = []
    window_a.sync.transfers.progressed.connect(lambda *_: shown.append(where(on_a, "scan")))
    window_a.sync.start()

    # No reload, no reopening: the tab hears the uploads finish.
    qtbot.waitUntil(
        lambda: where(on_a, "scan") == HERE and where(on_a, "rash") == HERE, timeout=WAIT_MS
    )
    assert "uploading 33%" in shown and "uploading 100%" in shown, shown
    assert shown.index("uploading 33%") < shown.index("uploading 100%")

    open_chart(qtbot, window_b, rita)
    on_b = section_of(window_b)
    qtbot.waitUntil(lambda: on_b.table.rowCount() == 2, timeout=WAIT_MS)
    assert where(on_b, "rash") == REMOTE
    on_b.table.selectRow(next(i for i, a in enumerate(on_b._items) if a.title == "rash"))
    QTest.mouseClick(on_b.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(on_b.viewer, ImageViewer), timeout=WAIT_MS)
    assert isinstance(on_b.viewer, ImageViewer)
    assert on_b.viewer.image.pixmap().width() == 24
    # Fetched into B's cache: "Where" says so, the chart still open.
    qtbot.waitUntil(lambda: where(on_b, "rash") == HERE, timeout=WAIT_MS)
    assert where(on_b, "scan") == REMOTE

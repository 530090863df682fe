"""The chart's Attachments tab with a real SQLCipher clinic: a file dropped on the tab is
added with its title, date and category (encrypted on the worker, waiting for upload), an
image opens inside the app, a copy saved out is the original file, and a file without a
title is not added."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QColor, QDesktopServices, QDropEvent, QImage
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.attachments import AttachmentsSection, ImageViewer, has_qt_pdf
from app.chart.page import ChartPage
from app.main_window import MainWindow
from core.records.workstation import Workstation
from core.sync.attachments import PENDING
from tests.ui.chart.test_page import open_first_chart

MARKER = b"ATTACHMENT-UI-MARKER"


def open_attachments(qtbot: QtBot, window: MainWindow) -> tuple[ChartPage, AttachmentsSection]:
    """Open the first patient's chart and click its Attachments tab."""
    chart = open_first_chart(qtbot, window)
    section = next(s for s in chart.sections if isinstance(s, AttachmentsSection))
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == "Attachments")
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert chart.tabs.currentWidget() is section.widget()
    qtbot.waitUntil(lambda: section.add_button.isEnabled(), timeout=5_000)
    return chart, section


def drop(section: AttachmentsSection, path: Path) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    section.page.dropEvent(event)


def test_a_dropped_image_is_added_opened_and_saved_out(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    image = QImage(40, 30, QImage.Format.Format_RGB32)
    image.fill(QColor("teal"))
    photo = tmp_path / "wound.png"
    assert image.save(str(photo))
    drop(section, photo)
    dialog = section.add_dialog
    assert dialog is not None and dialog.title.text() == "wound"
    dialog.title.setText("Wound, day 3")
    dialog.date.setText("2026-12-01")
    dialog.category.setCurrentText("photo")
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    cells = [section.table.item(0, c).text() for c in range(5)]  # type: ignore[union-attr]
    assert cells == ["2026-12-01", "Wound, day 3", "photo", "wound.png", PENDING]
    [(title, category)] = clinic.database.query("SELECT title, category FROM attachments")
    assert (title, category) == ("Wound, day 3", "photo")
    # Only ciphertext in the workstation's attachment cache.
    cached = [p for p in (clinic.data_dir / "attachments").rglob("*") if p.is_file()]
    assert cached and all(photo.read_bytes()[:64] not in p.read_bytes() for p in cached)

    section.table.selectRow(0)
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(section.viewer, ImageViewer), timeout=10_000)
    assert isinstance(section.viewer, ImageViewer)
    shown = section.viewer.image.pixmap()
    assert (shown.width(), shown.height()) == (40, 30)

    copy = tmp_path / "out" / "copy.png"
    copy.parent.mkdir()
    item = section.selected()
    assert item is not None
    section.save_copy(item, copy)
    qtbot.waitUntil(lambda: "Saved a copy" in section.status.text(), timeout=10_000)
    assert copy.read_bytes() == photo.read_bytes()


def test_a_file_without_a_title_is_not_added(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    section.add_file(letter)
    dialog = section.add_dialog
    assert dialog is not None
    dialog.title.clear()
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.error.text() == "Give the file a title."
    assert clinic.database.query("SELECT count(*) FROM attachments")[0][0] == 0


def test_a_wrong_date_keeps_the_dialog_open_with_what_was_typed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    # Refused after the dialog had closed, the file, title and category were lost, and the
    # message said "date: date: ...".
    _, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    section.add_file(letter)
    dialog = section.add_dialog
    assert dialog is not None
    dialog.title.setText("Cardiology referral")
    dialog.date.setText("2026-02-30")
    dialog.category.setCurrentText("letter")
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()
    assert dialog.error.text() == "Date: '2026-02-30' is not a date: February 2026 has 28 days."
    assert (dialog.title.text(), dialog.category.currentText()) == ("Cardiology referral", "letter")
    assert clinic.database.query("SELECT count(*) FROM attachments")[0][0] == 0
    dialog.date.setText("2026-2-3")  # as typed, written out whole
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    assert clinic.database.query("SELECT date FROM attachments")[0][0] == "2026-02-03"


def test_a_pdf_opens_in_the_system_viewer_and_its_copy_goes_with_the_chart(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if has_qt_pdf():
        pytest.skip("PySide6-Addons is installed: PDFs open inside the app")
    opened: list[Path] = []

    def open_url(url: QUrl) -> bool:
        opened.append(Path(url.toLocalFile()))
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    chart, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "lab.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER * 1000)
    section.add_file(letter)
    assert section.add_dialog is not None
    QTest.mouseClick(section.add_dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    section.table.selectRow(0)
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)
    assert opened[0].read_bytes() == letter.read_bytes()
    assert "system's viewer" in section.status.text()
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not opened[0].exists(), timeout=5_000)  # gone with the chart

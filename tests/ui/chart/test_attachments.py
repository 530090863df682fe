"""The chart's Attachments tab with a real SQLCipher clinic: a file dropped on the tab is
added with its title, date and category (encrypted on the worker, waiting for upload), an
image opens inside the app, a copy saved out is the original file, and a file without a
title, an empty one or a fake one is not added; a file is taken off the chart with a reason
(and listed under Show removed), and its details corrected."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDropEvent,
    QImage,
    QPageSize,
    QPainter,
    QPdfWriter,
)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QScrollArea
from pytestqt.qtbot import QtBot

from app.chart.attachments import (
    AttachmentsSection,
    EditAttachmentDialog,
    ImageViewer,
    RemoveAttachmentDialog,
)
from app.chart.page import ChartPage
from app.chart.pdf_viewer import PdfViewer
from app.main_window import MainWindow
from core.records.workstation import Workstation
from core.sync.attachments import NO_SERVER
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import SMALL, answer_discard, asks_nothing, wheel
from tests.ui.layout import rect_in

MARKER = b"ATTACHMENT-UI-MARKER"
PDF_MARKER = b"PDF-ATTACHMENT-UI-MARKER"


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


def a_png(path: Path, width: int, height: int) -> Path:
    """A real PNG image of ``width`` x ``height`` pixels (plain teal), saved by Qt at ``path``."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("teal"))
    assert image.save(str(path))
    return path


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
    photo = a_png(tmp_path / "wound.png", 40, 30)
    drop(section, photo)
    dialog = section.add_dialog
    assert dialog is not None and dialog.title.text() == "wound"
    dialog.title.setText("Wound, day 3")
    dialog.date.setText("2026-12-01")
    dialog.category.setCurrentText("photo")
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    cells = [section.table.item(0, c).text() for c in range(5)]  # type: ignore[union-attr]
    # No server is set here: the file stays on this workstation (LAN peers fetch it), it
    # is not said to wait for an upload that has nowhere to go.
    assert cells == ["2026-12-01", "Wound, day 3", "photo", "wound.png", NO_SERVER]
    qtbot.waitUntil(lambda: "Added Wound, day 3" in section.status.text(), timeout=5_000)
    assert "stays on this workstation" in section.status.text()
    assert "next sync" not in section.status.text()
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
    assert dialog.isVisible() and dialog.errors["title"].text() == "Give the file a title."
    assert clinic.database.query("SELECT count(*) FROM attachments")[0][0] == 0


def add_and_select(qtbot: QtBot, section: AttachmentsSection, path: Path) -> None:
    """Add ``path`` through the dialog, wait for it in the list, and highlight it."""
    rows = section.table.rowCount()
    section.add_file(path)
    assert section.add_dialog is not None
    QTest.mouseClick(section.add_dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == rows + 1, timeout=10_000)
    row = next(i for i, a in enumerate(section._items) if a.filename == path.name)
    section.table.selectRow(row)


def test_from_the_list_the_keyboard_goes_back_to_open_with_the_chosen_file(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    """Shift+Tab from the list reaches Show removed, the buttons from Remove… back to Open,
    the file chosen in the list still the chosen one: Tab does not walk the list's cells
    (which moved the choice to another file past the row's first cell)."""
    _, section = open_attachments(qtbot, signed_in)
    for name in ("first.pdf", "second.pdf"):
        path = tmp_path / name
        path.write_bytes(b"%PDF-1.4 " + name.encode())
        add_and_select(qtbot, section, path)
    table = section.table
    table.setFocus()
    QTest.keyClick(table, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)  # first row
    chosen = section.selected()
    assert chosen is not None and table.currentRow() == 0
    for reached in (section.show_removed, section.remove_button, section.edit_button,
                    section.save_button, section.open_button):  # fmt: skip
        QTest.keyClick(
            table.window().focusWidget(), Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier
        )
        assert table.window().focusWidget() is reached
        assert section.selected() == chosen


def test_reached_by_tab_the_list_chooses_a_file_and_return_opens_it(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    photo = a_png(tmp_path / "rash.png", 24, 16)
    add_and_select(qtbot, section, photo)
    table = section.table
    table.clearSelection()
    window = table.window()
    window.activateWindow()  # focus events reach only the active window's widgets
    qtbot.waitUntil(window.isActiveWindow, timeout=2_000)
    section.open_button.setFocus()
    assert section.selected() is None and not section.open_button.isEnabled()
    # Shift+Tab from the buttons' row back into the list, as a person going round: the row
    # the keyboard lands on is chosen, so Open works without an arrow key first ...
    table.setFocus(Qt.FocusReason.BacktabFocusReason)
    qtbot.waitUntil(lambda: section.selected() is not None, timeout=2_000)
    assert section.open_button.isEnabled()
    # ... and Return opens it, as a double click does.
    QTest.keyClick(table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: isinstance(section.viewer, ImageViewer), timeout=10_000)
    assert isinstance(section.viewer, ImageViewer)
    shown = section.viewer.image.pixmap()
    assert (shown.width(), shown.height()) == (24, 16)


def a_pdf(path: Path, pages: int) -> bytes:
    """A real PDF of ``pages`` pages, drawn by Qt's own PDF writer."""
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.A6))
    writer.setTitle(PDF_MARKER.decode())  # kept as plain text in the file
    painter = QPainter(writer)
    for page in range(pages):
        if page:
            writer.newPage()
        painter.drawText(100, 100, f"lab result, page {page + 1}")
    painter.end()
    return path.read_bytes()


def files_holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_pdf_opens_inside_the_app_from_memory_with_pages_and_zoom(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    opened: list[Path] = []

    def open_url(url: QUrl) -> bool:
        opened.append(Path(url.toLocalFile()))
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # what a spill would use
    chart, section = open_attachments(qtbot, signed_in)
    source = tmp_path / "in" / "labs.pdf"
    source.parent.mkdir()
    plaintext = a_pdf(source, 3)
    assert PDF_MARKER in plaintext
    add_and_select(qtbot, section, source)
    source.unlink()  # from here on, only Careline's encrypted copy exists
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(section.viewer, PdfViewer), timeout=10_000)
    viewer = section.viewer
    assert isinstance(viewer, PdfViewer)
    assert viewer.page_count == 3 and viewer.pages_label.text() == "of 3"
    assert viewer.page.value() == 1 and not viewer.previous_button.isEnabled()
    # Shown without the plaintext touching the disk: not beside the database, not in the
    # folder system-viewer copies go to, not in the temporary folder.
    for folder in (clinic.data_dir, section._opened, temporary):
        assert files_holding(folder, PDF_MARKER) == [], folder

    QTest.mouseClick(viewer.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: viewer.current_page == 1, timeout=5_000)
    assert viewer.page.value() == 2
    viewer.page.setValue(3)
    qtbot.waitUntil(lambda: viewer.current_page == 2, timeout=5_000)
    assert not viewer.next_button.isEnabled()
    assert viewer.zoom_label.text() == "fit width"
    QTest.mouseClick(viewer.fit_button, Qt.MouseButton.LeftButton)
    factor = viewer.view.zoomFactor()
    QTest.mouseClick(viewer.zoom_in_button, Qt.MouseButton.LeftButton)
    assert viewer.view.zoomFactor() == pytest.approx(factor * 1.25)
    assert viewer.zoom_label.text() == f"{round(factor * 125)}%"
    for _ in range(30):
        QTest.mouseClick(viewer.zoom_out_button, Qt.MouseButton.LeftButton)
    assert viewer.view.zoomFactor() == pytest.approx(0.25)  # no zooming away to nothing

    # The person may still hand a copy to the system's viewer; it goes with the chart.
    QTest.mouseClick(viewer.system_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)
    assert opened[0].read_bytes() == plaintext
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not opened[0].exists(), timeout=5_000)


def test_a_damaged_pdf_is_refused_with_its_name(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    whole = a_pdf(tmp_path / "whole.pdf", 2)
    damaged = tmp_path / "scan-2024.pdf"
    damaged.write_bytes(whole[: len(whole) // 3])  # cut off, as a failed scan leaves it
    add_and_select(qtbot, section, damaged)
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "cannot be shown" in section.status.text(), timeout=10_000)
    assert section.status.text() == "scan-2024.pdf cannot be shown: it is damaged or not a PDF"
    assert section.viewer is None


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
    assert dialog.errors["date"].text() == (
        "Date: '2026-02-30' is not a date: February 2026 has 28 days."
    )
    assert (dialog.title.text(), dialog.category.currentText()) == ("Cardiology referral", "letter")
    assert clinic.database.query("SELECT count(*) FROM attachments")[0][0] == 0
    dialog.date.setText("2026-2-3")  # as typed, written out whole
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    assert clinic.database.query("SELECT date FROM attachments")[0][0] == "2026-02-03"


def test_a_file_the_app_cannot_show_opens_in_the_system_viewer_and_goes_with_the_chart(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []

    def open_url(url: QUrl) -> bool:
        opened.append(Path(url.toLocalFile()))
        return True

    monkeypatch.setattr(QDesktopServices, "openUrl", open_url)
    chart, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "referral.txt"
    letter.write_bytes(b"Referral " + MARKER * 1000)
    add_and_select(qtbot, section, letter)
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(opened), timeout=10_000)
    assert opened[0].read_bytes() == letter.read_bytes()
    assert "system's viewer" in section.status.text()
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not opened[0].exists(), timeout=5_000)  # gone with the chart


def test_the_category_takes_no_value_from_the_wheel(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """Scrolled over, the empty box filled itself with "lab" and took focus."""
    _, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    section.add_file(letter)
    dialog = section.add_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    QTest.mouseClick(dialog.title, Qt.MouseButton.LeftButton)
    for notches in (-1, -1, 1):
        wheel(dialog.category, notches)
    assert dialog.category.currentText() == ""
    assert dialog.title.hasFocus()
    QTest.keyClick(dialog.title, Qt.Key.Key_Escape)  # nothing typed: closes at once
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_choose_a_file_goes_once_a_file_is_chosen_and_escape_asks_first(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    QTest.mouseClick(section.add_button, Qt.MouseButton.LeftButton)
    dialog = section.add_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    QTest.keyClicks(dialog.title, "Referral")
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.errors["file"].isVisible()
    assert dialog.errors["file"].text() == "Choose a file to add."

    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    # The system's file dialog cannot be driven here: it answers with the file chosen.
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(letter), ""))
    QTest.mouseClick(dialog.browse, Qt.MouseButton.LeftButton)
    assert dialog.file_label.text() == "letter.pdf"
    assert not dialog.errors["file"].isVisible()  # answered: the message is gone

    QTest.keyClick(dialog.title, Qt.Key.Key_Escape)  # a file and a title: asks first
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_add_file_opens_on_choose_file_and_gives_back_the_room_of_a_message_put_right(
    qtbot: QtBot,
    signed_in: MainWindow,
    clinic: Workstation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From the keyboard: the dialog opened with focus on Add and no heading, and after
    "Choose a file to add." was answered a blank band stayed where it had been. An
    untouched category stores none."""
    _, section = open_attachments(qtbot, signed_in)
    section.add_button.setFocus()
    QTest.keyClick(section.add_button, Qt.Key.Key_Space)
    dialog = section.add_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(dialog.browse.hasFocus)  # the first step: Choose file…
    heading = dialog.findChild(QLabel, "dialogHeading")
    assert heading is not None and heading.isVisible()
    assert heading.text() == "Add a file to the chart"
    assert rect_in(heading, dialog).bottom() < rect_in(dialog.browse, dialog).top()  # above
    opened_height = dialog.height()

    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    file_error = dialog.errors["file"]
    assert file_error.isVisible() and file_error.text() == "Choose a file to add."
    assert dialog.errors["title"].text() == "Give the file a title."  # said at once
    qtbot.waitUntil(lambda: dialog.height() > opened_height)  # room for the message

    letter = tmp_path / "Referral from Dr Osei.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    # The system's file dialog cannot be driven here: it answers with the file chosen.
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(letter), ""))
    dialog.browse.setFocus()
    QTest.keyClick(dialog.browse, Qt.Key.Key_Space)
    assert not file_error.isVisible()
    assert not dialog.errors["title"].isVisible()  # the file's name became its title
    qtbot.waitUntil(lambda: dialog.height() == opened_height)  # no blank band left
    gap = rect_in(dialog.add_button, dialog).top() - rect_in(dialog.category, dialog).bottom()
    assert gap < 2 * dialog.category.height()
    # Chosen: on to its title, ready to be typed over.
    assert dialog.title.hasFocus() and dialog.title.selectedText() == "Referral from Dr Osei"
    QTest.keyClicks(dialog.title, "Referral, cardiology")
    QTest.keyClick(dialog.title, Qt.Key.Key_Tab)
    QTest.keyClick(dialog.date, Qt.Key.Key_Tab)
    assert dialog.category.hasFocus() and dialog.category.currentText() == ""
    typing_in = QApplication.focusWidget()  # the box's own line
    assert typing_in is not None
    QTest.keyClick(typing_in, Qt.Key.Key_Return)  # nothing chosen: Add
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    [(title, category)] = clinic.database.query("SELECT title, category FROM attachments")
    assert (title, category) == ("Referral, cardiology", None)


def test_add_file_says_everything_wrong_at_once_each_under_its_field(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tester's steps: a title, an impossible date, no file, Return. Only "Choose a file
    to add." was said, under Category, and once a file was chosen the date's message came
    next, under Category again, with the keyboard left in Title."""
    _, section = open_attachments(qtbot, signed_in)
    QTest.mouseClick(section.add_button, Qt.MouseButton.LeftButton)
    dialog = section.add_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    QTest.mouseClick(dialog.title, Qt.MouseButton.LeftButton)
    assert dialog.title.hasFocus()
    QTest.keyClicks(dialog.title, "Chest X-ray")
    QTest.keyClick(dialog.title, Qt.Key.Key_Tab)
    assert dialog.date.hasFocus()
    QTest.keyClicks(dialog.date, "2026-02-30")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    errors = dialog.errors
    assert dialog.isVisible()
    assert errors["file"].isVisible() and errors["file"].text() == "Choose a file to add."
    assert errors["date"].isVisible() and errors["date"].text() == (
        "Date: '2026-02-30' is not a date: February 2026 has 28 days."
    )
    assert not errors["title"].isVisible()
    # Each under its own field: the file's between the file row and Title, the date's
    # between Date and Category.
    file_message, date_message = rect_in(errors["file"], dialog), rect_in(errors["date"], dialog)
    assert rect_in(dialog.browse, dialog).bottom() < file_message.top()
    assert file_message.bottom() < rect_in(dialog.title, dialog).top()
    assert rect_in(dialog.date, dialog).bottom() < date_message.top()
    assert date_message.bottom() < rect_in(dialog.category, dialog).top()
    assert dialog.browse.hasFocus()  # the first field in error: Space chooses the file

    scan = tmp_path / "chest-xray.png"
    a_png(scan, 20, 20)
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *_a, **_k: (str(scan), ""))
    QTest.keyClick(dialog.browse, Qt.Key.Key_Space)
    assert not errors["file"].isVisible() and errors["date"].isVisible()
    QTest.keyClick(QApplication.focusWidget() or dialog, Qt.Key.Key_Return)
    assert dialog.isVisible() and errors["date"].isVisible()
    assert dialog.date.hasFocus() and dialog.date.selectedText() == "2026-02-30"
    QTest.keyClicks(dialog.date, "2026-02-03")  # typed over
    assert not errors["date"].isVisible()
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)


def test_the_viewers_fit_the_screen_and_a_small_image_shows_whole(
    qtbot: QtBot, signed_in: MainWindow, small_screen: None, tmp_path: Path
) -> None:
    """The tester's E6: the PDF viewer opened 800x900 on an 800-pixel-high screen (its
    bottom off screen), and a 200x100 image opened in a 240x140 window, scroll bars
    cutting into it. The PDF viewer fits the screen's available room; the image viewer
    takes the image's size (up to the screen), no scroll bars."""
    _, section = open_attachments(qtbot, signed_in)
    add_and_select(qtbot, section, a_png(tmp_path / "small.png", 200, 100))
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(section.viewer, ImageViewer), timeout=10_000)
    image = section.viewer
    assert isinstance(image, ImageViewer)
    qtbot.waitExposed(image)
    scroll = image.findChild(QScrollArea)
    assert scroll is not None
    assert not scroll.horizontalScrollBar().isVisible()
    assert not scroll.verticalScrollBar().isVisible()
    assert scroll.viewport().width() >= 200 and scroll.viewport().height() >= 100
    image.close()
    # A photo larger than the screen: the viewer fits the screen, and the photo scrolls.
    add_and_select(qtbot, section, a_png(tmp_path / "large.png", 1000, 720))
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.viewer is not image, timeout=10_000)
    large = section.viewer
    assert isinstance(large, ImageViewer)
    assert large.width() <= SMALL.width() and large.height() + 40 <= SMALL.height()
    large.close()

    pdf = tmp_path / "long.pdf"
    a_pdf(pdf, 2)
    add_and_select(qtbot, section, pdf)
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(section.viewer, PdfViewer), timeout=10_000)
    viewer = section.viewer
    assert isinstance(viewer, PdfViewer)
    room = SMALL.size()
    assert viewer.width() <= room.width() and viewer.height() + 40 <= room.height()


def test_opening_a_file_and_saving_a_copy_are_in_who_has_seen_this_chart(
    qtbot: QtBot,
    signed_in: MainWindow,
    clinic: Workstation,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tester: opening lab.pdf and rash.png, and Save a copy… (decrypted patient data
    on disk), left no audit entry, where printing the summary leaves one."""
    chart, section = open_attachments(qtbot, signed_in)
    add_and_select(qtbot, section, a_png(tmp_path / "rash.png", 40, 30))
    [record_id] = [a.id for a in section._items]
    QTest.mouseClick(section.open_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: isinstance(section.viewer, ImageViewer), timeout=10_000)
    assert section.viewer is not None
    section.viewer.reject()
    copy = tmp_path / "copy.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(copy), ""))
    QTest.mouseClick(section.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Saved a copy" in section.status.text(), timeout=10_000)
    assert copy.exists()
    patient = chart.patient
    assert patient is not None
    rows = clinic.database.query(
        "SELECT action, entity, entity_id, details FROM audit_log "
        "WHERE action LIKE 'attachment.%' ORDER BY seq"
    )
    assert [tuple(r[:3]) for r in rows] == [
        ("attachment.create", "attachment", record_id),
        ("attachment.view", "attachment", record_id),
        ("attachment.save", "attachment", record_id),
    ]
    assert "rash" not in str(rows)  # the file's name is a clinical value: not in the log

    QTest.mouseClick(chart.history_button, Qt.MouseButton.LeftButton)
    dialog = chart.history_dialog
    assert dialog is not None
    table = dialog.table
    qtbot.waitUntil(lambda: table.rowCount() >= 3, timeout=5_000)
    whats = [table.item(r, 3).text() for r in range(2)]  # type: ignore[union-attr]
    assert whats == ["Saved a copy of a file", "Opened a file"]
    assert table.item(0, 4).text() == "File"  # type: ignore[union-attr]
    # The status line counts the file opens it lists, not only the chart's openings.
    qtbot.waitUntil(lambda: "chart opening" in dialog.status.text(), timeout=5_000)
    assert dialog.status.text().endswith(": 1 chart opening and 2 file opens by 1 person.")


def test_a_file_added_to_the_wrong_chart_is_removed_with_a_reason_and_listed_as_removed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    add_and_select(qtbot, section, a_png(tmp_path / "other patient's rash.png", 40, 30))
    assert section.remove_button.isEnabled()
    QTest.mouseClick(section.remove_button, Qt.MouseButton.LeftButton)
    dialog = section.dialog
    assert isinstance(dialog, RemoveAttachmentDialog) and dialog.isVisible()
    qtbot.waitUntil(dialog.reason.hasFocus)  # where the person starts: the reason
    # No reason: the dialog stays, saying what is missing; nothing is removed.
    QTest.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and dialog.error.text() == "Say why the file is removed."
    assert clinic.database.query("SELECT count(*) FROM attachments") == [(1,)]
    # The reason offered first, chosen with the keyboard.
    dialog.reason.setFocus()
    QTest.keyClick(dialog.reason, Qt.Key.Key_Down)
    assert dialog.reason.currentText() == "Added to the wrong chart"
    QTest.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 0, timeout=10_000)
    qtbot.waitUntil(lambda: section.status.text().startswith("Removed "), timeout=5_000)
    assert "(Added to the wrong chart)" in section.status.text()
    assert clinic.database.query("SELECT count(*) FROM attachments") == [(0,)]
    [(details,)] = clinic.database.query(
        "SELECT details FROM audit_log WHERE action = 'attachment.delete'"
    )
    assert "wrong chart" not in details  # the reason may name another patient: not logged

    QTest.mouseClick(section.show_removed, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=10_000)
    where = section.table.item(0, 4)
    assert where is not None and where.text().startswith("Removed ")
    assert where.text().endswith(f"by {clinic.records.actor}: Added to the wrong chart")
    assert where.foreground().color() == QColor(Qt.GlobalColor.gray)
    section.table.selectRow(0)
    for button in (section.open_button, section.save_button, section.edit_button,
                   section.remove_button):  # fmt: skip
        assert not button.isEnabled()  # listed for the record, not used from the chart
    QTest.mouseClick(section.show_removed, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 0, timeout=10_000)


def test_a_files_title_is_corrected_from_edit_details(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    letter = tmp_path / "scan0001.pdf"
    letter.write_bytes(b"%PDF-1.4 " + MARKER)
    add_and_select(qtbot, section, letter)
    QTest.mouseClick(section.edit_button, Qt.MouseButton.LeftButton)
    dialog = section.dialog
    assert isinstance(dialog, EditAttachmentDialog)
    qtbot.waitUntil(dialog.title.hasFocus)
    QTest.keyClicks(dialog.title, "Referral letter, Dr Osei")  # the old title was selected
    QTest.keyClick(dialog.title, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.date, "2999-01-01")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "future" in dialog.errors["date"].text()
    dialog.date.clear()
    QTest.keyClicks(dialog.date, "2026-11-30")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    def cell(column: int) -> str:
        item = section.table.item(0, column)
        return item.text() if item is not None else ""

    qtbot.waitUntil(lambda: cell(1) == "Referral letter, Dr Osei", timeout=10_000)
    assert cell(0) == "2026-11-30"
    assert clinic.database.query("SELECT title, date FROM attachments") == [
        ("Referral letter, Dr Osei", "2026-11-30")
    ]
    [(details,)] = clinic.database.query(
        "SELECT details FROM audit_log WHERE action = 'attachment.update'"
    )
    assert "Osei" not in details


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.pdf", b"", "scan.pdf is empty (0 bytes): there is nothing to add."),
        ("lab.pdf", b"<html>Session expired</html>",
         "lab.pdf is not a PDF: it does not start with %PDF-."),
        ("rash.png", b"GIF89a tiny", "rash.png is not a PNG image: its content is a GIF image"),
    ],
)  # fmt: skip
def test_an_empty_or_fake_file_is_named_in_the_add_dialog_and_not_added(
    qtbot: QtBot,
    signed_in: MainWindow,
    clinic: Workstation,
    tmp_path: Path,
    name: str,
    content: bytes,
    message: str,
) -> None:
    _, section = open_attachments(qtbot, signed_in)
    path = tmp_path / name
    path.write_bytes(content)
    drop(section, path)
    dialog = section.add_dialog
    assert dialog is not None
    QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
    assert dialog.isVisible()
    assert dialog.errors["file"].text().startswith(message)
    assert clinic.database.query("SELECT count(*) FROM attachments") == [(0,)]
    folder = clinic.data_dir / "attachments"
    assert not folder.exists() or not [p for p in folder.rglob("*") if p.is_file()]

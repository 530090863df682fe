"""The recovery key's Print and Copy: the printed sheet holds the key and what it is for,
nothing else; a copied key leaves the clipboard after a while, or with the key's page."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from pypdf import PdfReader
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session.first_run import ClinicCreated, RecoveryPage
from app.session.key_dialogs import NewRecoveryKeyDialog
from app.session.recovery_sheet import SHEET_TEXT, SHEET_TITLE

KEY = "AB12-CD34-EF56-GH78-JK90-LM12-NP34-QR56"


def shown_page(qtbot: QtBot) -> RecoveryPage:
    page = RecoveryPage()
    qtbot.addWidget(page)
    page.show_key(ClinicCreated("admin", KEY, None))
    page.show()
    qtbot.waitExposed(page)
    return page


def test_copy_puts_the_key_on_the_clipboard_then_clears_it(qtbot: QtBot) -> None:
    page = shown_page(qtbot)
    clipboard = QGuiApplication.clipboard()
    page.key_actions.clear_after_ms = 300
    QTest.mouseClick(page.key_actions.copy_button, Qt.MouseButton.LeftButton)
    assert clipboard.text() == KEY
    assert "Other programs on this computer can read the clipboard" in page.key_actions.note.text()
    assert page.key_actions.note.isVisible()
    qtbot.waitUntil(lambda: clipboard.text() == "", timeout=3_000)
    assert not page.key_actions.note.isVisible()


def test_what_was_copied_since_is_left_alone(qtbot: QtBot) -> None:
    page = shown_page(qtbot)
    clipboard = QGuiApplication.clipboard()
    page.key_actions.clear_after_ms = 200
    QTest.mouseClick(page.key_actions.copy_button, Qt.MouseButton.LeftButton)
    clipboard.setText("a prescription note")
    qtbot.wait(400)
    assert clipboard.text() == "a prescription note"


def test_the_key_leaving_the_screen_takes_it_off_the_clipboard(qtbot: QtBot) -> None:
    page = shown_page(qtbot)
    QTest.mouseClick(page.key_actions.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == KEY
    page.hide()
    assert QGuiApplication.clipboard().text() == ""


def test_print_sends_only_the_key_and_what_it_is_for(qtbot: QtBot, tmp_path: Path) -> None:
    page = shown_page(qtbot)
    paper = tmp_path / "sheet.pdf"
    printer = page.key_actions.printer
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(paper))
    QTest.mouseClick(page.key_actions.print_button, Qt.MouseButton.LeftButton)
    dialog = page.key_actions.print_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    dialog.accept()
    qtbot.waitUntil(paper.exists)
    pages = PdfReader(paper).pages
    assert len(pages) == 1
    # NFKC: the PDF's ligatures (ﬁ, ﬀ) read back as their letters.
    text = " ".join(unicodedata.normalize("NFKC", pages[0].extract_text()).split())
    assert KEY in text and SHEET_TITLE in text
    # Every word printed is the title's, the explanation's or the key: nothing else.
    allowed = set(re.findall(r"\w+", f"{SHEET_TITLE} {SHEET_TEXT} {KEY}"))
    assert set(re.findall(r"\w+", text)) <= allowed


def test_new_recovery_key_dialog_has_copy_and_closing_clears_the_clipboard(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    signed_in.show_new_recovery_key()
    dialog = signed_in.key_dialog
    assert isinstance(dialog, NewRecoveryKeyDialog)
    dialog.make_key()
    qtbot.waitUntil(lambda: dialog.key is not None, timeout=10_000)
    actions = dialog.recovery_page.key_actions
    assert actions.print_button.isVisible() and actions.copy_button.isVisible()
    QTest.mouseClick(actions.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == dialog.key
    signed_in.sign_out_after_idle()
    assert QGuiApplication.clipboard().text() == ""

"""Print and Copy for a recovery key shown on screen (the first-run wizard's recovery page,
which the New recovery key dialog reuses).

The printed sheet holds the key and what it is for, nothing else: no clinic, no user, no
computer name, so a lost sheet tells its finder as little as possible. Printing goes
through the system print dialog; the sheet is laid out with QTextDocument (one page, no
patient data, nothing to gather on the worker).

Copy puts the key on the system clipboard, where any program of this desktop session can
read it and a clipboard manager may keep a history. The widget says so, and clears the
clipboard after :data:`CLEAR_AFTER_MS` (or when the key leaves the screen) if it still
holds the key; it leaves alone whatever the person copied since. A clipboard manager's
history is beyond Careline's reach.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

CLEAR_AFTER_MS = 60_000
SHEET_TITLE = "Careline recovery key"
SHEET_TEXT = (
    "This key opens the clinic's encrypted records on the computer where it was made, "
    "when every staff password is forgotten. Keep this sheet somewhere safe away from the "
    "computer, such as the clinic safe. Anyone who has this sheet and the computer can "
    "read every record: do not photograph it, copy it into a file or send it by e-mail. "
    "When a new recovery key is made, this one stops working: shred this sheet."
)


def sheet_html(key: str) -> str:
    """The printed page: the key and what it is for, and nothing else."""
    return (
        f"<h1>{html.escape(SHEET_TITLE)}</h1>"
        f"<p style='font-size:12pt'>{html.escape(SHEET_TEXT)}</p>"
        "<p style='font-family:monospace; font-size:16pt; font-weight:bold; "
        f"white-space:pre; margin-top:24pt'>{html.escape(key)}</p>"
    )


def print_sheet(printer: QPrinter, key: str) -> None:
    """Lay the sheet out and print it on ``printer``."""
    document = QTextDocument()
    document.setHtml(sheet_html(key))
    # A page size of its own: QTextDocument then adds no page number (nothing but the key
    # and what it is for goes on the sheet).
    document.setPageSize(printer.pageRect(QPrinter.Unit.Point).size())
    document.setDocumentMargin(36)  # points: half an inch inside the printable area
    document.print_(printer)


class RecoveryKeyActions(QWidget):
    """ "Print…" and "Copy" beside a recovery key, and what copying means."""

    def __init__(self, key: Callable[[], str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._key = key
        self._copied: str | None = None
        self.clear_after_ms = CLEAR_AFTER_MS
        self.printer = QPrinter(QPrinter.PrinterMode.HighResolution)
        self.printer.setDocName(SHEET_TITLE)
        self.print_dialog: QPrintDialog | None = None
        self.print_button = QPushButton("Print…")
        self.print_button.setObjectName("printRecoveryKey")
        self.print_button.clicked.connect(self.choose_printer)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setObjectName("copyRecoveryKey")
        self.copy_button.clicked.connect(self.copy)
        self.note = QLabel()
        self.note.setObjectName("hint")
        self.note.setWordWrap(True)
        self.note.hide()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.clear_clipboard)
        for button in (self.print_button, self.copy_button):
            button.setAutoDefault(False)  # Enter on the page never prints or copies
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        row.addWidget(self.print_button)
        row.addWidget(self.copy_button)
        row.addStretch(1)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        column.addWidget(self.note)

    def copy(self) -> None:
        """Put the key on the clipboard, say what that means, and plan its removal."""
        key = self._key()
        if not key:
            return
        QGuiApplication.clipboard().setText(key)
        self._copied = key
        self._timer.start(self.clear_after_ms)
        seconds = round(self.clear_after_ms / 1000)
        self.note.setText(
            "Copied. Other programs on this computer can read the clipboard, and a clipboard "
            f"manager may keep a copy. Careline empties it in {seconds} seconds: paste the "
            "key where it belongs now."
        )
        self.note.show()

    def clear_clipboard(self) -> None:
        """Empty the clipboard if it still holds the key copied from here."""
        self._timer.stop()
        clipboard = QGuiApplication.clipboard()
        if self._copied is not None and clipboard.text() == self._copied:
            clipboard.clear()
        self._copied = None
        self.note.hide()

    def choose_printer(self) -> None:
        """The system print dialog; the sheet prints once a printer is chosen."""
        dialog = QPrintDialog(self.printer, self)
        dialog.setObjectName("recoveryPrintDialog")
        dialog.accepted.connect(self.print_now)
        self.print_dialog = dialog
        QDialog.open(dialog)  # PySide6 binds only QPrintDialog.open(receiver, member)

    def print_now(self) -> None:
        """Print the sheet on the chosen printer."""
        key = self._key()
        if key:
            print_sheet(self.printer, key)

    def forget(self) -> None:
        """The key leaves the screen: close the print dialog, empty the clipboard."""
        if self.print_dialog is not None and self.print_dialog.isVisible():
            self.print_dialog.reject()
        self.clear_clipboard()

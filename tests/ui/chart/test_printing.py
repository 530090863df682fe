"""Printing from the app: Save as PDF through the file dialog, Print through the system
print dialog (to a PDF-file printer here), for the summary, a visit note and a day list."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader
from PySide6.QtCore import Qt
from PySide6.QtPrintSupport import QPrinter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLineEdit
from pytestqt.qtbot import QtBot

from app.chart.printing import PrintDialog, print_day, print_visit
from app.main_window import MainWindow
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, new_clinic, press, sign_in
from tests.unit.reports.sample import DAY, SampleChart, sample_chart


@pytest.fixture
def charted(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> tuple[MainWindow, SampleChart]:
    """A signed-in window on a clinic holding the sample chart."""
    ws = new_clinic(tmp_path / "clinic")
    ws.sign_in(ADMIN, PASSWORD)
    chart = sample_chart(ws.records)
    ws.lock()
    window = make_window(ws)
    sign_in(qtbot, window)
    return window, chart


def save_through_dialog(qtbot: QtBot, dialog: PrintDialog, path: Path) -> None:
    """Click Save as PDF…, type the file name, press Enter, wait until saved."""
    choose_file(qtbot, dialog, path)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved to"), timeout=10_000)


def choose_file(qtbot: QtBot, dialog: PrintDialog, path: Path) -> None:
    """Click Save as PDF…, browse to the folder, type the file name and press Enter."""
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    files = dialog.file_dialog
    assert files is not None
    qtbot.waitUntil(files.isVisible)
    name = files.findChild(QLineEdit, "fileNameEdit")
    assert name is not None
    assert name.text().endswith(".pdf")  # a file name is suggested
    files.setDirectory(str(path.parent))  # as a person browses to the folder
    name.selectAll()
    QTest.keyClicks(name, path.stem)  # the .pdf suffix is added
    QTest.keyClick(name, Qt.Key.Key_Return)


def pdf_text(path: Path) -> str:
    return "\n".join(p.extract_text() for p in PdfReader(path).pages)


def audited(ws: Workstation, action: str) -> list[str]:
    rows = ws.database.query("SELECT entity_id FROM audit_log WHERE action = ?", (action,))
    return [str(r[0]) for r in rows]


def test_print_summary_from_the_chart_saves_a_pdf(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart], tmp_path: Path
) -> None:
    window, chart = charted
    page = window.workspace.chart
    assert not page.print_summary.button.isEnabled()  # nothing shown yet
    window.workspace.open_chart(chart.patient_id)
    qtbot.waitUntil(lambda: page.patient is not None, timeout=5_000)
    assert page.print_summary.button.isEnabled()
    QTest.mouseClick(page.print_summary.button, Qt.MouseButton.LeftButton)
    dialog = page.print_summary.dialog
    assert dialog is not None and dialog.isVisible()
    target = tmp_path / "summary.pdf"
    save_through_dialog(qtbot, dialog, target)
    text = pdf_text(target)
    assert "ÑÚÑEZ-ØDEGÅRD, Zoë" in text and "Penicillin" in text and "Metformin" in text
    assert "154 lb" in text and "102 °F ▲" in text and "Type 2 diabetes mellitus" in text
    assert target.stat().st_mode & 0o777 == 0o600
    assert audited(window.workstation, "print.summary") == [chart.patient_id]

    # Leaving the chart closes the dialog: no patient detail stays on screen.
    QTest.keyClick(page, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: page.print_summary.dialog is None)
    assert not page.print_summary.button.isEnabled()


def test_print_through_the_system_print_dialog(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart], tmp_path: Path
) -> None:
    window, chart = charted
    records = lambda: window.workstation.records  # noqa: E731
    dialog = print_visit(window, window.operations, records, chart.visit_id)
    # The printer: a PDF file, as the system dialog's "Print to File" would choose.
    paper = tmp_path / "printed.pdf"
    dialog.printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    dialog.printer.setOutputFileName(str(paper))
    QTest.mouseClick(dialog.print_button, Qt.MouseButton.LeftButton)
    system = dialog.print_dialog
    assert system is not None
    qtbot.waitUntil(system.isVisible)
    # Nothing is made (or audited) before a printer is chosen.
    assert audited(window.workstation, "print.visit") == []
    system.accept()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Sent 1 page"), timeout=20_000)
    pages = PdfReader(paper).pages
    assert len(pages) == 1
    # The printed sheet is the PDF rendered as an image: A4, with an image on it.
    width, height = float(pages[0].mediabox.width), float(pages[0].mediabox.height)
    assert abs(width - 595) < 3 and abs(height - 842) < 3
    assert audited(window.workstation, "print.visit") == [chart.patient_id]


def test_print_visit_and_day_save_as_pdf(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart], tmp_path: Path
) -> None:
    window, chart = charted
    records = lambda: window.workstation.records  # noqa: E731
    visit = print_visit(window, window.operations, records, chart.visit_id)
    save_through_dialog(qtbot, visit, tmp_path / "visit.pdf")
    text = pdf_text(tmp_path / "visit.pdf")
    assert "P: continue metformin." in text and "HbA1c came back at 6.8 %." in text
    assert "Penicillin hives Severe" in text  # the allergies go with the visit's prescriptions
    visit.reject()

    day = print_day(window, window.operations, records, DAY)
    save_through_dialog(qtbot, day, tmp_path / "day.pdf")
    text = pdf_text(tmp_path / "day.pdf")
    assert text.index("ПЕТРОВ, Иван") < text.index("ÑÚÑEZ-ØDEGÅRD, Zoë") < text.index("O'BRIEN")


def test_a_failure_is_shown_in_the_dialog(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart], tmp_path: Path
) -> None:
    window, _ = charted
    records = lambda: window.workstation.records  # noqa: E731
    dialog = print_visit(window, window.operations, records, "gone")
    never = tmp_path / "never.pdf"
    choose_file(qtbot, dialog, never)
    qtbot.waitUntil(lambda: "No visit with id 'gone'" in dialog.status.text(), timeout=10_000)
    assert not never.exists()
    assert dialog.save_button.isEnabled()


def blue_buttons(dialog: PrintDialog) -> list[str]:
    """The buttons styled as primary (the qss: ``#primary`` or ``:default``)."""
    buttons = (dialog.save_button, dialog.print_button, dialog.close_button)
    return [b.text() for b in buttons if b.objectName() == "primary" or b.isDefault()]


def test_return_presses_the_button_the_focus_ring_marks(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart]
) -> None:
    """The tester's D9: the ring was on Save as PDF… but Return pressed Close (the only
    auto-default button, blue as well), so nothing was saved or audited. Now Return
    presses the ringed button, and only Save as PDF… looks primary."""
    window, chart = charted
    records = lambda: window.workstation.records  # noqa: E731
    dialog = print_visit(window, window.operations, records, chart.visit_id)
    qtbot.waitUntil(dialog.isVisible)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.save_button.hasFocus)
    assert blue_buttons(dialog) == ["Save as PDF…"]

    press(Qt.Key.Key_Return)  # the file dialog: the dialog stays
    files = dialog.file_dialog
    assert files is not None
    qtbot.waitUntil(files.isVisible)
    assert dialog.isVisible()
    files.reject()

    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    dialog.save_button.setFocus()
    qtbot.waitUntil(dialog.save_button.hasFocus)
    press(Qt.Key.Key_Tab)
    assert dialog.print_button.hasFocus()
    press(Qt.Key.Key_Return)  # the system print dialog
    system = dialog.print_dialog
    assert system is not None
    qtbot.waitUntil(system.isVisible)
    system.reject()
    assert audited(window.workstation, "print.visit") == []  # nothing printed or saved

    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    dialog.close_button.setFocus()
    qtbot.waitUntil(dialog.close_button.hasFocus)
    press(Qt.Key.Key_Return)  # the ring on Close: Return closes
    qtbot.waitUntil(lambda: not dialog.isVisible())


def test_escape_closes_the_dialog_after_a_save(
    qtbot: QtBot, charted: tuple[MainWindow, SampleChart], tmp_path: Path
) -> None:
    """The tester: after Save as PDF, Escape did not close Print visit note; only a click on
    Close did. Saved, the keyboard is back in the dialog and Escape closes it."""
    window, chart = charted
    records = lambda: window.workstation.records  # noqa: E731
    dialog = print_visit(window, window.operations, records, chart.visit_id)
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    save_through_dialog(qtbot, dialog, tmp_path / "visit.pdf")
    qtbot.waitUntil(dialog.isActiveWindow)
    held = QApplication.focusWidget()
    assert held is not None and (held is dialog or dialog.isAncestorOf(held)), held
    QTest.keyClick(held, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=2_000)

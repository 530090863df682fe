"""Possible duplicates on a small screen (1024x740, a common clinic laptop): the dialog fits
its screen, nothing overlaps, every button is reachable and both lists scroll."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from app.admin.audit_log import AuditLogDialog
from app.main_window import MainWindow
from app.patients.duplicates import DuplicatesDialog
from core.records import chart_access
from core.records.merges import Merges
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import ADMIN, PASSWORD, SMALL, WindowFactory, sign_in, wheel
from tests.ui.layout import cell_text_shown
from tests.ui.patients.conftest import add_namesakes, open_duplicates

PAIRS, MERGED = 14, 14


def _many_duplicates(ws: Workstation, restricted: bool = False) -> None:
    """PAIRS pairs still to review and MERGED merges made (``restricted``: a chart of the
    first pair restricted, so the dialog says so under it)."""
    ws.sign_in(ADMIN, PASSWORD)
    records = ws.records
    for i in range(PAIRS + MERGED):
        one, two = add_namesakes(records, f"Mwale{i:02d}", f"19{60 + i}-02-03")
        if i == 0 and restricted:
            chart_access.set_restricted(records, two.id, True)
        if i >= PAIRS:
            Merges(records).merge(two.id, one.id, f"same woman, new phone ({i})")
    ws.lock()


def _inside(child: QWidget, dialog: QWidget) -> QRect:
    """``child``'s rectangle in ``dialog``'s coordinates."""
    return QRect(child.mapTo(dialog, child.rect().topLeft()), child.size())


@pytest.mark.usefixtures("small_screen")
@pytest.mark.parametrize("restricted", [False, True], ids=["open", "restricted-pair"])
def test_the_dialog_fits_a_1024x740_screen(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, restricted: bool
) -> None:
    _many_duplicates(clinic, restricted)
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = open_duplicates(qtbot, window)
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == PAIRS, timeout=10_000)
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == MERGED, timeout=10_000)
    dialog.merged_table.selectRow(0)
    QApplication.processEvents()
    # The first pair is selected: a restricted chart in it is said in the outcome line.
    assert dialog.status.text().startswith("Restricted:") == restricted
    shot = os.environ.get("CARELINE_SCREENSHOTS")
    if shot:
        dialog.grab().save(str(Path(shot) / f"duplicates-1024x740-{restricted}.png"))
    frame = dialog.frameGeometry()
    assert frame.width() <= SMALL.width() and frame.height() <= SMALL.height()
    _nothing_overlaps(dialog)
    # Its contents fit in less than the screen's height, so the window system never has
    # to squeeze them over each other (the title bar and borders take some 40 pixels).
    lowest = max(dialog.minimumSizeHint().height(), dialog.minimumHeight())
    assert lowest <= SMALL.height() - 40
    # Shrunk as far as it goes (a person dragging its edge), with a two-line outcome:
    # still nothing overlaps.
    dialog.status.setText("Merged: the records of " + "MWALE00, Grace · female · " * 8 + ".")
    dialog.resize(dialog.width(), 200)
    QApplication.processEvents()
    assert dialog.height() <= SMALL.height() - 40
    if shot:
        dialog.grab().save(str(Path(shot) / "duplicates-smallest.png"))
    _nothing_overlaps(dialog)


def _nothing_overlaps(dialog: DuplicatesDialog) -> None:
    """Every button whole inside the dialog and clear of both lists; the lists show three
    rows at least and scroll (mouse wheel)."""
    area = dialog.rect()
    buttons = [b for b in dialog.findChildren(QAbstractButton) if b.isVisible()]
    tables = [dialog.table, dialog.merged_table]
    assert {dialog.merge_button, dialog.dismiss_button, dialog.undo_button} <= set(buttons)
    choices = [dialog.keep_first, dialog.keep_second]
    for button in buttons:
        box = _inside(button, dialog)
        assert area.contains(box), f"{button.text()!r} is cut off: {box} not in {area}"
        assert box.height() >= button.minimumSizeHint().height(), button.text()
        for table in tables:
            on = f"{table.objectName()} over {button.text()!r}"
            assert not _inside(table, dialog).intersects(box), on
    for table in tables:
        assert area.contains(_inside(table, dialog))
        bar = table.verticalScrollBar()
        assert bar.isVisible() and bar.maximum() > 0, f"{table.objectName()} does not scroll"
        rows = table.verticalHeader().defaultSectionSize()
        assert table.viewport().height() >= 3 * rows, f"{table.objectName()} squeezed"
        wheel(table.viewport(), -2)  # the mouse wheel over the list brings more rows
        assert bar.value() > 0, f"{table.objectName()} did not scroll"
        bar.setValue(0)
        for choice in choices:  # the Keep choices clear of the lists
            assert not _inside(table, dialog).intersects(_inside(choice, dialog)), choice.text()
        # The outcome line whole, all its lines, clear of the lists.
        status = _inside(dialog.status, dialog)
        assert not _inside(table, dialog).intersects(status)
        assert status.height() >= dialog.status.heightForWidth(status.width())


@pytest.mark.usefixtures("small_screen")
@pytest.mark.parametrize("tool", ["show_audit_log", "show_reviews", "show_import", "show_fhir"])
def test_the_other_review_dialogs_fit_a_1024x740_screen(
    qtbot: QtBot, signed_in: MainWindow, tool: str
) -> None:
    """Settings' review dialogs open from the same place: sized for a large screen too (the
    audit log was 1180 pixels wide), they fit the small one."""
    tools = signed_in.workspace.admin_tools
    getattr(tools, tool)()
    dialog = tools.dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    shot = os.environ.get("CARELINE_SCREENSHOTS")
    if shot:
        dialog.grab().save(str(Path(shot) / f"{tool}-1024x740.png"))
    frame = dialog.frameGeometry()
    assert frame.width() <= SMALL.width() and frame.height() <= SMALL.height()
    assert dialog.minimumSizeHint().height() <= SMALL.height() - 40
    area = dialog.rect()
    for button in dialog.findChildren(QAbstractButton):
        if button.isVisible():
            assert area.contains(_inside(button, dialog)), button.text()
    # Its wrapped text has every line (sizing it from a widget's default size, before it
    # was shown, cut the FHIR dialog's explanation to two lines).
    for label in dialog.findChildren(QLabel):
        if label.isVisible() and label.wordWrap() and label.text():
            assert label.height() >= label.heightForWidth(label.width()), label.text()[:40]


def _columns_in_sight(table: QTableWidget) -> None:
    """Every column within the table's width: none reached only by scrolling sideways."""
    last = table.columnCount() - 1
    right = table.columnViewportPosition(last) + table.columnWidth(last)
    assert right <= table.viewport().width(), f"{table.objectName()}: {right}"
    assert table.horizontalScrollBar().maximum() == 0, table.objectName()
    for column in range(table.columnCount()):
        assert table.columnWidth(column) > 40, (table.objectName(), column)


@pytest.mark.usefixtures("small_screen")
def test_the_audit_log_and_duplicates_show_every_column_at_1024_wide(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The tester's E9: in the Audit log and Possible duplicates, Record, By, When and Why
    were pushed off to the right by long What and chart columns. Every column is in sight;
    a long cell is cut short with its whole text in the tooltip (the audit log) or wraps
    onto more lines (the duplicates' charts)."""
    _many_duplicates(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = open_duplicates(qtbot, window)
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == MERGED, timeout=10_000)
    QApplication.processEvents()
    for table in (dialog.table, dialog.merged_table):
        _columns_in_sight(table)
    dialog.reject()

    tools = window.workspace.admin_tools
    tools.show_audit_log()
    log = tools.dialog
    assert isinstance(log, AuditLogDialog)
    qtbot.waitExposed(log)
    qtbot.waitUntil(lambda: log.table.rowCount() > 10, timeout=10_000)
    QApplication.processEvents()
    _columns_in_sight(log.table)
    what = log.table.item(0, 3)
    assert what is not None and what.toolTip() == what.text()


@pytest.mark.usefixtures("small_screen")
def test_the_audit_log_shows_what_happened_at_1024_wide(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The tester's r4: at 1024 wide, What was cut to 9 or 10 characters ("Opened th…")
    while When, a time of fixed length, had room to spare. When is as wide as its text;
    What shows at least its first 20 characters, every column still in sight."""
    window = make_window(clinic)
    sign_in(qtbot, window)
    open_first_chart(qtbot, window)  # "Opened the chart …" in the log
    tools = window.workspace.admin_tools
    tools.show_audit_log()
    log = tools.dialog
    assert isinstance(log, AuditLogDialog)
    qtbot.waitExposed(log)
    qtbot.waitUntil(lambda: log.table.rowCount() > 3, timeout=10_000)
    QApplication.processEvents()
    table = log.table
    _columns_in_sight(table)
    long = [
        row
        for row in range(table.rowCount())
        if (item := table.item(row, 3)) is not None
        and len(item.text()) > 20
        and table.viewport().rect().contains(table.visualItemRect(item))
    ]
    assert long, "no long What to look at"
    for row in long:
        shown = cell_text_shown(table, row, 3)
        assert len(shown.removesuffix("…")) >= 20, shown
    for row in range(min(table.rowCount(), 10)):
        when = table.item(row, 0)
        assert when is not None and cell_text_shown(table, row, 0) == when.text()  # whole
    log.reject()

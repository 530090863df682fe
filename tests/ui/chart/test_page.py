"""The chart: opening is audited; allergies are added and removed (with confirmation)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QTableWidget, QTableWidgetItem
from pytestqt.qtbot import QtBot

from app.chart.page import ChartPage
from app.main_window import MainWindow
from core.records.workstation import Workstation
from tests.ui.conftest import (
    ADMIN,
    ADMIN_NAME,
    PASSWORD,
    POPUP_NOISE,
    WindowFactory,
    press,
    sign_in,
    type_at_the_keyboard,
)


def open_first_chart(qtbot: QtBot, window: MainWindow) -> ChartPage:
    workspace = window.workspace
    workspace.open_chart(workspace.patient_list.model.patient_id(0))
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    return workspace.chart


def cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    item = table.item(row, column)
    assert item is not None
    return item


def chart_openings(ws: Workstation, patient_id: str) -> int:
    rows = ws.database.query(
        "SELECT count(*) FROM audit_log WHERE action = 'chart.open' AND entity_id = ?",
        (patient_id,),
    )
    return int(rows[0][0])


def test_opening_a_chart_shows_it_and_is_audited(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    assert chart.name.text() == patient.display_name
    assert chart.birth.text().startswith(patient.birth_date)
    assert "years" in chart.birth.text()
    assert chart.no_allergies.isVisible() and not chart.allergy_table.isVisible()
    assert not chart.remove_allergy_button.isEnabled()
    assert chart_openings(clinic, patient.id) == 1


def test_add_and_remove_an_allergy(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None

    # Add: the substance is required (core says so), then it is stored and listed.
    QTest.mouseClick(chart.add_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert dialog is not None
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.errors["substance"].isVisible(), timeout=5_000)
    assert dialog.errors["substance"].text() == "Substance is required."
    QTest.keyClicks(dialog.substance, "Penicillin")
    QTest.keyClicks(dialog.reaction, "Anaphylaxis")
    dialog.severity.setCurrentIndex(dialog.severity.findData("severe"))
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chart.allergy_table.rowCount() == 1, timeout=5_000)
    assert chart.allergy_dialog is None
    table = chart.allergy_table
    assert [cell(table, 0, c).text() for c in range(3)] == ["Penicillin", "Anaphylaxis", "Severe"]
    assert cell(table, 0, 0).font().bold()  # severe stands out
    assert table.isVisible() and not chart.no_allergies.isVisible()
    stored = clinic.records.allergies(patient.id)
    assert [(a.substance, a.reaction, a.severity) for a in stored] == [
        ("Penicillin", "Anaphylaxis", "severe")
    ]

    # Remove: nothing happens without confirmation.
    table.selectRow(0)
    assert chart.remove_allergy_button.isEnabled()
    QTest.mouseClick(chart.remove_allergy_button, Qt.MouseButton.LeftButton)
    box = chart.confirm_box
    assert box is not None and box.isVisible()
    assert "Penicillin" in box.text()
    QTest.mouseClick(box.button(QMessageBox.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chart.confirm_box is None)
    qtbot.wait(100)
    assert table.rowCount() == 1
    assert len(clinic.records.allergies(patient.id)) == 1

    # Confirmed: gone from the screen and from the record.
    table.selectRow(0)
    QTest.mouseClick(chart.remove_allergy_button, Qt.MouseButton.LeftButton)
    box = chart.confirm_box
    assert box is not None
    remove = next(b for b in box.buttons() if b.text() == "Remove allergy")
    QTest.mouseClick(remove, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: table.rowCount() == 0, timeout=5_000)
    assert chart.no_allergies.isVisible()
    assert clinic.records.allergies(patient.id) == []
    assert chart_openings(clinic, patient.id) == 1  # changes did not re-open the chart


def test_allergies_already_recorded_are_shown(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    clinic.sign_in(ADMIN, PASSWORD)
    records = clinic.records
    maria = records.search_patients("garcia maria")[0]
    records.add_allergy(maria.id, "Latex", "Rash", "mild")
    records.add_allergy(maria.id, "Peanuts", None, None)
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    window.workspace.open_chart(maria.id)
    chart = window.workspace.chart
    qtbot.waitUntil(lambda: chart.allergy_table.rowCount() == 2, timeout=5_000)
    table = chart.allergy_table
    assert [cell(table, r, 0).text() for r in range(2)] == ["Latex", "Peanuts"]
    assert cell(table, 0, 2).text() == "Mild"
    assert cell(table, 1, 1).text() == "" and cell(table, 1, 2).text() == ""
    assert not cell(table, 0, 0).font().bold()
    # Who recorded it: the person's full name, not their user name.
    assert cell(table, 0, 3).text().endswith(f"by {ADMIN_NAME}")


def test_leaving_the_chart_clears_it(qtbot: QtBot, signed_in: MainWindow) -> None:
    chart = open_first_chart(qtbot, signed_in)
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    assert chart.patient is None
    assert chart.name.text() == "" and chart.birth.text() == "" and chart.mrn.text() == ""


def test_only_the_chosen_tab_of_the_chart_is_on_screen(qtbot: QtBot, signed_in: MainWindow) -> None:
    # A page left visible under the current one showed through the Attachments tab (its
    # background is not painted) and took Tab-key focus while out of sight.
    chart = open_first_chart(qtbot, signed_in)
    tabs = chart.tabs
    titles = [tabs.tabText(i) for i in range(tabs.count())]
    assert titles == ["Overview", "Visits", "Vitals", "Attachments"]
    pages = [tabs.widget(i) for i in range(tabs.count())]
    for index, title in enumerate(titles):
        tabs.setCurrentIndex(index)
        on_screen = [titles[i] for i, page in enumerate(pages) if page and page.isVisible()]
        assert on_screen == [title]


def add_allergy_by_keys(
    qtbot: QtBot, chart: ChartPage, substance: str, *severity_keys: str | Qt.Key
) -> None:
    """Add allergy… clicked, then at the keyboard as the tester typed: ``substance``, Tab,
    Hives, Tab, then ``severity_keys`` on Severity (text typed, or a key pressed), and a
    click on Save; waits until the form has closed."""
    QTest.mouseClick(chart.add_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.substance.hasFocus)
    type_at_the_keyboard(substance)
    press(Qt.Key.Key_Tab)
    type_at_the_keyboard("Hives")
    press(Qt.Key.Key_Tab)
    assert dialog.severity.hasFocus()
    for key in severity_keys:
        if isinstance(key, str):
            type_at_the_keyboard(key)
        else:
            press(key)
    qtbot.waitUntil(lambda: not dialog.severity.view().isVisible())
    assert dialog.isVisible()  # the Escape closed the list only
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chart.allergy_dialog is None, timeout=5_000)


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the severity list opens
def test_letters_typed_on_the_closed_severity_box_never_choose_a_severity(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's D1: Penicillin, Tab, Hives, Tab, then ``s`` on Severity chose Severe
    with its list closed, and ``mild rash`` (meant for Reaction) turned that into Mild,
    which Save stored and every later warning repeated. Now one letter opens the list at
    Severe for Return to choose; the rest are a word, which chooses nothing."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None

    def severity_of(substance: str) -> str | None:
        stored = {a.substance: a.severity for a in clinic.records.allergies(patient.id)}
        return stored[substance]

    add_allergy_by_keys(qtbot, chart, "Penicillin", "s", "mild rash", Qt.Key.Key_Escape)
    assert severity_of("Penicillin") is None  # nobody chose one: "Not recorded"

    # Chosen deliberately (s, Return on the open list), a stray word then changes nothing.
    add_allergy_by_keys(
        qtbot, chart, "Latex", "s", Qt.Key.Key_Return, "mild rash", Qt.Key.Key_Escape
    )
    assert severity_of("Latex") == "severe"

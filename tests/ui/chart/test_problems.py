"""The problem list card: add from the ICD-10-CM search with the keyboard, uncoded only
when chosen, resolve with a date, resolved ones on request."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QPushButton, QTableWidgetItem
from pytestqt.qtbot import QtBot

from app.chart.list_dialogs import DateDialog
from app.chart.problems import CATEGORY_TIP, IcdSearchDialog, ProblemsCard
from app.main_window import MainWindow
from core.records.problems import Problems
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of, rows
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import ADMIN_NAME, press, type_at_the_keyboard

ICD_LOAD = 60_000  # the code list is read on first use (a few seconds on a busy machine)


def _search_dialog(qtbot: QtBot, card: ProblemsCard) -> IcdSearchDialog:
    QTest.mouseClick(card.add_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, IcdSearchDialog)
    qtbot.waitUntil(lambda: dialog._ready, timeout=ICD_LOAD)
    return dialog


def test_a_problem_is_found_by_words_and_picked_with_the_keyboard(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    qtbot.waitUntil(lambda: card.empty.isVisible())
    dialog = _search_dialog(qtbot, card)
    assert dialog.search.hasFocus() or dialog.focusWidget() is dialog.search
    QTest.keyClicks(dialog.search, "essential hypert")
    qtbot.waitUntil(lambda: dialog.results.rowCount() > 0, timeout=10_000)
    assert rows(dialog.results)[0] == ["I10", "Essential (primary) hypertension"]
    QTest.keyClick(dialog.search, Qt.Key.Key_Down)  # into the list, first code chosen
    assert dialog.results.hasFocus() and dialog.chosen_code() == "I10"
    QTest.keyClick(dialog.results, Qt.Key.Key_Return)  # picks it: on to the onset
    assert dialog.onset.hasFocus()
    QTest.keyClicks(dialog.onset, "2019-13")
    QTest.keyClick(dialog.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.errors["onset"].isVisible(), timeout=5_000)
    assert "no month 13" in dialog.errors["onset"].text()
    assert Problems(clinic.records).list(patient.id) == []  # nothing half-saved
    dialog.onset.selectAll()
    QTest.keyClicks(dialog.onset, "2019-05")
    QTest.keyClick(dialog.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.problems) == 1, timeout=5_000)
    [row] = rows(card.table)
    assert row[:4] == ["I10", "Essential (primary) hypertension", "2019-05", "Active"]
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d by {ADMIN_NAME}", row[4])  # who, when
    [stored] = Problems(clinic.records).list(patient.id)
    assert (stored.code, stored.onset, stored.status) == ("I10", "2019-05", "active")


def test_text_without_a_code_is_stored_only_when_the_person_chooses_uncoded(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    dialog = _search_dialog(qtbot, card)
    QTest.keyClicks(dialog.search, "Worried about memory qqq")
    qtbot.waitUntil(lambda: "No codes match" in dialog.status.text(), timeout=10_000)
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert dialog.errors["code"].isVisible()
    assert "Choose a code from the list" in dialog.errors["code"].text()
    QTest.mouseClick(dialog.search, Qt.MouseButton.LeftButton)  # back to the search field
    QTest.keyClick(dialog.search, Qt.Key.Key_Tab)  # the (empty) list
    QTest.keyClick(dialog.results, Qt.Key.Key_Tab)  # the "without a code" box
    assert dialog.uncoded.hasFocus()
    QTest.keyClick(dialog.uncoded, Qt.Key.Key_Space)
    assert dialog.uncoded.isChecked()
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    assert rows(card.table)[0][:2] == ["(uncoded)", "Worried about memory qqq"]
    assert Problems(clinic.records).list(patient.id)[0].code is None


def test_resolving_asks_the_date_and_keeps_the_problem_as_history(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    Problems(clinic.records).add(patient.id, code="J45.909", onset="2010")
    signed_in.operations.catch_up()  # a write made outside the app's operations
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    assert not card.resolve_button.isEnabled()
    card.table.selectRow(0)
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, DateDialog)
    assert dialog.date.text() == dt.date.today().isoformat()
    QTest.keyClicks(dialog.date, "2009-01-01")  # replaces the selected default
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.errors["resolved"].isVisible(), timeout=5_000)
    assert "before the onset (2010)" in dialog.errors["resolved"].text()
    dialog.date.selectAll()
    QTest.keyClicks(dialog.date, "2024-03-15")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and card.problems == [], timeout=5_000)
    assert card.empty.isVisible()
    QTest.mouseClick(card.show_resolved, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    assert rows(card.table)[0][0] == "J45.909"
    assert rows(card.table)[0][3] == "Resolved 2024-03-15"
    assert not card.resolve_button.isEnabled()


def test_a_refused_date_keeps_the_keyboard_so_the_date_typed_next_replaces_it(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Resolve clicked with the mouse greyed itself out while core checked the date, and Qt
    gave the keyboard to Cancel: the date typed after the refusal went to Cancel (its
    Space would close the form). The keyboard is back on the date, selected, so the date
    typed next replaces the one refused."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    Problems(clinic.records).add(patient.id, code="J45.909", onset="2010")
    signed_in.operations.catch_up()  # a write made outside the app's operations
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    card.table.selectRow(0)
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, DateDialog)
    qtbot.waitUntil(dialog.isActiveWindow, timeout=5_000)
    QTest.keyClicks(dialog.date, "2009-01-01")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.errors["resolved"].isVisible(), timeout=5_000)
    assert "before the onset (2010)" in dialog.errors["resolved"].text()
    type_at_the_keyboard("2024-03-15")
    assert dialog.date.text() == "2024-03-15"
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and card.problems == [], timeout=5_000)
    [stored] = Problems(clinic.records).list(patient.id, include_resolved=True)
    assert stored.resolved == "2024-03-15"


def test_one_code_found_is_counted_in_the_singular(qtbot: QtBot, signed_in: MainWindow) -> None:
    chart = open_first_chart(qtbot, signed_in)
    dialog = _search_dialog(qtbot, card_of(chart, ProblemsCard))
    QTest.keyClicks(dialog.search, "I10")
    qtbot.waitUntil(lambda: dialog.results.rowCount() == 1, timeout=10_000)
    qtbot.waitUntil(lambda: dialog.status.text() == "1 code shown.", timeout=5_000)
    dialog.reject()


@pytest.mark.parametrize(
    ("typed", "first"),
    [
        # The plain diagnosis first, not below "Ocular" and "Portal hypertension".
        ("hypertension", ["I10", "Essential (primary) hypertension"]),
        # An abbreviation clinicians type ("copd" used to find no code).
        ("copd", ["J44.9", "Chronic obstructive pulmonary disease, unspecified"]),
    ],
)
def test_the_likeliest_code_comes_first_for_down_and_return(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, typed: str, first: list[str]
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    dialog = _search_dialog(qtbot, card)
    QTest.keyClicks(dialog.search, typed)
    qtbot.waitUntil(lambda: dialog.results.rowCount() > 0, timeout=10_000)
    assert rows(dialog.results)[0] == first
    QTest.keyClick(dialog.search, Qt.Key.Key_Down)
    assert dialog.chosen_code() == first[0]
    QTest.keyClick(dialog.results, Qt.Key.Key_Return)
    assert dialog.onset.hasFocus()
    QTest.keyClick(dialog.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.problems) == 1, timeout=5_000)
    [stored] = Problems(clinic.records).list(patient.id)
    assert stored.code == first[0]


def test_a_category_reads_as_a_heading_not_a_complete_diagnosis(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """The tester saw J45.3 "Mild persistent asthma" offered like J45.30 below it, and Return
    put it under the keyboard: nothing said it is a category that claims cannot carry."""
    chart = open_first_chart(qtbot, signed_in)
    dialog = _search_dialog(qtbot, card_of(chart, ProblemsCard))
    QTest.keyClicks(dialog.search, "mild persistent asthma")
    qtbot.waitUntil(lambda: dialog.results.rowCount() > 1, timeout=10_000)
    codes = [row[0] for row in rows(dialog.results)]
    category, complete = codes.index("J45.3"), codes.index("J45.30")

    def item(row: int, column: int) -> QTableWidgetItem:
        found = dialog.results.item(row, column)
        assert found is not None
        return found

    grey = item(category, 1).foreground().color()
    assert grey != item(complete, 1).foreground().color()
    assert grey == dialog.palette().color(dialog.palette().ColorRole.PlaceholderText)
    assert item(category, 0).toolTip() == CATEGORY_TIP
    assert item(complete, 0).toolTip() == ""
    assert dialog.status.text().endswith(
        "Grey codes are categories: choose a more specific code when you can."
    )
    status = dialog.status
    assert status.isVisible()
    # Every line at the width it has, once the layout has taken the new text (a posted
    # layout request: under load the test reached here first).
    qtbot.waitUntil(lambda: status.heightForWidth(status.width()) <= status.height(), timeout=2_000)
    assert status.mapTo(dialog, status.rect().topRight()).x() < dialog.width()
    dialog.reject()


def category_question(qtbot: QtBot, dialog: IcdSearchDialog) -> QMessageBox:
    """The question Save asks about a category (waits for it to show)."""
    qtbot.waitUntil(lambda: dialog.category_question is not None, timeout=5_000)
    box = dialog.category_question
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    box.activateWindow()  # as a desktop does (the offscreen platform does not)
    qtbot.waitUntil(box.isActiveWindow)
    return box


def test_return_picks_the_best_match_and_a_category_is_saved_only_when_meant(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's D10: J02, Return, Return, Save stored the category J02 (grey: not a
    complete diagnosis) without a word. Return from the search still picks the best match
    (for "asthma" the first complete code is "Eosinophilic asthma": jumping to it would
    store a specific diagnosis nobody chose); Save of a category asks once, "Choose a
    specific code" the default, which stores nothing."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, ProblemsCard)
    dialog = _search_dialog(qtbot, card)
    type_at_the_keyboard("asthma")
    qtbot.waitUntil(lambda: rows(dialog.results)[:1] == [["J45", "Asthma"]], timeout=10_000)
    press(Qt.Key.Key_Return)
    assert dialog.results.hasFocus()
    assert dialog.chosen_code() == "J45" and dialog.chosen_is_category()

    dialog.search.setFocus()
    dialog.search.selectAll()
    type_at_the_keyboard("J02")
    qtbot.waitUntil(
        lambda: rows(dialog.results)[:1] == [["J02", "Acute pharyngitis"]], timeout=10_000
    )
    assert dialog.chosen_code() is None  # the last list's pick went with it
    press(Qt.Key.Key_Return)
    assert dialog.chosen_code() == "J02" and dialog.chosen_is_category()
    press(Qt.Key.Key_Return)
    assert dialog.onset.hasFocus()
    press(Qt.Key.Key_Return)  # Save: a question, nothing stored yet
    box = category_question(qtbot, dialog)
    assert "J02 Acute pharyngitis is a category" in box.text()
    press(Qt.Key.Key_Return)  # the default: choose a specific code
    qtbot.waitUntil(lambda: dialog.category_question is None)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.results.hasFocus)
    assert Problems(clinic.records).list(patient.id) == [] and dialog.isVisible()
    press(Qt.Key.Key_Down)  # a specific code below it: saved without a question
    specific = dialog.chosen_code()
    assert specific is not None and specific.startswith("J02.") and not dialog.chosen_is_category()

    press(Qt.Key.Key_Up)  # the category again, meant this time
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)  # asked again
    box = category_question(qtbot, dialog)
    go = box.findChild(QPushButton, "categoryQuestionButton")
    assert go is not None and go.text() == "Save the category"
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.dialog is None, timeout=5_000)
    [stored] = Problems(clinic.records).list(patient.id)
    assert stored.code == "J02"


def test_a_problem_already_on_the_list_is_added_again_only_after_the_warning(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester added I10 twice without a word. Now the form names the one there (when,
    by whom); Return (Cancel, the default) adds nothing and leaves the form as typed, "Add
    anyway" adds it."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    Problems(clinic.records).add(patient.id, code="I10", onset="2019")
    card = card_of(chart, ProblemsCard)
    signed_in.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    dialog = _search_dialog(qtbot, card)
    QTest.keyClicks(dialog.search, "I10")
    qtbot.waitUntil(lambda: dialog.results.rowCount() > 0, timeout=10_000)
    QTest.keyClick(dialog.search, Qt.Key.Key_Down)
    QTest.keyClick(dialog.results, Qt.Key.Key_Return)
    QTest.keyClick(dialog.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.duplicate_question is not None, timeout=5_000)
    box = dialog.duplicate_question
    assert box is not None
    assert "I10 Essential (primary) hypertension is already an active problem" in box.text()
    assert "(onset 2019): Recorded " in box.informativeText()
    assert f" by {ADMIN_NAME}" in box.informativeText()
    press(Qt.Key.Key_Return)  # the default: Cancel
    qtbot.waitUntil(lambda: dialog.duplicate_question is None)
    assert len(Problems(clinic.records).list(patient.id)) == 1  # nothing added
    assert dialog.isVisible() and dialog.chosen_code() == "I10"  # the form as it was
    QTest.keyClick(dialog.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.duplicate_question is not None, timeout=5_000)
    box = dialog.duplicate_question
    assert box is not None
    go = box.findChild(QPushButton, "duplicateProblemButton")
    assert go is not None and go.text() == "Add anyway"
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.problems) == 2, timeout=5_000)
    assert [p.code for p in Problems(clinic.records).list(patient.id)] == ["I10", "I10"]


def test_a_resolved_problem_says_who_recorded_it_and_who_resolved_it_when(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    problems = Problems(clinic.records)
    problems.resolve(problems.add(patient.id, uncoded="Sprained ankle").id, "2026-01-05")
    card = card_of(chart, ProblemsCard)
    signed_in.operations.catch_up()
    QTest.mouseClick(card.show_resolved, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(card.problems) == 1, timeout=5_000)
    [row] = rows(card.table)
    assert row[3] == "Resolved 2026-01-05" and row[4].endswith(f" by {ADMIN_NAME}")
    item = card.table.item(0, 1)
    assert item is not None
    recorded, resolved = item.toolTip().splitlines()
    assert recorded.startswith("Recorded 20") and recorded.endswith(f" by {ADMIN_NAME}")
    assert resolved.startswith("Resolved 2026-01-05 (recorded 20")
    assert resolved.endswith(f" by {ADMIN_NAME})")

"""A date of birth is stored exactly as typed, or refused next to the field with the reason;
it never changes under Tab, the arrow keys or the mouse wheel."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.records.workstation import Workstation
from tests.ui.conftest import wheel
from tests.ui.patients.conftest import EditDialog, click, open_new_dialog, save

NEXT_YEAR = f"{dt.date.today().year + 1}-01-01"


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("1984-03-02", "1984-03-02"), ("1984-3-2", "1984-03-02"), ("19840302", "1984-03-02")],
)
def test_a_typed_date_is_stored_exactly(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, typed: str, stored: str
) -> None:
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClicks(dialog.family, "Haddad")
    QTest.keyClicks(dialog.given, "Yusuf")
    QTest.keyClicks(dialog.birth_date, typed)
    save(qtbot, dialog)
    chart = signed_in.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert chart.patient is not None
    assert clinic.records.get_patient(chart.patient.id).birth_date == stored


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (NEXT_YEAR, f"Date of birth: {NEXT_YEAR} is in the future."),
        ("1984-02-30", "Date of birth: '1984-02-30' is not a date: February 1984 has 29 days."),
        ("0000-01-01", "Date of birth: '0000-01-01' is not a date: there is no year 0."),
        ("9999-12-32", "Date of birth: '9999-12-32' is not a date: December 9999 has 31 days."),
        (
            "1984",
            "Date of birth: '1984' is not a whole date: type year, month and day, e.g. 1984-03-02.",
        ),
        (
            "02/03/1984",
            "Date of birth: '02/03/1984' has the year last, where day and month are read "
            "either way round: type the year first, e.g. 1984-03-02.",
        ),
    ],
)
def test_a_date_that_cannot_be_read_exactly_is_refused_and_nothing_is_saved(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, typed: str, message: str
) -> None:
    dialog = open_new_dialog(qtbot, signed_in)
    QTest.keyClicks(dialog.family, "Haddad")
    QTest.keyClicks(dialog.given, "Yusuf")
    click(dialog.birth_date)
    QTest.keyClicks(dialog.birth_date, typed)
    # Leaving the field says at once what is wrong, and leaves the text as typed.
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.sex
    assert dialog.errors["birth_date"].text() == message
    assert dialog.errors["birth_date"].isVisibleTo(dialog)
    assert dialog.birth_date.text() == typed

    save(qtbot, dialog)
    assert dialog.errors["birth_date"].text() == message
    assert dialog.focusWidget() is dialog.birth_date
    assert dialog.isVisible() and dialog.save_button.isEnabled()
    qtbot.wait(50)  # had anything been sent to the worker, it would have arrived by now
    assert signed_in.workspace.chart.patient is None
    assert clinic.records.count_patients() == 5

    # Corrected, it is saved as typed.
    dialog.birth_date.clear()
    QTest.keyClicks(dialog.birth_date, "1984-2-29")
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    assert not dialog.errors["birth_date"].isVisibleTo(dialog)
    assert dialog.birth_date.text() == "1984-02-29"  # shown as it will be stored
    save(qtbot, dialog)
    chart = signed_in.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert chart.patient is not None and chart.patient.birth_date == "1984-02-29"


def test_edit_details_keeps_the_stored_date_and_tabs_field_to_field(
    qtbot: QtBot, clinic: Workstation, open_edit_dialog: EditDialog
) -> None:
    dialog = open_edit_dialog("NGUYEN, Bao")
    assert dialog.birth_date.text() == "2012-09-09"
    click(dialog.given)
    assert dialog.focusWidget() is dialog.given
    QTest.keyClick(dialog.given, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.birth_date
    # Down and the wheel over the focused field change nothing.
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Down)
    wheel(dialog.birth_date)
    wheel(dialog.birth_date, notches=3)
    assert dialog.birth_date.text() == "2012-09-09"
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.sex
    QTest.keyClick(dialog.sex, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.mrn

    QTest.keyClicks(dialog.phone, "555 0142")
    save(qtbot, dialog)
    chart = dialog.parent()
    qtbot.waitUntil(lambda: getattr(chart, "patient_dialog", None) is None, timeout=5_000)
    stored = next(p for p in clinic.records.list_patients() if p.family == "Nguyen")
    full = clinic.records.get_patient(stored.id)
    assert (full.birth_date, full.phone) == ("2012-09-09", "555 0142")


def test_the_wheel_never_changes_sex_or_date_under_a_passing_pointer(
    qtbot: QtBot, open_edit_dialog: EditDialog
) -> None:
    dialog = open_edit_dialog("NGUYEN, Bao")
    # The same wheel event does change an ordinary combo box: the event is real.
    plain = QComboBox()
    qtbot.addWidget(plain)
    plain.addItems(["one", "two", "three"])
    plain.show()
    qtbot.waitExposed(plain)
    wheel(plain)
    assert plain.currentIndex() == 1

    click(dialog.family)
    for notches in (-1, -2, 1):
        wheel(dialog.sex, notches)
        wheel(dialog.birth_date, notches)
    assert dialog.sex.currentData() is None and dialog.sex.currentText() == "Not recorded"
    assert dialog.birth_date.text() == "2012-09-09"
    assert dialog.focusWidget() is dialog.family  # the wheel did not take focus either
    # Not even once the person has chosen a value there and moves on by scrolling.
    click(dialog.birth_date)
    QTest.keyClick(dialog.birth_date, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.sex
    QTest.keyClick(dialog.sex, Qt.Key.Key_Down)  # the keyboard still works
    assert dialog.sex.currentData() == "female"
    wheel(dialog.sex, -1)
    assert dialog.sex.currentData() == "female"

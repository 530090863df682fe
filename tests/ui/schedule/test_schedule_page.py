"""The schedule page driven as the front desk does: the keyboard, clicks, real SQLCipher."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableWidget,
    QWidget,
)
from pytestqt.qtbot import QtBot

from app.chart.visits import VisitsSection
from app.main_window import MainWindow
from app.operations import Operations
from app.patients.dialog import PatientDialog
from app.schedule.booking import BookingDialog, CancelDialog
from app.schedule.page import DAY_COLUMNS
from core.records.clinic import ClinicRecords
from core.records.schedule import Clinician, Schedule
from core.records.visits import Visits
from tests.ui.chart.test_printing import pdf_text
from tests.ui.conftest import (
    ADMIN,
    DEFAULT_SIZE,
    PASSWORD,
    POPUP_NOISE,
    SMALL,
    WindowFactory,
    answer_discard,
    answer_discard_by_keyboard,
    asks_nothing,
    discard_question,
    type_at_the_keyboard,
    wheel,
)
from tests.ui.conftest import sign_in as sign_in_window
from tests.ui.layout import (
    assert_placeholder_fits,
    assert_text_fits,
    assert_whole,
    cell_ink_at_edges,
    cell_lines_shown,
    cell_text_shown,
    open_popup_rows,
    rect_in,
    shot,
)
from tests.ui.schedule.conftest import (
    activate,
    at,
    click,
    day_rows,
    new_schedule_clinic,
    open_schedule,
    select_row,
    today,
    wait_loaded,
)


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None
    return widget


def assert_hints_whole(dialog: QDialog) -> None:
    """Every hint in ``dialog``'s boxes shows whole (README: a field's hint shows whole)."""
    edits = [e for e in dialog.findChildren(QLineEdit) if e.placeholderText()]
    assert edits
    for edit in edits:
        assert_placeholder_fits(edit)


def booking_dialog(qtbot: QtBot, window: MainWindow) -> BookingDialog:
    page = window.workspace.schedule
    QTest.keyClick(page, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog))
    dialog = page.dialog
    assert isinstance(dialog, BookingDialog)
    activate(qtbot, dialog)
    return dialog


def find_patient(qtbot: QtBot, dialog: BookingDialog, text: str) -> None:
    """Type into the search, wait for the results, press Enter for the first."""
    dialog.patient_search.setFocus()
    QTest.keyClicks(dialog.patient_search, text)
    qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Return)


def overlapping_booking(qtbot: QtBot, window: MainWindow, hhmm: str) -> BookingDialog:
    """Book Bao Nguyen with Dr Sam Lee at ``hhmm`` (his list: 09:00-09:15, 10:00-10:20)
    and press Book."""
    dialog = booking_dialog(qtbot, window)
    find_patient(qtbot, dialog, "nguyen")
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at(hhmm))
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    click(dialog.save_button)
    return dialog


def test_ctrl_d_shows_today_for_the_whole_clinic_then_one_clinician(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    assert [r[:3] for r in day_rows(page)] == [
        ("09:00–09:15", "GARCIA, Maria", "Dr Sam Lee"),
        ("09:30–10:00", "OKAFOR, Chinedu", "Dr Ana Kim"),
        ("10:00–10:20", "LINDQVIST, Astrid", "Dr Sam Lee"),
    ]
    assert day_rows(page)[0][3:] == ("Cough", "Booked")
    # The wheel over the clinician filter leaves it alone; the keyboard chooses.
    wheel(page.clinician)
    assert page.clinician.currentText() == "Whole clinic"
    page.clinician.setFocus()
    QTest.keyClick(page.clinician, Qt.Key.Key_Down)  # Ada Adeyemi (the admin sees patients too)
    wait_loaded(qtbot, page)
    assert day_rows(page) == []
    QTest.keyClick(page.clinician, Qt.Key.Key_Down)  # Dr Ana Kim (by name)
    wait_loaded(qtbot, page)
    assert [r[1] for r in day_rows(page)] == ["OKAFOR, Chinedu"]
    QTest.keyClick(page.clinician, Qt.Key.Key_Down)  # Dr Sam Lee
    wait_loaded(qtbot, page)
    assert [r[1] for r in day_rows(page)] == ["GARCIA, Maria", "LINDQVIST, Astrid"]


def test_day_and_week_switching(qtbot: QtBot, schedule_window: MainWindow) -> None:
    page = open_schedule(qtbot, schedule_window)
    click(page.week_button)
    wait_loaded(qtbot, page)
    assert page.views.currentWidget() is page.week_table
    column = today().weekday()
    header = page.week_table.horizontalHeaderItem(column)
    assert header is not None and header.text() == today().strftime("%a %d %b")
    texts = [page.week_table.item(r, column) for r in range(page.week_table.rowCount())]
    assert [t.text() for t in texts if t is not None] == [
        "GARCIA, Maria\n09:00 · Dr Sam Lee",  # booked: no status line
        "OKAFOR, Chinedu\n09:30 · Dr Ana Kim",
        "LINDQVIST, Astrid\n10:00 · Dr Sam Lee",
    ]
    assert "Week of" in page.span_label.text()
    click(page.next_button)
    wait_loaded(qtbot, page)
    assert page.week_table.rowCount() == 0  # nothing booked next week
    click(page.today_button)
    click(page.day_button)
    wait_loaded(qtbot, page)
    assert page.views.currentWidget() is page.day_table
    assert len(day_rows(page)) == 3
    QTest.keyClick(schedule_window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: page.day == today() + dt.timedelta(days=1))  # a button's animated click
    wait_loaded(qtbot, page)
    assert day_rows(page) == []


def test_booking_from_the_keyboard(qtbot: QtBot, schedule_window: MainWindow) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    assert focused() is dialog.patient_search
    find_patient(qtbot, dialog, "okafor")
    assert dialog.chosen.text() == "Booking for OKAFOR, Chinedu"
    assert focused() is dialog.start
    QTest.keyClicks(dialog.start, at("11:00"))  # the day's 09:00 was selected: replaced
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.minutes
    dialog.minutes.selectAll()
    QTest.keyClicks(dialog.minutes, "20")
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.clinician
    # The whole clinic is shown: nobody is chosen for the person.
    assert dialog.clinician.currentIndex() == -1
    assert dialog.clinician.placeholderText() == "Choose the clinician…"
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)  # Ada Adeyemi
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)  # Dr Ana Kim
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)  # Dr Sam Lee
    assert dialog.clinician.currentText() == "Dr Sam Lee"
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.reason
    QTest.keyClicks(dialog.reason, "Rash")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    wait_loaded(qtbot, page)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3] == ("11:00–11:20", "OKAFOR, Chinedu", "Dr Sam Lee", "Rash", "Booked")


def test_a_reason_typed_one_tab_short_on_clinician_is_the_reason(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The clinician chosen, a reason starting with a number typed one Tab short, on the
    closed Clinician box: its first digit opened the list, which swallowed the rest, and
    the booking was made with no reason. It goes on to Reason as if Tab came first; the
    clinician stays the one chosen."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")
    QTest.keyClicks(dialog.start, at("11:00"))
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.clinician
    for _ in range(3):
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert dialog.clinician.currentText() == "Dr Sam Lee"
    type_at_the_keyboard("2nd dose")
    assert not dialog.clinician.view().isVisible()
    assert dialog.clinician.currentText() == "Dr Sam Lee"
    assert focused() is dialog.reason and dialog.reason.text() == "2nd dose"
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    wait_loaded(qtbot, page)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3] == (
        "11:00–11:15", "OKAFOR, Chinedu", "Dr Sam Lee", "2nd dose", "Booked",
    )  # fmt: skip


def test_down_in_the_patient_search_goes_into_the_list_and_enter_chooses(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    results = dialog.patient_results
    QTest.keyClicks(dialog.patient_search, "garcia")
    qtbot.waitUntil(lambda: results.count() == 2 and not dialog.searching())
    names = [results.item(row).text().split("    ")[0] for row in range(2)]
    assert sorted(names) == ["GARCIA, Luis", "GARCIA, Maria"]
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Down)
    assert focused() is results and results.currentRow() == 0
    assert dialog.chosen.text() == f"Booking for {names[0]}"
    QTest.keyClick(results, Qt.Key.Key_Down)
    assert results.currentRow() == 1 and dialog.chosen.text() == f"Booking for {names[1]}"
    QTest.keyClick(results, Qt.Key.Key_Up)
    assert results.currentRow() == 0
    QTest.keyClick(results, Qt.Key.Key_Up)  # above the first: back to the search
    assert focused() is dialog.patient_search
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Down)
    QTest.keyClick(results, Qt.Key.Key_Down)
    QTest.keyClick(results, Qt.Key.Key_Return)  # chooses, on to the time; books nothing
    assert focused() is dialog.start and dialog.isVisible()
    assert dialog.chosen.text() == f"Booking for {names[1]}"
    assert dialog.patient_id is not None


def test_a_name_typed_without_its_stroked_letters_finds_the_patient_to_book(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's: "odegard" said "No patient found: register a new one" although the
    clinic had ØDEGÅRD Åse, inviting a second registration of her."""
    held = schedule_window.workstation.records.add_patient("ØDEGÅRD", "Åse", "1931-02-28")
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    results = dialog.patient_results
    QTest.keyClicks(dialog.patient_search, "odegard")
    qtbot.waitUntil(lambda: results.count() > 0 and not dialog.searching())
    assert [results.item(row).text().split("    ")[0] for row in range(results.count())] == [
        "ØDEGÅRD, Åse"
    ]
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Return)
    assert dialog.patient_id == held.id and dialog.chosen.text() == "Booking for ØDEGÅRD, Åse"
    dialog.reject()


def test_a_time_typed_once_the_patient_is_chosen_replaces_the_one_offered(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's slip: Enter took the first patient found and went on to Starts with the
    cursor after the day's 09:00, so "14:30" typed made "2026-12-06 09:0014:30" (refused
    at Book). Starts comes with its text selected, after Enter in the search and after
    Down and Enter in the list, as after registering a patient."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")  # Enter: the first found
    assert focused() is dialog.start
    QTest.keyClicks(dialog.start, at("14:30"))
    assert dialog.start.text() == at("14:30")
    dialog.patient_search.setFocus()
    dialog.patient_search.selectAll()
    QTest.keyClicks(dialog.patient_search, "garcia")
    results = dialog.patient_results
    qtbot.waitUntil(lambda: results.count() == 2 and not dialog.searching())
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Down)
    QTest.keyClick(results, Qt.Key.Key_Down)
    QTest.keyClick(results, Qt.Key.Key_Return)  # the second Garcia, on to the time
    assert focused() is dialog.start
    QTest.keyClicks(dialog.start, at("15:00"))
    assert dialog.start.text() == at("15:00")
    QTest.keyClick(dialog.start, Qt.Key.Key_Tab)
    QTest.keyClick(focused(), Qt.Key.Key_Tab)  # Minutes: 15
    assert focused() is dialog.clinician
    for _ in range(3):
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)  # to Dr Sam Lee
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3][0] == "15:00–15:15"


def into_starts(qtbot: QtBot, window: MainWindow, way: str) -> BookingDialog:
    """A booking with its patient chosen, the keyboard come to Starts ``way``: Return on
    the patient found, Tab from the search (past Register and the list), back from
    registering a new patient, or a booking restored after a sign-out."""
    dialog = booking_dialog(qtbot, window)
    if way == "registered":
        QTest.keyClicks(dialog.patient_search, "Ferreira Ines")
        qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
        click(dialog.new_patient_button)
        qtbot.waitUntil(lambda: dialog.patient_dialog is not None)
        registration = dialog.patient_dialog
        assert registration is not None
        activate(qtbot, registration)
        QTest.keyClicks(registration.birth_date, "2001-04-05")
        click(registration.save_button)
        qtbot.waitUntil(lambda: not registration.isVisible(), timeout=10_000)
        activate(qtbot, dialog)
        qtbot.waitUntil(lambda: focused() is dialog.start)
        return dialog
    find_patient(qtbot, dialog, "okafor")  # Return: the first found, on to Starts
    if way == "tab":
        dialog.patient_search.setFocus()
        for _ in range(3):  # Register new patient…, the patients found, Starts
            QTest.keyClick(focused(), Qt.Key.Key_Tab)
    if way == "restored":
        window.workspace.lock_requested.emit()
        qtbot.waitUntil(lambda: window.session is None, timeout=10_000)
        sign_in_window(qtbot, window)
        page = window.workspace.schedule
        qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog), timeout=10_000)
        restored = page.dialog
        assert isinstance(restored, BookingDialog)
        activate(qtbot, restored)
        dialog = restored
        qtbot.waitUntil(lambda: focused() is dialog.start)
    assert focused() is dialog.start
    return dialog


@pytest.mark.parametrize("way", ["return", "tab", "registered", "restored"])
@pytest.mark.parametrize("typed", ["14:30", "tomorrow 10:00"])
def test_a_time_typed_into_starts_keeps_the_day_offered_and_a_whole_one_is_taken_whole(
    qtbot: QtBot, schedule_window: MainWindow, way: str, typed: str
) -> None:
    """The tester's D4: the patient chosen, "14:30" typed in Starts replaced the whole
    "2026-12-06 09:00" selected and was refused ("'14:30' is not a date and time"). Only
    the time is selected, on every way into Starts: "14:30" books that day at 14:30. A
    whole date and time typed over it ("2026-12-07 10:00") is taken as typed, not left
    behind the day offered."""
    page = open_schedule(qtbot, schedule_window)
    dialog = into_starts(qtbot, schedule_window, way)
    assert dialog.start.text() == at("09:00") and dialog.start.selectedText() == "09:00"
    tomorrow = today() + dt.timedelta(days=1)
    keys, wanted = ("14:30", at("14:30")) if typed == "14:30" else (at("10:00", tomorrow),) * 2
    QTest.keyClicks(focused(), keys)
    assert dialog.start.text() == wanted
    QTest.keyClick(focused(), Qt.Key.Key_Tab)  # Minutes
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.clinician
    for _ in range(2):  # Ada Adeyemi, Dr Ana Kim
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    records = schedule_window.workstation.records
    day = today() if typed == "14:30" else tomorrow
    booked = [a for a in Schedule(records).day(day) if a.clinician == "kim"]
    assert [a.starts_at for a in booked][-1] == wanted.replace(" ", "T")


def test_tab_back_into_starts_selects_its_time_and_a_partial_date_is_refused_as_typed(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Shift+Tab back from Minutes selects the time again; text typed over it that reads
    as no date and time is left as typed and refused next to the field, nothing guessed."""
    open_schedule(qtbot, schedule_window)
    dialog = into_starts(qtbot, schedule_window, "return")
    QTest.keyClicks(focused(), "14:30")
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.minutes
    QTest.keyClick(focused(), Qt.Key.Key_Backtab)
    assert focused() is dialog.start and dialog.start.selectedText() == "14:30"
    QTest.keyClicks(focused(), "2026-12-0")
    assert dialog.start.text() == at("2026-12-0")
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert dialog.errors["starts_at"].isVisible()
    assert "is not a date and time" in dialog.errors["starts_at"].text()


def test_down_with_no_patient_found_stays_in_the_search(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    QTest.keyClicks(dialog.patient_search, "zzyzx")
    qtbot.waitUntil(lambda: dialog.patient_results.count() == 1 and not dialog.searching())
    QTest.keyClick(dialog.patient_search, Qt.Key.Key_Down)
    assert focused() is dialog.patient_search and dialog.patient_id is None


def test_an_impossible_time_is_named_next_to_the_field(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "garcia maria")
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, "2026-02-30 09:00")
    QTest.keyClick(dialog.start, Qt.Key.Key_Tab)  # leaving the field says it at once
    error = dialog.errors["starts_at"]
    assert error.isVisible()
    assert error.text() == "Starts: '2026-02-30' is not a date: February 2026 has 28 days."
    click(dialog.save_button)
    qtbot.waitUntil(lambda: not dialog.saving())
    assert dialog.isVisible() and focused() is dialog.start
    dialog.reject()
    assert len(day_rows(page)) == 3


def test_an_overlap_is_shown_and_booked_once_confirmed(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = overlapping_booking(qtbot, schedule_window, "09:05")  # Maria is 09:00-09:15
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    clashes = [dialog.overlap.clashes.item(i).text() for i in range(dialog.overlap.clashes.count())]
    assert clashes == ["Dr Sam Lee is booked 09:00-09:15 with GARCIA, Maria"]
    assert len(day_rows(page)) == 3  # nothing written yet
    QTest.keyClick(dialog.overlap.confirm_button, Qt.Key.Key_Space)  # Book anyway
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[1][:3] == ("09:05–09:20", "NGUYEN, Bao", "Dr Sam Lee")


def test_return_again_after_the_overlap_warning_books_nothing_and_starts_has_the_keyboard(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's slip: after the warning the keyboard sat on Book anyway, so a second
    Return (or a key repeat) double-booked the clinician with the warning unread. The
    keyboard goes to Starts, its time selected, and Book anyway is never the default."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "nguyen")
    QTest.keyClicks(dialog.start, at("09:05"))  # Maria is 09:00-09:15 with Dr Sam Lee
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert focused() is dialog.start and dialog.start.selectedText() == "09:05"
    confirm = dialog.overlap.confirm_button
    assert not confirm.isDefault() and not confirm.autoDefault()
    QTest.keyClick(focused(), Qt.Key.Key_Return)  # the second Return: checked again
    qtbot.waitUntil(lambda: not dialog.saving(), timeout=10_000)
    assert dialog.isVisible() and dialog.overlap.isVisible() and focused() is dialog.start
    records = schedule_window.workstation.records
    assert len(Schedule(records).day(today())) == 3  # nothing booked
    QTest.keyClicks(dialog.start, at("09:15"))  # typed over: the clash is gone
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    assert [a.starts_at[11:] for a in Schedule(records).day(today())] == [
        "09:00", "09:15", "09:30", "10:00",
    ]  # fmt: skip


def test_booking_the_patient_again_at_a_time_they_already_have_warns_of_it(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's observation: Chinedu Okafor has 09:30-10:00 with Dr Ana Kim; booking
    him at 09:40 with Dr Sam Lee (free then) warned of nothing. The warning says it is the
    patient's time and lists it; Book anyway books."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")
    QTest.keyClicks(dialog.start, at("09:40"))
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert dialog.overlap.heading.text() == "The patient already has an appointment then"
    clashes = dialog.overlap.clashes
    assert [clashes.item(i).text() for i in range(clashes.count())] == [
        "This patient is booked 09:30-10:00 with Dr Ana Kim"
    ]
    assert len(day_rows(page)) == 3  # nothing written yet
    click(dialog.overlap.confirm_button)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[2][:3] == ("09:40–09:55", "OKAFOR, Chinedu", "Dr Sam Lee")


def clash_rows(dialog: BookingDialog) -> list[str]:
    """The warning's clashes as listed, each checked to show whole (no sideways scroll)."""
    clashes = dialog.overlap.clashes
    room = clashes.viewport().rect()
    rows = []
    for i in range(clashes.count()):
        item = clashes.item(i)
        assert room.contains(clashes.visualItemRect(item)), f"{item.text()!r} is cut"
        rows.append(item.text())
    return rows


def test_each_clash_says_whose_time_it_is(qtbot: QtBot, schedule_window: MainWindow) -> None:
    """The tester's picture: a booking clashing with the clinician's appointment and the
    patient's listed "2026-12-08 08:50-09:20 ØDEGÅRD, Åse (booked)" and the like, saying
    neither the clinician nor which clash was whose. Each row says whose time it is: the
    clinician's (and with whom), the patient's (and with which clinician), or both."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")  # Chinedu: 09:30-10:00 with Dr Ana Kim
    QTest.keyClicks(focused(), "09:10")  # over the time offered
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    QTest.keyClicks(focused(), "30")  # Minutes, selected by Tab: 09:10-09:40
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(dialog.minutes, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert dialog.overlap.heading.text() == "The clinician and the patient are both booked then"
    assert clash_rows(dialog) == [
        "Dr Sam Lee is booked 09:00-09:15 with GARCIA, Maria",
        "This patient is booked 09:30-10:00 with Dr Ana Kim",
    ]
    shot(dialog, "booking-clashes-whose")
    assert len(day_rows(page)) == 3  # nothing written yet


def test_a_clash_with_the_clinician_and_the_patient_at_once_says_both(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Maria again with Dr Sam Lee at 09:05: his time and hers, one appointment."""
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "garcia maria")
    assert dialog.chosen.text() == "Booking for GARCIA, Maria"
    QTest.keyClicks(focused(), "09:05")
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert clash_rows(dialog) == ["Dr Sam Lee is booked 09:00-09:15 with this patient"]
    assert len(Schedule(schedule_window.workstation.records).day(today())) == 3


@pytest.mark.parametrize("over", ["the time", "everything"])
def test_a_time_typed_with_pm_keeps_the_date_typed_and_is_refused_for_its_pm(
    qtbot: QtBot, schedule_window: MainWindow, over: str
) -> None:
    """The tester's slip: Ctrl+A in Starts, then "2026-12-11 2:30 pm" typed: at the "p"
    the field dropped the date ("2:30 p"), then said "'2:30 pm' is not a date and time:
    type the date…" though one was typed. What was typed stays; the refusal names the
    am/pm and gives the 24-hour time to type (nothing typed for the person)."""
    open_schedule(qtbot, schedule_window)
    dialog = into_starts(qtbot, schedule_window, "return")
    if over == "everything":
        QTest.keyClick(dialog.start, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
        typed = wanted = at("2:30 pm", today() + dt.timedelta(days=5))
    else:
        typed, wanted = "2:30 pm", at("2:30 pm")
    for key in typed:  # each key as it comes: the field held "2:30 p" after the "p"
        QTest.keyClicks(dialog.start, key)
        assert wanted.startswith(dialog.start.text())
    assert dialog.start.text() == wanted
    QTest.keyClick(dialog.start, Qt.Key.Key_Tab)
    assert dialog.errors["starts_at"].text() == (
        f"Starts: '{wanted}' has am/pm: times are on the 24-hour clock, so type "
        f"{wanted[:10]} 14:30."
    )
    assert dialog.start.text() == wanted
    click(dialog.save_button)
    assert dialog.isVisible() and focused() is dialog.start and dialog.start.text() == wanted
    records = schedule_window.workstation.records
    assert len(Schedule(records).between(today(), today() + dt.timedelta(days=7))) == 3


def past_booking(qtbot: QtBot, window: MainWindow, now: str, hhmm: str) -> BookingDialog:
    """At ``now`` by the clinic's clock, Bao Nguyen typed in at ``hhmm`` today with Dr Sam
    Lee, and Return pressed in Starts."""
    page = open_schedule(qtbot, window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time.fromisoformat(now))
    dialog = booking_dialog(qtbot, window)
    find_patient(qtbot, dialog, "nguyen")
    QTest.keyClicks(focused(), hhmm)  # over the time offered
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    return dialog


def test_a_time_already_past_is_asked_about_and_booked_only_once_confirmed(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's observation: at 21:16, today at 14:30 was booked without a word. A
    walk-in entered afterwards is meant; a typo is not: the form asks first, as for a
    clash, the keyboard back in Starts with its time selected; Return asks again, only
    Book anyway books."""
    page = schedule_window.workspace.schedule
    dialog = past_booking(qtbot, schedule_window, "21:16:40", "14:30")
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    panel = dialog.overlap
    assert panel.heading.text() == "14:30 today has already passed"
    assert panel.text.text().startswith(f"It is {today().isoformat()} 21:16 now.")
    assert not panel.clashes.isVisible()
    shot(dialog, "booking-past")
    assert focused() is dialog.start and dialog.start.selectedText() == "14:30"
    assert not panel.confirm_button.isDefault() and not panel.confirm_button.autoDefault()
    QTest.keyClick(focused(), Qt.Key.Key_Return)  # asked again, nothing booked
    qtbot.waitUntil(lambda: not dialog.saving(), timeout=10_000)
    assert panel.isVisible() and focused() is dialog.start
    records = schedule_window.workstation.records
    assert len(Schedule(records).day(today())) == 3
    QTest.keyClick(panel.confirm_button, Qt.Key.Key_Space)  # Book anyway
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    assert [a.starts_at[11:] for a in Schedule(records).day(today())][-1] == "14:30"


def test_the_minute_it_is_books_without_asking(qtbot: QtBot, schedule_window: MainWindow) -> None:
    """A walk-in booked as they come in (21:16 at 21:16:40) is not a time gone by."""
    page = schedule_window.workspace.schedule
    past_booking(qtbot, schedule_window, "21:16:40", "21:16")
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    records = schedule_window.workstation.records
    assert [a.starts_at[11:] for a in Schedule(records).day(today())][-1] == "21:16"


def test_a_past_time_confirmed_is_still_checked_for_clashes(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Book anyway on a time gone by books past that alone: the clinician's clash is
    still listed and asked about."""
    page = schedule_window.workspace.schedule
    dialog = past_booking(qtbot, schedule_window, "10:30", "09:05")  # Maria's 09:00-09:15
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert dialog.overlap.heading.text() == "09:05 today has already passed"
    click(dialog.overlap.confirm_button)
    qtbot.waitUntil(lambda: dialog.overlap.clashes.isVisible(), timeout=10_000)
    assert dialog.overlap.heading.text() == "The clinician is already booked at this time"
    assert clash_rows(dialog) == ["Dr Sam Lee is booked 09:00-09:15 with GARCIA, Maria"]
    records = schedule_window.workstation.records
    assert len(Schedule(records).day(today())) == 3
    click(dialog.overlap.confirm_button)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    assert len(Schedule(records).day(today())) == 4


def test_changing_the_time_forgets_a_shown_overlap(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    open_schedule(qtbot, schedule_window)
    dialog = overlapping_booking(qtbot, schedule_window, "10:05")
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    dialog.start.setFocus()
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at("12:00"))
    assert not dialog.overlap.isVisible()
    dialog.reject()


def test_another_patient_chosen_withdraws_the_clash_warning_and_book_checks_them(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's find: the warning for one patient stayed up once another was picked,
    and Book anyway booked the new one past their own clash, never shown. Bao Nguyen at
    09:40-10:10 with Dr Ana Kim clashes with Chinedu Okafor's 09:30; Astrid Lindqvist,
    picked then, has 10:00-10:20 with Dr Sam Lee. Picking her withdraws the warning, and
    Book lists her clash before anything is booked."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "nguyen")
    QTest.keyClicks(focused(), "09:40")  # over the time offered
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    QTest.keyClicks(focused(), "30")  # Minutes, selected by Tab
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("kim"))
    click(dialog.save_button)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert clash_rows(dialog) == ["Dr Ana Kim is booked 09:30-10:00 with OKAFOR, Chinedu"]
    click(dialog.patient_search)
    dialog.patient_search.selectAll()
    QTest.keyClicks(dialog.patient_search, "lindqvist")
    results = dialog.patient_results
    qtbot.waitUntil(lambda: not dialog.searching() and "LINDQVIST" in results.item(0).text())
    rect = results.visualItemRect(results.item(0))
    QTest.mouseClick(results.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.chosen.text() == "Booking for LINDQVIST, Astrid"
    assert not dialog.overlap.isVisible()  # it was about Bao Nguyen
    click(dialog.save_button)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    assert dialog.overlap.heading.text() == "The clinician and the patient are both booked then"
    assert clash_rows(dialog) == [
        "Dr Ana Kim is booked 09:30-10:00 with OKAFOR, Chinedu",
        "This patient is booked 10:00-10:20 with Dr Sam Lee",
    ]
    assert len(day_rows(page)) == 3  # nothing booked yet
    click(dialog.overlap.confirm_button)  # now said, Book anyway books her
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[2][:3] == ("09:40–10:10", "LINDQVIST, Astrid", "Dr Ana Kim")


def test_a_clash_warning_goes_with_any_change_to_what_it_was_about_but_the_reason(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Starts, Minutes, Clinician and the patient each withdraw the warning (Book checks
    again); the reason, which clashes do not depend on, leaves it, and Book anyway books."""
    page = open_schedule(qtbot, schedule_window)
    dialog = overlapping_booking(qtbot, schedule_window, "09:05")  # Maria is 09:00-09:15

    def warned() -> None:
        click(dialog.save_button)
        qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)

    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    dialog.minutes.setFocus()
    QTest.keyClick(dialog.minutes, Qt.Key.Key_0)  # 150 minutes
    assert not dialog.overlap.isVisible()
    warned()
    dialog.clinician.setFocus()
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Up)  # Dr Ana Kim, from Dr Sam Lee
    assert dialog.clinician.currentData() == "kim"
    assert not dialog.overlap.isVisible()
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    warned()
    dialog.patient_search.setFocus()
    dialog.patient_search.selectAll()
    find_patient(qtbot, dialog, "okafor")
    assert not dialog.overlap.isVisible()
    warned()
    find_patient(qtbot, dialog, "okafor")  # the same patient again: still about them
    assert dialog.overlap.isVisible()
    QTest.keyClicks(dialog.reason, "Check-up")
    assert dialog.overlap.isVisible()
    click(dialog.overlap.confirm_button)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)


def test_registering_a_new_patient_from_the_booking_dialog(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    QTest.keyClicks(dialog.patient_search, "Ferreira Ines")
    click(dialog.new_patient_button)
    qtbot.waitUntil(lambda: dialog.patient_dialog is not None)
    registration = dialog.patient_dialog
    assert registration is not None
    activate(qtbot, registration)
    assert (registration.family.text(), registration.given.text()) == ("Ferreira", "Ines")
    QTest.keyClicks(registration.birth_date, "2001-04-05")
    click(registration.save_button)
    qtbot.waitUntil(lambda: dialog.patient_id is not None, timeout=10_000)
    assert dialog.chosen.text() == "Booking for FERREIRA, Ines"
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at("15:00"))
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("kim"))
    click(dialog.save_button)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3][1] == "FERREIRA, Ines"


def test_after_registering_the_time_is_next_and_nothing_books_until_it_is_all_chosen(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Search, Register new patient…, Save: focus is in Starts (its 09:00 selected, typed
    over). Return there does not book with a clinician nobody chose: it says to choose
    one. Return on the Register button registers (not books); with nothing focused, or in
    the list of patients found, it books nothing either. Chosen, Return books."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    QTest.keyClicks(dialog.patient_search, "Maria LOPEZ 1984-03-02")
    qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    click(dialog.new_patient_button)
    qtbot.waitUntil(lambda: dialog.patient_dialog is not None)
    registration = dialog.patient_dialog
    assert registration is not None
    activate(qtbot, registration)
    assert registration.birth_date.text() == "1984-03-02"
    click(registration.save_button)
    qtbot.waitUntil(lambda: dialog.patient_id is not None, timeout=10_000)
    assert dialog.chosen.text() == "Booking for LOPEZ, Maria"
    # The list shows her, chosen, not the search's "No patient found" (the tester's D16).
    results = dialog.patient_results
    assert [results.item(i).text() for i in range(results.count())] == [
        "LOPEZ, Maria    born 1984-03-02"
    ]
    assert results.currentRow() == 0
    qtbot.waitUntil(lambda: not registration.isVisible())
    activate(qtbot, dialog)
    qtbot.waitUntil(lambda: focused() is dialog.start)
    assert dialog.start.selectedText() == "09:00"

    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    assert not dialog.saving() and dialog.isVisible()
    assert dialog.errors["clinician"].isVisible()
    assert dialog.errors["clinician"].text() == "Choose the clinician the appointment is with."
    assert focused() is dialog.clinician
    for _ in range(3):  # Ada Adeyemi, Dr Ana Kim, Dr Sam Lee
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert dialog.clinician.currentText() == "Dr Sam Lee"

    # Return on the Register button registers another patient; it books nothing.
    dialog.new_patient_button.setFocus()
    QTest.keyClick(dialog.new_patient_button, Qt.Key.Key_Return)
    assert not dialog.saving()
    qtbot.waitUntil(lambda: dialog.patient_dialog is not registration)
    again = dialog.patient_dialog
    assert again is not None and again.isVisible()
    again.reject()
    # Nothing focused (a window given back without its focus) or the list: no booking.
    activate(qtbot, dialog)
    widget = focused()
    widget.clearFocus()
    QTest.keyClick(dialog, Qt.Key.Key_Return)
    assert not dialog.saving() and dialog.isVisible()
    assert focused() is dialog.start
    dialog.patient_results.setFocus()
    QTest.keyClick(dialog.patient_results, Qt.Key.Key_Return)
    assert not dialog.saving() and dialog.isVisible()
    assert len(day_rows(page)) == 3

    dialog.start.setFocus()
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at("11:30"))
    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3][:3] == ("11:30–11:45", "LOPEZ, Maria", "Dr Sam Lee")


@pytest.mark.parametrize("typed", ["Lopez, Maria", "Maria LOPEZ"])
def test_a_name_typed_as_the_list_shows_names_is_registered_as_typed(
    qtbot: QtBot, schedule_window: MainWindow, typed: str
) -> None:
    """The list shows ``GARCIA, Maria``; a person searching ``Lopez, Maria`` (or naming the
    family in capitals) finds nobody and registers her: family ``Lopez``, given ``Maria``,
    not ``Lopez,`` (the comma separates, it is no part of the name), with no case changed."""
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    QTest.keyClicks(dialog.patient_search, typed)
    qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    assert dialog.patient_results.item(0).text() == "No patient found: register a new one"
    click(dialog.new_patient_button)
    qtbot.waitUntil(lambda: dialog.patient_dialog is not None)
    registration = dialog.patient_dialog
    assert registration is not None
    activate(qtbot, registration)
    family = "LOPEZ" if typed.endswith("LOPEZ") else "Lopez"
    assert (registration.family.text(), registration.given.text()) == (family, "Maria")
    registration.birth_date.setFocus()
    QTest.keyClicks(registration.birth_date, "1982-06-14")
    click(registration.save_button)
    qtbot.waitUntil(lambda: dialog.patient_id is not None, timeout=10_000)
    assert dialog.chosen.text() == "Booking for LOPEZ, Maria"
    records = schedule_window.workstation.records
    stored = records.get_patient(dialog.patient_id or "")
    assert (stored.family, stored.given, stored.birth_date) == (family, "Maria", "1982-06-14")
    dialog.reject()


def test_moving_an_appointment(qtbot: QtBot, schedule_window: MainWindow) -> None:
    page = open_schedule(qtbot, schedule_window)
    select_row(page, 0)
    click(page.move_button)
    qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog))
    dialog = page.dialog
    assert isinstance(dialog, BookingDialog)
    activate(qtbot, dialog)
    assert dialog.start.text() == at("09:00") and dialog.minutes.text() == "15"
    assert focused() is dialog.start
    QTest.keyClicks(dialog.start, at("14:30"))  # replaces the selected text
    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: day_rows(page)[-1][0] == "14:30–14:45")
    assert day_rows(page)[-1][1] == "GARCIA, Maria"


def test_cancelling_keeps_it_on_the_day_with_the_reason(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    select_row(page, 1)
    click(page.cancel_button)
    qtbot.waitUntil(lambda: isinstance(page.dialog, CancelDialog))
    dialog = page.dialog
    assert isinstance(dialog, CancelDialog)
    activate(qtbot, dialog)
    QTest.keyClicks(dialog.reason, "Patient called")
    click(dialog.confirm_button)
    qtbot.waitUntil(lambda: day_rows(page)[1][4] == "Cancelled", timeout=10_000)
    assert day_rows(page)[1][3] == "Follow-up (cancelled: Patient called)"
    select_row(page, 1)
    assert not page.move_button.isEnabled() and not page.cancel_button.isEnabled()


def test_a_typed_cancel_reason_is_not_dropped_by_escape_or_keep_it_unasked(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    select_row(page, 1)
    click(page.cancel_button)
    qtbot.waitUntil(lambda: isinstance(page.dialog, CancelDialog))
    dialog = page.dialog
    assert isinstance(dialog, CancelDialog)
    activate(qtbot, dialog)
    QTest.keyClicks(dialog.reason, "Patient called, rebook next week")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)  # Escape on it: keep editing
    assert dialog.isVisible() and dialog.reason.text() == "Patient called, rebook next week"
    keep_it = dialog.buttons.button(dialog.buttons.StandardButton.Cancel)
    assert keep_it.text() == "Keep it"
    click(keep_it)  # keeps the appointment: the reason typed is thrown away only if asked
    answer_discard_by_keyboard(qtbot, dialog)
    qtbot.waitUntil(lambda: page.dialog is None)
    assert day_rows(page)[1][4] == "Booked"  # nothing cancelled

    # Nothing typed: Escape closes it at once.
    select_row(page, 1)
    click(page.cancel_button)
    qtbot.waitUntil(lambda: isinstance(page.dialog, CancelDialog))
    untouched = page.dialog
    assert isinstance(untouched, CancelDialog)
    activate(qtbot, untouched)
    QTest.keyClick(untouched.reason, Qt.Key.Key_Escape)
    assert asks_nothing(untouched)
    qtbot.waitUntil(lambda: page.dialog is None)


def test_waiting_room_counts_minutes_and_start_visit_says_so(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    assert page.waiting_empty.isVisible() and page.waiting_texts() == []
    # The clinic's clock: Astrid (10:00) arrives at 10:05 today; it moves on from there
    # within the day (arrivals and visits belong to the appointment's day).
    started = dt.datetime.combine(today(), dt.time(10, 5))
    page.clock = lambda: started
    select_row(page, 2)
    assert not page.start_visit_button.isEnabled()
    click(page.arrived_button)
    qtbot.waitUntil(lambda: page.waiting_texts() == [("LINDQVIST, Astrid", "just arrived")])
    assert day_rows(page)[2][4] == "Arrived"
    # The clock moves on: the next minute's tick shows it without reading again.
    assert page.tick.isActive() and page.tick.interval() == 60_000
    page.clock = lambda: started + dt.timedelta(minutes=12, seconds=40)
    page.tick.timeout.emit()
    assert page.waiting_texts() == [("LINDQVIST, Astrid", "12 min")]
    page.clock = lambda: started + dt.timedelta(minutes=75)
    page.tick.timeout.emit()
    assert page.waiting_texts() == [("LINDQVIST, Astrid", "1 h 15 min")]
    # Start visit from the waiting room: the visits part hears which appointment.
    waiting = page.waiting_table.item(0, 0)
    assert waiting is not None
    QTest.mouseClick(
        page.waiting_table.viewport(),
        Qt.MouseButton.LeftButton,
        pos=page.waiting_table.visualItemRect(waiting).center(),
    )
    assert page.start_visit_button.isEnabled()
    with qtbot.waitSignal(page.start_visit_requested, timeout=10_000) as signal:
        click(page.start_visit_button)
    appointment_id, patient_id = signal.args
    qtbot.waitUntil(lambda: page.waiting_texts() == [])
    assert day_rows(page)[2][4] == "In visit"
    records = schedule_window.workstation.records
    stored = Schedule(records).get(appointment_id)
    assert (stored.status, stored.patient_id, stored.patient_name) == (
        "in_visit", patient_id, "LINDQVIST, Astrid",
    )  # fmt: skip
    # The chart opens on its Visits tab with the visit started from this appointment.
    chart = schedule_window.workspace.chart
    visits = next(s for s in chart.sections if isinstance(s, VisitsSection))
    qtbot.waitUntil(lambda: len(visits.visits) == 1, timeout=10_000)
    assert chart.patient is not None and chart.patient.id == patient_id
    assert chart.tabs.currentWidget() is visits.widget()
    [visit] = Visits(records).list_visits(patient_id)
    assert (visit.appointment_id, visit.status) == (appointment_id, "open")
    # The visit names its appointment as the desk knows it: its time and clinician.
    qtbot.waitUntil(lambda: "From appointment" in visits.view.toPlainText(), timeout=10_000)
    shown = visits.view.toPlainText()
    assert f"From appointment: {today().isoformat()} 10:00–10:20 with Dr Sam Lee" in shown
    assert appointment_id not in shown


def test_tab_from_the_chosen_appointment_reaches_its_buttons_with_it_still_chosen(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's slip: a click on an appointment, then Tab walked the row's cells (Space
    did nothing) and, past the last one, chose the first appointment of the day, so the
    next action was another patient's. Tab leaves the list for its buttons instead; Space
    presses the one reached, for the appointment chosen, and tabbing on round the page and
    back into the list never changes the choice."""
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(9, 35))
    select_row(page, 1)  # Chinedu Okafor, 09:30
    table = page.day_table
    chosen = page.selected_id()
    assert chosen is not None and focused() is table
    QTest.keyClick(table, Qt.Key.Key_Tab)
    assert focused() is page.arrived_button
    assert page.selected_id() == chosen
    QTest.keyClick(focused(), Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: day_rows(page)[1][4] == "Arrived", timeout=10_000)
    assert [row[4] for row in day_rows(page)] == ["Booked", "Arrived", "Booked"]
    assert page.selected_id() == chosen
    for key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
        seen: set[QWidget] = set()
        while table not in seen and len(seen) < 60:  # round the window, back to the list
            QTest.keyClick(focused(), key)
            seen.add(focused())
            assert page.selected_id() == chosen, f"chosen changed at {focused()!r}"
        assert table in seen
        assert table.selectionModel().selectedRows()[0].row() == 1


@pytest.fixture
def desk_window(qtbot: QtBot, tmp_path: Path, make_window: WindowFactory) -> MainWindow:
    """The schedule clinic, signed in as Dee Desk of the front desk."""
    clinic = new_schedule_clinic(tmp_path / "clinic")
    clinic.sign_in(ADMIN, PASSWORD)
    clinic.records.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    clinic.sign_in("desk", PASSWORD)
    clinic.lock()
    window = make_window(clinic)
    sign_in_window(qtbot, window, "desk", PASSWORD)
    return window


@pytest.mark.strict_authz
def test_after_arrived_the_keyboard_is_back_on_the_list_not_on_cancel(
    qtbot: QtBot, desk_window: MainWindow
) -> None:
    """The tester's slip at the front desk: Arrived greyed itself (and Start visit, Done,
    No-show and Move) out, so Qt handed the keyboard to the red Cancel…; a stray Space
    opened "Cancel appointment" and Return cancelled the appointment just checked in. The
    keyboard goes back to the day list, the appointment still chosen."""
    page = open_schedule(qtbot, desk_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    select_row(page, 2)  # Astrid Lindqvist, 10:00
    chosen = page.selected_id()
    click(page.arrived_button)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Arrived", timeout=10_000)
    assert page.cancel_button.isEnabled()  # an arrival may still be cancelled, on purpose
    assert focused() is page.day_table
    assert page.selected_id() == chosen
    QTest.keyClick(focused(), Qt.Key.Key_Space)
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    assert page.dialog is None  # no "Cancel appointment" question
    wait_loaded(qtbot, page)
    assert Schedule(desk_window.workstation.records).get(chosen or "").status == "arrived"


def test_every_status_button_that_greys_itself_out_leaves_the_keyboard_on_the_list(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """No-show, Done and Cancel… grey themselves out too (after No-show only Arrived and
    Open chart are left; after Done, Open chart): focus goes back to the list each time,
    never on to the next button still enabled."""
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    records = schedule_window.workstation.records
    select_row(page, 0)  # Maria Garcia, 09:00: not come
    click(page.no_show_button)
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "No-show", timeout=10_000)
    assert focused() is page.day_table and page.selected_id() == page.appointments[0].id
    # Chinedu Okafor is in his visit (started on another workstation).
    in_visit = page.appointments[1].id
    Schedule(records).set_status(in_visit, "arrived")
    Schedule(records).set_status(in_visit, "in_visit")
    page.refresh()
    wait_loaded(qtbot, page)
    select_row(page, 1)
    assert page.done_button.isEnabled()
    click(page.done_button)
    qtbot.waitUntil(lambda: day_rows(page)[1][4] == "Done", timeout=10_000)
    assert focused() is page.day_table and page.selected_id() == in_visit
    # Cancel… asks, and once cancelled it greys out with the rest.
    select_row(page, 2)
    click(page.cancel_button)
    dialog = page.dialog
    assert isinstance(dialog, CancelDialog)
    activate(qtbot, dialog)
    click(dialog.confirm_button)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Cancelled", timeout=10_000)
    schedule_window.activateWindow()
    qtbot.waitUntil(schedule_window.isActiveWindow)
    assert focused() is page.day_table and page.selected_id() == page.appointments[2].id


def appointment_menu(qtbot: QtBot) -> QMenu:
    """The appointment's menu, once it has popped up."""
    qtbot.waitUntil(lambda: isinstance(QApplication.activePopupWidget(), QMenu))
    menu = QApplication.activePopupWidget()
    assert isinstance(menu, QMenu) and menu.objectName() == "appointmentMenu"
    return menu


def right_click(table: QTableWidget, pos: QPoint) -> None:
    """A right click at ``pos`` in ``table``'s rows, as the window system delivers it: the
    press chooses the row, then the context-menu event."""
    viewport = table.viewport()
    QTest.mousePress(viewport, Qt.MouseButton.RightButton, pos=pos)
    QTest.mouseRelease(viewport, Qt.MouseButton.RightButton, pos=pos)
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos, viewport.mapToGlobal(pos))
    QApplication.sendEvent(viewport, event)


def choose_in_menu(menu: QMenu, text: str) -> None:
    """Down through the menu to ``text``, then Return, as from the keyboard."""
    texts = [a.text() for a in menu.actions()]
    for _ in range(texts.index(text) + 1):
        QTest.keyClick(menu, Qt.Key.Key_Down)
    assert menu.activeAction() is not None and menu.activeAction().text() == text
    QTest.keyClick(menu, Qt.Key.Key_Return)


@pytest.mark.qt_log_ignore(POPUP_NOISE)
@pytest.mark.strict_authz
def test_the_front_desk_undoes_a_check_in_and_reinstates_a_cancelled_appointment(
    qtbot: QtBot, desk_window: MainWindow
) -> None:
    """The tester's block: a wrong check-in or a cancellation had no way back in the app
    (README "The schedule": arrived -> booked, cancelled -> booked, no-show -> booked),
    only the command line, which the front desk does not use. Back to booked, under the
    list and in the appointment's menu (a right click, or the Menu key), does it; each
    step is core's status change, audited as the desk's."""
    page = open_schedule(qtbot, desk_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    records = desk_window.workstation.records
    astrid = page.appointments[2].id  # Astrid Lindqvist, 10:00 with Dr Sam Lee
    select_row(page, 2)
    assert not page.back_button.isEnabled()  # booked: nothing to undo
    click(page.arrived_button)
    qtbot.waitUntil(lambda: page.waiting_texts() == [("LINDQVIST, Astrid", "just arrived")])
    # The wrong patient was checked in: Tab from the list to Back to booked, Space.
    assert focused() is page.day_table and page.back_button.isEnabled()
    assert "Undo the check-in" in page.back_button.toolTip()
    while focused() is not page.back_button:
        QTest.keyClick(focused(), Qt.Key.Key_Tab)
        assert focused() not in (page.cancel_button, page.waiting_table)
    QTest.keyClick(focused(), Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Booked", timeout=10_000)
    assert page.waiting_texts() == []
    stored = Schedule(records).get(astrid)
    assert (stored.status, stored.arrived_at) == ("booked", None)
    # The button pressed greyed itself out: the keyboard is back on the list, never on
    # the red Cancel… now enabled beside it.
    assert focused() is page.day_table and page.selected_id() == astrid
    # Cancelled by mistake: a right click on it offers Back to booked (not Cancel…).
    click(page.cancel_button)
    dialog = page.dialog
    assert isinstance(dialog, CancelDialog)
    activate(qtbot, dialog)
    QTest.keyClicks(dialog.reason, "Wrong patient")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Cancelled", timeout=10_000)
    desk_window.activateWindow()
    qtbot.waitUntil(desk_window.isActiveWindow)
    table = page.day_table
    cell = table.item(2, 3)
    assert cell is not None
    right_click(table, table.visualItemRect(cell).center())
    menu = appointment_menu(qtbot)
    assert [a.text() for a in menu.actions()] == ["Back to booked", "Open chart"]
    choose_in_menu(menu, "Back to booked")
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Booked", timeout=10_000)
    assert day_rows(page)[2][3] == ""  # the cancellation's reason went with it
    desk_window.activateWindow()  # the menu gone, the window has the keyboard again
    qtbot.waitUntil(desk_window.isActiveWindow)
    assert focused() is page.day_table
    # A no-show, from the keyboard: the Menu key on the chosen appointment.
    select_row(page, 0)  # Maria Garcia, 09:00: not come
    click(page.no_show_button)
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "No-show", timeout=10_000)
    assert focused() is page.day_table
    QTest.keyClick(page.day_table, Qt.Key.Key_Menu)
    menu = appointment_menu(qtbot)
    assert [a.text() for a in menu.actions()] == ["Arrived", "Back to booked", "Open chart"]
    choose_in_menu(menu, "Back to booked")
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "Booked", timeout=10_000)
    audited = records.db.query(
        "SELECT details FROM audit_log WHERE actor = 'desk' AND action = 'appointment.status'"
    )
    moves = [json.loads(row[0]) for row in audited]
    assert [(m["from"], m["to"]) for m in moves] == [
        ("booked", "arrived"), ("arrived", "booked"), ("cancelled", "booked"),
        ("booked", "no_show"), ("no_show", "booked"),
    ]  # fmt: skip


def test_reinstating_onto_a_time_given_away_asks_first_with_the_clashes(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Maria's 09:00 with Dr Sam Lee was cancelled and Bao booked at 09:05 in its place:
    putting Maria back asks first, listing Bao, with "Keep it cancelled" under the
    keyboard (Return keeps it); "Reinstate anyway" puts it back."""
    records = schedule_window.workstation.records
    schedule = Schedule(records)
    maria = schedule.day(today())[0]
    schedule.cancel(maria.id, "Feeling better")
    bao = next(p for p in records.search_patients("nguyen"))
    schedule.book(bao.id, at("09:05"), "lee", minutes=15)
    page = open_schedule(qtbot, schedule_window)
    select_row(page, 0)
    assert day_rows(page)[0][1:] == (
        "GARCIA, Maria", "Dr Sam Lee", "Cough (cancelled: Feeling better)", "Cancelled",
    )  # fmt: skip
    click(page.back_button)
    qtbot.waitUntil(lambda: page.question is not None, timeout=10_000)
    question = page.question
    assert question is not None
    assert question.text() == "The clinician is already booked at this time"
    assert "Dr Sam Lee is booked 09:05-09:20 with NGUYEN, Bao" in question.informativeText()
    qtbot.waitUntil(question.isVisible)
    keep = QApplication.focusWidget()
    assert isinstance(keep, QPushButton) and keep.text() == "Keep it cancelled"
    QTest.keyClick(keep, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.question is None)
    assert schedule.get(maria.id).status == "cancelled"
    click(page.back_button)
    qtbot.waitUntil(lambda: page.question is not None, timeout=10_000)
    question = page.question
    assert question is not None
    go = question.findChild(QPushButton, "overlapQuestionButton")
    assert go is not None and go.text() == "Reinstate anyway"
    click(go)
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "Booked", timeout=10_000)
    assert schedule.get(maria.id).status == "booked"


def test_no_show_and_a_refused_move_is_explained(qtbot: QtBot, schedule_window: MainWindow) -> None:
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(9, 1))  # Maria's 09:00 has begun
    select_row(page, 0)
    click(page.no_show_button)
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "No-show", timeout=10_000)
    select_row(page, 0)
    assert page.arrived_button.isEnabled()  # a late arrival is still checked in
    assert not page.no_show_button.isEnabled()


def test_a_no_show_before_its_time_is_refused_on_the_page(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(8, 30))  # before Maria's 09:00
    select_row(page, 0)
    click(page.no_show_button)
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=10_000)
    assert "starts at" in page.error.text() and "no-show after that" in page.error.text()
    records = schedule_window.workstation.records
    assert Schedule(records).get(page.appointments[0].id).status == "booked"


def test_start_visit_on_an_appointment_changed_meanwhile_is_refused_where_clicked(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    select_row(page, 2)
    click(page.arrived_button)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Arrived", timeout=10_000)
    select_row(page, 2)
    assert page.start_visit_button.isEnabled()
    # Another workstation put the arrival back to booked before this page heard of it.
    records = schedule_window.workstation.records
    appointment_id = page.appointments[2].id
    Schedule(records).set_status(appointment_id, "booked")
    with qtbot.assertNotEmitted(page.start_visit_requested, wait=500):
        click(page.start_visit_button)
        qtbot.waitUntil(lambda: page.error.isVisible(), timeout=10_000)
    assert page.error.text() == (
        "Appointment is booked; a visit is started from an appointment only once the patient "
        "has arrived."
    )
    assert Schedule(records).get(appointment_id).status == "booked"
    assert Visits(records).list_visits(page.appointments[2].patient_id) == []
    assert schedule_window.workspace.pages.currentWidget() is page  # the chart did not open


def test_signing_out_empties_the_schedule(qtbot: QtBot, schedule_window: MainWindow) -> None:
    page = open_schedule(qtbot, schedule_window)
    assert day_rows(page)
    schedule_window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: schedule_window.session is None, timeout=10_000)
    assert page.day_table.rowCount() == 0 and page.waiting_table.rowCount() == 0


def test_an_unsaved_booking_is_kept_across_a_sign_out(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at("16:10"))
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("kim"))
    QTest.keyClicks(dialog.reason, "Results")
    schedule_window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: schedule_window.session is None, timeout=10_000)
    assert page.dialog is None and page.day_table.rowCount() == 0
    sign_in_window(qtbot, schedule_window)
    qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog), timeout=10_000)
    again = page.dialog
    assert isinstance(again, BookingDialog)
    assert schedule_window.workspace.pages.currentWidget() is page
    assert again.chosen.text() == "Booking for OKAFOR, Chinedu"
    assert (again.start.text(), again.reason.text()) == (at("16:10"), "Results")
    assert again.clinician.currentText() == "Dr Ana Kim"
    click(again.save_button)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3][:2] == ("16:10–16:25", "OKAFOR, Chinedu")


def test_a_half_typed_patient_search_is_kept_across_a_sign_out(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Only the search typed (nobody chosen yet): the draft keeps it, and the list shows
    the patients it finds again."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    QTest.keyClicks(dialog.patient_search, "garcia")
    qtbot.waitUntil(lambda: dialog.patient_results.count() == 2 and not dialog.searching())
    assert dialog.patient_id is None
    schedule_window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: schedule_window.session is None, timeout=10_000)
    assert page.dialog is None
    sign_in_window(qtbot, schedule_window)
    qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog), timeout=10_000)
    again = page.dialog
    assert isinstance(again, BookingDialog) and again is not dialog
    assert again.patient_search.text() == "garcia"
    results = again.patient_results
    qtbot.waitUntil(lambda: results.count() == 2 and not again.searching(), timeout=10_000)
    names = sorted(results.item(row).text().split("    ")[0] for row in range(2))
    assert names == ["GARCIA, Luis", "GARCIA, Maria"]
    assert again.patient_id is None  # found again, not chosen for the person
    QTest.keyClick(again.patient_search, Qt.Key.Key_Escape)  # the restored search counts
    discard_question(qtbot, again)
    answer_discard_by_keyboard(qtbot, again)
    qtbot.waitUntil(lambda: page.dialog is None)


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the registration open is raised
def test_a_registration_opened_from_a_booking_comes_back_on_top_of_it_once(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The tester's D5: a booking and the registration opened from it, kept across a
    sign-out (Ctrl+L), a colleague's turn, and back. The registration came back as a window
    of its own behind the booking, which blocked it, and Register new patient… opened a
    second, empty one. It comes back on top of the booking, usable, with the date of birth
    typed; Register brings that one forward."""
    clinic = new_schedule_clinic(tmp_path / "clinic")
    clinic.sign_in(ADMIN, PASSWORD)
    clinic.sign_in("lee", PASSWORD)  # has signed in here before: the clinic opens for them
    clinic.lock()
    window = make_window(clinic)
    sign_in_window(qtbot, window)
    page = open_schedule(qtbot, window)
    dialog = booking_dialog(qtbot, window)
    QTest.keyClicks(dialog.patient_search, "Smith, John")
    qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    click(dialog.new_patient_button)
    registration = dialog.patient_dialog
    assert registration is not None
    activate(qtbot, registration)
    QTest.keyClicks(registration.birth_date, "1990-05-05")
    QTest.keyClick(registration.birth_date, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: window.session is None, timeout=10_000)
    sign_in_window(qtbot, window, "lee", PASSWORD)
    assert not any(d.isVisible() for d in window.findChildren(PatientDialog))
    window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: window.session is None, timeout=10_000)

    sign_in_window(qtbot, window)
    qtbot.waitUntil(lambda: isinstance(page.dialog, BookingDialog), timeout=10_000)
    again = page.dialog
    assert isinstance(again, BookingDialog)
    forms = [d for d in window.findChildren(PatientDialog) if d.isVisible()]
    assert forms == [again.patient_dialog], "one registration, the booking's own"
    restored = forms[0]
    assert (restored.family.text(), restored.given.text()) == ("Smith", "John")
    assert restored.birth_date.text() == "1990-05-05"
    qtbot.waitUntil(restored.isActiveWindow)  # on top, not behind the booking
    assert QApplication.activeModalWidget() is restored  # the booking does not block it
    assert window.workspace.notice.text() == (
        "Your unsaved forms were restored: Book appointment, New patient."
    )
    click(again.new_patient_button)  # as a person might, looking for it
    assert [d for d in window.findChildren(PatientDialog) if d.isVisible()] == [restored]
    assert again.patient_dialog is restored and restored.isActiveWindow()
    click(restored.save_button)
    qtbot.waitUntil(lambda: again.patient_id is not None, timeout=10_000)
    assert again.chosen.text() == "Booking for SMITH, John"


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the restored registration is raised
def test_a_date_of_birth_half_typed_before_the_auto_lock_is_finished_after_signing_in(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The tester's D5: a registration opened from a booking, "1985-07-3" typed in Date of
    birth, the auto-lock, signed in again: the form came back with the keyboard in Family
    name, and the "1" that finished the date made "Ní Bhriain1". The keyboard is back in
    Date of birth, after what was typed."""
    window = make_window(new_schedule_clinic(tmp_path / "clinic"), auto_lock_ms=4_000)
    sign_in_window(qtbot, window)
    open_schedule(qtbot, window)
    dialog = booking_dialog(qtbot, window)
    QTest.keyClicks(dialog.patient_search, "Ni Bhriain, Siobhan")  # QTest types ASCII
    qtbot.waitUntil(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.new_patient_button
    QTest.keyClick(focused(), Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: dialog.patient_dialog is not None)
    registration = dialog.patient_dialog
    assert registration is not None
    activate(qtbot, registration)
    assert registration.family.text() == "Ni Bhriain"
    registration.birth_date.setFocus(Qt.FocusReason.MouseFocusReason)  # clicked into
    QTest.keyClicks(focused(), "1985-07-3")
    with qtbot.waitSignal(window.locked, timeout=10_000):
        pass  # the receptionist was called away: the auto-lock

    sign_in_window(qtbot, window)

    def registrations() -> list[PatientDialog]:
        return [d for d in window.findChildren(PatientDialog) if d.isVisible()]

    qtbot.waitUntil(lambda: bool(registrations()), timeout=10_000)  # once the day is read
    restored = registrations()[0]
    qtbot.waitUntil(restored.isActiveWindow)
    qtbot.waitUntil(lambda: focused() is restored.birth_date)
    QTest.keyClicks(focused(), "1")
    assert restored.birth_date.text() == "1985-07-31"
    assert (restored.family.text(), restored.given.text()) == ("Ni Bhriain", "Siobhan")


def test_the_day_list_prints_in_time_order(
    qtbot: QtBot, schedule_window: MainWindow, tmp_path: Path
) -> None:
    page = open_schedule(qtbot, schedule_window)
    click(page.print_button)
    dialog = page.print_dialog
    assert dialog is not None and dialog.isVisible()
    # The file dialog's own flow is driven in tests/ui/chart/test_printing.py.
    target = tmp_path / "day.pdf"
    dialog.save_to(str(target))
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Saved to"), timeout=10_000)
    text = pdf_text(target)
    names = ("GARCIA, Maria", "OKAFOR, Chinedu", "LINDQVIST, Astrid")
    assert all(name in text for name in names)
    assert [text.index(name) for name in names] == sorted(text.index(name) for name in names)
    dialog.reject()


def test_a_refusal_under_the_list_goes_when_the_person_moves_to_another_day(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(8, 30))  # before Maria's 09:00
    select_row(page, 0)
    click(page.no_show_button)
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=10_000)
    click(page.next_button)  # tomorrow: the refusal was about today's 09:00
    assert not page.error.isVisible()
    wait_loaded(qtbot, page)
    assert not page.error.isVisible()


@pytest.mark.parametrize("view", ["day", "week"])
def test_another_day_or_week_leaves_no_appointment_selected_under_the_row_left(
    qtbot: QtBot, schedule_window: MainWindow, view: str
) -> None:
    """The tester's s24: Alt+Right with today's 09:00 (Maria Garcia) selected left the
    first row selected on the next day, someone else's appointment, with Arrived and
    Cancel… acting on it. The selection goes with the appointment: none on another day
    (or week), and back on the day it is still there."""
    records = schedule_window.workstation.records
    schedule = Schedule(records)
    later = today() + dt.timedelta(days=1 if view == "day" else 7)
    patient = records.search_patients("nguyen", limit=1)[0]
    schedule.book(patient.id, at("11:00", later), "kim", minutes=15)
    page = open_schedule(qtbot, schedule_window)
    if view == "week":
        click(page.week_button)
        wait_loaded(qtbot, page)
        table = page.week_table
        item = table.item(0, today().weekday())
        assert item is not None
        QTest.mouseClick(
            table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(item).center()
        )
    else:
        select_row(page, 0)
    maria = page.selected()
    assert maria is not None and maria.patient_name == "GARCIA, Maria"
    assert page.arrived_button.isEnabled()
    QTest.keyClick(schedule_window, Qt.Key.Key_Right, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(lambda: page.day > today())
    wait_loaded(qtbot, page)
    assert [a.patient_name for a in page.appointments] == ["NGUYEN, Bao"]
    assert page.selected() is None
    shown = page.views.currentWidget()
    assert isinstance(shown, QTableWidget) and not shown.selectedItems()
    assert not page.arrived_button.isEnabled() and not page.cancel_button.isEnabled()


def test_the_clinician_is_the_one_whose_day_is_shown_or_chosen_in_the_dialog(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """Nobody is booked with a clinician nobody chose: not the first on the list, not the
    person signed in (a clinician booking for a colleague), only the clinician whose day
    the page shows."""
    schedule_window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: schedule_window.session is None, timeout=10_000)
    sign_in_window(qtbot, schedule_window, "lee", PASSWORD)
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    assert dialog.clinician.currentIndex() == -1
    assert dialog.clinician.currentText() == ""  # "Choose the clinician…" shows
    dialog.reject()
    page = schedule_window.workspace.schedule
    page.clinician.setCurrentIndex(page.clinician.findData("kim"))  # Dr Kim's day shown
    wait_loaded(qtbot, page)
    click(page.book_button)
    for_kim = page.dialog
    assert isinstance(for_kim, BookingDialog)
    assert for_kim.clinician.currentText() == "Dr Ana Kim"
    for_kim.reject()


@pytest.mark.usefixtures("styled")
@pytest.mark.parametrize("size", [DEFAULT_SIZE, (SMALL.width(), SMALL.height())])
def test_the_booking_dialog_shows_the_chosen_name_and_a_refusal_whole(
    qtbot: QtBot, schedule_window: MainWindow, size: tuple[int, int]
) -> None:
    """A long name and a three-line refusal at once: the name wraps rather than being cut,
    the dialog grows, and nothing is drawn over the list of patients found."""
    schedule_window.resize(*size)
    records = schedule_window.workstation.records
    records.add_patient("Ñúñez-Ødegård-Williamson", "Zoë Alexandra Maria", "1975-03-21")
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "williamson")
    assert dialog.chosen.text() == "Booking for ÑÚÑEZ-ØDEGÅRD-WILLIAMSON, Zoë Alexandra Maria"
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, "05/12/2026 14:30")
    QTest.keyClick(dialog.start, Qt.Key.Key_Tab)
    QApplication.processEvents()
    shot(dialog, f"booking-{size[0]}x{size[1]}")
    assert "either way round" in dialog.errors["starts_at"].text()
    for label in (dialog.chosen, dialog.errors["starts_at"]):
        assert_whole(label)
    assert_text_fits(dialog.new_patient_button)
    assert dialog.frameGeometry().height() <= size[1]
    dialog.reject()
    assert page.dialog is None or not page.dialog.isVisible()


@pytest.mark.usefixtures("small_screen")
def test_the_booking_dialog_with_the_overlap_warning_fits_over_the_window_on_a_small_screen(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture: with the overlap warning the dialog (676 pixels) ran below the
    main window. On a 1024x740 screen it fits, with its title bar, inside the main window
    with its own (40 pixels each: ``fit_to_screen``'s allowance), the warning whole."""
    schedule_window.resize(SMALL.width(), SMALL.height())
    open_schedule(qtbot, schedule_window)
    dialog = overlapping_booking(qtbot, schedule_window, "09:05")
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    QApplication.processEvents()
    shot(dialog, "booking-overlap-small")
    assert dialog.height() + 40 <= SMALL.height() - 40
    for label in (dialog.overlap.heading, dialog.overlap.text, dialog.chosen):
        assert_whole(label)
    clashes = dialog.overlap.clashes
    first = clashes.visualItemRect(clashes.item(0))
    assert clashes.viewport().rect().contains(first)
    assert_text_fits(dialog.overlap.confirm_button)
    assert_placeholder_fits(dialog.reason)
    dialog.reject()


def two_long_clashes(qtbot: QtBot, window: MainWindow) -> BookingDialog:
    """The tester's clinic: Kowalczyk, Małgorzata with Dr Sam Lee at 14:30-14:45, and
    Ñúñez-Öztürk, Zoë with Dr. Amara Okafor-Nwachukwu then; Zoë booked with Dr Sam Lee at
    14:35 clashes with both, in rows too long for the dialog's width."""
    records = window.workstation.records
    records.add_user("okafor", "Dr. Amara Okafor-Nwachukwu", "clinician", PASSWORD)
    kowalczyk = records.add_patient("Kowalczyk", "Małgorzata", "1950-05-05")
    zoe = records.add_patient("Ñúñez-Öztürk", "Zoë", "1990-03-03")
    Schedule(records).book(kowalczyk.id, at("14:30"), "lee", minutes=15)
    Schedule(records).book(zoe.id, at("14:30"), "okafor", minutes=15)
    open_schedule(qtbot, window)
    dialog = booking_dialog(qtbot, window)
    find_patient(qtbot, dialog, "nunez")
    QTest.keyClicks(focused(), "14:35")
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    click(dialog.save_button)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    QApplication.processEvents()
    return dialog


@pytest.mark.usefixtures("small_screen")
@pytest.mark.parametrize("size", [DEFAULT_SIZE, (SMALL.width(), SMALL.height())])
def test_long_clashes_wrap_and_each_shows_whole(
    qtbot: QtBot, schedule_window: MainWindow, size: tuple[int, int]
) -> None:
    """The tester's picture at 1120x740: the clash list was a row high, its one long line
    behind a sideways scroll bar; with two clashes the first was cut at "KOWALCZYK,
    Małgorza" and the second hidden. Each row wraps and the list is as tall as its rows:
    every clash reads whole, no scrolling, and the dialog still fits the window."""
    schedule_window.resize(*size)
    dialog = two_long_clashes(qtbot, schedule_window)
    shot(dialog, f"booking-long-clashes-{size[0]}x{size[1]}")
    clashes = dialog.overlap.clashes
    assert sorted(clash_rows(dialog)) == [  # both start at 14:30: either may come first
        "Dr Sam Lee is booked 14:30-14:45 with KOWALCZYK, Małgorzata",
        "This patient is booked 14:30-14:45 with Dr. Amara Okafor-Nwachukwu",
    ]
    wrapped = [clashes.visualItemRect(clashes.item(i)).height() for i in range(2)]
    assert max(wrapped) > clashes.sizeHintForRow(0), "no row long enough to wrap: no test"
    assert not clashes.horizontalScrollBar().isVisible()
    assert not clashes.verticalScrollBar().isVisible()
    for i in range(clashes.count()):
        shown = "".join(cell_lines_shown(clashes, i, 0))  # wrapped at spaces or "-"
        assert shown.replace(" ", "") == clashes.item(i).text().replace(" ", "")
    assert dialog.frameGeometry().height() + 40 <= SMALL.height() - 40
    dialog.reject()


@pytest.mark.usefixtures("styled")
def test_the_patient_chosen_in_the_booking_list_keeps_the_accents_of_its_capitals(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture: the chosen row of the booking dialog's patients found cut the
    tops of the accents on "ÑÚÑEZ-ÖZTÜRK". Its text shows whole, its ink clear of the
    row's top and bottom edges (where Qt clips), and four rows still show."""
    schedule_window.workstation.records.add_patient("Ñúñez-Öztürk", "Zoë", "1990-03-03")
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "nunez")
    results = dialog.patient_results
    assert results.currentRow() == 0 and results.item(0).isSelected()
    QApplication.processEvents()
    shot(dialog, "booking-patient-accents")
    assert cell_text_shown(results, 0, 0) == "ÑÚÑEZ-ÖZTÜRK, Zoë    born 1990-03-03"
    edges = cell_ink_at_edges(results, 0, 0)
    assert edges == [], f"the chosen patient is drawn against the row's {edges}"
    assert results.viewport().height() >= 4 * results.visualItemRect(results.item(0)).height()
    dialog.reject()


@pytest.mark.usefixtures("styled")
def test_messages_put_right_leave_no_blank_bands_and_hints_show_whole(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture: once the patient and clinician messages went, the room they
    took stayed, spread as blank bands around "Booking for …". The dialog gives it back.
    And the search's and Cancel's hints show whole ("Name, MRN or date of …" was cut)."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    opened = dialog.height()
    click(dialog.save_button)  # no patient, no clinician: both said at once
    assert dialog.errors["patient_id"].isVisible() and dialog.errors["clinician"].isVisible()
    QApplication.processEvents()
    assert dialog.height() > opened
    find_patient(qtbot, dialog, "okafor")
    dialog.clinician.setFocus()
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert not dialog.errors["patient_id"].isVisible()
    assert not dialog.errors["clinician"].isVisible()
    QApplication.processEvents()
    layout = dialog.layout()
    assert layout is not None
    needed = layout.totalHeightForWidth(dialog.width())
    assert dialog.height() <= max(opened, needed)
    gap = rect_in(dialog.start, dialog).top() - rect_in(dialog.chosen, dialog).bottom()
    assert gap <= 2 * 6 + 2, f"{gap} pixels between the chosen patient and Starts"
    assert_hints_whole(dialog)
    dialog.reject()
    qtbot.waitUntil(lambda: page.dialog is None)
    select_row(page, 0)
    click(page.cancel_button)
    cancelling = page.dialog
    assert isinstance(cancelling, CancelDialog)
    activate(qtbot, cancelling)
    assert_hints_whole(cancelling)
    cancelling.reject()


@pytest.mark.usefixtures("styled")
def test_the_overlap_warning_gives_its_room_back_once_the_time_is_changed(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture: once the warning went (the time changed to a free one), the
    dialog kept its height, the room spread as blank bands around "Booking for …"."""
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "nguyen")
    QApplication.processEvents()
    before = dialog.height()
    QTest.keyClicks(dialog.start, at("09:05"))
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    QTest.keyClick(dialog.start, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.overlap.isVisible, timeout=10_000)
    QApplication.processEvents()
    assert dialog.height() > before  # it grew to show the warning
    click(dialog.start)
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, at("09:15"))
    assert not dialog.overlap.isVisible()
    QApplication.processEvents()
    shot(dialog, "booking-overlap-gone")
    assert dialog.height() == before
    gap = rect_in(dialog.start, dialog).top() - rect_in(dialog.chosen, dialog).bottom()
    assert gap <= 2 * 6 + 2, f"{gap} pixels between the chosen patient and Starts"


@pytest.mark.qt_log_ignore(POPUP_NOISE)
@pytest.mark.usefixtures("small_screen")
def test_the_clinician_list_opens_showing_every_clinician(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture: Alt+Down on the booking form's Clinician box opened a list a
    row and a half tall, with scroll arrows. It shows every clinician (up to ten) whole."""
    schedule_window.resize(SMALL.width(), SMALL.height())
    open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "nguyen")
    assert dialog.clinician.count() == 3
    shown, needed = open_popup_rows(dialog.clinician)
    shot(dialog.clinician.view().window(), "booking-clinician-list")
    dialog.clinician.hidePopup()
    assert shown >= needed, f"the list shows {shown} of the {needed} pixels its rows need"
    dialog.reject()


@pytest.mark.usefixtures("styled")
@pytest.mark.parametrize("size", [DEFAULT_SIZE, (SMALL.width(), SMALL.height())])
def test_the_waiting_room_lines_up_with_the_page_edge_and_the_day_list(
    qtbot: QtBot, schedule_window: MainWindow, size: tuple[int, int]
) -> None:
    """The waiting room's right edge is the page's content edge, where the Book button and
    Open chart end, and its heading starts level with the day list's top."""
    schedule_window.resize(*size)
    page = open_schedule(qtbot, schedule_window)
    QApplication.processEvents()
    waiting = rect_in(page.waiting_table, page)
    heading = rect_in(page.waiting_heading, page)
    assert waiting.right() == rect_in(page.book_button, page).right() == page.rect().right()
    assert waiting.right() == rect_in(page.open_chart_button, page).right()
    assert heading.top() == rect_in(page.day_table, page).top()
    assert heading.left() == waiting.left()


@pytest.mark.usefixtures("styled")
@pytest.mark.parametrize("size", [DEFAULT_SIZE, (SMALL.width(), SMALL.height())])
def test_a_name_wrapped_in_the_waiting_room_keeps_the_accents_of_its_capitals(
    qtbot: QtBot, schedule_window: MainWindow, size: tuple[int, int]
) -> None:
    """The tester's picture: "ÑÚÑEZ-ÖZTÜRK, Zoë" on two lines in the waiting room had the
    marks over Ñ and Ú cut off under the header: Qt's row held the two lines' ascents and
    descents, not the accents above them. Every cell's text shows whole, with its ink clear
    of the cell's top and bottom edges (where Qt clips)."""
    records = schedule_window.workstation.records
    patient = records.add_patient("Ñúñez-Öztürk", "Zoë", "1975-03-21")
    now = dt.datetime.combine(today(), dt.time(10, 5))
    appointment = Schedule(records).book(patient.id, at("11:00"), "lee", minutes=15)
    Schedule(records, clock=lambda: now).set_status(appointment.id, "arrived")
    schedule_window.resize(*size)
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: now
    qtbot.waitUntil(lambda: page.waiting_texts() == [("ÑÚÑEZ-ÖZTÜRK, Zoë", "just arrived")])
    QApplication.processEvents()
    shot(page.side, f"waiting-room-accents-{size[0]}x{size[1]}")
    table = page.waiting_table
    assert len(cell_lines_shown(table, 0, 0)) == 2  # wrapped, as the tester had it
    for column in range(table.columnCount()):
        item = table.item(0, column)
        assert item is not None
        assert " ".join(cell_lines_shown(table, 0, column)) == item.text()
        edges = cell_ink_at_edges(table, 0, column)
        assert edges == [], f"{item.text()!r} is drawn against the cell's {edges}"


@pytest.mark.usefixtures("small_screen")
def test_on_a_small_screen_the_day_list_has_room_to_show_each_reason(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's picture at 1024x740: the waiting room (empty) kept half the width and
    the day list's Reason was "W…", its header ".easo". The day list has three fifths;
    every reason and every header shows whole, and the waiting room still names who
    waits (whole, on two lines where its third of the width is short)."""
    schedule_window.resize(SMALL.width(), SMALL.height())
    page = open_schedule(qtbot, schedule_window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    select_row(page, 2)
    click(page.arrived_button)
    qtbot.waitUntil(lambda: page.waiting_texts() == [("LINDQVIST, Astrid", "just arrived")])
    QApplication.processEvents()
    shot(page, "schedule-small")
    day, side = rect_in(page.day_table, page), rect_in(page.side, page)
    assert day.width() >= 1.4 * side.width(), f"day list {day.width()}, waiting {side.width()}"
    # About 13 characters of reason whole ("Follow-up", "BP check"), not "W…"; a longer one
    # is elided and its cell's tooltip has it all.
    reason = page.day_table.horizontalHeader().sectionSize(DAY_COLUMNS.index("Reason"))
    assert reason >= 110, f"the Reason column has {reason} pixels"
    cell = page.day_table.item(1, DAY_COLUMNS.index("Reason"))
    assert cell is not None and cell.toolTip() == "Follow-up"
    for table in (page.day_table, page.waiting_table):
        header = table.horizontalHeader()
        for column in range(table.columnCount()):
            width = header.sectionSize(column)
            label = table.horizontalHeaderItem(column)
            assert label is not None
            texts = [label.text()] + [
                item.text()
                for row in range(table.rowCount())
                if (item := table.item(row, column)) is not None
            ]
            assert header.sectionSizeHint(column) <= width, f"{label.text()!r} is cut"
            for row, text in enumerate(texts[1:]):
                if table is page.waiting_table:  # wrapped at its words
                    shown = " ".join(cell_lines_shown(table, row, column))
                else:
                    shown = cell_text_shown(table, row, column)
                assert shown == text, f"{text!r} shows as {shown!r} in {width} pixels"


@pytest.mark.strict_authz
def test_the_front_desk_is_told_who_starts_a_visit_and_a_clinician_starts_it(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The front desk checks Astrid in; Start visit is not theirs to press (disabled, its
    tooltip says who may). The clinician who signs in next on this computer may."""
    clinic = new_schedule_clinic(tmp_path / "clinic")
    clinic.sign_in(ADMIN, PASSWORD)
    clinic.records.add_user("desk", "Dee Desk", "front_desk", PASSWORD)
    for name in ("desk", "lee"):  # each has signed in here before: the clinic opens for them
        clinic.sign_in(name, PASSWORD)
    clinic.lock()
    window = make_window(clinic)
    sign_in_window(qtbot, window, "desk", PASSWORD)
    page = open_schedule(qtbot, window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 5))
    select_row(page, 2)
    click(page.arrived_button)
    qtbot.waitUntil(lambda: day_rows(page)[2][4] == "Arrived", timeout=10_000)
    select_row(page, 2)
    assert page.arrived_button.isEnabled() is False
    assert not page.start_visit_button.isEnabled()
    assert page.start_visit_button.toolTip() == (
        "Only a nurse or a clinician (on the care team, for a restricted chart) can start a visit"
    )
    select_row(page, 0)  # booked: nothing to start, and nothing to explain
    assert not page.start_visit_button.isEnabled()
    assert page.start_visit_button.toolTip() == (
        "Start the patient's visit: they leave the waiting room"
    )

    window.workspace.lock_requested.emit()
    qtbot.waitUntil(lambda: window.session is None, timeout=10_000)
    sign_in_window(qtbot, window, "lee", PASSWORD)
    page = open_schedule(qtbot, window)
    page.clock = lambda: dt.datetime.combine(today(), dt.time(10, 6))
    select_row(page, 2)
    assert page.start_visit_button.isEnabled()
    assert page.start_visit_button.toolTip() == (
        "Start the patient's visit: they leave the waiting room"
    )
    with qtbot.waitSignal(page.start_visit_requested, timeout=10_000):
        click(page.start_visit_button)
    assert Schedule(clinic.records).get(page.appointments[2].id).status == "in_visit"


def test_a_clinic_with_one_clinician_books_with_them(qtbot: QtBot, operations: Operations) -> None:
    """Only one clinician: nobody else to choose, so the dialog starts with them; two, and
    the person chooses."""
    alone = BookingDialog(operations, _no_records, [Clinician("lee", "Dr Sam Lee")])
    qtbot.addWidget(alone)
    assert alone.clinician.currentText() == "Dr Sam Lee"
    assert alone.values()["clinician"] == "lee"
    two = BookingDialog(
        operations, _no_records, [Clinician("kim", "Dr Ana Kim"), Clinician("lee", "Dr Sam Lee")]
    )
    qtbot.addWidget(two)
    assert two.clinician.currentIndex() == -1 and two.values()["clinician"] is None


def _no_records() -> ClinicRecords:
    raise AssertionError("the dialog reads nothing when it opens")


def test_a_refused_length_goes_once_it_is_put_right_and_escape_asks_first(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("lee"))
    dialog.minutes.setFocus()
    dialog.minutes.selectAll()
    QTest.keyClicks(dialog.minutes, "abc")
    click(dialog.save_button)
    error = dialog.errors["minutes"]
    qtbot.waitUntil(error.isVisible, timeout=10_000)
    assert error.text().startswith("Minutes: 'abc' is not a length")
    dialog.minutes.selectAll()
    QTest.keyClicks(dialog.minutes, "20")
    assert not error.isVisible()  # put right: the message about it is gone

    QTest.keyClick(dialog.minutes, Qt.Key.Key_Escape)  # a patient chosen, a length typed
    answer_discard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.minutes.text() == "20"
    assert dialog.chosen.text() == "Booking for OKAFOR, Chinedu"
    QTest.keyClick(dialog.minutes, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: page.dialog is None)
    assert len(day_rows(page)) == 3  # nothing booked

    untouched = page.book()
    activate(qtbot, untouched)
    QTest.keyClick(untouched.patient_search, Qt.Key.Key_Escape)  # nothing typed: closes
    assert asks_nothing(untouched)
    qtbot.waitUntil(lambda: page.dialog is None)


def test_book_says_a_bad_minutes_with_every_other_problem_at_once(
    qtbot: QtBot, schedule_window: MainWindow
) -> None:
    """The tester's Minutes "2O" (a letter O) was said only after Starts and Clinician were
    put right, a third round for one form. Book says all three at once, the keyboard in
    Starts (its text selected, typed over); then Minutes, then the clinician."""
    page = open_schedule(qtbot, schedule_window)
    dialog = booking_dialog(qtbot, schedule_window)
    find_patient(qtbot, dialog, "okafor")
    assert focused() is dialog.start
    QTest.keyClicks(dialog.start, "31/12/2026 10:00")
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    assert focused() is dialog.minutes
    dialog.minutes.selectAll()
    QTest.keyClicks(dialog.minutes, "2O")
    QTest.keyClick(dialog.minutes, Qt.Key.Key_Return)
    assert not dialog.saving() and dialog.isVisible()
    shown = {f: dialog.errors[f].text() for f in dialog.errors if dialog.errors[f].isVisible()}
    assert set(shown) == {"starts_at", "minutes", "clinician"}
    assert "has the year last" in shown["starts_at"]
    assert shown["minutes"] == "Minutes: '2O' is not a length from 1 to 720 minutes."
    assert focused() is dialog.start and dialog.start.selectedText() == "31/12/2026 10:00"
    QTest.keyClicks(dialog.start, at("11:00"))
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    dialog.minutes.selectAll()
    QTest.keyClicks(dialog.minutes, "20")
    QTest.keyClick(focused(), Qt.Key.Key_Tab)
    for _ in range(3):  # Ada Adeyemi, Dr Ana Kim, Dr Sam Lee
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 4)
    assert day_rows(page)[3][:3] == ("11:00–11:20", "OKAFOR, Chinedu", "Dr Sam Lee")

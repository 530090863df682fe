"""The Vitals tab, driven from the keyboard and mouse with a real SQLCipher clinic: an
impossible value is refused next to its field, 102 °F is stored as 38.89 °C and shown as
typed, a flagged value is highlighted, and the trend plot holds the readings."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.chart.page import ChartPage
from app.chart.vitals import FLAG_BACKGROUND, TABLE_COLUMNS, VitalsSection, recorded_note
from app.main_window import MainWindow
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import ADMIN, PASSWORD, POPUP_NOISE, WindowFactory, sign_in, wheel
from tests.ui.layout import cell_text_shown, open_popup_rows, shot
from tests.ui.session.test_shared_workstation import (
    NURSE,
    NURSE_PASSWORD,
    add_nurse,
    click_sign_out,
    signs_in,
)

COLUMN = {key: i for i, (key, _) in enumerate(TABLE_COLUMNS, start=1)}


def open_vitals(qtbot: QtBot, window: MainWindow) -> tuple[ChartPage, VitalsSection]:
    """Open the first patient's chart and click its Vitals tab."""
    chart = open_first_chart(qtbot, window)
    section = next(s for s in chart.sections if isinstance(s, VitalsSection))
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == "Vitals")
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    assert chart.tabs.currentWidget() is section.widget()
    qtbot.waitUntil(lambda: section.record_button.isEnabled(), timeout=5_000)
    return chart, section


def type_into(qtbot: QtBot, widget: QWidget, text: str) -> None:
    """Click into a field, replace what it holds by ``text``."""
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)
    QTest.keyClick(widget, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(widget, text)


def tab(qtbot: QtBot, section: VitalsSection) -> QWidget:
    """Press Tab in the focused widget; the widget that has focus then."""
    focused = section.widget().focusWidget()
    assert focused is not None
    QTest.keyClick(focused, Qt.Key.Key_Tab)
    now = section.widget().focusWidget()
    assert now is not None
    return now


def stored(ws: Workstation) -> list[tuple[str, str, str | None, str | None, str | None]]:
    rows = ws.database.query(
        "SELECT code, value, entered_value, entered_unit, flag FROM observations ORDER BY code"
    )
    return [tuple(r) for r in rows]


def type_an_unrecorded_set(qtbot: QtBot, section: VitalsSection) -> str:
    """Type a pulse of 88 and a temperature of 101.2, Tab to its unit and choose °F by key,
    recording nothing; the measured-at time the form shows."""
    type_into(qtbot, section.fields["pulse"].edit, "88")
    type_into(qtbot, section.fields["temperature"].edit, "101.2")
    assert tab(qtbot, section) is section.fields["temperature"].unit
    QTest.keyClick(section.fields["temperature"].unit, Qt.Key.Key_Down)  # °F
    return section.observed_at.text()


def assert_the_set_is_back(qtbot: QtBot, section: VitalsSection, measured: str) -> None:
    """The set :func:`type_an_unrecorded_set` typed comes back into the form as it was left,
    measured at ``measured``."""
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "88", timeout=5_000)
    assert section.fields["temperature"].edit.text() == "101.2"
    temperature = section.fields["temperature"]
    assert temperature.unit_code == "[degF]"
    # What 101.2 °F is stored as, shown beside it as when it was typed.
    assert temperature.hint.isVisible() and temperature.hint.text() == "= 38.44 °C"
    assert section.observed_at.text() == measured


def test_a_set_typed_from_the_keyboard_is_checked_converted_and_flagged(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    # A BP of 1200 is a typo: refused next to the field as soon as the person moves on.
    type_into(qtbot, f["systolic"].edit, "1200")
    assert tab(qtbot, section) is f["diastolic"].edit
    assert f["systolic"].message.isVisible()
    assert "1200 mmHg is not possible: must be 30 to 300 mmHg" in f["systolic"].message.text()
    QTest.keyClicks(f["diastolic"].edit, "95")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    assert f["systolic"].message.isVisible()  # still refused: nothing was recorded
    assert stored(clinic) == []

    # Corrected, and on through the form with Tab; the temperature's unit chosen by key.
    type_into(qtbot, f["systolic"].edit, "150")
    assert tab(qtbot, section) is f["diastolic"].edit
    assert not f["systolic"].message.isVisible()
    assert tab(qtbot, section) is f["pulse"].edit
    QTest.keyClicks(f["pulse"].edit, "72")
    assert tab(qtbot, section) is f["temperature"].edit
    QTest.keyClicks(f["temperature"].edit, "102")
    unit = tab(qtbot, section)
    assert unit is f["temperature"].unit
    QTest.keyClick(unit, Qt.Key.Key_Down)  # °C -> °F
    assert f["temperature"].unit_code == "[degF]"
    assert tab(qtbot, section) is f["respiratory_rate"].edit
    assert f["temperature"].hint.text() == "= 38.89 °C"  # the stored equivalent, shown
    for key in ("spo2", "weight"):
        assert tab(qtbot, section) is f[key].edit
    assert tab(qtbot, section) is f["weight"].unit
    assert tab(qtbot, section) is f["height"].edit
    assert tab(qtbot, section) is f["height"].unit
    assert tab(qtbot, section) is f["pain"].edit
    QTest.keyClicks(f["pain"].edit, "4")
    assert tab(qtbot, section) is section.record_button
    QTest.keyClick(section.record_button, Qt.Key.Key_Space)

    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert stored(clinic) == [
        ("72514-3", "4", "4", "{score}", None),
        ("8310-5", "38.89", "102", "[degF]", "high"),
        ("8462-4", "95", "95", "mm[Hg]", "high"),
        ("8480-6", "150", "150", "mm[Hg]", "high"),
        ("8867-4", "72", "72", "/min", None),
    ]
    # Counted as the row shows them: the pressure's cell once, with the temperature.
    assert section.status.text() == (
        "Recorded 5 vital signs, 2 outside the normal range (Blood pressure, Temperature)."
    )
    assert f["temperature"].edit.text() == ""  # the form is ready for the next set
    # Shown as entered, flagged cells highlighted; a normal one is not.
    temp = section.table.item(0, COLUMN["temperature"])
    assert temp is not None and temp.text() == "102 °F ▲"
    assert temp.background().color() == FLAG_BACKGROUND
    assert temp.toolTip() == "High for the patient's age. Stored as 38.89 °C"
    bp = section.table.item(0, COLUMN["bp"])
    assert bp is not None and bp.text() == "150/95 ▲"
    pulse = section.table.item(0, COLUMN["pulse"])
    assert pulse is not None and pulse.text() == "72"  # the unit is in the header
    assert pulse.background().color() != FLAG_BACKGROUND


def test_return_in_the_form_records_the_set_once_it_is_right(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    # A typo and Return: refused next to the field, nothing recorded.
    type_into(qtbot, f["pulse"].edit, "7200")
    QTest.keyClick(f["pulse"].edit, Qt.Key.Key_Return)
    assert f["pulse"].message.isVisible()
    assert stored(clinic) == []
    # Corrected, and Return again (no mouse, no Tab to the button): the set is recorded.
    type_into(qtbot, f["pulse"].edit, "72")
    type_into(qtbot, f["spo2"].edit, "98")
    QTest.keyClick(f["spo2"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert [(code, value) for code, value, *_ in stored(clinic)] == [
        ("59408-5", "98"),
        ("8867-4", "72"),
    ]
    assert f["pulse"].edit.text() == "" and f["spo2"].edit.text() == ""


def test_return_in_a_pressure_box_says_what_is_wrong_with_the_set_and_keeps_saying_it(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's D2: Return in the diastolic box after 120 / 130, or in an emptied
    systolic box beside a diastolic, recorded nothing and said nothing (the field's own
    check, run as Return left it, hid what Record had just said). The message stays;
    leaving the field keeps it while the set is wrong, and it goes once it is right."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    # Diastolic above systolic: Return in the diastolic box.
    type_into(qtbot, f["systolic"].edit, "120")
    type_into(qtbot, f["diastolic"].edit, "130")
    QTest.keyClick(f["diastolic"].edit, Qt.Key.Key_Return)
    said = [x.message.text() for x in (f["systolic"], f["diastolic"]) if x.message.isVisible()]
    assert len(said) == 1 and "below" in said[0].lower() and "systolic" in said[0].lower()
    assert stored(clinic) == []
    # Leaving for the next box, the set still wrong: still said.
    QTest.keyClick(f["diastolic"].edit, Qt.Key.Key_Tab)
    assert said == [
        x.message.text() for x in (f["systolic"], f["diastolic"]) if x.message.isVisible()
    ]
    # The systolic raised above it and left: the set is right, the message goes.
    type_into(qtbot, f["systolic"].edit, "140")
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Tab)
    assert not f["systolic"].message.isVisible() and not f["diastolic"].message.isVisible()

    # An impossible systolic, erased: Return in its empty box beside a diastolic.
    type_into(qtbot, f["systolic"].edit, "1200")
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Return)
    assert "1200 mmHg is not possible" in f["systolic"].message.text()
    assert f["systolic"].edit.hasFocus()
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Backspace)  # its text was selected
    assert f["systolic"].edit.text() == ""
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Return)
    assert f["systolic"].message.isVisible()
    assert (
        f["systolic"].message.text() == "Systolic is required with the other blood pressure number."
    )
    assert stored(clinic) == []


def test_a_letter_o_typed_for_a_zero_is_called_a_number_mistyped_not_a_unit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester typed pulse "7O" (a letter O) and was told "'O' is not a unit of pulse:
    use /min"; the number is what is wrong. A real unit of something else is still named
    as a unit."""
    _chart, section = open_vitals(qtbot, signed_in)
    pulse = section.fields["pulse"]
    type_into(qtbot, pulse.edit, "7O")
    QTest.keyClick(pulse.edit, Qt.Key.Key_Return)
    assert pulse.message.isVisible()
    assert pulse.message.text() == "Pulse: '7O' is not a number: type a whole number."
    assert stored(clinic) == []
    type_into(qtbot, pulse.edit, "70 kg")
    QTest.keyClick(pulse.edit, Qt.Key.Key_Return)
    assert pulse.message.text() == "Pulse: 'kg' is not a unit of pulse: use /min."
    assert stored(clinic) == []


@pytest.mark.qt_log_ignore(POPUP_NOISE)
def test_return_in_a_unit_or_the_visit_drop_down_records_the_set_too(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """README: "Return in any box of the Vitals form records the set". In the temperature's
    unit box and the Visit box it did nothing. On a drop-down's open list, Return only
    chooses the item, as in any list."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    type_into(qtbot, f["pulse"].edit, "72")
    type_into(qtbot, f["temperature"].edit, "101.2")
    unit = tab(qtbot, section)
    assert unit is f["temperature"].unit
    # Alt+Down opens the list, Down and Return choose °F: the list closes, nothing recorded.
    QTest.keyClick(unit, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    qtbot.waitUntil(unit.view().isVisible)
    QTest.keyClick(unit.view(), Qt.Key.Key_Down)
    QTest.keyClick(unit.view(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not unit.view().isVisible())
    assert f["temperature"].unit_code == "[degF]"
    assert stored(clinic) == [] and section.status.text() == ""
    # Return on the box itself: recorded, as from a value's box.
    unit.setFocus()
    QTest.keyClick(unit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert [(code, entered, u) for code, _v, entered, u, _f in stored(clinic)] == [
        ("8310-5", "101.2", "[degF]"),
        ("8867-4", "72", "/min"),
    ]
    # The Visit box, reached by Tab from "Measured at".
    type_into(qtbot, f["spo2"].edit, "97")
    QTest.mouseClick(section.observed_at, Qt.MouseButton.LeftButton)
    assert tab(qtbot, section) is section.visit
    QTest.keyClick(section.visit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)
    assert ("59408-5", "97") in [(code, value) for code, value, *_ in stored(clinic)]


def focused() -> QWidget:
    """The widget with the keyboard."""
    widget = QApplication.focusWidget()
    assert widget is not None
    return widget


def ring_shows(widget: QWidget) -> bool:
    """Whether ``widget``, which has the keyboard, looks other than without it (its focus
    ring is drawn). The keyboard is put back afterwards."""
    focused = widget.grab().toImage()
    widget.clearFocus()
    QApplication.processEvents()
    unfocused = widget.grab().toImage()
    widget.setFocus(Qt.FocusReason.TabFocusReason)
    QApplication.processEvents()
    return focused != unfocused


@pytest.mark.qt_log_ignore(POPUP_NOISE)
@pytest.mark.usefixtures("styled")  # the app's focus ring
def test_tab_from_the_vitals_tab_reaches_each_field_and_numbers_never_open_a_drop_down(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's D7: one Tab from the Vitals tab landed on the form's scroll area, with
    no ring anywhere, so a nurse counting Tabs typed "128" on the Visit box: it opened the
    list, which took the whole set typed after it. Tab goes from the tab bar to "Measured
    at", each stop showing its ring; a number typed on a closed drop-down goes on to the
    next value's box (as if Tab came first), the choice unchanged."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Cough")
    chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    chart.tabs.tabBar().setFocus(Qt.FocusReason.TabFocusReason)
    stops = [focused()]
    for _ in range(4):
        QTest.keyClick(stops[-1], Qt.Key.Key_Tab)
        stops.append(focused())
    assert stops.pop(0) is chart.tabs.tabBar()
    assert stops == [section.observed_at, section.visit, f["systolic"].edit, f["diastolic"].edit]
    for stop in stops:
        stop.setFocus(Qt.FocusReason.TabFocusReason)
        assert ring_shows(stop), stop.objectName()

    # One Tab short: the set typed from the Visit box on.
    visit = section.visit
    chosen = visit.currentText()
    assert chosen.endswith("Cough")  # the open visit
    visit.setFocus(Qt.FocusReason.TabFocusReason)
    QTest.keyClicks(visit, "128")
    assert not visit.view().isVisible()
    assert visit.currentText() == chosen
    assert f["systolic"].edit.hasFocus() and f["systolic"].edit.text() == "128"
    for key, value in (("diastolic", "84"), ("pulse", "72")):
        QTest.keyClick(focused(), Qt.Key.Key_Tab)
        QTest.keyClicks(focused(), value)
        assert f[key].edit.text() == value
    # The same on a unit's box: the weight's unit, then the height typed.
    type_into(qtbot, f["weight"].edit, "70")
    unit = tab(qtbot, section)
    assert unit is f["weight"].unit
    QTest.keyClicks(unit, "172")
    assert f["weight"].unit_code == "kg" and not unit.view().isVisible()
    assert f["height"].edit.hasFocus() and f["height"].edit.text() == "172"
    QTest.keyClick(f["height"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert sorted(value for value, _ in observed(clinic)) == ["128", "172", "70", "72", "84"]


def test_a_pressure_starting_with_the_digit_of_a_visit_s_time_still_goes_on(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The Visit box names today's visits by their time ("18:02 Cough"): a digit some item
    starts with opens a choice box's list, as in a box of numbers, but nobody picks a visit
    by typing its time. A pressure starting with that digit, typed one Tab short, goes on
    to the systolic box all the same (whatever the time the test runs at)."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Cough")
    _chart, section = open_vitals(qtbot, signed_in)
    visit = section.visit
    chosen = visit.currentText()
    assert chosen.endswith("Cough") and chosen[0].isdigit()
    typed = f"{chosen[0]}28"
    visit.setFocus(Qt.FocusReason.TabFocusReason)
    for char in typed:
        QTest.keyClicks(focused(), char)
    assert not visit.view().isVisible() and visit.currentText() == chosen
    systolic = section.fields["systolic"].edit
    assert systolic.hasFocus() and systolic.text() == typed


def test_the_trend_plot_has_a_point_per_reading(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    for when, pulse in (("2026-01-05 09:00", "72"), ("2026-02-05 09:00", "130")):
        type_into(qtbot, section.observed_at, when)
        type_into(qtbot, f["pulse"].edit, pulse)
        wanted = section.table.rowCount() + 1
        QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: section.table.rowCount() == wanted, timeout=5_000)  # noqa: B023
    # Newest first in the table.
    first = section.table.item(0, 0)
    assert first is not None and first.text() == "2026-02-05 09:00"

    # The wheel over the plot's choice does not change it; the keyboard does.
    combo = section.plot_choice
    before = combo.currentIndex()
    wheel(combo, -2)
    assert combo.currentIndex() == before
    combo.setFocus()
    while combo.currentData() != "pulse":
        QTest.keyClick(combo, Qt.Key.Key_Down)
    [curve] = section.curves
    xs, ys = curve.getData()
    assert list(ys) == [72.0, 130.0]
    assert xs[0] < xs[1]
    # The adult's 130 is flagged: drawn larger, in the flag colour.
    sizes = curve.opts["symbolSize"]
    assert sizes[1] > sizes[0]
    assert section.normal_band is not None
    assert tuple(section.normal_band.getRegion()) == (60.0, 100.0)

    # Blood pressure: two lines; none recorded yet, so a plain sentence instead.
    while combo.currentData() != "bp":
        QTest.keyClick(combo, Qt.Key.Key_Up)
    assert section.curves == []
    assert section.no_plot.text() == "No blood pressure readings yet."


def time_axis(section: VitalsSection) -> tuple[float, float, list[float], list[str]]:
    """The plot's time axis as drawn: its range, and its ticks' spacings and labels."""
    section.plot.grab()  # drawn as on screen (the axis picks its labels' zoom when drawn)
    (low, high), _ = section.plot.getViewBox().viewRange()
    axis = section.plot.getAxis("bottom")
    spacings, labels = [], []
    for spacing, values in axis.tickValues(low, high, axis.width()):
        if values:
            spacings.append(spacing)
            labels += axis.tickStrings(values, 1, spacing)
    return low, high, spacings, labels


def one_pulse_trend(
    qtbot: QtBot, window: MainWindow, measured_at: str
) -> tuple[VitalsSection, float, tuple[float, float, list[float], list[str]]]:
    """A pulse of 72 recorded at ``measured_at`` on a new chart, its trend chosen from the
    keyboard: the section, the reading's time on the plot, and the time axis as drawn."""
    _chart, section = open_vitals(qtbot, window)
    type_into(qtbot, section.observed_at, measured_at)
    type_into(qtbot, section.fields["pulse"].edit, "72")
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    combo = section.plot_choice
    combo.setFocus()
    while combo.currentData() != "pulse":
        QTest.keyClick(combo, Qt.Key.Key_Down)
    [when] = section.curves[0].getData()[0]
    return section, when, time_axis(section)


def test_one_reading_time_gives_the_day_around_it_on_the_time_axis(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    section, when, (low, high, spacings, labels) = one_pulse_trend(
        qtbot,
        signed_in,
        "2026-01-05 09:00",  # a Monday
    )
    # The reading's day, labelled with its date and the hours, not a second wide with
    # "59.750", "00.250" under it.
    assert low < when < high and high - low == 24 * 3600
    assert min(spacings) >= 3600
    assert "Mon 05" in labels and "12:00" in labels and "Tue 06" not in labels
    assert len(labels) == len(set(labels))

    # A second reading a month on: the axis spans the two again.
    type_into(qtbot, section.observed_at, "2026-02-05 09:00")
    type_into(qtbot, section.fields["pulse"].edit, "80")
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)
    [curve] = section.curves
    first, last = curve.getData()[0]
    low, high, _spacings, _labels = time_axis(section)
    assert low <= first < last <= high and high - low < (last - first) * 1.5


def test_one_afternoon_reading_is_labelled_with_its_own_date_not_the_next_days(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's 26 July reading at 14:00 sat under "Mon 27" (half a day either side
    of it reached the next midnight, the only date drawn)."""
    _section, when, (low, high, _spacings, labels) = one_pulse_trend(
        qtbot,
        signed_in,
        "2026-07-26 14:00",  # a Sunday
    )
    assert low < when < high
    assert "Sun 26" in labels and "Mon 27" not in labels, labels


def axis_caption(section: VitalsSection) -> str | None:
    """The day the trend says its readings are all of (None: it says none)."""
    return section.plot_day.text() if section.plot_day.isVisible() else None


def test_readings_all_of_one_day_say_which_day_they_are_of(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's shots 17 and 102: one reading of 13 August 2025 plotted over "06:00
    12:00 18:00" with no date, read as today's. The trend says the day while every reading
    is of one day, and nothing once they span days (the ticks carry the dates)."""
    section, _when, _axis = one_pulse_trend(qtbot, signed_in, "2025-08-13 16:05")
    shot(signed_in, "vitals-one-day-trend")
    assert section.plot_day.toolTip() == "Every reading shown was taken on Wednesday 13 August 2025"
    assert axis_caption(section) == "2025-08-13"
    type_into(qtbot, section.observed_at, "2025-08-13 16:45")  # a recheck, the same day
    type_into(qtbot, section.fields["pulse"].edit, "70")
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)
    assert axis_caption(section) == "2025-08-13"
    type_into(qtbot, section.observed_at, "2026-01-05 09:00")
    type_into(qtbot, section.fields["pulse"].edit, "80")
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 3, timeout=5_000)
    assert axis_caption(section) is None


def test_the_readings_table_says_who_recorded_each_set(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Who recorded a set showed only in the audit log; the allergies say "by Nina Rossi".
    The time of each row says who recorded it, by name."""
    _section, _when, _axis = one_pulse_trend(qtbot, signed_in, "2025-08-13 16:05")
    section = card_of(signed_in.workspace.chart, VitalsSection)
    user = clinic.records.user(ADMIN)
    assert user is not None
    item = section.table.item(0, 0)
    assert item is not None and item.text() == "2025-08-13 16:05"
    assert item.toolTip() == f"Recorded by {user.full_name or ADMIN}"


def test_vitals_typed_and_not_recorded_come_back_after_a_sign_out(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    clock = Clock(10, 0)
    with_clock(signed_in, clock)
    chart, section = open_vitals(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    measured = type_an_unrecorded_set(qtbot, section)
    click_sign_out(signed_in)
    assert section.fields["pulse"].edit.text() == ""  # nothing left on screen

    clock.at(10, 25)
    signs_in(qtbot, signed_in, ADMIN, PASSWORD)
    assert_the_set_is_back(qtbot, section, measured)  # measured then, not when signed in again
    assert chart.patient is not None and chart.patient.id == patient.id
    assert chart.tabs.currentWidget() is section.widget()
    assert signed_in.workspace.notice.text() == "Your unsaved Vitals form was restored."
    assert stored(clinic) == []  # kept in memory only, never written


def test_the_restored_notice_goes_once_the_restored_set_is_recorded_or_erased(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's picture: the set restored after a sign-in was recorded, yet "Your
    unsaved Vitals form was restored." stayed, on the Overview tab too. It goes once the
    restored form is saved, and once every value in it is erased (nothing is left of it)."""
    chart, section = open_vitals(qtbot, signed_in)
    workspace = signed_in.workspace
    type_into(qtbot, section.fields["pulse"].edit, "88")
    press_sign_out_keys(signed_in)
    signs_in(qtbot, signed_in, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "88", timeout=5_000)
    assert workspace.notice_bar.isVisible()
    assert workspace.notice.text() == "Your unsaved Vitals form was restored."
    qtbot.waitUntil(lambda: section.record_button.isEnabled(), timeout=5_000)
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert not workspace.notice_bar.isVisible()
    click_tab(chart, "Overview")
    assert not workspace.notice_bar.isVisible()

    # Put aside by opening another patient, given back with the notice, then erased.
    show_vitals(qtbot, chart)
    type_into(qtbot, section.fields["spo2"].edit, "97")
    open_patient_from_list(qtbot, signed_in, 1)
    chart = open_patient_from_list(qtbot, signed_in, 0)
    qtbot.waitUntil(lambda: section.fields["spo2"].edit.text() == "97", timeout=5_000)
    assert workspace.notice.text() == "Your unsaved Vitals form was restored."
    spo2 = section.fields["spo2"].edit
    QTest.mouseClick(spo2, Qt.MouseButton.LeftButton)
    QTest.keyClick(spo2, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(spo2, Qt.Key.Key_Backspace)
    assert not workspace.notice_bar.isVisible()
    assert [code for code, *_ in stored(clinic)] == ["8867-4"]  # the 88 alone


def test_vitals_go_into_the_open_visit_unless_the_person_picks_otherwise(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Cough")
    _chart, section = open_vitals(qtbot, signed_in)
    assert section.visit.currentData() == visit.id  # the visit just started, not "Not in a visit"
    assert section.visit.currentText() == f"{visit.started_at[11:16]} Cough"  # today's
    type_into(qtbot, section.fields["pulse"].edit, "72")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    rows = clinic.database.query("SELECT encounter_id FROM observations")
    assert [r[0] for r in rows] == [visit.id]
    # The person chooses "Not in a visit": the next read (after recording) keeps her choice.
    section.visit.setFocus()
    QTest.keyClick(section.visit, Qt.Key.Key_Up)
    assert section.visit.currentData() is None
    type_into(qtbot, section.fields["pulse"].edit, "80")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)
    assert section.visit.currentData() is None
    rows = clinic.database.query("SELECT encounter_id FROM observations ORDER BY value")
    assert [r[0] for r in rows] == [visit.id, None]


def test_a_recheck_in_the_same_minute_is_its_own_row_and_its_own_point(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The nurse records a set, then from the same open form a recheck measured in the same
    minute: two rows, each as it was measured, never one row mixing the two."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    type_into(qtbot, section.observed_at, "2026-11-05 22:59")
    for key, text in (("systolic", "120"), ("diastolic", "80"), ("pulse", "72"),
                      ("temperature", "37.5")):  # fmt: skip
        type_into(qtbot, f[key].edit, text)
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)

    type_into(qtbot, section.observed_at, "2026-11-05 22:59")
    for key, text in (("systolic", "150"), ("diastolic", "95"), ("pulse", "112"),
                      ("temperature", "102")):  # fmt: skip
        type_into(qtbot, f[key].edit, text)
    unit = f["temperature"].unit
    assert unit is not None
    unit.setFocus()
    QTest.keyClick(unit, Qt.Key.Key_Down)  # °F
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)

    def row(r: int) -> dict[str, str]:
        return {key: section.table.item(r, COLUMN[key]).text()  # type: ignore[union-attr]
                for key in ("bp", "pulse", "temperature")}  # fmt: skip

    assert row(0) == {"bp": "150/95 ▲", "pulse": "112 ▲", "temperature": "102 °F ▲"}
    assert row(1) == {"bp": "120/80", "pulse": "72", "temperature": "37.5 °C"}
    # The plot: a point per set on each line, the recheck's 150 over its own 95.
    [(_, systolic), (_, diastolic)] = section.series("bp")
    assert sorted(v for _, v, _ in systolic) == [120.0, 150.0]
    assert sorted(v for _, v, _ in diastolic) == [80.0, 95.0]
    [(_, temperatures)] = section.series("temperature")
    assert sorted(v for _, v, _ in temperatures) == [37.5, 38.89]


class Clock:
    """The clinic's clock as the Vitals tab reads it, moved by the test."""

    def __init__(self, hour: int, minute: int) -> None:
        self.now = dt.datetime.combine(dt.date.today(), dt.time(hour, minute))

    def __call__(self) -> dt.datetime:
        return self.now

    def at(self, hour: int, minute: int) -> str:
        """Move to ``hour:minute`` today; the time as the form shows it."""
        self.now = self.now.replace(hour=hour, minute=minute)
        return self.now.strftime("%Y-%m-%d %H:%M")


def with_clock(window: MainWindow, clock: Clock) -> VitalsSection:
    """The chart's Vitals tab, reading ``clock`` (set before the chart is opened)."""
    section = card_of(window.workspace.chart, VitalsSection)
    section.clock = clock
    return section


def click_tab(chart: ChartPage, title: str) -> None:
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == title)
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())


def test_the_note_counts_and_names_what_the_row_shows_flagged_bmi_included(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """The tester's set: "1 outside the normal range" while two cells were red, the
    temperature and the BMI (worked out from the weight and height, and flagged like a
    reading). The note counts the cells shown flagged and names them."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    for key, text in (("systolic", "128"), ("diastolic", "82"), ("pulse", "88"),
                      ("temperature", "38.0"), ("respiratory_rate", "18"), ("spo2", "97"),
                      ("weight", "72.5"), ("height", "167.6"), ("pain", "3")):  # fmt: skip
        type_into(qtbot, f[key].edit, text)
    QTest.keyClick(f["pain"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    flagged = [
        section.table.horizontalHeaderItem(c).text()  # type: ignore[union-attr]
        for c in range(1, section.table.columnCount())
        if section.table.item(0, c).data(Qt.ItemDataRole.UserRole)  # type: ignore[union-attr]
    ]
    assert flagged == ["Temp", "BMI"]
    assert section.status.text() == (
        "Recorded 9 vital signs, 2 outside the normal range (Temperature, BMI)."
    )


def record(qtbot: QtBot, section: VitalsSection, clinic: Workstation, pulse: str) -> None:
    """Type a pulse, click Record vitals, wait until it is stored."""
    type_into(qtbot, section.fields["pulse"].edit, pulse)
    wanted = len(observed(clinic)) + 1
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(observed(clinic)) >= wanted, timeout=5_000)
    # Stored on the worker; then the form is emptied for the next set.
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "", timeout=5_000)


def observed(ws: Workstation) -> list[tuple[str, str]]:
    """(value, measured at) of each stored reading, in the order recorded."""
    rows = ws.database.query(
        "SELECT value, observed_at FROM observations ORDER BY created_at, code"
    )
    return [(str(v), str(t)) for v, t in rows]


def test_measured_at_follows_the_clock_after_each_set_and_when_the_tab_is_shown(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    clock = Clock(23, 0)
    section = with_clock(signed_in, clock)
    chart, _ = open_vitals(qtbot, signed_in)
    today = clock.at(23, 0)[:10]
    assert section.observed_at.text() == f"{today} 23:00"
    record(qtbot, section, clinic, "72")

    # A minute later, the recheck from the same open form: the time has caught up.
    section.clock_timer.setInterval(10)  # instead of waiting seconds for its tick
    now = clock.at(23, 1)
    qtbot.waitUntil(lambda: section.observed_at.text() == now, timeout=2_000)
    record(qtbot, section, clinic, "80")
    # Away to another tab and back later: the time shown is the time then.
    section.clock_timer.setInterval(VitalsSection.CLOCK_INTERVAL_MS)
    click_tab(chart, "Overview")
    later = clock.at(23, 20)
    click_tab(chart, "Vitals")
    assert section.observed_at.text() == later
    record(qtbot, section, clinic, "76")
    assert observed(clinic) == [
        ("72", f"{today}T23:00"), ("80", f"{today}T23:01"), ("76", f"{today}T23:20"),
    ]  # fmt: skip


def test_a_time_the_person_typed_or_values_being_typed_hold_it_until_recorded(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    clock = Clock(23, 0)
    section = with_clock(signed_in, clock)
    chart, _ = open_vitals(qtbot, signed_in)
    today = clock.at(23, 0)[:10]
    # Measured earlier, typed in: the clock moving on does not change it.
    type_into(qtbot, section.observed_at, f"{today} 22:30")
    clock.at(23, 5)
    click_tab(chart, "Overview")
    click_tab(chart, "Vitals")
    section.follow_clock()  # as the timer's tick does
    assert section.observed_at.text() == f"{today} 22:30"
    record(qtbot, section, clinic, "72")
    assert section.observed_at.text() == f"{today} 23:05"  # the next set: now again

    # Values typed (not recorded yet): the time they show is the one they will be stored
    # at; it does not move under the person.
    type_into(qtbot, section.fields["spo2"].edit, "97")
    clock.at(23, 9)
    section.follow_clock()
    click_tab(chart, "Overview")
    click_tab(chart, "Vitals")
    assert section.observed_at.text() == f"{today} 23:05"
    record(qtbot, section, clinic, "74")
    assert observed(clinic)[1:] == [("97", f"{today}T23:05"), ("74", f"{today}T23:05")]
    assert section.observed_at.text() == f"{today} 23:09"


def test_units_chosen_by_one_person_are_the_clinics_again_for_the_next(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The nurse weighs in lb and signs out; the doctor who signs in next types 64 meaning
    kg, and kg it is: the units went back to the clinic's at sign-out."""
    add_nurse(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    _chart, section = open_vitals(qtbot, window)
    weight = section.fields["weight"]
    assert weight.unit is not None and not weight.other_unit
    assert weight.unit.toolTip() == "Weight in kg"
    type_into(qtbot, weight.edit, "154")
    assert tab(qtbot, section) is weight.unit
    QTest.keyClick(weight.unit, Qt.Key.Key_Down)  # kg -> lb
    # Not only the "= 69.853 kg" after the number: the unit itself stands out.
    assert weight.unit.currentText() == "lb" and weight.unit.property("otherUnit") is True
    assert weight.unit.toolTip() == "Weight in lb, not the clinic's kg"
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: weight.edit.text() == "", timeout=5_000)
    assert weight.unit_code == "[lb_av]"  # the same person's next patient: still lb

    click_sign_out(window)
    assert weight.unit_code == "kg" and weight.unit.property("otherUnit") is False
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)
    _chart, section = open_vitals(qtbot, window)
    assert {k: f.unit_code for k, f in section.fields.items() if f.unit is not None} == {
        "temperature": "Cel", "weight": "kg", "height": "cm",
    }  # fmt: skip
    type_into(qtbot, weight.edit, "64")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: weight.edit.text() == "", timeout=5_000)
    stored_weights = clinic.database.query(
        "SELECT entered_value, entered_unit, value FROM observations ORDER BY created_at"
    )
    assert stored_weights == [("154", "[lb_av]", "69.853"), ("64", "kg", "64")]


def test_a_measured_at_with_no_time_or_a_time_zone_is_refused_next_to_the_field(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    _chart, section = open_vitals(qtbot, signed_in)
    type_into(qtbot, section.fields["pulse"].edit, "72")
    for typed, message in (
        ("2026-12-05", "Measured at: '2026-12-05' has no time: type the date and the time, "
         "e.g. 2026-12-05 09:30."),
        ("20261204", "Measured at: '20261204' has no time: type the date and the time, "
         "e.g. 2026-12-04 09:30."),
        ("2026-12-05T10:00+05:00", "Measured at: '2026-12-05T10:00+05:00' names a time zone: "
         "give the clinic's local time, e.g. 2026-11-28 09:30."),
    ):  # fmt: skip
        type_into(qtbot, section.observed_at, typed)
        QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
        assert section.observed_at_error.isVisible()
        assert section.observed_at_error.text() == message
        assert section.observed_at.hasFocus()  # where the person puts it right
    type_into(qtbot, section.observed_at, "2026-01-05 10:00")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert not section.observed_at_error.isVisible()
    assert clinic.database.query("SELECT observed_at FROM observations") == [("2026-01-05T10:00",)]


def test_a_measured_at_later_than_now_is_refused_under_the_field(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """At 21:14 the tester stored a set "measured" at 23:59 that evening, printed inside a
    visit closed at 21:17. A time more than a few minutes ahead of the clock "Measured at"
    follows is refused under the field, saying what the clock says; nothing is stored."""
    clock = Clock(21, 14)
    section = with_clock(signed_in, clock)
    open_vitals(qtbot, signed_in)
    today = clock.at(21, 14)[:10]
    type_into(qtbot, section.observed_at, f"{today} 23:59")
    type_into(qtbot, section.fields["pulse"].edit, "71")
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    assert section.observed_at_error.isVisible()
    assert section.observed_at_error.text() == (
        f"Measured at: {today} 23:59 is in the future: this computer's clock says {today} 21:14."
    )
    assert section.observed_at.hasFocus()
    assert stored(clinic) == []
    # A watch a few minutes fast is not a typo: 21:17 is taken.
    QTest.keyClicks(section.observed_at, f"{today} 21:17")
    QTest.keyClick(section.observed_at, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert observed(clinic) == [("71", f"{today}T21:17")]


def test_a_message_goes_once_what_it_says_is_put_right(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's shots 81 and 87: a date without a time refused on Record, the time then
    typed and Tab pressed, and the message stayed under the corrected field; "Type at least
    one measurement." stayed while values were typed. Each goes as it is put right, and
    the time is checked again as its field is left."""
    clock = Clock(21, 20)
    section = with_clock(signed_in, clock)
    open_vitals(qtbot, signed_in)
    today = clock.at(21, 20)[:10]
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    assert section.general_error.isVisible()
    assert section.general_error.text() == "Type at least one measurement."
    type_into(qtbot, section.fields["systolic"].edit, "120")
    assert not section.general_error.isVisible()

    type_into(qtbot, section.observed_at, today)
    type_into(qtbot, section.fields["diastolic"].edit, "80")
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    assert section.observed_at_error.isVisible()
    assert f"'{today}' has no time" in section.observed_at_error.text()
    assert section.observed_at.hasFocus()
    QTest.keyClicks(section.observed_at, f"{today} 21:20")
    assert tab(qtbot, section) is section.visit
    assert not section.observed_at_error.isVisible()
    # Left wrong again, it is said again, without waiting for Record.
    type_into(qtbot, section.observed_at, f"{today} 25:00")
    assert tab(qtbot, section) is section.visit
    assert section.observed_at_error.isVisible()
    assert "there is no hour 25" in section.observed_at_error.text()
    assert stored(clinic) == []


def open_patient_from_list(qtbot: QtBot, window: MainWindow, row: int) -> ChartPage:
    """Back to the list with the chart's back button, then double-click patient ``row``."""
    workspace = window.workspace
    if workspace.pages.currentWidget() is workspace.chart:
        QTest.mouseClick(workspace.chart.back_button, Qt.MouseButton.LeftButton)
    table, model = workspace.patient_list.table, workspace.patient_list.model
    rect = table.visualRect(model.index(row, 0))
    for click in (QTest.mouseClick, QTest.mouseDClick):  # a double click starts with a press
        click(table.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
              rect.center())  # fmt: skip
    chart = workspace.chart
    qtbot.waitUntil(
        lambda: chart.patient is not None and chart.patient.id == model.patient_id(row),
        timeout=5_000,
    )
    return chart


def show_vitals(qtbot: QtBot, chart: ChartPage) -> VitalsSection:
    section = card_of(chart, VitalsSection)
    click_tab(chart, "Vitals")
    qtbot.waitUntil(lambda: section.record_button.isEnabled(), timeout=5_000)
    return section


def test_vitals_left_unsaved_on_one_chart_wait_there_while_another_patient_is_seen(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    clock = Clock(9, 0)
    section = with_clock(signed_in, clock)
    chart = open_patient_from_list(qtbot, signed_in, 0)
    first = chart.patient
    assert first is not None
    show_vitals(qtbot, chart)
    measured = type_an_unrecorded_set(qtbot, section)

    # Another patient: a fresh form, nothing of the first patient's values in it.
    clock.at(9, 20)
    chart = open_patient_from_list(qtbot, signed_in, 1)
    show_vitals(qtbot, chart)
    assert all(f.edit.text() == "" for f in section.fields.values())
    assert not signed_in.workspace.notice.isVisible()

    # Back to the first patient: the form is as it was left, and the person is told.
    chart = open_patient_from_list(qtbot, signed_in, 0)
    assert_the_set_is_back(qtbot, section, measured)  # measured then, not at 09:20
    assert chart.tabs.currentWidget() is section.widget()
    assert signed_in.workspace.notice.isVisible()
    assert signed_in.workspace.notice.text() == "Your unsaved Vitals form was restored."
    assert stored(clinic) == []  # in memory only, never written
    # Given back once: recorded now, it is not offered again.
    qtbot.waitUntil(lambda: section.record_button.isEnabled(), timeout=5_000)
    QTest.mouseClick(section.record_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    chart = open_patient_from_list(qtbot, signed_in, 1)
    chart = open_patient_from_list(qtbot, signed_in, 0)
    show_vitals(qtbot, chart)
    assert section.fields["pulse"].edit.text() == ""


def test_vitals_left_unsaved_are_never_shown_to_the_next_person(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    add_nurse(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    chart = open_patient_from_list(qtbot, window, 0)
    section = show_vitals(qtbot, chart)
    type_into(qtbot, section.fields["spo2"].edit, "91")
    open_patient_from_list(qtbot, window, 1)  # the form is put aside for the admin
    click_sign_out(window)

    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)
    chart = open_patient_from_list(qtbot, window, 0)
    show_vitals(qtbot, chart)
    assert section.fields["spo2"].edit.text() == ""
    assert not window.workspace.notice.isVisible()
    click_sign_out(window)

    signs_in(qtbot, window, ADMIN, PASSWORD)
    chart = open_patient_from_list(qtbot, window, 0)
    qtbot.waitUntil(lambda: section.fields["spo2"].edit.text() == "91", timeout=5_000)
    assert window.workspace.notice.text() == "Your unsaved Vitals form was restored."
    # Closing the clinic on this computer forgets it, as every kept draft.
    open_patient_from_list(qtbot, window, 1)
    window.close_clinic()
    signs_in(qtbot, window, ADMIN, PASSWORD)
    chart = open_patient_from_list(qtbot, window, 0)
    show_vitals(qtbot, chart)
    assert section.fields["spo2"].edit.text() == ""
    assert stored(clinic) == []


def type_a_draft_not_in_a_visit(qtbot: QtBot, section: VitalsSection) -> None:
    """BP 128/84, pulse 99 and 101.2 °F typed in the form while it says "Not in a visit"."""
    assert section.visit.currentData() is None
    assert section.visit.currentText() == "Not in a visit"
    type_into(qtbot, section.fields["systolic"].edit, "128")
    type_into(qtbot, section.fields["diastolic"].edit, "84")
    type_into(qtbot, section.fields["pulse"].edit, "99")
    type_into(qtbot, section.fields["temperature"].edit, "101.2")
    assert tab(qtbot, section) is section.fields["temperature"].unit
    QTest.keyClick(section.fields["temperature"].unit, Qt.Key.Key_Down)  # °F
    assert section.fields["temperature"].hint.text() == "= 38.44 °C"


def press_sign_out_keys(window: MainWindow) -> None:
    """Ctrl+L, as the tester signs out."""
    focused = window.focusWidget() or window
    QTest.keyClick(focused, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.session is None


def test_a_restored_draft_keeps_not_in_a_visit_when_a_visit_was_started_meanwhile(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The admin types a set "Not in a visit" and signs out; the nurse starts a visit for
    that patient; the admin's set comes back still "Not in a visit" (the visit started
    after it was measured is not one she chose), with its °F shown in °C, and Return
    records it outside any visit."""
    add_nurse(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    chart = open_patient_from_list(qtbot, window, 0)
    patient = chart.patient
    assert patient is not None
    section = show_vitals(qtbot, chart)
    type_a_draft_not_in_a_visit(qtbot, section)
    press_sign_out_keys(window)

    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)
    visit = Visits(clinic.records).start(patient.id, "Cough")
    click_sign_out(window)

    signs_in(qtbot, window, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "99", timeout=5_000)
    qtbot.waitUntil(lambda: section.visit.count() == 2, timeout=5_000)  # the visit is listed
    assert section.visit.findData(visit.id) == 1
    assert section.visit.currentData() is None
    assert section.visit.currentText() == "Not in a visit"
    temperature = section.fields["temperature"]
    assert temperature.unit_code == "[degF]"
    assert temperature.hint.isVisible() and temperature.hint.text() == "= 38.44 °C"
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    rows = clinic.database.query("SELECT DISTINCT encounter_id FROM observations")
    assert rows == [(None,)]


def test_a_restored_draft_keeps_its_visit_while_open_and_says_so_when_it_closed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Values typed in the visit the form offered come back in that visit while it is open;
    once it is closed they come back in no visit, and a notice under "Visit" says why."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Cough")
    chart = open_patient_from_list(qtbot, signed_in, 0)
    section = show_vitals(qtbot, chart)
    assert section.visit.currentData() == visit.id
    type_into(qtbot, section.fields["pulse"].edit, "99")

    open_patient_from_list(qtbot, signed_in, 1)
    chart = open_patient_from_list(qtbot, signed_in, 0)
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "99", timeout=5_000)
    qtbot.waitUntil(lambda: section.visit.count() == 2, timeout=5_000)
    assert section.visit.currentData() == visit.id
    assert not section.visit_notice.isVisible()

    open_patient_from_list(qtbot, signed_in, 1)
    Visits(clinic.records).close(visit.id)  # closed by someone else meanwhile
    chart = open_patient_from_list(qtbot, signed_in, 0)
    qtbot.waitUntil(lambda: section.fields["pulse"].edit.text() == "99", timeout=5_000)
    qtbot.waitUntil(lambda: section.visit_notice.isVisible(), timeout=5_000)
    assert section.visit.currentData() is None
    described = section.visit.itemData(1, Qt.ItemDataRole.ToolTipRole)  # date, time, reason
    assert described == f"{visit.started_at.replace('T', ' ')} Cough"
    assert section.visit_notice.text() == (
        f"The visit these values were typed for ({described}) is closed now: "
        "they are not in a visit. Choose a visit if they belong in one."
    )
    QTest.keyClick(section.fields["pulse"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert clinic.database.query("SELECT encounter_id FROM observations") == [(None,)]
    # Choosing a visit (here: the closed one, on purpose) puts the notice away.
    type_into(qtbot, section.fields["pulse"].edit, "98")
    section.visit.setFocus()
    QTest.keyClick(section.visit, Qt.Key.Key_Down)
    assert section.visit.currentData() == visit.id
    assert not section.visit_notice.isVisible()


def test_the_trend_of_two_readings_a_minute_apart_is_labelled_in_minutes(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's trend: 08:16 and 08:17, labelled 08:16:15, 08:16:30, 08:16:45 (seconds
    for readings stored to the minute) and none at 08:17."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    for when, pressure in (
        ("2026-12-06 08:16", ("128", "82")),
        ("2026-12-06 08:17", ("130", "85")),
    ):
        type_into(qtbot, section.observed_at, when)
        type_into(qtbot, f["systolic"].edit, pressure[0])
        type_into(qtbot, f["diastolic"].edit, pressure[1])
        QTest.keyClick(f["diastolic"].edit, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: f["systolic"].edit.text() == "", timeout=5_000)
    qtbot.waitUntil(lambda: section.table.rowCount() == 2, timeout=5_000)
    section.plot.grab()  # drawn, as on screen: the axis picks its labels for its width
    axis = section.plot.getAxis("bottom")
    low, high = section.plot.getViewBox().viewRange()[0]
    labels = [
        text
        for spacing, values in axis.tickValues(low, high, axis.width())
        for text in axis.tickStrings(values, 1, spacing)
    ]
    assert labels, "the time axis has labels"
    assert all(len(text) == 5 and text[2] == ":" for text in labels if ":" in text), labels
    assert "08:16" in labels and "08:17" in labels


def test_an_emptied_measured_at_is_refused_under_the_field_with_the_values_problems(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester emptied "Measured at" to type the real time, was interrupted, and Return
    stored the set at "now", a time nobody typed or saw, with no message. It is refused
    under the field, with every value's problem said at once; nothing is stored."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    type_into(qtbot, section.observed_at, "")
    QTest.keyClick(section.observed_at, Qt.Key.Key_Backspace)
    assert section.observed_at.text() == ""
    type_into(qtbot, f["pulse"].edit, "1000")
    type_into(qtbot, f["spo2"].edit, "99")
    QTest.keyClick(f["spo2"].edit, Qt.Key.Key_Return)
    assert section.observed_at_error.isVisible()
    assert section.observed_at_error.text() == "Measured at is required."
    assert f["pulse"].message.isVisible()  # said together
    assert section.observed_at.hasFocus()  # the first field in error, above Pulse
    assert stored(clinic) == []
    # Fixed values alone do not do: the time is still asked for, and nothing is stored.
    type_into(qtbot, f["pulse"].edit, "100")
    QTest.keyClick(f["pulse"].edit, Qt.Key.Key_Return)
    assert section.observed_at_error.text() == "Measured at is required."
    assert section.observed_at.hasFocus() and section.observed_at.text() == ""
    assert stored(clinic) == []
    QTest.keyClicks(section.observed_at, "2026-01-05 10:00")
    QTest.keyClick(section.observed_at, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert set(observed(clinic)) == {("100", "2026-01-05T10:00"), ("99", "2026-01-05T10:00")}


def test_after_a_refusal_typing_replaces_the_typo_in_the_field_in_error(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The keyboard went to the refused field with its cursor after the typo, so "120"
    typed to correct "12O" made "12O120". Its text is selected: typing replaces it."""
    _chart, section = open_vitals(qtbot, signed_in)
    f = section.fields
    type_into(qtbot, f["systolic"].edit, "12O")
    type_into(qtbot, f["diastolic"].edit, "80")
    type_into(qtbot, f["temperature"].edit, "375")
    QTest.keyClick(f["temperature"].edit, Qt.Key.Key_Return)
    assert f["systolic"].edit.hasFocus()
    QTest.keyClicks(f["systolic"].edit, "120")
    assert f["systolic"].edit.text() == "120"
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Return)
    assert f["temperature"].edit.hasFocus()
    QTest.keyClicks(f["temperature"].edit, "37.5")
    assert f["temperature"].edit.text() == "37.5"
    QTest.keyClick(f["temperature"].edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.table.rowCount() == 1, timeout=5_000)
    assert sorted(value for value, _ in observed(clinic)) == ["120", "37.5", "80"]


@pytest.mark.qt_log_ignore(POPUP_NOISE)
@pytest.mark.usefixtures("styled")  # the app's look decides what fits
def test_the_visit_list_shows_each_visit_whole(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's D11: the open list was as narrow as the box and cut the visits in the
    middle ("2026-07-1…re review"), their date and reason lost. It is as wide as its
    longest entry: each shows whole."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visits = Visits(clinic.records)
    for reason in ("Medication review after a week on the new tablets", "Cough"):
        visits.close(visits.start(patient_id, reason).id)
    _chart, section = open_vitals(qtbot, signed_in)
    combo = section.visit
    assert combo.count() == 3
    open_popup_rows(combo)
    view = combo.view()
    texts = [combo.itemText(row) for row in range(combo.count())]
    shown = [cell_text_shown(view, row, 0) for row in range(combo.count())]
    assert shown == texts, f"list {view.width()} wide, box {combo.width()}"
    assert view.width() > combo.width()  # wider than the box, which cuts the long one
    combo.hidePopup()


def test_one_vital_sign_recorded_is_said_in_the_singular() -> None:
    assert recorded_note(1, None) == "Recorded 1 vital sign."
    assert recorded_note(2, None) == "Recorded 2 vital signs."

"""Every page of the main window at the size it first opens with (1120x740) and on a
1024x740 laptop screen: each button's label fits its button, each heading fits or wraps
whole, and no control is drawn over another. The app's stylesheet is on, as in the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.schedule.page import DAY, REASON, WEEK, SchedulePage
from core.records.schedule import Schedule
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import DEFAULT_SIZE, SMALL, WindowFactory, sign_in
from tests.ui.layout import assert_text_fits, assert_whole, cell_text_shown, controls, shot

pytestmark = pytest.mark.usefixtures("styled")

SIZES = {"first size": DEFAULT_SIZE, "1024x740": (SMALL.width(), SMALL.height())}
# The longest a day's and a week's names get: Wednesday, September; November to December.
LONG_DAY = dt.date(2026, 9, 30)
LONG_WEEK = dt.date(2026, 12, 6)


def assert_everything_fits(window: QWidget, name: str) -> None:
    """Every visible button in ``window`` shows its whole label; every label shows its whole
    text; none overlaps another."""
    QApplication.processEvents()
    shot(window, name)
    problems = []
    if isinstance(window, MainWindow):  # every toolbar button shown, none in a "»" menu
        toolbar = window.workspace.toolbar
        for action in toolbar.actions():
            button = toolbar.widgetForAction(action)
            if action.isVisible() and button is not None and not button.isVisible():
                problems.append(f"{action.text() or type(button).__name__!r} is off the toolbar")
    for widget in controls(window):
        try:
            if isinstance(widget, QAbstractButton) and widget.text():
                assert_text_fits(widget)
            elif isinstance(widget, QLabel):
                assert_whole(widget)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
    assert not problems, "\n".join(problems)


def _resized(window: MainWindow, size: tuple[int, int]) -> MainWindow:
    window.resize(*size)
    QApplication.processEvents()
    assert (window.width(), window.height()) == size
    return window


def _show_schedule(window: MainWindow) -> SchedulePage:
    page = window.workspace.schedule
    assert page.action is not None
    page.action.trigger()
    return page


PAGES: dict[str, Callable[[QtBot, MainWindow], None]] = {}


def page(name: str) -> Callable[[Callable[[QtBot, MainWindow], None]], None]:
    def register(opener: Callable[[QtBot, MainWindow], None]) -> None:
        PAGES[name] = opener

    return register


@page("patient list")
def _list(qtbot: QtBot, window: MainWindow) -> None:
    window.workspace.show_list()


@page("schedule day")
def _day(qtbot: QtBot, window: MainWindow) -> None:
    schedule = _show_schedule(window)
    schedule.show_day(LONG_DAY)
    qtbot.waitUntil(lambda: not schedule.loading(), timeout=5_000)


@page("schedule week")
def _week(qtbot: QtBot, window: MainWindow) -> None:
    schedule = _show_schedule(window)
    schedule.set_mode(WEEK)
    schedule.show_day(LONG_WEEK)
    qtbot.waitUntil(lambda: not schedule.loading(), timeout=5_000)
    assert schedule.mode == WEEK and schedule.mode != DAY


def _chart_tab(title: str) -> Callable[[QtBot, MainWindow], None]:
    def open_tab(qtbot: QtBot, window: MainWindow) -> None:
        chart = open_first_chart(qtbot, window)
        bar = chart.tabs.tabBar()
        index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == title)
        QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
        qtbot.wait(50)

    return open_tab


for _tab in ("Overview", "Visits", "Vitals", "Attachments"):
    PAGES[f"chart {_tab}"] = _chart_tab(_tab)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("name", PAGES)
def test_each_page_shows_every_label_whole(
    qtbot: QtBot, signed_in: MainWindow, name: str, size: tuple[int, int]
) -> None:
    window = _resized(signed_in, size)
    PAGES[name](qtbot, window)
    assert_everything_fits(window, f"{name} {size[0]}x{size[1]}".replace(" ", "-"))


def test_a_long_clinic_name_gives_way_before_any_toolbar_button(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    """On a 1024-pixel screen a clinic's long name ends in "…" (whole in its tooltip); New
    patient, Schedule, Conflicts, Settings and Sign out all stay on the toolbar."""
    window = _resized(signed_in, (SMALL.width(), SMALL.height()))
    name = "Riverside Family Practice and Community Health Centre of the Northern District"
    label = window.workspace.clinic_label
    label.setText(name)
    QApplication.processEvents()
    shot(window, "long-clinic-name-1024x740")
    assert label.elided() and label.toolTip() == name and label.text() == name
    for button in window.workspace.toolbar_buttons():
        assert button.isVisible(), button.text()
        assert_text_fits(button)


def test_on_a_1024x740_screen_the_window_opens_within_it_with_every_button_on_it(
    qtbot: QtBot, small_screen: None, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The tester's laptop: the window opened 1120 wide, past the screen's right edge, so
    Sign out, Book appointment… and Open chart were cut off. It opens no larger than the
    screen's free area (room left for the frame), and can be made smaller still."""
    window = make_window(clinic)
    room = window.screen().availableGeometry()
    assert room == SMALL
    assert window.width() <= room.width() and window.height() <= room.height()
    assert window.minimumWidth() <= room.width() and window.minimumHeight() <= room.height()
    hint = window.minimumSizeHint()
    assert hint.width() <= room.width() and hint.height() <= room.height()
    sign_in(qtbot, window)
    schedule = _show_schedule(window)
    qtbot.waitUntil(lambda: not schedule.loading(), timeout=5_000)
    QApplication.processEvents()
    shot(window, "opened-on-1024x740")
    for button in (
        *window.workspace.toolbar_buttons(),
        schedule.book_button,
        schedule.open_chart_button,
    ):
        assert button.isVisible(), button.text()
        box = button.rect().translated(button.mapTo(window, button.rect().topLeft()))
        assert window.rect().contains(box), f"{button.text()!r} is cut off at {box}"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_the_day_list_shows_about_13_characters_of_each_reason(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, size: tuple[int, int]
) -> None:
    """The tester's D8: with the demo clinic's long names beside it, "Flu symptoms" showed
    as "Flu …" at the first size (1120x740) and "A long reason" as "A long …" at 1024x740.
    The row's one line was wrapped at the reason's words. Now 13 characters of a reason
    show whole at the first size; at 1024 as many as the column holds (7 or more beside
    these names), cut at a letter, not a word, and whole in the cell's tooltip."""
    records = clinic.records
    patient = records.add_patient("Ó Súilleabháin", "Sofía", "1961-07-21", mrn="MRN-LONG-1")
    records.add_user("okafor", "Dr. Amara Okafor", "clinician", "a long enough password")
    day = dt.date.today()
    for hhmm, reason in (("09:00", "Flu symptoms"), ("09:30", "Annual review"),
                         ("10:00", "A long reason for the visit")):  # fmt: skip
        Schedule(records).book(patient.id, f"{day} {hhmm}", "okafor", minutes=20, reason=reason)
    window = _resized(signed_in, size)
    schedule = _show_schedule(window)
    schedule.show_day(day)
    qtbot.waitUntil(lambda: not schedule.loading() and schedule.day_table.rowCount() == 3)
    QApplication.processEvents()
    shot(window, f"schedule-reasons-{size[0]}x{size[1]}")
    table = schedule.day_table
    shown = [cell_text_shown(table, row, REASON) for row in range(3)]
    if size == DEFAULT_SIZE:
        assert shown[:2] == ["Flu symptoms", "Annual review"], shown
        assert len(shown[2].rstrip("…")) >= 13, shown
    else:
        assert all(len(text.rstrip("…")) >= 7 for text in shown), shown
    reasons = ["Flu symptoms", "Annual review", "A long reason for the visit"]
    assert [item.toolTip() for row in range(3) if (item := table.item(row, REASON))] == reasons

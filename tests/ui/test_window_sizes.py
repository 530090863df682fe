"""Every page of the main window at the size it first opens with (1120x740) and on a
1024x740 laptop screen: each button's label fits its button, each heading fits or wraps
whole, and no control is drawn over another. The app's stylesheet is on, as in the app."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel, QTableWidget, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.schedule.page import DAY, DAY_COLUMNS, REASON, WEEK, SchedulePage
from core.crypto.kdf import FAST_PARAMS
from core.records import demo
from core.records.demo_data import STAFF_PASSWORD
from core.records.schedule import Schedule
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import DEFAULT_SIZE, SMALL, WindowFactory, sign_in
from tests.ui.layout import (
    assert_text_fits,
    assert_whole,
    cell_lines_shown,
    cell_text_shown,
    controls,
    header_shown_whole,
    shot,
)

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


# The tester's clinic screen (D3, D8): 1024 wide, 700 high.
CLINIC_SCREEN = (1024, 700)
LONG_NAME = "D'ARCY-NÚÑEZ, Zoë Anaïs"
PATIENT = DAY_COLUMNS.index("Patient")


@pytest.fixture
def demo_as_okafor(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> tuple[MainWindow, SchedulePage]:
    """The demo clinic as the tester had it: Dr. Amara Okafor signed in, the day's list and
    a patient with a long name booked and in the waiting room, the schedule shown."""
    home = tmp_path / "clinic"
    made = demo.create_demo(home, patients=8, kdf_params=FAST_PARAMS)
    ws = Workstation(made.folder, kdf_params=FAST_PARAMS)
    ws.sign_in(demo.DEMO_USER, demo.DEMO_PASSWORD)
    ws.sign_in("aokafor", STAFF_PASSWORD)  # her first sign-in here adds her password slot
    patient = ws.records.add_patient("D'Arcy-Núñez", "Zoë Anaïs", "1990-02-03")
    schedule = Schedule(ws.records)
    booked = schedule.book(
        patient.id, f"{dt.date.today()} 23:00", "aokafor", minutes=15,
        reason="New patient – first visit",
    )  # fmt: skip
    schedule.set_status(booked.id, "arrived")
    ws.lock()
    window = make_window(Workstation(home, kdf_params=FAST_PARAMS), demo=True)
    sign_in(qtbot, window, "aokafor", STAFF_PASSWORD)
    page = _show_schedule(window)
    # The demo's own patients wait too during its opening hours (it plays the day up to
    # the time the test runs): hers is the row asked about, not the only one.
    qtbot.waitUntil(lambda: not page.loading() and _waiting_row(page) is not None)
    return window, page


def _waiting_row(page: SchedulePage) -> int | None:
    """The waiting room's row of the long-named patient (None: not listed yet)."""
    table = page.waiting_table
    for row in range(table.rowCount()):
        item = table.item(row, 0)
        if item is not None and LONG_NAME in (item.toolTip() or item.text().replace("\n", " ")):
            return row
    return None


def _column(table: QTableWidget, column: int) -> list[str]:
    return [item.text() for row in range(table.rowCount()) if (item := table.item(row, column))]


def test_on_a_1024x700_screen_the_toolbar_says_whole_who_is_signed_in_and_that_it_is_the_demo(
    demo_as_okafor: tuple[MainWindow, SchedulePage],
) -> None:
    """The tester's D8: "Signed in as Dr. Amara O…" and "Demo clinic (sample d…". On a
    shared workstation the name tells the person at it whose session is open."""
    window = _resized(demo_as_okafor[0], CLINIC_SCREEN)
    shot(window, "toolbar-demo-okafor-1024x700")
    workspace = window.workspace
    labels = [w for w in workspace.toolbar.findChildren(QLabel) if w.isVisible() and w.text()]
    for label in labels:
        assert_whole(label)
    assert [label.text() for label in labels] == [
        demo.DEMO_CLINIC_NAME, "Signed in as", "Dr. Amara Okafor",
    ]  # fmt: skip
    assert not workspace.clinic_label.elided()
    for button in workspace.toolbar_buttons():
        assert button.isVisible(), button.text()
        assert_text_fits(button)


@pytest.mark.parametrize("size", [CLINIC_SCREEN, DEFAULT_SIZE], ids=["1024x700", "first size"])
def test_beside_a_long_name_the_day_list_shows_a_dozen_characters_of_each_reason(
    qtbot: QtBot, demo_as_okafor: tuple[MainWindow, SchedulePage], size: tuple[int, int]
) -> None:
    """The tester's D3: beside "D'ARCY-NÚÑEZ, Zoë Anaïs" the Reason column showed "Back…"
    under a header cut to "Reasor" at 1024 wide. A long name gives way at its given names
    (the family name whole, the name whole in the tooltip); each reason shows its first 12
    characters or more, whole in its tooltip; no header is cut."""
    window, page = demo_as_okafor
    _resized(window, size)
    shot(window, f"schedule-long-name-{size[0]}x{size[1]}")
    table = page.day_table
    reasons, names = _column(table, REASON), _column(table, PATIENT)
    assert LONG_NAME in names and len(reasons) >= 5
    for row, (reason, name) in enumerate(zip(reasons, names, strict=True)):
        # Scrolled to, as a person does: the day opens at the current time, so which rows
        # are in view depends on when the test runs (a row out of view shows nothing).
        table.scrollTo(table.model().index(row, REASON))
        shown = cell_text_shown(table, row, REASON)
        assert shown == reason or len(shown.rstrip("…")) >= 12, (reason, shown)
        family = name.split(",")[0]
        assert cell_text_shown(table, row, PATIENT).startswith(f"{family},"), name
        tips = [table.item(row, c).toolTip() for c in (PATIENT, REASON)]  # type: ignore[union-attr]
        assert tips == [name, reason]
    assert all(header_shown_whole(table, c) for c in range(table.columnCount()))
    if size == DEFAULT_SIZE:  # the name whole, at the window's first size
        assert cell_text_shown(table, names.index(LONG_NAME), PATIENT) == LONG_NAME


@pytest.mark.parametrize("size", [CLINIC_SCREEN, DEFAULT_SIZE], ids=["1024x700", "first size"])
def test_the_waiting_room_names_a_long_named_patient_whole(
    qtbot: QtBot, demo_as_okafor: tuple[MainWindow, SchedulePage], size: tuple[int, int]
) -> None:
    """The tester's D8: "D'ARCY-NÚÑEZ, …" at 1120 wide (and "D'ARCY-…" at 1024) did not say
    which patient waits. The name, the clinician and the wait show whole, wrapped at their
    words where the room is narrow, the family name whole on the first line."""
    window, page = demo_as_okafor
    _resized(window, size)
    shot(window, f"waiting-room-long-name-{size[0]}x{size[1]}")
    table = page.waiting_table
    row = _waiting_row(page)
    assert row is not None
    shown = [cell_lines_shown(table, row, column) for column in range(3)]
    assert shown[0][0].startswith("D'ARCY-NÚÑEZ,"), shown
    assert [" ".join(lines) for lines in shown] == [
        LONG_NAME, "Dr. Amara Okafor", "just arrived",
    ], shown  # fmt: skip
    assert all(header_shown_whole(table, c) for c in range(table.columnCount()))

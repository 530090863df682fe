"""A clinic with two clinicians and this morning's appointments, and the schedule page."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QDialog, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.schedule.page import SchedulePage
from core.crypto.kdf import FAST_PARAMS
from core.records.schedule import Schedule
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, ADMIN_NAME, CLINIC_NAME, PASSWORD, PATIENTS, WindowFactory
from tests.ui.conftest import sign_in as sign_in_window


def today() -> dt.date:
    """Today, when asked (not when this module was imported: a run may cross midnight)."""
    return dt.date.today()


def at(hhmm: str, day: dt.date | None = None) -> str:
    """``2026-12-07 09:30`` for today at ``09:30``."""
    return f"{(day or today()).isoformat()} {hhmm}"


def new_schedule_clinic(path: Path) -> Workstation:
    """The sample patients, Dr Sam Lee and Dr Ana Kim, and three appointments today:
    Maria Garcia 09:00-09:15 (Lee), Chinedu Okafor 09:30-10:00 (Kim), Astrid Lindqvist
    10:00-10:20 (Lee)."""
    ws = Workstation(path, kdf_params=FAST_PARAMS)
    ws.init(CLINIC_NAME, ADMIN, ADMIN_NAME, PASSWORD)
    records = ws.records
    ids = {}
    for family, given, born, mrn in PATIENTS:
        ids[given] = records.add_patient(family, given, born, mrn=mrn).id
    records.add_user("lee", "Dr Sam Lee", "clinician", PASSWORD)
    records.add_user("kim", "Dr Ana Kim", "clinician", PASSWORD)
    schedule = Schedule(records)
    schedule.book(ids["Maria"], at("09:00"), "lee", minutes=15, reason="Cough")
    schedule.book(ids["Chinedu"], at("09:30"), "kim", minutes=30, reason="Follow-up")
    schedule.book(ids["Astrid"], at("10:00"), "lee", minutes=20)
    ws.lock()
    return ws


@pytest.fixture
def schedule_window(qtbot: QtBot, tmp_path: Path, make_window: WindowFactory) -> MainWindow:
    """Signed in as the admin on the schedule clinic, the clinic's clock at 08:00 today:
    the day's times are still to come, so a booking at one is not asked about as past,
    whatever the time the tests run (a test needing another time sets its own)."""
    window = make_window(new_schedule_clinic(tmp_path / "clinic"))
    window.workspace.schedule.clock = lambda: dt.datetime.combine(today(), dt.time(8, 0))
    sign_in_window(qtbot, window)
    return window


def open_schedule(qtbot: QtBot, window: MainWindow) -> SchedulePage:
    """Ctrl+D, as a person presses it, and wait for the day's appointments."""
    QTest.keyClick(window, Qt.Key.Key_D, Qt.KeyboardModifier.ControlModifier)
    page = window.workspace.schedule
    qtbot.waitUntil(lambda: window.workspace.pages.currentWidget() is page)
    wait_loaded(qtbot, page)
    return page


def wait_loaded(qtbot: QtBot, page: SchedulePage) -> None:
    """Until the page's read has landed."""
    qtbot.waitUntil(lambda: not page.loading(), timeout=10_000)


def day_rows(page: SchedulePage) -> list[tuple[str, ...]]:
    """The day view's rows as shown."""
    t = page.day_table
    rows = []
    for r in range(t.rowCount()):
        cells = (t.item(r, c) for c in range(t.columnCount()))
        rows.append(tuple(i.text() if i is not None else "" for i in cells))
    return rows


def click(widget: QWidget) -> None:
    """A left click."""
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def activate(qtbot: QtBot, dialog: QDialog) -> None:
    """Make the dialog the active window (focus-out events then happen as on screen)."""
    qtbot.waitUntil(dialog.isVisible)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)


def select_row(page: SchedulePage, row: int) -> None:
    """Click a row of the day view."""
    t = page.day_table
    item = t.item(row, 1)
    assert item is not None, f"no row {row}"
    rect = t.visualItemRect(item)
    QTest.mouseClick(t.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

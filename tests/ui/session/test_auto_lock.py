"""Idle auto-logoff and the Sign out button: no patient data stays on screen, the clinic stays
open for the next person until it is closed (which zeroes its key)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session.auto_lock import IdleWatcher
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, WindowFactory, sign_in


def assert_signed_out_and_blank(
    qtbot: QtBot, window: MainWindow, ws: Workstation, username: str = ADMIN
) -> None:
    """Nobody signed in, no patient detail in any widget, and the clinic still open for the
    next person (its key in locked memory)."""
    qtbot.waitUntil(lambda: not ws.is_signed_in, timeout=5_000)
    assert ws.is_unlocked
    assert window.stack.currentWidget() is window.sign_in_page
    assert window.session is None
    workspace = window.workspace
    model = workspace.patient_list.model
    assert model.rowCount() == 0
    assert not model.canFetchMore(model.index(-1, -1))
    assert workspace.patient_list.search.text() == ""
    assert workspace.chart.patient is None
    assert workspace.chart.name.text() == ""
    assert workspace.chart.allergy_table.rowCount() == 0
    assert workspace.user_label.text() == ""
    assert window.sign_in_page.username.text() == username
    assert window.sign_in_page.password.text() == ""
    page = window.sign_in_page
    qtbot.waitUntil(lambda: "Anyone on the clinic’s staff can sign in" in page.state.text())
    assert page.close_button.isVisible()


def test_idle_timeout_signs_out_and_wipes_the_screen(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic, auto_lock_ms=400)
    sign_in(qtbot, window)
    workspace = window.workspace

    def at_work(done: Callable[[], bool]) -> Callable[[], bool]:
        # The person is busy while the chart opens (it is opened through the API, which
        # makes no input event): on a loaded machine that took longer than the 400 ms.
        def check() -> bool:
            window.idle.poke()
            return done()

        return check

    workspace.patient_list.search.setText("garcia")
    qtbot.waitUntil(at_work(lambda: workspace.patient_list.model.query == "garcia"), timeout=5_000)
    workspace.open_chart(workspace.patient_list.model.patient_id(0))
    qtbot.waitUntil(at_work(lambda: workspace.chart.patient is not None), timeout=5_000)
    window.idle.poke()
    workspace.chart.edit_patient()  # a dialog full of patient data is open
    dialog = workspace.chart.patient_dialog
    assert dialog is not None and dialog.isVisible()
    with qtbot.waitSignal(window.locked, timeout=5_000):
        pass
    assert_signed_out_and_blank(qtbot, window, clinic)  # ready for the same person
    assert workspace.chart.patient_dialog is None
    assert "without activity" in window.sign_in_page.notice.text()
    assert not window.idle.armed
    assert window.close_timer.isActive()

    sign_in(qtbot, window)  # the same person continues
    assert window.idle.armed
    assert not window.close_timer.isActive()
    assert workspace.patient_list.model.rowCount() == 5
    assert not workspace.notice.isVisible()  # the dialog held no unsaved change: no draft


def test_input_postpones_the_lock(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic, auto_lock_ms=600)
    sign_in(qtbot, window)
    table = window.workspace.patient_list.table
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # 2.5 timeouts of steady typing and mouse moves
        QTest.keyClick(table, Qt.Key.Key_Down)
        QTest.mouseMove(table.viewport(), QPoint(20, 20 + int(time.monotonic() * 10) % 30))
        qtbot.wait(100)
    assert window.session is not None
    assert clinic.is_unlocked
    with qtbot.waitSignal(window.locked, timeout=3_000):
        pass  # and once the input stops, it signs out
    assert_signed_out_and_blank(qtbot, window, clinic)


def test_sign_out_button(qtbot: QtBot, signed_in: MainWindow, clinic: Workstation) -> None:
    button = signed_in.workspace.toolbar.widgetForAction(signed_in.workspace.lock_action)
    assert signed_in.workspace.lock_action.text() == "Sign out"
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    assert_signed_out_and_blank(qtbot, signed_in, clinic, username="")  # for the next person
    assert signed_in.sign_in_page.notice.text() == "Signed out."


def test_ctrl_l_signs_out(qtbot: QtBot, signed_in: MainWindow, clinic: Workstation) -> None:
    requests: list[bool] = []
    signed_in.workspace.lock_requested.connect(lambda: requests.append(True))
    QTest.keyClick(
        signed_in.workspace.patient_list.table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier
    )
    assert_signed_out_and_blank(qtbot, signed_in, clinic, username="")
    assert requests == [True]  # the shortcut and the key's own path do not both sign out


def test_ctrl_l_signs_out_of_a_window_qt_does_not_count_as_active(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """Under Xvfb with no window manager, right after a first sign-in, Ctrl+L did nothing:
    the window was not the active one, so Qt fired none of its shortcuts, yet the keys still
    reached its focused field, and the next person's user name, password and Return went
    into the patient search and opened a chart as the person who thought they had left."""
    window = make_window(clinic)
    sign_in(qtbot, window)
    search = window.workspace.patient_list.search
    assert window.focusWidget() is search  # the keyboard is somewhere after a sign-in
    # Another top-level window takes the activation and goes: none is active afterwards.
    other = QWidget()
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    other.hide()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is None)
    assert not window.isActiveWindow()
    # Keys go to the window's focused field, as X delivers them to the window under the
    # pointer when no window has the X focus.
    QTest.keyClick(window.focusWidget(), Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert_signed_out_and_blank(qtbot, window, clinic, username="")
    QTest.keyClicks(window.focusWidget(), ADMIN)
    assert window.sign_in_page.username.text() == ADMIN
    assert search.text() == ""


def test_results_arriving_after_a_lock_are_dropped(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    page = signed_in.workspace.patient_list
    page.search.setText("okafor")
    page.model.set_query("okafor")  # in flight on the worker
    signed_in.sign_out()
    qtbot.waitUntil(lambda: not clinic.is_signed_in, timeout=5_000)
    qtbot.wait(200)
    assert page.model.rowCount() == 0


def test_idle_watcher_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="positive"):
        IdleWatcher(0)


def test_idle_watcher_fires_once(qtbot: QtBot) -> None:
    watcher = IdleWatcher(150)
    fired: list[float] = []
    watcher.timed_out.connect(lambda: fired.append(time.monotonic()))
    started = time.monotonic()
    watcher.start()
    qtbot.waitUntil(lambda: len(fired) == 1, timeout=2_000)
    assert fired[0] - started >= 0.14
    qtbot.wait(400)
    assert len(fired) == 1
    assert not watcher.armed

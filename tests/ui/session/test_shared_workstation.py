"""Staff take turns at one workstation, driven through the real window as people do.

Signing out (the button, Ctrl+L or the idle timer) leaves the clinic open with its key in
locked memory, so any staff member can sign in next, the first time here included. Closing
the clinic on this computer (the Settings menu, the sign-in screen's link, or hours with
nobody signed in) closes the database and zeroes the key; a cold start without a keyring
then names the people whose password opens it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from app.main import create_main_window
from app.main_window import MainWindow
from core.config.settings import ConfigError
from core.crypto.kdf import FAST_PARAMS
from core.keys.keychain import UnlockedKeys
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.ui.conftest import (
    ADMIN,
    ADMIN_NAME,
    CLINIC_NAME,
    PASSWORD,
    PATIENTS,
    WindowFactory,
    new_clinic,
)
from tests.ui.session.test_auto_lock import assert_signed_out_and_blank

NURSE, NURSE_NAME, NURSE_PASSWORD = "nurse.jo", "Jo Mensah", "jo's own password"


def add_nurse(ws: Workstation) -> None:
    """The admin adds the nurse here; she has no password slot on this workstation."""
    ws.sign_in(ADMIN, PASSWORD)
    ws.records.add_user(NURSE, NURSE_NAME, "clinician", NURSE_PASSWORD)
    ws.lock()
    assert ws.password_users() == [ADMIN]


@pytest.fixture
def shared(clinic: Workstation) -> Workstation:
    """The sample clinic, closed, with a nurse who has never signed in here."""
    add_nurse(clinic)
    return clinic


def type_sign_in(qtbot: QtBot, window: MainWindow, username: str, password: str) -> None:
    """Type the user name over whatever is there, Tab, the password, Enter."""
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page and not page.busy)
    window.activateWindow()  # as a person's click would; keyboard focus needs it
    qtbot.waitUntil(window.isActiveWindow)
    page.username.setFocus()
    page.username.selectAll()
    QTest.keyClicks(page.username, username)
    QTest.keyClick(page.username, Qt.Key.Key_Tab)
    assert page.password.hasFocus()
    QTest.keyClicks(page.password, password)
    QTest.keyClick(page.password, Qt.Key.Key_Return)


def signs_in(qtbot: QtBot, window: MainWindow, username: str, password: str) -> None:
    """Sign in by typing, and wait for the patient list."""
    type_sign_in(qtbot, window, username, password)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert window.session is not None and window.session.user.username == username
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == len(PATIENTS), timeout=10_000)


def click_sign_out(window: MainWindow) -> None:
    workspace = window.workspace
    button = workspace.toolbar.widgetForAction(workspace.lock_action)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def held_keys(ws: Workstation) -> UnlockedKeys:
    keys = ws._keys
    assert keys is not None and not keys.db_key.closed
    return keys


def assert_closed(qtbot: QtBot, window: MainWindow, ws: Workstation, keys: UnlockedKeys) -> None:
    """The database is closed and the key buffers it used are zeroed and released."""
    # On the worker, lock() closes the database first, then zeroes the keys.
    qtbot.waitUntil(lambda: not ws.is_unlocked and ws._keys is None, timeout=5_000)
    assert keys.db_key.closed and keys.kek.closed
    assert window.session is None
    assert window.stack.currentWidget() is window.sign_in_page
    assert window.workspace.patient_list.model.rowCount() == 0
    assert not window.close_timer.isActive()
    page = window.sign_in_page
    qtbot.waitUntil(lambda: "closed on this computer" in page.state.text())
    assert not page.close_button.isVisible()


def test_two_staff_take_turns_on_a_workstation_without_a_keyring(
    qtbot: QtBot, shared: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(shared, auto_lock_ms=1_500)
    page = window.sign_in_page
    # Cold start, no keyring: the screen names who can open the clinic here.
    qtbot.waitUntil(lambda: page.state.isVisible())
    assert page.state.text() == (
        "The clinic is closed on this computer: it opens with the password of admin, or with "
        "the recovery key. Once one of them has signed in, anyone on the clinic’s staff can "
        "sign in here."
    )
    assert not page.close_button.isVisible()
    assert page.forgot_button.isVisible()  # the recovery key path
    type_sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert "password of admin, or with the recovery key" in page.error.text()
    assert window.session is None and not shared.is_unlocked

    signs_in(qtbot, window, ADMIN, PASSWORD)
    click_sign_out(window)
    assert_signed_out_and_blank(qtbot, window, shared, username="")

    # The nurse signs in for the first time on this workstation.
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)
    assert NURSE_NAME in window.workspace.user_label.text()
    assert shared.keychain().password_slot(NURSE) is not None

    # She walks away: the idle timer signs her out, and the admin takes over.
    with qtbot.waitSignal(window.locked, timeout=5_000):
        pass
    assert_signed_out_and_blank(qtbot, window, shared, username=NURSE)
    assert "signed you out" in page.notice.text()
    signs_in(qtbot, window, ADMIN, PASSWORD)
    assert ADMIN_NAME in window.workspace.user_label.text()

    # End of the day: close the clinic; nothing of it stays open or in memory.
    keys = held_keys(shared)
    window.workspace.close_action.trigger()
    assert_closed(qtbot, window, shared, keys)
    assert "admin or nurse.jo" in page.state.text()
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)  # her own slot opens it now


def test_a_nurse_from_another_workstation_signs_in_after_a_colleague_signs_out(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    """Her account was made at the front desk and reached this desk by sync only: this
    desk holds her synced verifier and no password slot of hers."""
    front = new_clinic(tmp_path / "front-desk")
    front.sign_in(ADMIN, PASSWORD)
    front.records.add_user(NURSE, NURSE_NAME, "clinician", NURSE_PASSWORD)
    desk = Workstation(tmp_path / "back-desk", kdf_params=FAST_PARAMS)
    desk.prepare_join(ADMIN, PASSWORD)
    join_test_clinic(front.database)
    join_test_clinic(desk.database)
    sync(desk.database, LocalTransport(Responder(front.database)), ADMIN)
    front.lock()
    desk.lock()
    assert desk.password_users() == [ADMIN]

    window = make_window(desk)
    signs_in(qtbot, window, ADMIN, PASSWORD)
    click_sign_out(window)
    assert_signed_out_and_blank(qtbot, window, desk, username="")
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)
    assert NURSE_NAME in window.workspace.user_label.text()


@pytest.fixture
def keyring_desk(tmp_path: Path, secret_service: dict[str, str]) -> Workstation:
    """A closed workstation with an OS-keyring slot (a real Secret Service)."""
    ws = Workstation(tmp_path / "keyring-desk", kdf_params=FAST_PARAMS)
    ws.init(CLINIC_NAME, ADMIN, ADMIN_NAME, PASSWORD)
    assert ws.keyring_note is None
    for family, given, born, mrn in PATIENTS:
        ws.records.add_patient(family, given, born, mrn=mrn)
    ws.records.add_user(NURSE, NURSE_NAME, "clinician", NURSE_PASSWORD)
    ws.lock()
    return ws


def test_with_the_os_keyring_a_cold_start_lets_anyone_sign_in(
    qtbot: QtBot, keyring_desk: Workstation, make_window: WindowFactory
) -> None:
    ws = keyring_desk
    window = make_window(ws, auto_lock_ms=1_500)
    page = window.sign_in_page
    qtbot.waitUntil(lambda: "Anyone on the clinic’s staff can sign in" in page.state.text())
    assert ws.is_unlocked and not ws.is_signed_in  # opened with the keyring, nobody in
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)  # first time here, no colleague needed
    assert ws.keychain().password_slot(NURSE) is not None
    with qtbot.waitSignal(window.locked, timeout=5_000):
        pass  # auto-logoff
    assert_signed_out_and_blank(qtbot, window, ws, username=NURSE)
    signs_in(qtbot, window, ADMIN, PASSWORD)
    keys = held_keys(ws)
    click_sign_out(window)
    qtbot.waitUntil(lambda: page.close_button.isVisible())
    QTest.mouseClick(page.close_button, Qt.MouseButton.LeftButton)
    assert_closed(qtbot, window, ws, keys)


def test_a_clinic_opened_by_the_keyring_at_start_closes_when_nobody_signs_in(
    qtbot: QtBot, keyring_desk: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(keyring_desk, close_after_ms=400)
    qtbot.waitUntil(lambda: keyring_desk.is_unlocked, timeout=5_000)
    with qtbot.waitSignal(window.closed, timeout=5_000):
        pass  # nobody came: the key does not stay in memory for ever
    qtbot.waitUntil(lambda: not keyring_desk.is_unlocked, timeout=5_000)


def test_with_close_after_zero_a_cold_start_stays_closed_but_anyone_can_sign_in(
    qtbot: QtBot, keyring_desk: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(keyring_desk, close_after_ms=0)
    page = window.sign_in_page
    qtbot.waitUntil(lambda: page.state.isVisible())
    assert not keyring_desk.is_unlocked  # open only while someone is signed in
    assert page.state.text().startswith(
        "The clinic is closed on this computer; anyone on the clinic’s staff opens it by "
        "signing in with their own Careline password. Should this computer’s password "
        "storage (its keyring) stop working, it opens with"
    )
    signs_in(qtbot, window, NURSE, NURSE_PASSWORD)  # no slot here: the keyring opens it
    with qtbot.waitSignal(window.closed, timeout=5_000):
        click_sign_out(window)
    qtbot.waitUntil(lambda: not keyring_desk.is_unlocked, timeout=5_000)


@pytest.mark.parametrize(
    ("close_after_ms", "notice"),
    [
        (500, "Careline closed the clinic on this computer after 1 second with nobody signed in"),
        (0, "The clinic is closed on this computer."),  # close_after_idle_hours = 0
    ],
)
def test_a_signed_out_clinic_closes_once_nobody_signed_in_for_the_set_time(
    qtbot: QtBot, shared: Workstation, make_window: WindowFactory, close_after_ms: int, notice: str
) -> None:
    window = make_window(shared, close_after_ms=close_after_ms)
    signs_in(qtbot, window, ADMIN, PASSWORD)
    keys = held_keys(shared)
    with qtbot.waitSignal(window.closed, timeout=5_000):
        click_sign_out(window)
    assert_closed(qtbot, window, shared, keys)
    assert window.sign_in_page.notice.text().startswith(notice)


def test_close_after_idle_hours_comes_from_settings(
    qtbot: QtBot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = argparse.Namespace(data_dir=tmp_path, user=None)
    monkeypatch.setenv("CARELINE_CLOSE_AFTER_IDLE_HOURS", "3")
    window = create_main_window(args, kdf_params=FAST_PARAMS)
    qtbot.addWidget(window)
    try:
        assert window.close_timer.interval() == 3 * 3_600_000
    finally:
        window.shutdown()
    monkeypatch.setenv("CARELINE_CLOSE_AFTER_IDLE_HOURS", "73")
    with pytest.raises(ConfigError, match=r"close_after_idle_hours .*above the maximum 72"):
        create_main_window(args, kdf_params=FAST_PARAMS)


def type_where_focus_is(text: str, *keys: Qt.Key) -> None:
    """Type ``text``, then press ``keys``, into whatever has keyboard focus, as a person who
    sits down and starts typing does (no click first)."""
    if text:
        focused = QApplication.focusWidget()
        assert focused is not None
        QTest.keyClicks(focused, text)
    for key in keys:
        focused = QApplication.focusWidget()
        assert focused is not None
        QTest.keyClick(focused, key)


def test_after_an_auto_lock_the_next_person_types_her_name_over_the_previous_one(
    qtbot: QtBot, shared: Workstation, make_window: WindowFactory
) -> None:
    """The admin walks away and the idle timer signs him out; his name stays on the screen.
    The nurse sits down and types her user name, Return, her password, Return: she is signed
    in, and nothing she typed was tried as the admin's password (no failed sign-in is
    recorded against him, and he has no sign-in delay here). When the idle timer signs her
    out in turn, she continues with Tab and her password."""
    window = make_window(shared, auto_lock_ms=1_500)
    page = window.sign_in_page
    signs_in(qtbot, window, ADMIN, PASSWORD)
    with qtbot.waitSignal(window.locked, timeout=5_000):
        pass
    assert_signed_out_and_blank(qtbot, window, shared, username=ADMIN)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    assert QApplication.focusWidget() is page.username
    assert page.username.selectedText() == ADMIN

    type_where_focus_is(NURSE, Qt.Key.Key_Return)
    assert page.username.text() == NURSE
    assert QApplication.focusWidget() is page.password
    type_where_focus_is(NURSE_PASSWORD, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert window.session is not None and window.session.user.username == NURSE
    failed = shared.database.query(
        "SELECT entity_id FROM audit_log WHERE action = 'user.sign_in_failed'"
    )
    assert failed == []
    assert shared.lockouts() == []

    with qtbot.waitSignal(window.locked, timeout=5_000):
        pass
    assert_signed_out_and_blank(qtbot, window, shared, username=NURSE)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    type_where_focus_is("", Qt.Key.Key_Tab)  # the same person: on to Password
    type_where_focus_is(NURSE_PASSWORD, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert window.session is not None and window.session.user.username == NURSE

"""First run: create the clinic and admin, show the recovery key once, require confirmation."""

from __future__ import annotations

import re
import sys

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QWizard
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session import first_run as first_run_module
from app.session.first_run import FirstRunWizard
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from tests.services import free_port
from tests.ui.conftest import (
    CLINIC_NAME,
    PASSWORD,
    WindowFactory,
    answer_discard_by_keyboard,
    asks_nothing,
    held_on_the_worker,
    sign_in,
)


def click(qtbot: QtBot, wizard: FirstRunWizard, which: QWizard.WizardButton) -> None:
    button = wizard.button(which)
    assert button.isVisible() and button.isEnabled(), which
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def fill_admin(wizard: FirstRunWizard, password: str, confirm: str) -> None:
    page = wizard.admin_page
    page.username.setText("MGarcia")
    page.full_name.setText("Maria Garcia")
    page.password.setText(password)
    page.confirm.setText(confirm)


def test_first_run_end_to_end(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    assert window.stack.currentWidget() is window.first_run_page
    assert wizard.isVisible()
    next_, commit, finish = (
        QWizard.WizardButton.NextButton,
        QWizard.WizardButton.CommitButton,
        QWizard.WizardButton.FinishButton,
    )

    # Step 1: a blank clinic name is refused with core's rule, in plain words.
    click(qtbot, wizard, next_)
    assert wizard.currentPage() is wizard.clinic_page
    assert wizard.clinic_page.error.text() == "Clinic name is required."
    wizard.clinic_page.clinic_name.setText(CLINIC_NAME)
    click(qtbot, wizard, next_)
    assert wizard.currentPage() is wizard.admin_page
    assert wizard.button(commit).text() == "Create clinic"

    # Step 2: the confirmation must match; core's password rule is shown inline.
    admin = wizard.admin_page
    fill_admin(wizard, PASSWORD, PASSWORD + "x")
    click(qtbot, wizard, commit)
    assert "different" in admin.errors["confirm"].text()
    assert not fresh_workstation.is_initialized()

    fill_admin(wizard, "short", "short")
    click(qtbot, wizard, commit)
    qtbot.waitUntil(admin.strength.refused, timeout=5_000)
    assert admin.errors["password"].text() == "Too short: at least 10 characters."
    assert wizard.currentPage() is admin
    assert not fresh_workstation.is_initialized()

    fill_admin(wizard, PASSWORD, PASSWORD)
    click(qtbot, wizard, commit)
    qtbot.waitUntil(lambda: wizard.currentPage() is wizard.recovery_page, timeout=10_000)
    assert fresh_workstation.is_initialized()
    assert admin.password.text() == "" and admin.confirm.text() == ""

    # Step 3: the key is shown, with the no-keyring explanation, and must be confirmed.
    page = wizard.recovery_page
    key = page.key.text()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){7}", key), key
    assert page.keyring_note.isVisible()
    assert "Staff passwords open the database" in page.keyring_note.text()
    assert not wizard.button(QWizard.WizardButton.BackButton).isVisible() or not (
        wizard.button(QWizard.WizardButton.BackButton).isEnabled()
    )
    assert not wizard.button(finish).isEnabled()
    wizard.reject()  # Escape: must not hide the key
    assert wizard.isVisible() and wizard.currentPage() is page
    page.stored.setChecked(True)
    assert wizard.button(finish).isEnabled()
    click(qtbot, wizard, finish)

    # Then a real sign-in, with the admin's name filled in.
    assert window.stack.currentWidget() is window.sign_in_page
    assert window.first_run is None and window.first_run_page is None
    assert window.sign_in_page.username.text() == "mgarcia"
    assert "Your clinic is ready" in window.sign_in_page.notice.text()
    qtbot.waitUntil(lambda: not fresh_workstation.is_unlocked)
    window.sign_in_page.password.setText(PASSWORD)
    QTest.mouseClick(window.sign_in_page.button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert window.windowTitle() == f"{CLINIC_NAME} — Careline"
    assert window.session is not None
    assert window.session.user.full_name == "Maria Garcia"
    qtbot.waitUntil(
        lambda: "No patients yet" in window.workspace.patient_list.status.text(), timeout=5_000
    )

    # The key shown is the real recovery key of this clinic.
    window.close_clinic()
    qtbot.waitUntil(lambda: not fresh_workstation.is_unlocked)
    other = Workstation(fresh_workstation.data_dir, kdf_params=FAST_PARAMS)
    other.unlock_with_recovery_key(key)
    try:
        assert other.unlock_for("mgarcia").clinic_name() == CLINIC_NAME
    finally:
        other.lock()


def test_invalid_user_name_is_shown_on_its_field(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.clinic_name.setText(CLINIC_NAME)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    admin = wizard.admin_page
    admin.username.setText("x")
    admin.password.setText(PASSWORD)
    admin.confirm.setText(PASSWORD)
    click(qtbot, wizard, QWizard.WizardButton.CommitButton)
    qtbot.waitUntil(lambda: admin.errors["username"].isVisible(), timeout=5_000)
    assert admin.errors["username"].text().startswith("User name: use 2-32 lower-case")
    assert not fresh_workstation.is_initialized()


def test_an_administrator_form_with_everything_wrong_says_it_all_at_once(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    """The administrator page said one problem at a time (the passwords' mismatch first,
    then core's refusals one per Create clinic): now everything wrong is said at once,
    each under its field, the keyboard in the first of them, and nothing is created."""
    window = make_window(fresh_workstation)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    wizard = window.first_run
    assert wizard is not None
    QTest.keyClicks(wizard.clinic_page.clinic_name, CLINIC_NAME)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    admin = wizard.admin_page
    # User name, full name (left empty: the user name stands in), password, confirm.
    for field, text in ((admin.username, "x"), (admin.password, "short"),
                        (admin.confirm, "different")):  # fmt: skip
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    click(qtbot, wizard, QWizard.WizardButton.CommitButton)
    said = {name: label.text() for name, label in admin.errors.items() if label.isVisible()}
    assert set(said) == {"username", "password", "confirm"}
    assert said["username"].startswith("User name: use 2-32 lower-case")
    assert said["password"] == "Too short: at least 10 characters." and admin.strength.refused()
    assert said["confirm"] == "The two passwords are different. Type them again."
    assert admin.confirm.text() == ""  # to be typed again
    assert admin.username.hasFocus() and admin.username.selectedText() == "x"
    assert not admin.creating and not fresh_workstation.is_initialized()
    # Typing the user name over answers its message; the others stay until answered.
    QTest.keyClicks(admin.username, "mgarcia")
    assert not admin.errors["username"].isVisible() and admin.strength.refused()


def test_an_existing_clinic_never_shows_the_wizard(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    assert window.first_run is None
    sign_in(qtbot, window)


def test_the_confirmation_box_does_not_corrupt_refcounts(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    # Regression: a Python isComplete() override in PySide6 6.12 dropped a reference to
    # True/False per call, which aborts the interpreter at exit.
    window = make_window(fresh_workstation)
    assert window.first_run is not None
    box = window.first_run.recovery_page.stored
    before = sys.getrefcount(True) + sys.getrefcount(False)
    for _ in range(300):
        box.toggle()
    assert sys.getrefcount(True) + sys.getrefcount(False) > before - 100


def test_closing_the_window_asks_before_typed_clinic_details_are_thrown_away(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    name = wizard.clinic_page.clinic_name
    qtbot.waitUntil(name.hasFocus)
    QTest.keyClicks(name, CLINIC_NAME)
    QTest.keyClick(name, Qt.Key.Key_Escape)  # Escape leaves the set-up where it is
    assert asks_nothing(window) and wizard.isVisible() and name.text() == CLINIC_NAME
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    admin = wizard.admin_page
    admin.username.setFocus()
    QTest.keyClicks(admin.username, "mgarcia")

    window.close()  # the window's close button
    answer_discard_by_keyboard(qtbot, window, discard=False)
    assert window.isVisible() and wizard.currentPage() is admin
    assert (name.text(), admin.username.text()) == (CLINIC_NAME, "mgarcia")
    window.close()
    answer_discard_by_keyboard(qtbot, window)
    qtbot.waitUntil(lambda: not window.isVisible())
    assert not fresh_workstation.is_initialized()


def test_an_untouched_set_up_closes_at_once(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(fresh_workstation)
    assert window.first_run is not None
    window.close()
    assert asks_nothing(window) and not window.isVisible()


def setup_running_box(window: MainWindow) -> QMessageBox | None:
    box = window.findChild(QMessageBox, "setupRunningBox")
    return box if box is not None and box.isVisible() else None


def test_the_window_cannot_close_while_the_clinic_is_created(
    qtbot: QtBot,
    fresh_workstation: Workstation,
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Closing during "Create clinic" used to ask "Discard what you typed?", and Discard let
    the creation finish as the app quit: a clinic whose recovery key nobody ever saw. The
    window now stays until the key has been shown, and says why."""
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.clinic_name.setText(CLINIC_NAME)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    fill_admin(wizard, PASSWORD, PASSWORD)
    with held_on_the_worker(monkeypatch, fresh_workstation, "init") as release:
        click(qtbot, wizard, QWizard.WizardButton.CommitButton)
        window.close()  # the window's close button
        qtbot.waitUntil(lambda: setup_running_box(window) is not None)
        box = setup_running_box(window)
        assert box is not None and box.text() == "Careline is creating the clinic on this computer."
        assert asks_nothing(window) and window.isVisible()
        QTest.keyClick(box, Qt.Key.Key_Return)  # OK
        qtbot.waitUntil(lambda: setup_running_box(window) is None)
        window.close()  # again: still not while it runs
        qtbot.waitUntil(lambda: setup_running_box(window) is not None)
        assert window.isVisible()
        release.set()
        qtbot.waitUntil(lambda: wizard.currentPage() is wizard.recovery_page, timeout=10_000)
    key = wizard.recovery_page.key.text()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4}){7}", key), key
    assert fresh_workstation.is_initialized()
    wizard.recovery_page.stored.setChecked(True)
    click(qtbot, wizard, QWizard.WizardButton.FinishButton)
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    other = Workstation(fresh_workstation.data_dir, kdf_params=FAST_PARAMS)
    other.unlock_with_recovery_key(key)
    other.lock()


def test_the_window_cannot_close_while_joining_a_clinic(
    qtbot: QtBot,
    fresh_workstation: Workstation,
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Joining ends with this computer's recovery key shown too: the window waits for it
    (here the join then fails, nobody answering at the address, and closing works again)."""
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.join_choice.setChecked(True)
    click(qtbot, wizard, QWizard.WizardButton.NextButton)
    join = wizard.join_page
    join.server_url.setText(f"https://127.0.0.1:{free_port()}")
    join.enroll_code.setText("ABCD-EFGH-JKLM-NPQR")
    join.username.setText("mgarcia")
    join.password.setText(PASSWORD)
    with held_on_the_worker(monkeypatch, first_run_module, "join_clinic") as release:
        click(qtbot, wizard, QWizard.WizardButton.CommitButton)
        window.close()
        qtbot.waitUntil(lambda: setup_running_box(window) is not None)
        box = setup_running_box(window)
        assert box is not None and box.text() == "Careline is joining the clinic on this computer."
        assert window.isVisible()
        QTest.keyClick(box, Qt.Key.Key_Escape)
        release.set()
        # Said at the address, which nothing answered.
        qtbot.waitUntil(lambda: join.errors["server_url"].isVisible(), timeout=20_000)
    assert not fresh_workstation.is_initialized()
    window.close()  # the join ended: what was typed may be discarded
    answer_discard_by_keyboard(qtbot, window)
    qtbot.waitUntil(lambda: not window.isVisible())

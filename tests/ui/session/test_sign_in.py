"""Sign-in screen: success opens the clinic, failures show core's message and never crash."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
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
    sign_in,
)


def click_sign_in(qtbot: QtBot, window: MainWindow, username: str, password: str) -> None:
    page = window.sign_in_page
    page.username.setText(username)
    page.password.setText(password)
    QTest.mouseClick(page.button, Qt.MouseButton.LeftButton)


def test_existing_clinic_starts_on_sign_in(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    unhandled: list[Exception] = []
    window = make_window(clinic)
    window.worker.unhandled_error.connect(unhandled.append)
    assert window.stack.currentWidget() is window.sign_in_page
    assert window.first_run is None
    assert window.windowTitle() == "Careline"
    # The quiet OS-keyring attempt finds no keyring: nothing is shown, nothing opens.
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    assert unhandled == []
    assert not window.sign_in_page.error.isVisible()
    assert not clinic.is_unlocked


def test_sign_in_opens_the_patient_list(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    sign_in(qtbot, window)
    assert window.stack.currentWidget() is window.workspace
    assert window.windowTitle() == f"{CLINIC_NAME} — Careline"
    assert window.session is not None and window.session.user.username == ADMIN
    assert ADMIN_NAME in window.workspace.user_label.text()
    assert clinic.is_unlocked
    model = window.workspace.patient_list.model
    assert model.rowCount() == len(PATIENTS)
    names = [model.index(r, 0).data() for r in range(model.rowCount())]
    assert names == sorted(names, key=str.casefold)
    assert "GARCIA, Maria" in names
    assert window.sign_in_page.password.text() == ""  # not left in the hidden form
    qtbot.waitUntil(
        lambda: window.workspace.patient_list.status.text() == "5 patients in the clinic"
    )


def test_wrong_password_shows_the_reason_and_stays(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    page = window.sign_in_page
    click_sign_in(qtbot, window, ADMIN, "not the password")
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert page.error.text() == "Wrong user name or password."
    assert page.password.text() == ""
    assert page.button.isEnabled()
    assert window.session is None
    assert window.stack.currentWidget() is page
    assert not clinic.is_unlocked


def test_unknown_user_on_a_closed_workstation_is_told_who_can_open_it(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    page = window.sign_in_page
    click_sign_in(qtbot, window, "newnurse", "whatever password")
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert "has not signed in on this workstation before" in page.error.text()
    assert "it opens with the password of admin, or with the recovery key" in page.error.text()
    assert window.session is None


def test_blank_fields_are_refused_without_asking_core(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    page = window.sign_in_page
    click_sign_in(qtbot, window, "", "")
    assert page.error.text() == "Enter your user name and password."
    assert page.error.isVisible()
    assert not page.busy


def test_a_failure_then_a_success(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    page = window.sign_in_page
    click_sign_in(qtbot, window, ADMIN, "wrong wrong wrong")
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    sign_in(qtbot, window)
    assert window.session is not None


def test_a_password_changed_on_another_desk_signs_in_here_with_the_previous_one_once(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    """No OS keyring on this desk: its key slot still holds the old password. The screen
    offers a "previous password" field; given once, the new password works from then on."""
    new = "changed on the front desk"
    other = Workstation(tmp_path / "front-desk", kdf_params=FAST_PARAMS)
    other.prepare_join(ADMIN, PASSWORD)
    clinic.sign_in(ADMIN, PASSWORD)
    join_test_clinic(clinic.database)
    join_test_clinic(other.database)
    sync(other.database, LocalTransport(Responder(clinic.database)), ADMIN)
    other.sign_in(ADMIN, PASSWORD)
    other.change_password(ADMIN, PASSWORD, new)
    sync(clinic.database, LocalTransport(Responder(other.database)), ADMIN)
    other.lock()
    clinic.lock()

    window = make_window(clinic)
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    assert not page.previous.isVisible()
    click_sign_in(qtbot, window, ADMIN, new)
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert page.error.text() == "Wrong user name or password."
    assert page.previous.isVisible() and page.previous_hint.isVisible()
    assert "another computer" in page.previous_hint.text()
    assert not clinic.is_unlocked

    page.previous.setText(PASSWORD)
    click_sign_in(qtbot, window, ADMIN, new)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert not page.previous.isVisible() and page.previous.text() == ""
    window.close_clinic()
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page)
    assert not page.previous.isVisible()
    click_sign_in(qtbot, window, ADMIN, new)  # the slot now holds the new password
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)

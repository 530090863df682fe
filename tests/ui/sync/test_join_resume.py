"""First run, "Join an existing clinic" through the server, when the first sync fails after
the server accepted the one-time code: the wizard keeps the attempt and offers Try again
(no new code), the app's next start does too, and the attempt can be discarded. A real TLS
server in this process, stopped during the first download and started again."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget, QWizard
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session.first_run import FirstRunWizard, JoinPage
from app.sync.controller import SyncProgress
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.join import PendingJoin, first_sync_pending, pending_join
from tests.integration.server_fixtures import Live, add_clinic, join_clinic, live_server, sync_at
from tests.services import free_port
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in
from tests.ui.sync.test_join import COMMIT, click, finish, to_join_page


def _shot(widget: MainWindow, name: str) -> None:
    folder = os.environ.get("CARELINE_SCREENSHOTS")
    if folder:
        widget.grab().save(str(Path(folder) / f"{name}.png"))


def _fill_and_join(
    qtbot: QtBot, wizard: FirstRunWizard, live: Live, code: str, ca: Path, username: str = ADMIN
) -> None:
    """Type the server, the code and the account as a person does; Join clinic; the server
    goes away after the first page of the download; the failure is shown."""
    to_join_page(wizard)
    page = wizard.join_page
    QTest.keyClicks(page.server_url, live.url)
    QTest.keyClicks(page.enroll_code, code)
    QTest.keyClicks(page.ca_path, str(ca))
    page.device_name.selectAll()
    QTest.keyClicks(page.device_name, DESK_NAME)
    QTest.keyClicks(page.username, username)
    QTest.keyClicks(page.password, PASSWORD)
    halted: list[SyncProgress] = []

    def halt(progress: SyncProgress) -> None:  # on the worker, during the download
        if not halted:
            halted.append(progress)
            live.halt()

    wizard.download_progressed.connect(halt, Qt.ConnectionType.DirectConnection)
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: page.error.isVisible(), timeout=30_000)
    wizard.download_progressed.disconnect(halt)
    assert halted


def _clinic_with_a_patient(live: Live, tmp_path: Path) -> tuple[str, str]:
    """A clinic another workstation filled; a one-use code for it; returns (id, code)."""
    clinic_id = add_clinic(live.server, "Harbour Clinic")
    first, credential = join_clinic(live.server, live.url, live.ca_pem, clinic_id, tmp_path / "a")
    first.records.add_patient("Mensah", "Ama", "1979-05-05")
    sync_at(first, credential)
    first.lock()
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)  # one use
    return clinic_id, code


DESK_NAME = "Front desk 2"  # how the server lists the new workstation


@dataclass
class KeptJoin:
    """A first run whose join the server accepted and then left unfinished (it went away
    during the first download): the new workstation, the app's window and wizard on it, and
    what starts the same server again."""

    qtbot: QtBot
    make_window: WindowFactory
    ws: Workstation
    window: MainWindow
    wizard: FirstRunWizard
    data: Path
    port: int
    sync_options: dict[str, Any] | None
    device_id: str  # the device the server enrolled (its device list's ID)

    @property
    def page(self) -> JoinPage:
        """The wizard's join page (of the window shown now)."""
        return self.wizard.join_page

    def server_again(self) -> AbstractContextManager[Live]:
        """The same server (its data, on its port) running again."""
        return live_server(self.data, port=self.port)

    def try_again_and_fail(self) -> None:
        """Click Try again and wait for the error it ends with."""
        self.page.error.hide()  # so the wait is for this attempt's error, not the last one's
        click(self.wizard, COMMIT)
        self.qtbot.waitUntil(lambda: self.page.error.isVisible(), timeout=30_000)

    def restart_app(self) -> None:
        """Close the app and start it again on the same folder; wait for the wizard."""
        self.window.shutdown()
        window = self.make_window(self.ws, sync_options=self.sync_options)
        wizard = window.first_run
        assert wizard is not None
        self.window, self.wizard = window, wizard
        self.qtbot.waitUntil(lambda: window.stack.currentWidget() is window.first_run_page)


KeepJoin = Callable[..., KeptJoin]


@pytest.fixture
def kept_join(qtbot: QtBot, tmp_path: Path, make_window: WindowFactory) -> KeepJoin:
    """Call with (username=, sync_options=): a new workstation's app joins a clinic through
    a real server as ``username``, and the server goes away during the first download."""

    def start(username: str = ADMIN, sync_options: dict[str, Any] | None = None) -> KeptJoin:
        data, port = tmp_path / "server", free_port()
        ca = tmp_path / "ca.pem"
        ws = Workstation(tmp_path / "new", kdf_params=FAST_PARAMS)
        window = make_window(ws, sync_options=sync_options)
        wizard = window.first_run
        assert wizard is not None
        with live_server(data, port=port) as live:
            ca.write_text(live.ca_pem)
            clinic_id, code = _clinic_with_a_patient(live, tmp_path)
            if username != ADMIN:  # another account of the clinic, with the same password
                live.server.add_user(clinic_id, username, "Rita Reception", "front_desk", PASSWORD)
            _fill_and_join(qtbot, wizard, live, code, ca, username)
            (device,) = [d for d in live.server.registry.devices() if d.name == DESK_NAME]
        return KeptJoin(qtbot, make_window, ws, window, wizard, data, port, sync_options, device.id)

    return start


def _shows_try_again(wizard: FirstRunWizard, username: str = ADMIN) -> None:
    page = wizard.join_page
    assert wizard.currentPage() is page
    assert wizard.button(COMMIT).text() == "Try again"
    assert page.resume_note.isVisible() and page.discard_button.isVisible()
    assert not page.server_form.isVisible() and not page.enroll_code.isVisible()
    assert page.username.text() == username and page.username.isReadOnly()
    # No Back: the start page would offer to create a clinic in this folder.
    assert not wizard.button(QWizard.WizardButton.BackButton).isVisible()


def _keyboard_goes_to(widget: QWidget) -> bool:
    """Whether keys typed in the window go to ``widget`` (once the window is active again:
    a message box just closed leaves none active offscreen)."""
    return widget.window().focusWidget() is widget


def _keyboard_in_the_password(qtbot: QtBot, page: JoinPage) -> None:
    """After an attempt ended, the keyboard is back in the password field, its text
    selected: typing replaces it, Return tries again (the fields were disabled while it
    ran, which took the keyboard from them)."""
    qtbot.waitUntil(lambda: _keyboard_goes_to(page.password), timeout=5_000)
    assert page.password.text() and page.password.selectedText() == page.password.text()


def test_a_failed_first_sync_is_tried_again_without_a_new_code(
    qtbot: QtBot, kept_join: KeepJoin
) -> None:
    kept = kept_join(sync_options={"debounce_ms": 400, "interval_ms": 60_000})
    ws = kept.ws
    assert "no new code is needed" in kept.page.error.text()
    # The device left enrolled is named by the ID the server lists it by.
    assert kept.page.error.text().startswith(
        f"Enrolled as device {kept.device_id}, but the first sync failed"
    )
    _shows_try_again(kept.wizard)
    _keyboard_in_the_password(qtbot, kept.page)
    assert pending_join(ws) == PendingJoin(True, ADMIN) and not ws.is_unlocked
    _shot(kept.window, "join-failed-try-again")

    # Try again while the server is still away: it fails again, and is still kept.
    kept.try_again_and_fail()
    _shows_try_again(kept.wizard)
    assert first_sync_pending(ws)

    # The app is closed and started again: it offers the same, the password typed anew.
    kept.restart_app()
    _shows_try_again(kept.wizard)
    page = kept.page
    assert page.password.text() == ""
    # A wrong password opens nothing (the credential is behind the person's password).
    QTest.keyClicks(page.password, "not my password")
    kept.try_again_and_fail()
    assert "opens only with the user name and password it was started with" in page.error.text()
    assert kept.device_id not in page.error.text()  # nothing opened: not known here
    _shows_try_again(kept.wizard)
    _keyboard_in_the_password(qtbot, page)
    page.password.clear()
    QTest.keyClicks(page.password, PASSWORD)
    with kept.server_again():
        click(kept.wizard, COMMIT)
        finish(qtbot, kept.wizard)  # a new recovery key, shown once
        assert kept.wizard.recovery_page.device_note.text().startswith(
            f"The clinic server lists this workstation as device ID {kept.device_id} "
        )
        assert not first_sync_pending(ws)
        sign_in(qtbot, kept.window, ADMIN, PASSWORD)
        model = kept.window.workspace.patient_list.model
        qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=20_000)


def test_a_kept_attempt_can_be_discarded_for_a_new_code(qtbot: QtBot, kept_join: KeepJoin) -> None:
    kept = kept_join()
    ws, wizard, page = kept.ws, kept.wizard, kept.page
    _shows_try_again(wizard)
    # Asked first: Cancel keeps it...
    QTest.mouseClick(page.discard_button, Qt.MouseButton.LeftButton)
    box = page.confirm_box
    assert box is not None and box.isVisible()
    assert f"the device it enrolled ({kept.device_id}) stays listed" in box.text()
    cancel = box.button(QMessageBox.StandardButton.Cancel)
    QTest.mouseClick(cancel, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.confirm_box is None)
    assert first_sync_pending(ws) and page.discard_button.isVisible()
    # ...Discard removes it.
    QTest.mouseClick(page.discard_button, Qt.MouseButton.LeftButton)
    box = page.confirm_box
    assert box is not None
    discard = box.findChild(QPushButton, "confirmDiscardJoinButton")
    assert discard is not None
    QTest.mouseClick(discard, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.discard_button.isVisible(), timeout=5_000)
    assert not ws.is_initialized() and not first_sync_pending(ws)
    assert wizard.button(COMMIT).text() == "Join clinic"
    assert page.server_form.isVisible() and page.enroll_code.text() == ""
    assert not page.username.isReadOnly()
    assert wizard.button(QWizard.WizardButton.BackButton).isVisible()
    assert "join again with a new code" in page.error.text()
    # The device to revoke, by the ID the server lists it by.
    assert (
        f"the device it enrolled ({kept.device_id}) stays listed on the server" in page.error.text()
    )
    assert f"'careline-server admin device revoke {kept.device_id}'" in page.error.text()
    # The keyboard is in the first field left to fill in: the new code (the server's
    # address was typed before).
    assert page.server_url.text()
    qtbot.waitUntil(lambda: _keyboard_goes_to(page.enroll_code), timeout=5_000)


def _shows_a_fresh_join_page(wizard: FirstRunWizard) -> None:
    page = wizard.join_page
    assert wizard.button(COMMIT).text() == "Join clinic"
    assert not page.resume_note.isVisible() and not page.discard_button.isVisible()
    assert page.server_form.isVisible() and page.enroll_code.text() == ""
    assert not page.username.isReadOnly()
    assert wizard.button(QWizard.WizardButton.BackButton).isVisible()


def test_a_resume_whose_records_hold_no_account_returns_to_a_fresh_join(
    kept_join: KeepJoin,
) -> None:
    """Try again finishes the download, but the records hold no usable account for the
    person (the administrator deactivated it after the server checked it, before the code
    was spent): the attempt is removed, and the page asks for a new code again, saying so."""
    kept = kept_join(username="rita")
    ws, page = kept.ws, kept.page
    _shows_try_again(kept.wizard, "rita")
    with kept.server_again() as live:
        (clinic,) = live.server.registry.clinics()
        live.server.staff(clinic.id, lambda staff: staff.deactivate("rita"))
        kept.try_again_and_fail()
    assert not ws.is_initialized() and not first_sync_pending(ws)
    assert page.resuming is None
    _shows_a_fresh_join_page(kept.wizard)
    assert "no account rita" in page.error.text()
    assert "was removed: join again with a new code" in page.error.text()
    assert "no new code is needed" not in page.error.text()


def test_a_kept_attempt_is_opened_only_by_the_wizard(
    qtbot: QtBot, kept_join: KeepJoin, secret_service: dict[str, str]
) -> None:
    """With an OS keyring: a kept attempt gets no keyring slot (the keyring would open it
    for whoever sits here) until Try again has checked the person's account; started
    again, the app shows the wizard and opens nothing."""
    kept = kept_join()
    ws = kept.ws
    assert first_sync_pending(ws) and not ws.has_keyring_slot()
    kept.restart_app()
    _shows_try_again(kept.wizard)
    qtbot.wait(300)  # a keyring unlock, were one started, runs on the worker
    assert not ws.is_unlocked and kept.window.session is None
    QTest.keyClicks(kept.page.password, PASSWORD)
    with kept.server_again():
        click(kept.wizard, COMMIT)
        finish(qtbot, kept.wizard)
    assert not first_sync_pending(ws) and ws.has_keyring_slot()


def test_a_kept_attempt_discarded_after_a_restart_says_where_its_id_is(
    qtbot: QtBot, kept_join: KeepJoin
) -> None:
    """After a restart the device's ID is only in the kept credential, behind the person's
    password, and Discard asks for none: the message says where IT finds it, and does not
    invent one."""
    kept = kept_join()
    kept.restart_app()
    page = kept.page
    QTest.mouseClick(page.discard_button, Qt.MouseButton.LeftButton)
    box = page.confirm_box
    assert box is not None
    discard = box.findChild(QPushButton, "confirmDiscardJoinButton")
    assert discard is not None
    QTest.mouseClick(discard, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.discard_button.isVisible(), timeout=5_000)
    assert not first_sync_pending(kept.ws)
    assert kept.device_id not in page.error.text()
    assert (
        "('careline-server admin device revoke ID', the ID as 'careline-server admin device "
        "list' shows it beside this workstation's name)"
    ) in page.error.text()

"""The first-run wizard's join shows this computer's recovery key to an administrator only:
a front-desk person who joins is told that an administrator makes it, and nothing secret is
on screen (the key resets any account's password, an administrator's included). Real TLS
server in this process, real SQLCipher and key file, the wizard driven by mouse and
keyboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QWizard
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session.first_run import FirstRunWizard
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.enroll import default_device_name
from tests.integration.server_fixtures import Live, add_clinic
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory
from tests.ui.sync.test_join import COMMIT, activate, click, to_join_page

# Permissions enforced as in a clinic (the join runs on this process's worker).
pytestmark = pytest.mark.strict_authz

FINISH = QWizard.WizardButton.FinishButton
DESK = "rita"


def join_as(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory, username: str
) -> tuple[Workstation, MainWindow, FirstRunWizard]:
    """A new workstation's wizard: the server's address, a code, ``username`` and the
    password typed in, Join clinic clicked; returns once the clinic has arrived."""
    clinic_id = add_clinic(live.server, f"Harbour Clinic ({username})")
    live.server.add_user(clinic_id, DESK, "Rita Desk", "front_desk", PASSWORD, False)
    code, _ = live.server.registry.issue_enroll_code(clinic_id, 10)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(live.ca_pem)
    ws = Workstation(tmp_path / "new", kdf_params=FAST_PARAMS)
    window = make_window(ws)
    activate(qtbot, window)
    wizard = window.first_run
    assert wizard is not None
    to_join_page(wizard)
    page = wizard.join_page
    typed = ((page.server_url, live.url), (page.enroll_code, code), (page.ca_path, str(ca_file)),
             (page.username, username), (page.password, PASSWORD))  # fmt: skip
    for field, text in typed:
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    click(wizard, COMMIT)
    qtbot.waitUntil(lambda: wizard.currentPage() is not page, timeout=30_000)
    return ws, window, wizard


def shown_text(wizard: QWizard) -> str:
    """Every text the wizard shows on screen now."""
    return (
        "\n".join(label.text() for label in wizard.findChildren(QLabel) if label.isVisible())
        + wizard.currentPage().title()
    )


def test_a_front_desk_join_shows_no_recovery_key_and_says_who_makes_it(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, window, wizard = join_as(qtbot, live, tmp_path, make_window, DESK)
    assert wizard.currentPage() is wizard.no_key_page
    text = shown_text(wizard)
    assert "An administrator makes this computer's recovery key" in text
    assert "Settings → New recovery key…" in text
    # No key anywhere: not on screen, and none in the key file to have been shown.
    assert not wizard.recovery_page.isVisible() and wizard.recovery_page.key.text() == ""
    assert "recovery key:" not in text.lower() and "store your recovery key" not in text.lower()
    assert ws.keychain().recovery_slot() is None
    # Which device this computer is on the server, for IT (the name: the host name).
    (device,) = [d for d in live.server.registry.devices() if f"device ID {d.id} " in text]
    assert device.name == default_device_name()
    assert f"as “{device.name}”, device ID {device.id} (IT uses the ID" in text
    # Nothing to confirm storing: Finish goes straight on to sign in.
    click(wizard, FINISH)
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page)
    assert page.username.text() == DESK  # filled in: the person who just joined
    QTest.mouseClick(page.password, Qt.MouseButton.LeftButton)
    QTest.keyClicks(page.password, PASSWORD)
    QTest.keyClick(page.password, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    # Settings -> New recovery key... is not offered to her.
    assert not window.workspace.new_recovery_key_action.isVisible()


def test_an_administrators_join_still_shows_the_key_once_to_be_stored(
    qtbot: QtBot, live: Live, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws, _window, wizard = join_as(qtbot, live, tmp_path, make_window, ADMIN)
    assert wizard.currentPage() is wizard.recovery_page
    key = wizard.recovery_page.key.text()
    assert key and key in shown_text(wizard)
    # The key shown opens this computer's records.
    other = Workstation(ws.data_dir, FAST_PARAMS)
    other.unlock_with_recovery_key(key)
    other.lock()
    # Finish waits until the admin confirms storing it.
    assert not wizard.button(FINISH).isEnabled()
    stored = wizard.recovery_page.stored
    QTest.mouseClick(stored, Qt.MouseButton.LeftButton, pos=QPoint(8, stored.height() // 2))
    assert stored.isChecked() and wizard.button(FINISH).isEnabled()
    click(wizard, FINISH)
    assert wizard.recovery_page.key.text() == ""

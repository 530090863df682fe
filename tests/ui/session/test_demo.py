"""Exploring with sample data: the first-run wizard makes the demo clinic and opens it,
marked DEMO, apart from this computer's clinic folder; ``careline --demo`` opens it again."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QWizard
from pytestqt.qtbot import QtBot

from app.admin.backup import BackupDialog
from app.main_window import MainWindow
from app.session.first_run import FirstRunWizard
from core.crypto import sealed_file
from core.crypto.kdf import FAST_PARAMS
from core.records import demo
from core.records.workstation import Workstation
from tests.ui.conftest import WindowFactory, sign_in

PATIENTS = 25
PHRASE = "a long backup passphrase"


@pytest.fixture(autouse=True)
def _small_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wizard's demo with fewer patients: the same code path, a quicker test.
    monkeypatch.setattr(FirstRunWizard, "demo_patients", PATIENTS)


def _assert_demo_shown(window: MainWindow) -> None:
    banner = window.workspace.demo_banner
    assert banner.isVisible() and banner.text() == "DEMO — sample data, not real patients"
    assert window.windowTitle().startswith("DEMO — sample data, not real patients — ")
    assert demo.DEMO_CLINIC_NAME in window.windowTitle()
    assert window.workspace.clinic_label.text() == demo.DEMO_CLINIC_NAME
    assert not window.workspace.enroll_action.isVisible()  # a demo never syncs
    assert window.sync_status.text.text() == "Demo clinic: it never syncs with other computers."


def test_explore_with_sample_data_ends_signed_in_to_the_demo(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    home = fresh_workstation.data_dir
    window = make_window(fresh_workstation)
    wizard = window.first_run
    assert wizard is not None
    choice = wizard.clinic_page.demo_choice
    assert choice.isVisible() and choice.text() == "Explore with sample data"
    # Click on the label's first letters (a radio button reacts to its indicator and text).
    QTest.mouseClick(choice, Qt.MouseButton.LeftButton, pos=QPoint(30, choice.height() // 2))
    assert choice.isChecked() and not wizard.clinic_page.clinic_name.isEnabled()
    QTest.mouseClick(wizard.button(QWizard.WizardButton.NextButton), Qt.MouseButton.LeftButton)
    page = wizard.demo_page
    assert wizard.currentPage() is page
    assert str(demo.demo_folder(home)) in page.about.text()
    assert "demo-sample-data" in page.about.text()  # the sign-in, for next time
    finish = wizard.button(QWizard.WizardButton.FinishButton)
    assert finish.text() == "Open the demo"
    QTest.mouseClick(finish, Qt.MouseButton.LeftButton)
    assert page.bar.isVisible() and not finish.isEnabled(), page.error.text()
    qtbot.waitUntil(lambda: page.bar.maximum() == PATIENTS, timeout=20_000)  # progress shown
    qtbot.waitUntil(lambda: window.session is not None, timeout=30_000)

    assert window.session is not None and window.session.demo
    assert window.session.user.username == "demo"
    assert window.stack.currentWidget() is window.workspace
    _assert_demo_shown(window)
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == PATIENTS, timeout=10_000)
    # This computer's own clinic folder was never made: the next plain start is a first run.
    assert not home.exists()
    assert window.workstation.data_dir == demo.demo_folder(home)


def test_careline_demo_opens_the_existing_demo(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    home = tmp_path / "clinic"
    demo.create_demo(home, patients=8, kdf_params=FAST_PARAMS)
    window = make_window(Workstation(home, kdf_params=FAST_PARAMS), demo=True)
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page)
    assert page.username.text() == "demo"
    assert "DEMO — sample data" in page.notice.text() and "demo-sample-data" in page.notice.text()
    sign_in(qtbot, window, "demo", demo.DEMO_PASSWORD)
    _assert_demo_shown(window)


def test_careline_demo_without_a_demo_offers_to_make_it(
    qtbot: QtBot, fresh_workstation: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(fresh_workstation, demo=True)
    wizard = window.first_run
    assert wizard is not None and wizard.currentPage() is wizard.demo_page


def test_a_demo_backup_says_its_passphrase_alone_opens_it_and_asks_for_one(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    """The tester's report: Back up now… in the demo said "This computer's recovery key
    opens it", and the saved file "opens with the recovery key", but the demo never shows
    a recovery key. It now says only the passphrase opens it, and requires one."""
    home = tmp_path / "clinic"
    demo.create_demo(home, patients=8, kdf_params=FAST_PARAMS)
    window = make_window(Workstation(home, kdf_params=FAST_PARAMS), demo=True)
    sign_in(qtbot, window, "demo", demo.DEMO_PASSWORD)
    assert window.backups.backup_action.isVisible()  # the demo user is an administrator
    window.backups.backup_action.trigger()  # Settings → Back up now…
    dialog = window.backups.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)

    def said() -> str:
        return " ".join(label.text() for label in dialog.findChildren(QLabel) if label.isVisible())

    qtbot.waitUntil(lambda: "only the backup passphrase" in said(), timeout=5_000)
    assert "Nobody was shown the demo clinic's recovery key" in said()
    assert "recovery key opens it" not in said()
    assert dialog.use_passphrase.isChecked() and not dialog.use_passphrase.isEnabled()

    target = tmp_path / "demo.clbackup"
    for field, text in ((dialog.path, str(target)), (dialog.passphrase, PHRASE),
                        (dialog.repeat, PHRASE)):  # fmt: skip
        field.setFocus()
        QTest.keyClicks(field, text)
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.outcome.isVisible, timeout=15_000)
    assert "It opens with the passphrase." in dialog.outcome.text()
    assert "recovery key" not in dialog.outcome.text()
    with target.open("rb") as src:
        assert sealed_file.read_header(src, str(target)).kinds() == ["passphrase"]

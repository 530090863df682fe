"""Settings → Back up now… and Restore a backup…, driven as an administrator does, and the
scheduled backup with its retention: the work runs on the worker, the window stays live."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.admin.backup import BackupDialog, RestoreDialog
from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.backup import restored_identity
from core.sync.backup_schedule import backup_name, scheduled_backups
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in

PASSPHRASE = "a long backup passphrase"


def _backup_via_dialog(qtbot: QtBot, window: MainWindow, target: Path) -> None:
    tools = window.backups
    assert tools.backup_action.isVisible() and tools.restore_action.isVisible()
    tools.backup_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, BackupDialog)
    dialog.path.setText(str(target))
    dialog.use_passphrase.setChecked(True)
    dialog.passphrase.setText(PASSPHRASE)
    dialog.repeat.setText("a different one entirely")
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert "differ" in dialog.error.text() and not target.exists()
    dialog.repeat.setText(PASSPHRASE)
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.outcome.isVisible(), timeout=10_000)
    assert "recovery key or the passphrase" in dialog.outcome.text()
    assert target.exists()
    dialog.reject()


def test_an_admin_backs_up_and_restores_into_a_new_folder(
    qtbot: QtBot, signed_in: MainWindow, make_window: WindowFactory, tmp_path: Path
) -> None:
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, signed_in, target)

    signed_in.backups.restore_action.trigger()
    dialog = signed_in.backups.dialog
    assert isinstance(dialog, RestoreDialog)
    folder = tmp_path / "restored"
    dialog.backup.setText(str(target))
    dialog.folder.setText(str(folder))
    dialog.with_passphrase.setChecked(True)
    dialog.secret.setText(PASSPHRASE)
    dialog.username.setText(ADMIN)
    dialog.password.setText(PASSWORD)
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.outcome.isVisible() or dialog.error.isVisible(), timeout=15_000)
    assert dialog.outcome.isVisible(), dialog.error.text()
    assert "new workstation identity" in dialog.outcome.text()
    assert dialog.password.text() == "" and dialog.secret.text() == ""
    # The new recovery key, shown only once, is on screen whole: the open window grew
    # (it squeezed the key off, under squashed fields).
    qtbot.waitUntil(lambda: dialog.outcome.height() >= dialog.outcome.heightForWidth(
        dialog.outcome.width()), timeout=2_000)  # fmt: skip
    assert dialog.username.height() >= dialog.username.sizeHint().height()
    # Restored: the only way on is Close (no greyed Restore, nothing left to cancel).
    shown = [b for b in dialog.buttons.buttons() if b.isVisible()]
    assert [b.text() for b in shown] == ["Close"]
    QTest.mouseClick(shown[0], Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    restored = Workstation(folder, FAST_PARAMS)
    restored.sign_in(ADMIN, PASSWORD)
    assert len(restored.records.list_patients()) == 5
    assert restored_identity(restored.database) is not None
    restored.lock()
    # Opened in the app, the restored computer says it must join the clinic again.
    window = make_window(restored)
    sign_in(qtbot, window)
    notice = window.workspace.notice
    qtbot.waitUntil(lambda: "restored from a backup" in notice.text(), timeout=5_000)
    assert notice.isVisible()


@pytest.mark.strict_authz  # what is offered is read from the authorization model
def test_a_clinician_is_not_offered_backups(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    clinic.sign_in(ADMIN, PASSWORD)
    clinic.records.add_user("doc.lee", "Lee Doc", "clinician", "lee's own long password")
    clinic.sign_in("doc.lee", "lee's own long password")  # a first sign-in adds a key slot
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window, "doc.lee", "lee's own long password")
    assert not window.backups.backup_action.isVisible()
    assert not window.backups.restore_action.isVisible()


def test_the_schedule_backs_up_when_due_and_keeps_the_newest(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "scheduled"
    folder.mkdir()
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    for days in range(3):  # three backups from earlier days (any bytes: only names count)
        (folder / backup_name(old + dt.timedelta(days=days))).write_bytes(b"older")
    window = make_window(clinic)
    window.backups.schedule.configure(folder, 2, 24)
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: len([p for p in scheduled_backups(folder)
                                 if p.stat().st_size > 5]) == 1, timeout=10_000)  # fmt: skip
    # (The worker ran the sign-in's identity read before the backup: no restore notice.)
    assert "restored from a backup" not in window.workspace.notice.text()
    kept = scheduled_backups(folder)
    assert len(kept) == 2 and kept[-1].read_bytes()[:8] == b"CLBACKUP"
    window.backups.schedule.check()  # not due again: nothing new
    assert scheduled_backups(folder) == kept

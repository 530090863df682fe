"""Settings → Back up now… and Restore a backup…, driven as an administrator does, and the
scheduled backup with its retention: the work runs on the worker, the window stays live."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog
from pytestqt.qtbot import QtBot

from app.admin import backup as backup_module
from app.admin.backup import BackupDialog, RestoreDialog
from app.main_window import MainWindow
from core.crypto import sealed_file
from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import NoSlotError, WrongSecretError
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain
from core.records.workstation import Workstation
from core.sync import backup_schedule as schedule_module
from core.sync.attachments import Attachments
from core.sync.backup import (
    RestoreResult,
    read_backup_header,
    restore_backup,
    restored_identity,
)
from core.sync.backup_schedule import backup_name, scheduled_backups
from tests.attachment_content import as_named
from tests.ui.conftest import (
    ADMIN,
    PASSWORD,
    WindowFactory,
    answer_discard_by_keyboard,
    asks_nothing,
    held_on_the_worker,
    sign_in,
)

PASSPHRASE = "a long backup passphrase"


def recovery_key_opens(folder: Path, key: str) -> bool:
    """Whether ``key`` opens the recovery slot of the workstation in ``folder``."""
    try:
        Keychain.load(folder / KEYSLOT_FILE_NAME).unlock_with_recovery_key(key).close()
    except (NoSlotError, WrongSecretError):
        return False
    return True


def _staged_key(folder: Path) -> str | None:
    """The id of the recovery key staged (shown, not yet confirmed) in ``folder``."""
    staged = Keychain.load(folder / KEYSLOT_FILE_NAME).pending_recovery
    return None if staged is None else staged.slot_id


def key_slot_id(dialog: RestoreDialog) -> str:
    """The slot of the restored computer's key ``dialog`` shows."""
    assert dialog.restore_result is not None
    return dialog.restore_result.recovery_slot_id


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
    # Restored: the only way on is Close (no greyed Restore, nothing left to cancel), once
    # the person confirmed storing the new key.
    shown = [b for b in dialog.buttons.buttons() if b.isVisible()]
    assert [b.text() for b in shown] == ["Close"]
    assert not shown[0].isEnabled()
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert dialog.isVisible() and asks_nothing(dialog)
    key = dialog.outcome.text().rsplit("\n", 1)[-1]
    assert dialog.stored.hasFocus()
    QTest.keyClick(dialog.stored, Qt.Key.Key_Space)
    QTest.mouseClick(shown[0], Qt.MouseButton.LeftButton)
    assert not dialog.isVisible()
    assert recovery_key_opens(folder, key)
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


def test_a_typed_backup_form_asks_before_it_is_dropped_and_a_saved_one_closes_at_once(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    tools = signed_in.backups
    tools.backup_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)
    target = tmp_path / "asked.clbackup"
    dialog.path.setFocus()
    QTest.keyClicks(dialog.path, str(target))
    QTest.keyClick(dialog.path, Qt.Key.Key_Tab)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Space)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.passphrase, PASSPHRASE)
    QTest.keyClick(dialog.passphrase, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.passphrase.text() == PASSPHRASE
    dialog.repeat.setFocus()
    QTest.keyClicks(dialog.repeat, PASSPHRASE)
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.outcome.isVisible, timeout=10_000)
    assert target.exists()
    # Saved: the passphrase has left the form, and closing it loses nothing typed.
    assert (dialog.passphrase.text(), dialog.repeat.text()) == ("", "")
    QTest.keyClick(dialog.path, Qt.Key.Key_Escape)
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: tools.dialog is None)

    tools.restore_action.trigger()
    restore = tools.dialog
    assert isinstance(restore, RestoreDialog)
    qtbot.waitExposed(restore)
    restore.backup.setFocus()
    QTest.keyClicks(restore.backup, str(target))
    cancel = restore.buttons.button(restore.buttons.StandardButton.Cancel)
    QTest.mouseClick(cancel, Qt.MouseButton.LeftButton)
    answer_discard_by_keyboard(qtbot, restore, discard=False)
    assert restore.isVisible() and restore.backup.text() == str(target)
    QTest.mouseClick(cancel, Qt.MouseButton.LeftButton)
    answer_discard_by_keyboard(qtbot, restore)
    qtbot.waitUntil(lambda: tools.dialog is None)


def test_a_refused_backup_puts_the_keyboard_in_the_field_and_choose_answers_the_path(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tester's E5: "The folder … does not exist." stayed after Choose… put another
    file in the box, and after a refused passphrase the keyboard stayed in Repeat. Each
    refusal puts the keyboard in the field to correct; changing that field, by typing or
    by Choose…, takes the message away."""
    signed_in.backups.backup_action.trigger()
    dialog = signed_in.backups.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2_000)
    dialog.path.setFocus()
    QTest.keyClicks(dialog.path, str(tmp_path / "no such folder" / "b.clbackup"))
    QTest.keyClick(dialog.path, Qt.Key.Key_Tab)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Space)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.passphrase, "too short")
    QTest.keyClick(dialog.passphrase, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.repeat, "too short")
    QTest.keyClick(dialog.repeat, Qt.Key.Key_Return)
    assert dialog.error.isVisible()
    assert dialog.error.text().startswith("Choose a passphrase of at least 12 characters")
    assert dialog.passphrase.hasFocus() and dialog.passphrase.selectedText() == "too short"
    QTest.keyClicks(dialog.passphrase, PASSPHRASE)  # typed over: the message goes
    assert not dialog.error.isVisible()
    QTest.keyClick(dialog.passphrase, Qt.Key.Key_Return)
    assert dialog.error.text() == "The two passphrases differ."
    assert dialog.repeat.hasFocus()
    QTest.keyClicks(dialog.repeat, PASSPHRASE)
    assert not dialog.error.isVisible()
    QTest.keyClick(dialog.repeat, Qt.Key.Key_Return)  # core refuses the missing folder
    qtbot.waitUntil(dialog.error.isVisible, timeout=10_000)
    assert "does not exist" in dialog.error.text()
    qtbot.waitUntil(dialog.path.hasFocus, timeout=2_000)
    chosen = tmp_path / "chosen.clbackup"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *_a, **_k: (str(chosen), ""))
    QTest.mouseClick(dialog.choose_button, Qt.MouseButton.LeftButton)
    assert dialog.path.text() == str(chosen)
    assert not dialog.error.isVisible()


def test_a_refused_restore_puts_the_keyboard_in_the_field_in_error(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """A passphrase that does not open the backup is answered in the passphrase box (the
    keyboard stayed in Their password, the last one typed in); an empty field is the one
    the keyboard goes to."""
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, signed_in, target)
    dialog = _open_restore(qtbot, signed_in)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2_000)
    dialog.backup.setFocus()
    QTest.keyClicks(dialog.backup, str(target))
    QTest.keyClick(dialog.backup, Qt.Key.Key_Return)
    assert dialog.error.text() == "Fill in every field."
    assert dialog.folder.hasFocus()
    QTest.keyClicks(dialog.folder, str(tmp_path / "restored"))
    dialog.with_passphrase.setFocus()
    QTest.keyClick(dialog.with_passphrase, Qt.Key.Key_Space)
    dialog.secret.setFocus()
    QTest.keyClicks(dialog.secret, "not the passphrase at all")
    QTest.keyClick(dialog.secret, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.username, ADMIN)
    QTest.keyClick(dialog.username, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.password, PASSWORD)
    QTest.keyClick(dialog.password, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.error.isVisible, timeout=15_000)
    assert "does not open" in dialog.error.text()
    qtbot.waitUntil(dialog.secret.hasFocus, timeout=2_000)
    QTest.keyClicks(dialog.secret, PASSPHRASE)  # typed over: the message goes
    assert not dialog.error.isVisible()
    assert not (tmp_path / "restored").exists()


def test_a_saved_backup_leaves_only_close_and_return_closes_it(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    """Saved, the form is done: a second Return showed "… already exists" in red above the
    green "Saved …", with Back up and Cancel still offered, as if both were this outcome.
    The outcome says how many chart files the backup holds (T13: it held none, unsaid)."""
    records = signed_in.workstation.records
    patient = records.add_patient("Mensah", "Ama", "1980-01-01")
    xray = tmp_path / "chest-xray.png"
    xray.write_bytes(as_named("chest-xray.png", b"x-ray " * 5000))
    Attachments.for_records(records).add(patient.id, xray, title="Chest X-ray")
    tools = signed_in.backups
    tools.backup_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)
    target = tmp_path / "backups" / "b1.clbackup"
    target.parent.mkdir()
    dialog.path.setFocus()
    QTest.keyClicks(dialog.path, str(target))
    QTest.keyClick(dialog.path, Qt.Key.Key_Tab)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Space)
    QTest.keyClick(dialog.use_passphrase, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.passphrase, PASSPHRASE)
    QTest.keyClick(dialog.passphrase, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.repeat, PASSPHRASE)
    QTest.keyClick(dialog.repeat, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.outcome.isVisible, timeout=10_000)
    saved = target.read_bytes()
    assert dialog.outcome.text().startswith(f"Saved {target} (")
    assert "), with 1 chart file. It opens with" in dialog.outcome.text()
    shown = [b for b in dialog.buttons.buttons() if b.isVisible()]
    assert [b.text() for b in shown] == ["Close"] and shown[0].hasFocus()
    fields = (dialog.path, dialog.use_passphrase, dialog.passphrase, dialog.repeat)
    assert not any(f.isEnabled() for f in fields)  # what was saved, shown, not editable
    assert not dialog.error.isVisible()

    QTest.keyClick(shown[0], Qt.Key.Key_Return)  # Return again: closes, backs up nothing
    qtbot.waitUntil(lambda: tools.dialog is None)
    assert not dialog.error.isVisible()
    assert target.read_bytes() == saved and list(target.parent.iterdir()) == [target]


def test_a_restore_in_progress_cannot_be_closed_before_its_key_is_shown(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restored computer's new recovery key is shown once, when the restore ends: until
    then Escape, Cancel and the close button do nothing."""
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, signed_in, target)
    release = threading.Event()

    def held(*args: Any, **kwargs: Any) -> RestoreResult:
        release.wait(20)
        return restore_backup(*args, **kwargs)

    monkeypatch.setattr("app.admin.backup.restore_backup", held)
    tools = signed_in.backups
    tools.restore_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, RestoreDialog)
    qtbot.waitExposed(dialog)
    dialog.backup.setText(str(target))
    dialog.folder.setText(str(tmp_path / "restored"))
    dialog.with_passphrase.setChecked(True)
    dialog.secret.setText(PASSPHRASE)
    dialog.username.setText(ADMIN)
    dialog.password.setText(PASSWORD)
    try:
        QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert not dialog.buttons.button(dialog.buttons.StandardButton.Cancel).isEnabled()
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        dialog.close()  # the window's close button
        assert asks_nothing(dialog) and dialog.isVisible() and tools.dialog is dialog
    finally:
        release.set()
    qtbot.waitUntil(dialog.outcome.isVisible, timeout=15_000)
    assert "RECOVERY KEY" in dialog.outcome.text()
    QTest.keyClick(dialog, Qt.Key.Key_Escape)  # the key is not confirmed stored yet
    assert dialog.isVisible()
    QTest.keyClick(dialog.stored, Qt.Key.Key_Space)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)  # confirmed: it closes at once
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: tools.dialog is None)


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


def test_failing_scheduled_backups_are_said_above_the_pages_once_until_one_succeeds(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A backup disk gone (here: the folder's parent is a file) failed every ten minutes
    with a line in the status bar only, which nobody may see for weeks. The first failure
    stays above the pages, saying there is no backup yet; the next ones pass in the status
    bar; once one succeeds, a new run of failures is said again, with the newest
    backup's date."""
    disk = tmp_path / "disk"
    disk.write_text("not a folder")
    folder = disk / "backups"
    window = make_window(clinic)
    schedule = window.backups.schedule
    schedule.configure(folder, 3, 0)  # due at every check
    notice = window.workspace.notice
    sign_in(qtbot, window)
    qtbot.waitUntil(lambda: "Scheduled backup failed" in notice.text(), timeout=10_000)
    assert f"There is no scheduled backup in {folder} yet." in notice.text()
    assert "tell whoever looks after this computer's backups" in notice.text()
    first = notice.text()

    schedule.check()  # failing again: the status bar, not a second notice
    qtbot.waitUntil(lambda: not schedule.running, timeout=10_000)
    assert window.statusBar().currentMessage().startswith("Scheduled backup failed")
    assert notice.text() == first

    disk.unlink()  # the disk is back
    folder.mkdir(parents=True)
    schedule.check()
    qtbot.waitUntil(lambda: len(scheduled_backups(folder)) == 1, timeout=10_000)
    qtbot.waitUntil(lambda: not schedule.running, timeout=10_000)
    assert window.statusBar().currentMessage() == "Scheduled backup saved."
    made = scheduled_backups(folder)[0]

    window.workspace.hide_notice()

    # The disk fills up (nothing here can fill a real one): the notice says how old the
    # newest backup is, in this computer's time zone.
    real_write = sealed_file.write

    def disk_full(*args: Any, **kwargs: Any) -> None:
        real_write(*args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sealed_file, "write", disk_full)
    schedule.check()
    qtbot.waitUntil(lambda: "Scheduled backup failed" in notice.text(), timeout=10_000)
    # Said as what it is, naming the file, not as an error Careline did not expect.
    assert "Cannot write the backup " in notice.text()
    assert ".clbackup: No space left on device." in notice.text()
    assert "did not expect" not in notice.text()
    stamp = dt.datetime.strptime(made.name[16:32], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    assert (
        f"The newest scheduled backup in {folder} was made "
        f"{stamp.astimezone():on %Y-%m-%d at %H:%M}." in notice.text()
    )


def _sign_out_by(how: str, window: MainWindow) -> None:
    """Ctrl+L, or the auto-logoff (what the idle timer does when it runs out)."""
    if how == "ctrl+l":
        table = window.workspace.patient_list.table
        QTest.keyClick(table, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    else:
        window.idle.timed_out.emit()
    assert window.session is None


@pytest.mark.parametrize("how", ["ctrl+l", "auto-logoff"])
def test_a_scheduled_backup_running_at_sign_out_finishes_is_told_and_the_schedule_goes_on(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:  # fmt: skip
    """A sign-out cancelled the scheduled backup running then: the file was written but
    its outcome dropped, and the schedule kept waiting for it, so no scheduled backup ran
    again. Now it finishes whole, the person it ran under hears so at their next sign-in,
    and the next one is made when due."""
    folder = tmp_path / "scheduled"
    window = make_window(clinic)
    schedule = window.backups.schedule
    schedule.configure(folder, 7, 24)
    with held_on_the_worker(monkeypatch, schedule_module, "create_backup") as release:
        # Signed in, the backup is due (the folder is empty) and starts, held; the patient
        # list waits behind it on the worker.
        page = window.sign_in_page
        page.username.setText(ADMIN)
        page.password.setText(PASSWORD)
        QTest.keyClick(page.password, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
        assert schedule.running
        _sign_out_by(how, window)
        release.set()
        qtbot.waitUntil(lambda: not schedule.running, timeout=20_000)
    [made] = scheduled_backups(folder)
    assert read_backup_header(made).kind == "workstation"  # whole, and a real backup
    assert [p.name for p in folder.iterdir()] == [made.name]  # no partial file beside it
    sign_in(qtbot, window)
    assert window.statusBar().currentMessage() == "Scheduled backup saved."
    assert window.workspace.notice.text() == ""
    # Due again a day later (the backup made is renamed as if it were a day old): the
    # timer's next check backs up again.
    made.rename(folder / backup_name(dt.datetime.now(dt.UTC) - dt.timedelta(hours=25)))
    schedule.timer.timeout.emit()
    assert schedule.running
    qtbot.waitUntil(lambda: len(scheduled_backups(folder)) == 2, timeout=20_000)


def _fill_restore(dialog: RestoreDialog, backup: Path, folder: Path) -> None:
    dialog.backup.setText(str(backup))
    dialog.folder.setText(str(folder))
    dialog.with_passphrase.setChecked(True)
    dialog.secret.setText(PASSPHRASE)
    dialog.username.setText(ADMIN)
    dialog.password.setText(PASSWORD)


def _open_restore(qtbot: QtBot, window: MainWindow) -> RestoreDialog:
    window.backups.restore_action.trigger()
    dialog = window.backups.dialog
    assert isinstance(dialog, RestoreDialog)
    qtbot.waitExposed(dialog)
    return dialog


def _restored_key_shown(
    qtbot: QtBot, window: MainWindow, tmp_path: Path
) -> tuple[RestoreDialog, Path, str]:
    """A backup made in the app, restored into a new folder through Restore; the dialog,
    the folder and the restored computer's recovery key it now shows."""
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, window, target)
    folder = tmp_path / "restored"
    dialog = _open_restore(qtbot, window)
    _fill_restore(dialog, target, folder)
    QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.stored.isVisible, timeout=15_000)
    return dialog, folder, dialog.outcome.text().rsplit("\n", 1)[-1]


def test_a_restore_ending_after_the_auto_lock_withdraws_its_unseen_key(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auto-logoff closes Restore while it runs: the restore finishes, but its new
    recovery key never reaches the screen, so it is withdrawn rather than left to open the
    restored computer for nobody; the administrator is told at their next sign-in."""
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, signed_in, target)
    folder = tmp_path / "restored"
    dialog = _open_restore(qtbot, signed_in)
    _fill_restore(dialog, target, folder)
    with held_on_the_worker(monkeypatch, backup_module, "restore_backup") as release:
        QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        signed_in.idle.timed_out.emit()  # what the idle timer does
        assert signed_in.session is None and not dialog.isVisible()
        release.set()
        qtbot.waitUntil(lambda: signed_in.worker.pending == 0, timeout=20_000)
    chain = Keychain.load(folder / KEYSLOT_FILE_NAME)
    assert [s.kind for s in chain.slots] == ["password"]  # the restorer's, no recovery key
    sign_in(qtbot, signed_in)
    notice = signed_in.workspace.notice.text()
    assert f"The restore into {folder} finished, but its new recovery key was withdrawn" in notice
    assert "make a new recovery key there" in notice
    # The restored computer opens with the administrator's password, as the notice says.
    restored = Workstation(folder, FAST_PARAMS)
    restored.sign_in(ADMIN, PASSWORD)
    assert len(restored.records.list_patients()) == 5
    restored.lock()


def test_a_restored_key_left_unconfirmed_at_auto_lock_is_withdrawn(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    dialog, folder, key = _restored_key_shown(qtbot, signed_in, tmp_path)
    # On screen unconfirmed, the key is staged: it opens nothing yet.
    assert _staged_key(folder) == key_slot_id(dialog)
    assert not recovery_key_opens(folder, key)
    signed_in.idle.timed_out.emit()
    assert not dialog.isVisible() and key not in dialog.outcome.text()
    qtbot.waitUntil(lambda: signed_in.worker.pending == 0, timeout=10_000)
    assert _staged_key(folder) is None and not recovery_key_opens(folder, key)
    sign_in(qtbot, signed_in)
    assert "you were signed out before you confirmed storing it" in (
        signed_in.workspace.notice.text()
    )


def test_a_backup_failing_after_its_dialog_closed_is_told(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running backup's dialog closes at once; if the backup then fails, the window says
    so (the dialog that would have is gone)."""
    tools = signed_in.backups
    tools.backup_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, BackupDialog)
    qtbot.waitExposed(dialog)
    target = tmp_path / "no such folder" / "b.clbackup"
    dialog.path.setFocus()
    QTest.keyClicks(dialog.path, str(target))
    with held_on_the_worker(monkeypatch, backup_module, "create_backup") as release:
        QTest.keyClick(dialog.path, Qt.Key.Key_Return)
        QTest.keyClick(dialog.path, Qt.Key.Key_Escape)  # closes at once: the backup goes on
        assert asks_nothing(dialog)
        qtbot.waitUntil(lambda: tools.dialog is None)
        release.set()
        notice = signed_in.workspace.notice
        qtbot.waitUntil(lambda: "Back up now failed" in notice.text(), timeout=10_000)
    assert notice.isVisible()
    assert "No backup file was saved." in notice.text()
    assert not target.exists()


def test_a_backup_running_at_sign_out_is_told_at_the_next_sign_in(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = signed_in.backups
    tools.backup_action.trigger()
    dialog = tools.dialog
    assert isinstance(dialog, BackupDialog)
    target = tmp_path / "evening.clbackup"
    dialog.path.setText(str(target))
    with held_on_the_worker(monkeypatch, backup_module, "create_backup") as release:
        QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        signed_in.workspace.lock_action.trigger()  # Sign out
        assert not dialog.isVisible()
        release.set()
        qtbot.waitUntil(lambda: signed_in.worker.pending == 0, timeout=10_000)
    assert target.exists()
    sign_in(qtbot, signed_in)
    assert f"Saved {target}" in signed_in.workspace.notice.text()
    signed_in.workspace.lock_action.trigger()
    sign_in(qtbot, signed_in)
    assert signed_in.workspace.notice.text() == ""  # said once


def test_quitting_with_a_restored_key_unconfirmed_withdraws_it(
    qtbot: QtBot, signed_in: MainWindow, tmp_path: Path
) -> None:
    _, folder, key = _restored_key_shown(qtbot, signed_in, tmp_path)
    signed_in.close()  # Careline quits
    assert not signed_in.isVisible()
    assert not recovery_key_opens(folder, key)
    assert [s.kind for s in Keychain.load(folder / KEYSLOT_FILE_NAME).slots] == ["password"]


@pytest.mark.parametrize("how", ["close", "sigterm"])
def test_quitting_while_a_restore_runs_leaves_no_key_nobody_saw(
    qtbot: QtBot, signed_in: MainWindow, make_window: WindowFactory, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:  # fmt: skip
    """Careline quits (the window closed, or SIGTERM at a log-out: the event loop ends and
    ``run_app`` shuts the window down) while Restore runs. The restore ends as the worker
    stops, its result never reaches the screen: its recovery key used to stay in force on
    the restored computer with nobody holding it. Now it opens nothing there, and the
    restored computer says at its first sign-in that it has no recovery key and how to make
    one."""
    target = tmp_path / "now.clbackup"
    _backup_via_dialog(qtbot, signed_in, target)
    folder = tmp_path / "restored"
    dialog = _open_restore(qtbot, signed_in)
    for field, text in ((dialog.backup, str(target)), (dialog.folder, str(folder))):
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    QTest.mouseClick(dialog.with_passphrase, Qt.MouseButton.LeftButton)
    for field, text in ((dialog.secret, PASSPHRASE), (dialog.username, ADMIN),
                        (dialog.password, PASSWORD)):  # fmt: skip
        QTest.mouseClick(field, Qt.MouseButton.LeftButton)
        QTest.keyClicks(field, text)
    with held_on_the_worker(monkeypatch, backup_module, "restore_backup") as release:
        QTest.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
        assert dialog.must_stay_open()
        # Under way on the worker (a job still queued when the app quits never runs): let
        # it go and quit at once. The restore ends while the worker stops, and the GUI
        # thread never hears of it.
        assert release.entered.wait(20)
        release.set()
        if how == "close":
            signed_in.close()
        else:
            signed_in.shutdown()  # what run_app does once SIGTERM has ended the event loop
    # The test's window shares the test's worker, so quitting queues the lock behind the
    # restore instead of waiting for the thread (as the app's own window does): both done.
    qtbot.waitUntil(lambda: signed_in.worker.pending == 0, timeout=30_000)
    assert not signed_in.workstation.is_unlocked
    chain = Keychain.load(folder / KEYSLOT_FILE_NAME)  # the restore did finish
    assert chain.recovery_slot() is None and chain.pending_recovery is None
    assert [s.kind for s in chain.slots] == ["password"]
    # The restored computer opens with the administrator's password and says what to do.
    window = make_window(Workstation(folder, FAST_PARAMS))
    sign_in(qtbot, window)
    notice = window.workspace.notice
    qtbot.waitUntil(lambda: backup_module.NO_RECOVERY_KEY in notice.text(), timeout=10_000)
    assert "Settings → New recovery key…" in notice.text()


def test_a_restored_key_still_staged_when_careline_was_killed_is_withdrawn_at_its_first_open(
    tmp_path: Path, signed_in: MainWindow, qtbot: QtBot, make_window: WindowFactory
) -> None:
    """Killed with the restored computer's key on screen (no quitting code ran): the key
    is staged there, opening nothing, and the restored computer's first open withdraws it
    and says so at sign-in."""
    dialog, folder, key = _restored_key_shown(qtbot, signed_in, tmp_path)
    assert _staged_key(folder) == key_slot_id(dialog)
    assert not recovery_key_opens(folder, key)
    window = make_window(Workstation(folder, FAST_PARAMS))  # another Careline, after a kill
    sign_in(qtbot, window)
    notice = window.workspace.notice
    qtbot.waitUntil(lambda: backup_module.NO_RECOVERY_KEY in notice.text(), timeout=10_000)
    assert _staged_key(folder) is None and not recovery_key_opens(folder, key)

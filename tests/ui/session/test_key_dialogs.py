"""Passwords and keys in the desktop app: change password, the forgotten-password path on
the sign-in screen, a new recovery key, and re-encrypting the database. Real core, real
SQLCipher, the real worker thread."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TypeVar

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.session.key_dialogs import (
    IN_USE,
    NOT_CONFIRMED,
    NOT_MADE,
    REKEYED_LATER,
    ChangePasswordDialog,
    NewRecoveryKeyDialog,
    RecoverPasswordDialog,
    RekeyDialog,
)
from core.crypto.kdf import FAST_PARAMS
from core.keys.errors import WrongSecretError
from core.keys.keychain import Keychain
from core.records.errors import AuthenticationError
from core.records.workstation import RECOVERY_ACTOR, Workstation
from tests.ui.conftest import (
    ADMIN,
    ADMIN_NAME,
    CLINIC_NAME,
    PASSWORD,
    WindowFactory,
    asks_nothing,
    held_on_the_worker,
    new_clinic,
    sign_in,
)
from tests.unit.store.disk import snapshot

NEW_PASSWORD = "a fresh password here"
NURSE, NURSE_PASSWORD = "nurse.kim", "nurse's own password"


@pytest.fixture
def keyed_clinic(tmp_path: Path) -> tuple[Workstation, str]:
    """A locked clinic with one patient, and its recovery key."""
    ws = Workstation(tmp_path / "clinic", kdf_params=FAST_PARAMS)
    recovery = ws.init(CLINIC_NAME, ADMIN, ADMIN_NAME, PASSWORD)
    ws.records.add_patient("Garcia", "Maria", "1984-03-02")
    ws.lock()
    return ws, recovery


def password_opens(ws: Workstation, username: str, password: str) -> bool:
    """Whether ``password`` signs ``username`` in (checked on a separate Workstation)."""
    other = Workstation(ws.data_dir, kdf_params=FAST_PARAMS)
    try:
        other.sign_in(username, password)
    except AuthenticationError:
        return False
    finally:
        other.lock()
    return True


def recovery_opens(ws: Workstation, recovery: str) -> bool:
    other = Workstation(ws.data_dir, kdf_params=FAST_PARAMS)
    try:
        other.unlock_with_recovery_key(recovery)
    except WrongSecretError:
        return False
    finally:
        other.lock()
    return True


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


_Dialog = TypeVar("_Dialog", bound=QWidget)


def open_key_dialog(
    qtbot: QtBot, window: MainWindow, action: QAction, kind: type[_Dialog]
) -> _Dialog:
    """The key dialog ``action`` opens, shown."""
    action.trigger()
    dialog = window.key_dialog
    assert isinstance(dialog, kind)
    qtbot.waitExposed(dialog)
    return dialog


def open_change_password(qtbot: QtBot, window: MainWindow) -> ChangePasswordDialog:
    return open_key_dialog(
        qtbot, window, window.workspace.change_password_action, ChangePasswordDialog
    )


# ----- change password -----------------------------------------------------------------------


def test_change_password_then_the_old_one_is_refused(qtbot: QtBot, signed_in: MainWindow) -> None:
    window = signed_in
    assert window.workspace.change_password_action.isVisible()
    dialog = open_change_password(qtbot, window)
    assert dialog.heading.text() == f"Change the password of {ADMIN}"
    dialog.current.setText(PASSWORD)
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText(NEW_PASSWORD)
    click(dialog.save_button)
    qtbot.waitUntil(lambda: window.notice_box is not None, timeout=10_000)
    assert window.key_dialog is None
    assert window.notice_box is not None
    assert "Your password was changed" in window.notice_box.text()
    window.notice_box.accept()

    window.close_clinic()
    qtbot.waitUntil(lambda: not window.workstation.is_unlocked, timeout=10_000)
    page = window.sign_in_page
    page.username.setText(ADMIN)
    page.password.setText(PASSWORD)
    click(page.button)
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert page.error.text() == "Wrong user name or password."
    sign_in(qtbot, window, ADMIN, NEW_PASSWORD)
    assert window.session is not None


def test_change_password_runs_on_the_worker(
    qtbot: QtBot, signed_in: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = signed_in.workstation
    threads: list[str] = []
    real = ws.change_password

    def recorded(username: str, old: str, new: str) -> None:
        threads.append(threading.current_thread().name)
        real(username, old, new)

    monkeypatch.setattr(ws, "change_password", recorded)
    dialog = open_change_password(qtbot, signed_in)
    dialog.current.setText(PASSWORD)
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText(NEW_PASSWORD)
    dialog.save()
    # Handed over at once: the form is disabled and says what is happening.
    assert dialog.working and not dialog.save_button.isEnabled()
    assert not dialog.current.isEnabled()
    assert dialog.progress.text().startswith("Changing your password")
    qtbot.waitUntil(lambda: signed_in.key_dialog is None, timeout=10_000)
    assert threads and threads[0] != threading.main_thread().name


def test_a_password_being_changed_cannot_be_closed_away(
    qtbot: QtBot, signed_in: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once Change password runs, Escape, Cancel and the close button wait for it: closing
    then would leave the person not knowing their password had changed."""
    dialog = open_change_password(qtbot, signed_in)
    with held_on_the_worker(monkeypatch, signed_in.workstation, "change_password") as release:
        dialog.current.setFocus()
        QTest.keyClicks(dialog.current, PASSWORD)
        QTest.keyClick(dialog.current, Qt.Key.Key_Tab)
        QTest.keyClicks(dialog.new, NEW_PASSWORD)
        QTest.keyClick(dialog.new, Qt.Key.Key_Tab)
        QTest.keyClicks(dialog.confirm, NEW_PASSWORD)
        click(dialog.save_button)
        assert dialog.working
        assert not dialog.buttons.button(dialog.buttons.StandardButton.Cancel).isEnabled()
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        dialog.close()  # the window's close button
        assert asks_nothing(dialog) and dialog.isVisible() and signed_in.key_dialog is dialog
        release.set()
        qtbot.waitUntil(lambda: signed_in.key_dialog is None, timeout=10_000)
    assert signed_in.notice_box is not None  # told: the password was changed
    assert signed_in.notice_box.objectName() == "passwordChangedBox"


def test_change_password_mistakes_are_named_and_change_nothing(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    ws = signed_in.workstation
    keyfile = ws.keyfile_path.read_bytes()
    dialog = open_change_password(qtbot, signed_in)

    dialog.current.setText(PASSWORD)
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText(NEW_PASSWORD + "x")
    dialog.save()
    assert not dialog.working  # caught on screen, no work submitted
    assert dialog.errors["confirm"].text() == (
        "The two new passwords are different. Type them again."
    )
    assert dialog.confirm.text() == ""

    dialog.confirm.setText(NEW_PASSWORD)
    dialog.current.setText("not my password")
    dialog.save()
    qtbot.waitUntil(lambda: dialog.errors["current"].isVisible() and not dialog.working)
    assert dialog.errors["current"].text() == "Your current password is not correct."
    assert not dialog.errors["confirm"].isVisible()

    dialog.current.setText(PASSWORD)
    dialog.new.setText("short")
    dialog.confirm.setText("short")
    dialog.save()
    qtbot.waitUntil(lambda: dialog.strength.refused() and not dialog.working)
    assert dialog.errors["new"].text() == "Too short: at least 10 characters."

    dialog.new.setText(PASSWORD)
    dialog.confirm.setText(PASSWORD)
    dialog.save()
    assert dialog.errors["new"].text() == "The new password is the same as the current one."
    assert dialog.isVisible()
    dialog.reject()
    assert dialog.current.text() == "" and dialog.new.text() == ""  # not left in the widget
    assert ws.keyfile_path.read_bytes() == keyfile
    assert password_opens(ws, ADMIN, PASSWORD)


# ----- forgotten password ------------------------------------------------------------------


def open_recovery(qtbot: QtBot, window: MainWindow) -> RecoverPasswordDialog:
    page = window.sign_in_page
    qtbot.waitUntil(lambda: window.stack.currentWidget() is page)
    assert page.forgot_button.isVisible()
    assert page.forgot_button.text() == "Forgot password? Use the recovery key"
    click(page.forgot_button)
    dialog = page.recover_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    return dialog


def test_recovery_key_sets_a_new_password(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    ws, recovery = keyed_clinic
    window = make_window(ws)
    window.sign_in_page.username.setText(ADMIN)
    dialog = open_recovery(qtbot, window)
    assert dialog.username.text() == ADMIN  # carried over from the sign-in form
    dialog.recovery_key.setText(recovery.lower().replace("-", " "))
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText(NEW_PASSWORD)
    click(dialog.save_button)
    assert dialog.working
    page = window.sign_in_page
    qtbot.waitUntil(lambda: page.recover_dialog is None, timeout=10_000)
    assert page.notice.isVisible()
    assert page.notice.text() == f"A new password was set for {ADMIN}. Sign in with it now."
    assert page.username.text() == ADMIN
    # The database opened for the reset is locked again: the new password has to prove itself.
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    assert not ws.is_unlocked

    page.password.setText(PASSWORD)
    click(page.button)
    qtbot.waitUntil(lambda: page.error.isVisible() and not page.busy, timeout=10_000)
    assert page.error.text() == "Wrong user name or password."
    sign_in(qtbot, window, ADMIN, NEW_PASSWORD)
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    rows = ws.database.query(
        "SELECT actor FROM audit_log WHERE action = 'user.password_change' AND entity_id = ?",
        (f"user:{ADMIN}",),
    )
    assert [r[0] for r in rows] == [RECOVERY_ACTOR]


def test_wrong_recovery_key_is_explained_and_changes_nothing(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    ws, recovery = keyed_clinic
    window = make_window(ws)
    qtbot.waitUntil(lambda: window.worker.pending == 0)  # the quiet keyring attempt is over
    before = snapshot(ws.data_dir)
    dialog = open_recovery(qtbot, window)
    dialog.recovery_key.setText(recovery[:-4] + ("AAAA" if recovery[-4:] != "AAAA" else "BBBB"))
    dialog.username.setText(ADMIN)
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText(NEW_PASSWORD)
    dialog.save()
    qtbot.waitUntil(lambda: dialog.errors["recovery_key"].isVisible() and not dialog.working)
    assert dialog.errors["recovery_key"].text() == "This key does not open this computer's records."
    assert snapshot(ws.data_dir) == before

    dialog.recovery_key.setText(recovery)
    dialog.username.setText("ghost")
    dialog.save()
    qtbot.waitUntil(lambda: dialog.errors["username"].isVisible() and not dialog.working)
    assert dialog.errors["username"].text() == "There is no account named 'ghost' in this clinic."
    dialog.reject()
    assert password_opens(ws, ADMIN, PASSWORD)
    assert not password_opens(ws, ADMIN, NEW_PASSWORD)


def test_recovery_form_is_checked_before_any_work(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(clinic)
    dialog = open_recovery(qtbot, window)
    dialog.save()
    assert dialog.errors["recovery_key"].text() == "Enter the recovery key."
    dialog.recovery_key.setText("ABCD")
    dialog.username.clear()
    dialog.save()
    assert dialog.errors["username"].isVisible()
    dialog.username.setText(ADMIN)
    dialog.new.setText(NEW_PASSWORD)
    dialog.confirm.setText("something else")
    dialog.save()
    assert dialog.errors["confirm"].text() == "The two passwords are different. Type them again."
    assert not dialog.working
    # Closing the window closes the dialog too.
    window.shutdown()
    assert window.sign_in_page.recover_dialog is None


# ----- new recovery key --------------------------------------------------------------------


def key_opens(ws: Workstation, recovery: str) -> bool:
    """Whether ``recovery`` opens the recovery slot in force, read from the key file as it
    is now (a Workstation's open would also withdraw a key staged and not yet confirmed)."""
    try:
        Keychain.load(ws.keyfile_path).unlock_with_recovery_key(recovery).close()
    except WrongSecretError:
        return False
    return True


def staged_key_left(ws: Workstation) -> bool:
    """True while the key file holds a new recovery key that nobody confirmed."""
    return Keychain.load(ws.keyfile_path).pending_recovery is not None


def open_new_key(qtbot: QtBot, window: MainWindow) -> NewRecoveryKeyDialog:
    return open_key_dialog(
        qtbot, window, window.workspace.new_recovery_key_action, NewRecoveryKeyDialog
    )


def open_rekey(qtbot: QtBot, window: MainWindow) -> RekeyDialog:
    return open_key_dialog(qtbot, window, window.workspace.rekey_action, RekeyDialog)


def made_key(qtbot: QtBot, dialog: NewRecoveryKeyDialog) -> str:
    """Make a new key as a person does (Return on the first page) and wait for it."""
    QTest.keyClick(dialog.make_button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.key is not None, timeout=10_000)
    assert dialog.key is not None
    return dialog.key


def test_new_recovery_key_is_shown_once_and_replaces_the_old_once_confirmed(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    assert window.workspace.new_recovery_key_action.isVisible()
    dialog = open_new_key(qtbot, window)
    assert dialog.steps.currentWidget() is dialog.explain_page
    new = made_key(qtbot, dialog)
    assert new != old
    assert dialog.steps.currentWidget() is dialog.key_page
    assert dialog.recovery_page.key.text() == new
    # Shown, not yet confirmed: the previous key is still the one in force.
    assert key_opens(ws, old) and not key_opens(ws, new)
    assert new.encode() not in ws.keyfile_path.read_bytes()
    # The wizard's own page: the same advice and the same required confirmation.
    assert not dialog.done_button.isEnabled()
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    assert dialog.isVisible()  # Escape does not throw the key away
    stored = dialog.recovery_page.stored
    assert stored.hasFocus()
    QTest.keyClick(stored, Qt.Key.Key_Space)
    assert dialog.done_button.isEnabled()
    left_on_screen: list[str] = []
    dialog.finished.connect(lambda _r: left_on_screen.append(dialog.recovery_page.key.text()))
    click(dialog.done_button)
    qtbot.waitUntil(lambda: window.key_dialog is None and window.worker.pending == 0)
    assert left_on_screen == [""]
    rows = ws.database.query("SELECT actor FROM audit_log WHERE action = 'keys.recovery_replace'")
    assert [r[0] for r in rows] == [ADMIN]
    window.shutdown()
    assert not recovery_opens(ws, old)
    assert recovery_opens(ws, new)


def test_a_recovery_key_being_made_cannot_be_closed_away(
    qtbot: QtBot,
    keyed_clinic: tuple[Workstation, str],
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The new key is shown only once: while it is being made, Escape, Cancel and the close
    button do nothing."""
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    with held_on_the_worker(monkeypatch, ws, "stage_recovery_key") as release:
        click(dialog.make_button)
        assert dialog.working and not dialog.cancel_button.isEnabled()
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        dialog.close()  # the window's close button
        assert dialog.isVisible() and window.key_dialog is dialog
        release.set()
        qtbot.waitUntil(lambda: dialog.key is not None, timeout=10_000)
    new = dialog.key
    assert new is not None and dialog.recovery_page.key.text() == new
    dialog.recovery_page.stored.setChecked(True)
    click(dialog.done_button)
    qtbot.waitUntil(lambda: window.key_dialog is None and window.worker.pending == 0)
    window.shutdown()
    assert recovery_opens(ws, new) and not recovery_opens(ws, old)


def test_auto_lock_while_the_key_is_made_keeps_the_old_key_and_says_so_at_sign_in(
    qtbot: QtBot,
    keyed_clinic: tuple[Workstation, str],
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The auto-logoff closes the dialog before the new key reaches the screen: the key
    nobody saw never replaces the one the clinic holds, and the administrator learns it at
    their next sign-in."""
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    with held_on_the_worker(monkeypatch, ws, "stage_recovery_key") as release:
        click(dialog.make_button)
        window.idle.timed_out.emit()  # what the idle timer does
        assert window.session is None and not dialog.isVisible()
        release.set()
        qtbot.waitUntil(lambda: window.worker.pending == 0, timeout=10_000)
    assert key_opens(ws, old)
    assert not staged_key_left(ws)
    sign_in(qtbot, window)
    assert NOT_MADE in window.workspace.notice.text().split("\n")
    assert window.workspace.notice.isVisible()


def test_a_shown_key_nobody_confirmed_is_withdrawn_at_auto_lock(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    """The key was on screen, unconfirmed, when the auto-logoff came: it leaves the screen
    and is withdrawn; the previous key stays in force. Only the administrator who made it
    is told, at their own next sign-in."""
    ws, old = keyed_clinic
    ws.sign_in(ADMIN, PASSWORD)
    ws.records.add_user(NURSE, "Kim Nurse", "clinician", NURSE_PASSWORD)
    ws.sign_in(NURSE, NURSE_PASSWORD)  # a slot on this workstation
    ws.lock()
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    new = made_key(qtbot, dialog)
    window.idle.timed_out.emit()
    assert not dialog.isVisible()
    assert dialog.recovery_page.key.text() == "" and dialog.key is None
    qtbot.waitUntil(lambda: window.key_dialog is None and window.worker.pending == 0)
    assert key_opens(ws, old) and not key_opens(ws, new)
    assert not staged_key_left(ws)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    assert NOT_CONFIRMED not in window.workspace.notice.text()
    window.workspace.lock_action.trigger()
    sign_in(qtbot, window)
    assert NOT_CONFIRMED in window.workspace.notice.text().split("\n")


def test_a_key_confirmed_before_the_auto_lock_is_put_in_use(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    """The person ticked that they stored the key, and the auto-logoff came before Done:
    what they confirmed holds."""
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    new = made_key(qtbot, dialog)
    QTest.keyClick(dialog.recovery_page.stored, Qt.Key.Key_Space)
    window.idle.timed_out.emit()
    assert not dialog.isVisible() and dialog.recovery_page.key.text() == ""
    qtbot.waitUntil(lambda: window.worker.pending == 0, timeout=10_000)
    assert key_opens(ws, new) and not key_opens(ws, old)
    sign_in(qtbot, window)
    assert IN_USE in window.workspace.notice.text().split("\n")


def test_done_then_an_immediate_sign_out_still_puts_the_key_in_use(
    qtbot: QtBot,
    keyed_clinic: tuple[Workstation, str],
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    new = made_key(qtbot, dialog)
    with held_on_the_worker(monkeypatch, ws, "confirm_recovery_key") as release:
        QTest.keyClick(dialog.recovery_page.stored, Qt.Key.Key_Space)
        click(dialog.done_button)
        assert dialog.working and dialog.isVisible()  # it waits for the key to be in use
        QTest.keyClick(dialog, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)  # sign out
        assert window.session is None and not dialog.isVisible()
        release.set()
        qtbot.waitUntil(lambda: window.worker.pending == 0, timeout=10_000)
    assert key_opens(ws, new) and not key_opens(ws, old)
    assert not staged_key_left(ws)


def test_closing_before_confirming_asks_then_withdraws_the_new_key(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    new = made_key(qtbot, dialog)

    def question() -> QMessageBox | None:
        box = dialog.findChild(QMessageBox, "withdrawKeyQuestion")
        return box if box is not None and box.isVisible() else None

    dialog.close()  # the window's close button
    qtbot.waitUntil(lambda: question() is not None)
    box = question()
    assert box is not None
    assert "the previous recovery key keeps working" in box.informativeText()
    QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Escape)  # Keep it open
    qtbot.waitUntil(lambda: question() is None)
    assert dialog.isVisible() and dialog.recovery_page.key.text() == new
    dialog.close()
    qtbot.waitUntil(lambda: question() is not None)
    box = question()
    assert box is not None
    go = box.findChild(QPushButton, "withdrawKeyQuestionButton")
    assert go is not None and go.text() == "Close"
    click(go)
    qtbot.waitUntil(lambda: window.key_dialog is None and window.worker.pending == 0)
    assert key_opens(ws, old) and not key_opens(ws, new)
    assert not staged_key_left(ws)
    assert window.workspace.notice.text() == ""  # they chose it: nothing to tell them


@pytest.mark.parametrize("ticked", [False, True])
def test_quitting_settles_a_shown_key(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory, ticked: bool
) -> None:
    """Careline quits (the window closed) with a new key on screen: confirmed, it is put in
    force; not confirmed, it is withdrawn, before the database closes."""
    ws, old = keyed_clinic
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_new_key(qtbot, window)
    new = made_key(qtbot, dialog)
    if ticked:
        QTest.keyClick(dialog.recovery_page.stored, Qt.Key.Key_Space)
    window.close()
    assert not window.isVisible() and not ws.is_unlocked
    assert not staged_key_left(ws)
    assert key_opens(ws, new) is ticked and key_opens(ws, old) is not ticked


# ----- re-encrypting -----------------------------------------------------------------------


def test_rekey_keeps_password_and_recovery_key_working(
    qtbot: QtBot, keyed_clinic: tuple[Workstation, str], make_window: WindowFactory
) -> None:
    ws, recovery = keyed_clinic
    generation = ws.keychain().db_key.generation
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_rekey(qtbot, window)
    click(dialog.start_button)
    assert dialog.working and not dialog.start_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.steps.currentWidget() is dialog.done_page, timeout=20_000)
    assert dialog.generation == generation + 1
    assert "Passwords and the recovery key open them as before" in dialog.result_text.text()
    # The list still reads from the re-keyed database.
    window.workspace.patient_list.refresh()
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() == 1, timeout=10_000)
    click(dialog.close_button)
    qtbot.waitUntil(lambda: window.key_dialog is None)
    window.shutdown()
    assert ws.keychain().db_key.generation == generation + 1
    assert password_opens(ws, ADMIN, PASSWORD)
    assert recovery_opens(ws, recovery)


def test_a_rekey_in_progress_cannot_be_closed_away(
    qtbot: QtBot,
    keyed_clinic: tuple[Workstation, str],
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ws, _ = keyed_clinic
    generation = ws.keychain().db_key.generation
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_rekey(qtbot, window)
    with held_on_the_worker(monkeypatch, ws, "rekey") as release:
        click(dialog.start_button)
        assert dialog.working and not dialog.cancel_button.isEnabled()
        dialog.close()  # the window's close button
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        assert dialog.isVisible() and window.key_dialog is dialog
        release.set()
        qtbot.waitUntil(lambda: dialog.steps.currentWidget() is dialog.done_page, timeout=20_000)
    assert dialog.generation == generation + 1
    QTest.keyClick(dialog, Qt.Key.Key_Escape)  # done: it closes as usual
    qtbot.waitUntil(lambda: window.key_dialog is None)


def test_a_rekey_ending_after_the_auto_lock_is_told_at_the_next_sign_in(
    qtbot: QtBot,
    keyed_clinic: tuple[Workstation, str],
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The auto-logoff closes Re-encrypt while it runs: it finishes, and the administrator
    learns so when they sign in again (the dialog that would have said it is gone)."""
    ws, recovery = keyed_clinic
    generation = ws.keychain().db_key.generation
    window = make_window(ws)
    sign_in(qtbot, window)
    dialog = open_rekey(qtbot, window)
    with held_on_the_worker(monkeypatch, ws, "rekey") as release:
        click(dialog.start_button)
        window.idle.timed_out.emit()
        assert window.session is None and not dialog.isVisible()
        release.set()
        qtbot.waitUntil(lambda: window.worker.pending == 0, timeout=20_000)
    assert ws.keychain().db_key.generation == generation + 1
    sign_in(qtbot, window)
    assert REKEYED_LATER in window.workspace.notice.text().split("\n")
    window.shutdown()
    assert recovery_opens(ws, recovery) and password_opens(ws, ADMIN, PASSWORD)


def test_rekey_keeps_the_os_keyring_working(
    qtbot: QtBot, tmp_path: Path, secret_service: dict[str, str], make_window: WindowFactory
) -> None:
    ws = Workstation(tmp_path / "keyring-clinic", kdf_params=FAST_PARAMS)
    recovery = ws.init(CLINIC_NAME, ADMIN, ADMIN_NAME, PASSWORD)
    assert ws.keyring_note is None
    ws.lock()
    window = make_window(ws)
    qtbot.waitUntil(lambda: window.worker.pending == 0)
    assert ws.is_unlocked  # opened quietly with the keyring at start
    sign_in_page = window.sign_in_page
    sign_in_page.username.setText(ADMIN)
    sign_in_page.password.setText(PASSWORD)
    click(sign_in_page.button)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    window.show_rekey()
    dialog = window.key_dialog
    assert isinstance(dialog, RekeyDialog)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.steps.currentWidget() is dialog.done_page, timeout=20_000)
    assert "the recovery key and the OS keyring open them" in dialog.result_text.text()
    window.shutdown()
    other = Workstation(ws.data_dir, kdf_params=FAST_PARAMS)
    other.unlock_with_keyring()
    assert other.unlock_for(ADMIN).clinic_name() == CLINIC_NAME
    other.lock()
    assert recovery_opens(ws, recovery)
    assert password_opens(ws, ADMIN, PASSWORD)


# ----- roles -------------------------------------------------------------------------------


@pytest.mark.strict_authz  # core's refusal comes from the permission matrix
def test_a_clinician_sees_change_password_but_no_key_actions(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    ws = new_clinic(tmp_path / "clinic")
    ws.sign_in(ADMIN, PASSWORD)
    ws.records.add_user(NURSE, "Kim Nurse", "clinician", NURSE_PASSWORD)
    ws.sign_in(NURSE, NURSE_PASSWORD)  # a slot on this workstation
    ws.lock()
    keyfile = ws.keyfile_path.read_bytes()
    window = make_window(ws)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    workspace = window.workspace
    assert workspace.change_password_action.isVisible()
    assert not workspace.new_recovery_key_action.isVisible()
    assert not workspace.rekey_action.isVisible()
    assert not workspace.admin_separator.isVisible()
    # Core refuses too, in plain words, should a dialog be reached some other way.
    window.show_new_recovery_key()
    dialog = window.key_dialog
    assert isinstance(dialog, NewRecoveryKeyDialog)
    dialog.make_key()
    qtbot.waitUntil(lambda: dialog.error.isVisible() and not dialog.working, timeout=10_000)
    assert dialog.error.text() == "Only an admin can issue a new recovery key."
    assert dialog.key is None
    dialog.reject()
    qtbot.waitUntil(lambda: window.key_dialog is None)
    window.show_rekey()
    rekey = window.key_dialog
    assert isinstance(rekey, RekeyDialog)
    rekey.start()
    qtbot.waitUntil(lambda: rekey.error.isVisible() and not rekey.working, timeout=10_000)
    assert rekey.error.text().startswith("Only an admin can re-encrypt the database")
    rekey.reject()
    # The nurse changes their own password.
    qtbot.waitUntil(lambda: window.key_dialog is None)
    change = open_change_password(qtbot, window)
    change.current.setText(NURSE_PASSWORD)
    change.new.setText(NEW_PASSWORD)
    change.confirm.setText(NEW_PASSWORD)
    change.save()
    qtbot.waitUntil(lambda: window.notice_box is not None, timeout=10_000)
    window.notice_box.accept()  # type: ignore[union-attr]
    window.shutdown()
    assert ws.keychain().db_key.generation == 1
    assert ws.keyfile_path.read_bytes() != keyfile  # only the nurse's slot changed
    assert not password_opens(ws, NURSE, NURSE_PASSWORD)
    assert password_opens(ws, NURSE, NEW_PASSWORD)
    assert password_opens(ws, ADMIN, PASSWORD)

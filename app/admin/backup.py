"""Settings → "Back up now…" and "Restore a backup…" (administrators), and the scheduled
local backup (core.sync.backup and core.sync.backup_schedule do the work, on the worker).

A restore never replaces the clinic open here: it fills a new, empty folder with a new
workstation identity, which Careline then opens (``careline --data-dir FOLDER``) and which
joins the clinic again (Settings → Connect to server…, or a pairing code).

A backup or a restore goes on when its dialog closes (a backup's may be closed at once, a
sign-out closes either): its outcome is told to the person who started it
(app/session/outcomes.py). A restored computer's recovery key arrives staged, opening
nothing until the person confirms storing it; one nobody confirmed (the restore ended
after a sign-out closed its dialog, the key was on screen unconfirmed, or Careline quit or
was killed meanwhile) is withdrawn from it: a key is either held by someone or opens
nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractButton,
    QCheckBox,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.messages import describe_error
from app.session.key_dialogs import busy_bar, heading_label
from app.session.outcomes import Tell, tell_nobody
from app.widgets import (
    OneDialog,
    TypedForm,
    action_buttons,
    dialog_layout,
    error_label,
    form_layout,
    grow_to_fit,
    message_beside,
    paragraph,
)
from app.worker import Job, Worker
from core.crypto import sealed_file
from core.crypto.errors import DecryptionError
from core.crypto.kdf import Argon2Params
from core.keys.errors import NoSlotError
from core.records.errors import AuthenticationError, NotAllowedError, UnknownAccountError
from core.records.workstation import Workstation
from core.sync.backup import (
    BackupError,
    BackupResult,
    RestoreResult,
    confirm_recovery_key,
    create_backup,
    recovery_key_missing,
    restore_backup,
    restored_identity,
    withdraw_recovery_key,
)
from core.sync.backup_schedule import backup_into, is_due, last_backup_time

if TYPE_CHECKING:  # the main window imports this module
    from app.main_window import MainWindow

log = logging.getLogger(__name__)

SCHEDULE_CHECK_MS = 10 * 60 * 1000  # how often the timer looks whether a backup is due
NO_RECOVERY_KEY = (
    "This computer has no recovery key: the one made when it was restored was never "
    "confirmed as stored, so it was withdrawn. Until an "
    "administrator makes one (Settings → New recovery key…), only staff passwords open its "
    "records."
)


def _path_row(edit: QLineEdit, choose: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    layout.addWidget(choose)
    return row


def answered_by_edit(message: QLabel, *fields: QWidget) -> None:
    """The form's one ``message`` goes once the person changes a field it is about (as
    :func:`show_field_message` recorded): typed, or set by Choose…, which types nothing."""

    def changed(field: QWidget) -> None:
        if field in (message.property("aboutFields") or ()):
            message.hide()

    for field in fields:
        if isinstance(field, QLineEdit):
            field.textChanged.connect(lambda _text, f=field: changed(f))
        elif isinstance(field, QAbstractButton):
            field.toggled.connect(lambda _on, f=field: changed(f))


def show_field_message(form: QWidget, message: QLabel, text: str,
                       about: Sequence[QWidget]) -> None:  # fmt: skip
    """Show ``text`` in the form's one message; the keyboard goes to the first field it
    is about, its text selected to type over (a refusal is answered where it was made)."""
    message.setProperty("aboutFields", tuple(about))
    message.setText(text)
    message.show()
    grow_to_fit(form)
    if about:
        about[0].setFocus(Qt.FocusReason.OtherFocusReason)
        if isinstance(about[0], QLineEdit):
            about[0].selectAll()


class BackupDialog(TypedForm):
    """Back up now: a file, sealed to this computer's recovery key and, if wanted, a
    passphrase. The backup runs on the worker; the dialog shows it is busy meanwhile.

    On a computer whose recovery key nobody holds (``recovery_missing`` says why:
    core.sync.backup.recovery_key_missing, e.g. the demo clinic, which never shows one), the
    passphrase alone opens the backup: the dialog says so and the passphrase is required.

    A file or passphrase typed is not dropped unasked (``TypedForm``). While the backup
    runs, and once it is saved, nothing typed is lost by closing, so it closes at once.
    The form is never kept as a draft (a passphrase never is), and a saved backup's
    passphrase leaves the form. Saved, the form is done: its fields are greyed out and
    Close is the only button (Back up again refused the same file under the "Saved …"
    line, and the two read as one outcome); another backup is another Back up now…
    A backup still running when the dialog closes (or a sign-out closes it) finishes, and
    ``tell`` says to the person how it ended."""

    def __init__(self, worker: Worker, workstation: Workstation, actor: str,
                 parent: QWidget | None, tell: Tell = tell_nobody,
                 recovery_missing: str | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._worker, self._workstation, self._actor = worker, workstation, actor
        self._tell = tell
        self._job: Job[BackupResult] | None = None
        self.saved = False  # the backup is saved: the form is done
        self.setObjectName("backupDialog")
        self.setWindowTitle("Back up now")
        self.setMinimumWidth(560)
        self.path = QLineEdit()
        self.path.setPlaceholderText("Where to save the backup file")
        self.choose_button = choose = QPushButton("Choose…")
        choose.clicked.connect(self._choose)
        self.use_passphrase = QCheckBox("Also open it with a backup passphrase")
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        for field in (self.passphrase, self.repeat):
            field.setEnabled(False)
            self.use_passphrase.toggled.connect(field.setEnabled)
        form = form_layout()
        form.addRow("Backup file", _path_row(self.path, choose))
        form.addRow("", self.use_passphrase)
        form.addRow("Passphrase", self.passphrase)
        form.addRow("Repeat", self.repeat)
        self.error = error_label()
        answered_by_edit(self.error, self.path, self.passphrase, self.repeat,
                         self.use_passphrase)  # fmt: skip
        self.outcome = paragraph("", "notice")
        self.outcome.hide()
        self.busy = busy_bar()
        self.buttons, self.start_button = action_buttons(self, self.start, "Back up")
        self.about = paragraph("")
        self.recovery_missing: str | None = None
        self.set_recovery_key_missing(recovery_missing)
        dialog_layout(
            self,
            heading_label("Back up this computer's clinic records"),
            self.about,
            form,
            self.busy,
            self.outcome,
            message_beside(self.error, self.buttons),  # not above them: they stay put
        )

    def set_recovery_key_missing(self, reason: str | None) -> None:
        """Say what will open the backup: this computer's recovery key (``reason`` None),
        or, since nobody holds it (``reason`` says why), only the passphrase, which is then
        required (its box ticked for good). Told after the form opened (what the worker
        read), an untouched form stays untouched."""
        if self.saved:  # done: its "Saved …" line says what opens the file
            return
        untouched = not self.has_changes()
        self.recovery_missing = reason
        contents = (
            "The backup is a copy of the encrypted clinic database, taken while Careline "
            "keeps working, with the chart files this computer keeps, still encrypted: "
            "those added here (waiting to upload included) and those opened or fetched "
            "here. Not in it: files this computer never fetched; the clinic server or the "
            "computer that added them keeps them. "
        )
        if reason is None:
            opens = (
                "This computer's recovery key opens it (keep the key apart from the backup); "
                "a passphrase can open it too. Without one of them the file cannot be read."
            )
            self.use_passphrase.setText("Also open it with a backup passphrase")
        else:
            opens = (
                f"{reason}, so only the backup passphrase you choose here opens it (keep it "
                "apart from the backup). Without it the file cannot be read."
            )
            self.use_passphrase.setText("Open it with a backup passphrase (needed)")
            self.use_passphrase.setChecked(True)
        self.use_passphrase.setEnabled(reason is None)
        self.about.setText(contents + opens)
        if untouched:
            self.remember_state()
        grow_to_fit(self)

    def _choose(self) -> None:
        name = f"careline-backup-{dt.datetime.now():%Y-%m-%d}.clbackup"
        chosen, _ = QFileDialog.getSaveFileName(self, "Save the backup as", name,
                                                "Careline backups (*.clbackup)")  # fmt: skip
        if chosen:
            self.path.setText(chosen)

    def start(self) -> None:
        """Check the form, then back up on the worker."""
        if self._job is not None or self.saved:
            return
        self.error.hide()
        self.outcome.hide()  # an earlier outcome is not this attempt's
        text = self.path.text().strip()
        passphrase: str | None = None
        if not text:
            return self._show_error("Choose where to save the backup file.", self.path)
        if self.use_passphrase.isChecked():
            passphrase = self.passphrase.text()
            if len(passphrase) < sealed_file.MIN_PASSPHRASE:
                return self._show_error(
                    f"Choose a passphrase of at least {sealed_file.MIN_PASSPHRASE} characters.",
                    self.passphrase,
                )
            if passphrase != self.repeat.text():
                return self._show_error("The two passphrases differ.", self.repeat,
                                        self.passphrase)  # fmt: skip
        ws, actor, target = self._workstation, self._actor, Path(text)
        self.start_button.setEnabled(False)
        self.busy.show()
        self._job = self._worker.submit(
            lambda: create_backup(ws, target, passphrase, actor),
            self._done, self._failed, label="backup", outlives_session=True,
        )  # fmt: skip
        return None

    def has_changes(self) -> bool:
        """Typed and not yet handed over (a running backup finishes on the worker)."""
        return self._job is None and super().has_changes()

    def _show_error(self, text: str, *about: QWidget) -> None:
        """Show ``text``; the keyboard goes to the first of the fields it is about, and
        editing any of them takes the message away."""
        show_field_message(self, self.error, text, about)

    def _done(self, result: BackupResult) -> None:
        self._job = None
        self.busy.hide()
        # Saved: the passphrase is no longer needed on screen (Python cannot wipe the
        # strings, only drop them), and what the form holds now is nothing to lose.
        self.passphrase.clear()
        self.repeat.clear()
        self.remember_state()
        self.outcome.setText(describe_backup(result))
        self.outcome.show()
        # Done: nothing left to back up or to cancel, only to close (Return closes).
        self.saved = True
        for widget in (self.path, self.choose_button, self.use_passphrase,
                       self.passphrase, self.repeat):  # fmt: skip
            widget.setEnabled(False)
        self.start_button.hide()
        close = self.buttons.button(QDialogButtonBox.StandardButton.Cancel)
        close.setText("Close")
        close.setDefault(True)
        close.setFocus()
        grow_to_fit(self)

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.busy.hide()
        self.start_button.setEnabled(True)
        field = {"target": self.path, "passphrase": self.passphrase}.get(
            getattr(exc, "field", None) or ""
        )
        self._show_error(describe_error(exc), *([field] if field is not None else []))

    def done(self, result: int) -> None:
        """Close; the backup, if running, finishes on the worker (its file appears whole
        or not at all), and the person is told how it ended."""
        job, self._job = self._job, None
        if job is not None:
            tell = self._tell
            job.on_done = lambda saved: tell(describe_backup(saved), False)
            job.on_error = lambda exc: tell(
                f"Back up now failed: {describe_error(exc)} No backup file was saved.", True
            )
        super().done(result)


def describe_backup(result: BackupResult) -> str:
    """``Saved FILE (N bytes), with K chart files. It opens with the recovery key or the
    passphrase.``, and how many chart files it leaves out (not on this computer)."""
    opens = " or ".join("the recovery key" if k == "recovery" else "the passphrase"
                        for k in result.openers)  # fmt: skip
    text = (f"Saved {result.path} ({result.size:,} bytes), with {_files(result.attachments)}. "
            f"It opens with {opens}.")  # fmt: skip
    if result.not_held:
        text += (
            f" Not in it: {_files(result.not_held)} this computer never fetched (the clinic "
            "server or the computer that added them keeps them)."
        )
    return text


def _local(moment: dt.datetime) -> str:
    """``on 2026-12-03 at 14:20``, in this computer's time zone."""
    return f"on {moment.astimezone():%Y-%m-%d at %H:%M}"


def _files(count: int) -> str:
    return f"{count:,} chart file{'' if count == 1 else 's'}"


def withdrawn_notice(result: RestoreResult, why: str) -> str:
    """What the person is told when the restored computer's recovery key was withdrawn
    (``why``: the reason, as a clause)."""
    return (
        f"The restore into {result.data_dir} finished, but its new recovery key was "
        f"withdrawn: {why}. The restored computer opens with your password (careline "
        f"--data-dir {result.data_dir}); make a new recovery key there (Settings → New "
        "recovery key…)."
    )


class RestoreDialog(TypedForm):
    """Restore a backup into a new, empty folder, as a new workstation identity.

    What was typed is not dropped unasked (``TypedForm``). While the restore runs it
    cannot be closed (Cancel is disabled, Escape and the close button wait): the restored
    computer's new recovery key is shown only when it ends, staged (it opens nothing yet),
    and then only Close, once the person ticked that they stored the key, leaves it and
    puts the key in force. A sign-out closing it before then lets the restore finish and
    withdraws that key (nobody holds it), and ``tell`` says so to the person at their next
    sign-in; Careline quitting withdraws it too (:meth:`settle_now`), and if it is killed
    the restored computer's first open does. Never kept as a draft: it holds a key or
    passphrase and a password."""

    restored = Signal(object)  # RestoreResult

    def __init__(self, worker: Worker, kdf_params: Argon2Params, parent: QWidget | None,
                 tell: Tell = tell_nobody) -> None:  # fmt: skip
        super().__init__(parent)
        self._worker, self._kdf_params, self._tell = worker, kdf_params, tell
        self._job: Job[RestoreResult] | None = None
        self.restore_result: RestoreResult | None = None  # restored, its key on screen
        # The running restore's result, put here by the worker: read only once the worker
        # has stopped (quitting drops a result not yet delivered, not the key it made).
        self._landed: list[RestoreResult] = []
        self.setObjectName("restoreDialog")
        self.setWindowTitle("Restore a backup")
        self.setMinimumWidth(600)
        self.backup = QLineEdit()
        choose_file = QPushButton("Choose…")
        choose_file.clicked.connect(self._choose_backup)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("A new, empty folder")
        choose_folder = QPushButton("Choose…")
        choose_folder.clicked.connect(self._choose_folder)
        self.with_recovery = QRadioButton("Recovery key")
        self.with_recovery.setChecked(True)
        self.with_passphrase = QRadioButton("Backup passphrase")
        kinds = QWidget()
        row = QHBoxLayout(kinds)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.with_recovery)
        row.addWidget(self.with_passphrase)
        row.addStretch(1)
        self.secret = QLineEdit()
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        form = form_layout()
        form.addRow("Backup file", _path_row(self.backup, choose_file))
        form.addRow("Restore into", _path_row(self.folder, choose_folder))
        form.addRow("Open it with", kinds)
        form.addRow("Key or passphrase", self.secret)
        form.addRow("Administrator", self.username)
        form.addRow("Their password", self.password)
        self.error = error_label()
        answered_by_edit(self.error, self.backup, self.folder, self.with_recovery,
                         self.secret, self.username, self.password)  # fmt: skip
        self.outcome = paragraph("", "notice")
        self.outcome.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome.hide()
        self.stored = QCheckBox(
            "I have written down or printed the new recovery key and stored it safely"
        )
        self.stored.setObjectName("storedCheckbox")
        self.stored.hide()
        self.busy = busy_bar()
        self.buttons, self.start_button = action_buttons(self, self.start, "Restore")
        self.stored.toggled.connect(self._close_button().setEnabled)
        dialog_layout(
            self,
            heading_label("Restore a backup into a new folder"),
            paragraph(
                "The backup is restored into a new, empty folder; the clinic open here is not "
                "touched. The restored workstation takes a new identity: the clinic's other "
                "computers already hold changes numbered under the old one. Open Careline on "
                "the new folder, then join the clinic again (Settings → Connect to server…, or "
                "a pairing code): it keeps its records, sends the changes only it held and "
                "receives what was done elsewhere since the backup."
            ),
            form,
            self.busy,
            self.outcome,
            self.stored,
            message_beside(self.error, self.buttons),  # not above them: they stay put
        )

    def _close_button(self) -> QPushButton:
        return self.buttons.button(QDialogButtonBox.StandardButton.Cancel)

    def _choose_backup(self) -> None:
        kinds = "Careline backups (*.clbackup);;All files (*)"
        chosen, _ = QFileDialog.getOpenFileName(self, "Backup to restore", "", kinds)
        if chosen:
            self.backup.setText(chosen)

    def _choose_folder(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Restore into (a new, empty folder)")
        if chosen:
            self.folder.setText(chosen)

    def must_stay_open(self) -> bool:
        """While the restore runs, and while its key is on screen unconfirmed (see the
        class)."""
        return self._job is not None or self.unconfirmed

    def form_state(self) -> object:
        """What was typed or chosen (ticking that the key is stored is neither: it throws
        nothing away)."""
        state = super().form_state()
        if isinstance(state, dict):
            state.pop(self.stored, None)
        return state

    @property
    def unconfirmed(self) -> bool:
        """True while the restored computer's key is on screen and nobody confirmed storing
        it."""
        return self.restore_result is not None and not self.stored.isChecked()

    def start(self) -> None:
        """Check the form, then restore on the worker."""
        if self._job is not None:
            return
        self.error.hide()
        fields = (self.backup, self.folder, self.secret, self.username, self.password)
        empty = [f for f in fields if not f.text().strip()]
        if empty:
            show_field_message(self, self.error, "Fill in every field.", empty)
            return
        backup, folder = Path(self.backup.text().strip()), Path(self.folder.text().strip())
        kind = "recovery" if self.with_recovery.isChecked() else "passphrase"
        secret, user, password = (
            self.secret.text(),
            self.username.text().strip(),
            self.password.text(),
        )
        params, landed = self._kdf_params, self._landed

        def restore() -> RestoreResult:
            result = restore_backup(backup, folder, kind, secret, user, password,
                                    lambda ws: ws.sign_in(user, password), params,
                                    hold_recovery_key=True)  # fmt: skip
            landed.append(result)
            return result

        self.start_button.setEnabled(False)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(False)
        self.busy.show()
        self._job = self._worker.submit(restore, self._done, self._failed, label="restore",
                                        outlives_session=True)  # fmt: skip

    def _done(self, result: RestoreResult) -> None:
        self._job = None
        self.restore_result = result
        self._landed.clear()  # delivered: restore_result holds it
        self.busy.hide()
        self.password.clear()
        self.secret.clear()
        self.remember_state()  # restored: closing now throws nothing typed away
        join = ("It joins the clinic again once opened: Settings → Connect to server…, or a "
                "pairing code." if result.needs_join else "It certified its new identity "
                "itself (it holds the clinic's LAN certificate authority).")  # fmt: skip
        self.outcome.setText(
            f"Restored into {result.data_dir} as a new workstation identity. Open it with: "
            f"careline --data-dir {result.data_dir}. {join}\n\nIts new RECOVERY KEY (write it "
            f"down now, it is shown only once):\n{result.recovery_key}"
        )
        self.outcome.show()
        self.stored.show()
        # The new recovery key, shown only once, must be on screen whole, with the box
        # that confirms it was stored (the open window squeezed them off, under the form's
        # squashed fields).
        grow_to_fit(self)
        # Done: nothing left to restore or to cancel, only to close, once the person
        # confirmed storing the key.
        self.start_button.hide()
        close = self._close_button()
        close.setText("Close")
        close.setEnabled(False)
        self.stored.setFocus()
        self.restored.emit(result)

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.busy.hide()
        self.start_button.setEnabled(True)
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(True)
        show_field_message(self, self.error, describe_error(exc), self._fields_of_failure(exc))

    def _fields_of_failure(self, exc: Exception) -> list[QWidget]:
        """The fields a refused restore is about, the one to correct first: the backup
        file, the folder, the key or passphrase (or which of the two it is), the
        administrator or their password (none: no one field)."""
        secret: list[QWidget] = [self.secret, self.with_recovery]
        if isinstance(exc, BackupError):
            about: dict[str, list[QWidget]] = {
                "path": [self.backup], "data_dir": [self.folder], "secret": secret,
            }  # fmt: skip
            return about.get(exc.field or "", [])
        if isinstance(exc, DecryptionError):  # the key or passphrase does not open it
            return secret
        if isinstance(exc, UnknownAccountError | NotAllowedError):
            return [self.username]
        if isinstance(exc, AuthenticationError):
            return [self.password]
        return []

    def done(self, code: int) -> None:
        """Closed. Once the person confirmed storing the key shown, it goes in force.
        Closed by a sign-out: a restore still running finishes, and its key, never shown,
        is withdrawn; a key on screen unconfirmed is withdrawn too. Either way the person
        who started it is told at their next sign-in."""
        job, self._job = self._job, None
        worker, tell = self._worker, self._tell
        if self.restore_result is not None and not self.unconfirmed:
            # A small file write, here rather than on the worker: quitting right after Close
            # would drop a job still queued, and with it a key the person has stored.
            put_restored_key_in_force(tell, self.restore_result)
        elif job is not None:
            folder = self.folder.text().strip()
            job.on_done = lambda restored: withdraw_restored_key(
                worker, tell, restored, "it was never shown (you were signed out before the "
                "restore ended)",
            )  # fmt: skip
            job.on_error = lambda exc: tell(
                f"The restore into {folder} failed: {describe_error(exc)}", True
            )
        elif self.restore_result is not None and self.unconfirmed:
            why = "you were signed out before you confirmed storing it"
            withdraw_restored_key(worker, tell, self.restore_result, why)
        self.restore_result = None
        self.outcome.clear()  # the key leaves the screen
        super().done(code)

    def settle_now(self) -> None:
        """The app is quitting and its worker has stopped, here on this thread: a key the
        person confirmed storing goes in force; one on screen unconfirmed is withdrawn, and
        so is the key of a restore that was running (it may have ended while the worker
        stopped, its result never delivered: the key was never shown)."""
        restored = self.restore_result
        if restored is not None and not self.unconfirmed:
            put_restored_key_in_force(self._tell, restored)
        else:
            for result in [restored] if restored is not None else self._landed:
                try:
                    withdraw_recovery_key(result.data_dir, result.recovery_slot_id)
                except Exception as exc:  # quitting must not fail; its first open does it
                    log.warning("could not withdraw the restored computer's recovery key: %s",
                                exc)  # fmt: skip
        self.restore_result = None
        self._landed.clear()
        self._job = None


def put_restored_key_in_force(tell: Tell, result: RestoreResult) -> None:
    """The restored computer's recovery key, confirmed stored, goes in force; if it cannot,
    the person who restored it is told what to do."""
    try:
        confirm_recovery_key(result.data_dir, result.recovery_slot_id)
    except Exception as exc:
        why = (
            "it was withdrawn when the restored computer was opened before you confirmed storing it"
            if isinstance(exc, NoSlotError)
            else f"it could not be put in use ({describe_error(exc)})"
        )
        tell(withdrawn_notice(result, why), True)


def withdraw_restored_key(worker: Worker, tell: Tell, result: RestoreResult, why: str) -> None:
    """On ``worker``: the restored computer's recovery key goes (nobody confirmed storing
    it, ``why``), and the person who restored it is told so."""

    def withdrawn(_gone: bool) -> None:
        tell(withdrawn_notice(result, why), True)

    def not_withdrawn(exc: Exception) -> None:
        tell(
            f"The restore into {result.data_dir} finished, but its new recovery key, which "
            f"nobody confirmed storing, could not be withdrawn: {describe_error(exc)} Open "
            "the restored computer with your password and make a new recovery key there "
            "(Settings → New recovery key…).",
            True,
        )

    data_dir, slot_id = result.data_dir, result.recovery_slot_id
    worker.submit(lambda: withdraw_recovery_key(data_dir, slot_id), withdrawn, not_withdrawn,
                  label="withdraw restored recovery key", outlives_session=True)  # fmt: skip


class BackupSchedule(QObject):
    """The scheduled local backup: while someone is signed in, every ``SCHEDULE_CHECK_MS``
    the timer looks whether the newest backup in the folder is older than the interval,
    and if so backs up on the worker (sealed to the recovery key: no person is asked) and
    keeps the newest ``keep``.

    A backup running when the session ends (a sign-out, the auto-logoff) finishes: its
    file appears whole or not at all, and :attr:`finished` still says how it ended, for
    the person it ran under. Cancelled, its outcome was dropped and the schedule went on
    waiting for it: no scheduled backup ran again until Careline restarted."""

    finished = Signal(str, object)  # the actor; BackupResult, or the Exception it failed with

    def __init__(self, worker: Worker, workstation: Workstation, parent: QObject | None) -> None:
        super().__init__(parent)
        self._worker, self._workstation = worker, workstation
        self.folder: Path | None = None
        self.keep = 7
        self.every_hours = 24
        self.actor = ""
        self._job: Job[Any] | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(SCHEDULE_CHECK_MS)
        self.timer.timeout.connect(self.check)

    def configure(self, folder: Path | None, keep: int, every_hours: int) -> None:
        """The settings backup_dir, backup_keep, backup_every_hours (None: no schedule)."""
        self.folder, self.keep, self.every_hours = folder, keep, every_hours

    def start(self, actor: str) -> None:
        """Someone signed in: check now and then on the timer."""
        self.actor = actor
        if self.folder is not None:
            self.timer.start()
            self.check()

    def stop(self) -> None:
        """Signed out: no more backups until the next sign-in (one running finishes)."""
        self.timer.stop()

    @property
    def running(self) -> bool:
        """True while a scheduled backup is queued or running on the worker."""
        return self._job is not None

    def check(self) -> None:
        """Back up on the worker if one is due."""
        folder = self.folder
        if folder is None or self._job is not None:
            return
        if not is_due(folder, self.every_hours, dt.datetime.now(dt.UTC)):
            return
        ws, keep, actor = self._workstation, self.keep, self.actor
        self._job = self._worker.submit(
            lambda: backup_into(ws, folder, keep, actor)[0],
            lambda result: self._ended(actor, result),
            lambda exc: self._ended(actor, exc),
            label="scheduled backup", outlives_session=True,
        )  # fmt: skip

    def _ended(self, actor: str, outcome: BackupResult | Exception) -> None:
        self._job = None
        if isinstance(outcome, Exception):
            log.warning("scheduled backup failed: %s", outcome)
        self.finished.emit(actor, outcome)


class BackupTools(OneDialog):
    """Settings → "Back up now…" and "Restore a backup…" for administrators, and the
    schedule, on the main window; ``dialog``: the one open from here."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__()
        self._window = window
        self._kdf_params = window.workstation.kdf_params
        workspace = window.workspace
        self.backup_action = QAction("Back up now…", workspace)
        self.backup_action.setToolTip("Save an encrypted backup of this computer's clinic "
                                      "records (administrators only)")  # fmt: skip
        self.backup_action.triggered.connect(self.show_backup)
        self.restore_action = QAction("Restore a backup…", workspace)
        self.restore_action.setToolTip("Restore a backup into a new folder, as a new "
                                       "workstation (administrators only)")  # fmt: skip
        self.restore_action.triggered.connect(self.show_restore)
        before = workspace.new_recovery_key_action
        workspace.settings_menu.insertAction(before, self.backup_action)
        workspace.settings_menu.insertAction(before, self.restore_action)
        self.schedule = BackupSchedule(window.worker, window.workstation, window)
        self.schedule.finished.connect(self._scheduled)
        # Who has been told, above the pages, that scheduled backups are failing (until
        # one succeeds).
        self._failing_told: set[str] = set()
        # Why nobody holds this computer's recovery key (None: someone does), as read on
        # the worker at sign-in and again whenever Back up now… opens.
        self.recovery_missing: str | None = None
        window.sign_in_page.signed_in.connect(self._signed_in)
        window.locked.connect(self._signed_out)

    def _signed_in(self, session: Any) -> None:
        is_admin = session.may_administer
        self.backup_action.setVisible(is_admin)
        self.restore_action.setVisible(is_admin)
        if not session.demo:
            self.schedule.start(session.user.username)
        ws = self._window.workstation

        def restored() -> tuple[dict[str, Any] | None, bool, str | None]:
            has_key = ws.keychain().recovery_slot() is not None
            return restored_identity(ws.database), has_key, recovery_key_missing(ws)

        self._window.worker.submit(restored, self._show_restored,
                                   label="restored identity")  # fmt: skip

    def _show_restored(self, found: tuple[dict[str, Any] | None, bool, str | None]) -> None:
        """A restored workstation says, until it has joined again, that it must; and, while
        it has no recovery key (the one its restore made was never confirmed as stored),
        that an administrator makes one."""
        restored, has_recovery_key, missing = found
        self._set_recovery_missing(missing)
        if restored is None or self._window._session is None:
            return
        self._window.workspace.show_notice(
            "This computer was restored from a backup and took a new identity: it does not "
            "sync until it joins the clinic again (Settings → Connect to server…, or a "
            "pairing code). Its records are kept."
        )
        if not has_recovery_key:
            self._window.workspace.show_notice(NO_RECOVERY_KEY)

    def _signed_out(self) -> None:
        self.schedule.stop()
        self.close()

    def _scheduled(self, actor: str, outcome: object) -> None:
        """Said to the person the backup ran under: now, or at their next sign-in here. A
        success passes in the status bar. The first failure of a run of them stays above
        the pages, saying how old the newest backup is, once per person until a backup
        succeeds: a failing backup disk that only passed in the status bar every ten
        minutes could go unseen for weeks. The failures after it pass (one notice per
        attempt would pile up)."""
        if not isinstance(outcome, Exception):
            self._failing_told.clear()
            self._window.outcomes.tell(actor, "Scheduled backup saved.", passing=True)
            return
        text = f"Scheduled backup failed: {describe_error(outcome)}"
        if actor in self._failing_told:
            self._window.outcomes.tell(actor, text, passing=True)
            return
        self._failing_told.add(actor)
        folder = self.schedule.folder
        newest = last_backup_time(folder) if folder is not None else None
        since = (
            f"The newest scheduled backup in {folder} was made {_local(newest)}."
            if newest is not None
            else f"There is no scheduled backup in {folder} yet."
        )
        self._window.outcomes.tell(
            actor,
            f"{text} {since} Careline tries again every {SCHEDULE_CHECK_MS // 60_000} "
            "minutes while someone is signed in; tell whoever looks after this computer's "
            "backups (the backup_dir setting).",
            problem=True,
        )

    def show_backup(self) -> None:
        """Settings → Back up now…"""
        window = self._window
        if window._session is not None:
            actor = window._session.user.username
            tell = window.outcomes.teller(actor)
            self.open(BackupDialog(window.worker, window.workstation, actor, window, tell,
                                   self.recovery_missing))  # fmt: skip
            # A recovery key made or withdrawn since the sign-in changes what opens it.
            ws = window.workstation
            window.worker.submit(lambda: recovery_key_missing(ws), self._set_recovery_missing,
                                 label="recovery key held")  # fmt: skip

    def _set_recovery_missing(self, missing: str | None) -> None:
        self.recovery_missing = missing
        dialog = self.dialog
        if isinstance(dialog, BackupDialog) and dialog.recovery_missing != missing:
            dialog.set_recovery_key_missing(missing)

    def show_restore(self) -> None:
        """Settings → Restore a backup…"""
        window = self._window
        if window._session is not None:
            tell = window.outcomes.teller(window._session.user.username)
            self.open(RestoreDialog(window.worker, self._kdf_params, window, tell))

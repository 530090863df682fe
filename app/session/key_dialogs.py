"""Passwords and keys: change your own password, set a forgotten password with the recovery
key, make a new recovery key, and re-encrypt the database under a new key.

Each dialog checks what it can on the GUI thread (empty fields, two passwords that differ)
and runs the rest on the :class:`~app.worker.Worker`: every Argon2id derivation and the
``PRAGMA rekey`` take long enough to freeze a screen. Dialogs are opened with ``open()``
(window-modal, no nested event loop) so an auto-lock can close them, and a job still
running when a dialog closes is not reported back to it. Two steps outlive their dialog:
a re-encryption finishes and a new recovery key is put in force or withdrawn, and the
person who started them is told how it ended (app/session/outcomes.py). Core decides who
may do what (``Workstation.require``, the permission matrix); the screens only hide
actions a person cannot use.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeyEvent
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.session.first_run import ClinicCreated, RecoveryPage
from app.session.outcomes import Tell, tell_nobody
from app.session.strength_hint import StrengthHint, worded
from app.widgets import (
    MessageSlot,
    TypedForm,
    action_buttons,
    ask_first,
    dialog_layout,
    error_label,
    form_layout,
    paragraph,
)
from app.worker import Job, Worker
from core.keys.errors import NoSlotError, WrongSecretError
from core.records.errors import AuthenticationError, NotFoundError, ValidationError
from core.records.workstation import Workstation

log = logging.getLogger(__name__)


def password_field(name: str, placeholder: str = "") -> QLineEdit:
    """A line edit that hides what is typed."""
    field = QLineEdit()
    field.setObjectName(name)
    field.setEchoMode(QLineEdit.EchoMode.Password)
    if placeholder:
        field.setPlaceholderText(placeholder)
    return field


def heading_label(text: str) -> QLabel:
    """A dialog's heading, in the style every dialog uses."""
    label = QLabel(text)
    label.setObjectName("dialogHeading")
    return label


def busy_bar() -> QProgressBar:
    """A thin, hidden, indeterminate bar shown while the worker runs."""
    bar = QProgressBar()
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setMaximumHeight(8)
    bar.hide()
    return bar


class FormDialog(TypedForm):
    """A form whose fields each have an error line (gone once the field is edited),
    submitted once to the worker; it asks before Escape or Cancel drop what was typed.

    Subclasses make ``buttons`` and ``save_button`` (their primary button, with
    :func:`app.widgets.action_buttons`); it is disabled while the job runs, so the form is
    not submitted twice. While the job runs the person cannot leave either (Cancel is
    disabled, Escape and the close button wait): the password is being changed, and
    closing would hide whether it was (a sign-out still closes the form)."""

    buttons: QDialogButtonBox
    save_button: QPushButton
    # Choosing a role made its message go and the form move up under the pointer: the
    # click aimed at First password landed on nothing, and the password typed next went
    # into Role. A message put right keeps its lines until the next save.
    KEEPS_MESSAGE_ROOM = True

    def __init__(self, worker: Worker, parent: QWidget | None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._job: Job[None] | None = None
        self.inputs: dict[str, QLineEdit] = {}
        self.errors: dict[str, QLabel] = {}
        self.progress = paragraph("", "hint")
        self.progress.hide()
        self.busy = busy_bar()

    def add_rows(
        self,
        rows: list[tuple[str, str, QLineEdit]],
        form: QFormLayout | None = None,
        hint: StrengthHint | None = None,
    ) -> QFormLayout:
        """``(caption, field, widget)`` rows with an error line under each, in a new form
        or added at the end of ``form``. ``hint``: the message place of the field it
        follows (a new password's), instead of an error line."""
        form = form if form is not None else form_layout()
        for caption, field, widget in rows:
            self.inputs[field] = widget
            form.addRow(caption, widget)
            if hint is not None and hint.field is widget:
                self.errors[field] = hint
                self.answers_to(widget, hint)
                form.addRow("", hint)
                continue
            self.errors[field] = error_label()
            self.clears_on_edit([(widget, self.errors[field])])
            form.addRow("", MessageSlot(self.errors[field]))
        return form

    @property
    def working(self) -> bool:
        """True while the worker runs this dialog's job."""
        return self._job is not None

    def show_error(self, field: str | None, text: str) -> None:
        """Show ``text`` under ``field`` (or below the form) and move focus there."""
        label = self.errors.get(field or "", self.general_error)
        label.setText(text)
        label.show()
        # The dialog has a minimum width, so Qt does not grow it for a message that wraps:
        # make room, or the form rows get squeezed together. (A one-line message fits, and
        # Qt's estimate for it would only add a gap.)
        column = self.inputs[field].width() if field in self.inputs else self.width() - 48
        if label.fontMetrics().horizontalAdvance(text) > column:
            self._make_room()
        if field in self.inputs:
            self.inputs[field].setFocus()
            self.inputs[field].selectAll()

    def _make_room(self) -> None:
        layout = self.layout()
        if layout is None:
            return
        layout.activate()
        needed = layout.totalHeightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)

    def show_errors(self, problems: Mapping[str, str]) -> bool:
        """Show every message of ``problems`` (field -> text) at once, the keyboard in the
        first field in error in the form's order, its text selected; False when none."""
        return self.show_problems({self.errors[f]: text for f, text in problems.items()}, True)

    @staticmethod
    def new_password_problems(
        field: str, new: str, confirm: QLineEdit, what: str, strength: StrengthHint | None = None
    ) -> dict[str, str]:
        """What is wrong with a new password typed into ``field`` and repeated in
        ``confirm`` (``what`` names the pair), by field, all at once: a password too
        short or too easy to guess (core's check, with ``strength``'s words for easy
        guesses), a repeat that differs (emptied, to be typed again). Core checks the
        strength again on saving; said here too, the keyboard goes to the password, the
        first field in error, not on to Repeat."""
        if not new:
            return {field: "Enter a new password."}
        problems: dict[str, str] = {}
        weak = strength.refusal() if strength is not None else None
        if weak is not None:
            problems[field] = weak
        if new != confirm.text():
            confirm.clear()
            problems["confirm"] = f"The two {what} are different. Type them again."
        return problems

    def clear_errors(self) -> None:
        """Hide every message (a password's hint says its live verdict again, in the
        room it always keeps). The room of messages put right is given back as the check
        shows its messages (:meth:`TypedForm.show_problems`)."""
        for label in (*self.errors.values(), self.general_error):
            if isinstance(label, StrengthHint):
                label.update_hint()
                continue
            label.clear()
            label.hide()

    def run(self, fn: Callable[[], None], busy_text: str) -> None:
        """Run ``fn`` on the worker, showing ``busy_text`` meanwhile."""
        self._set_busy(True, busy_text)
        self._job = self._worker.submit(fn, self._finished, self._failed_job, label=busy_text)

    def _set_busy(self, busy: bool, text: str = "") -> None:
        for widget in self.inputs.values():
            widget.setEnabled(not busy)
        self.progress.setText(text)
        self.progress.setVisible(busy)
        self.busy.setVisible(busy)
        self.save_button.setEnabled(not busy)  # no second save while the first runs
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(not busy)

    def must_stay_open(self) -> bool:
        """While the job runs (see the class)."""
        return self.working

    def _finished(self, _result: None) -> None:
        self._job = None
        self._set_busy(False)
        self.succeeded()

    def _failed_job(self, exc: Exception) -> None:
        self._job = None
        self._set_busy(False)
        self.failed(exc)

    def succeeded(self) -> None:
        """The worker finished the job."""

    def failed(self, exc: Exception) -> None:
        """The worker's job raised ``exc``."""
        if isinstance(exc, ValidationError):
            label = self.errors.get(exc.field)
            words = worded(exc) if isinstance(label, StrengthHint) else validation_text(exc)
            self.show_error(exc.field, words)
        else:
            self.show_error(None, describe_error(exc))

    def clear_secrets(self) -> None:
        """Empty every password field (Python cannot wipe the strings, only drop them)."""
        for widget in self.inputs.values():
            if widget.echoMode() == QLineEdit.EchoMode.Password:
                widget.clear()

    def done(self, result: int) -> None:
        """Close; a job still in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self.clear_secrets()
        super().done(result)


class ChangePasswordDialog(FormDialog):
    """The signed-in person changes their own password (Settings → Change password…)."""

    changed = Signal()

    def __init__(
        self, worker: Worker, workstation: Workstation, username: str, parent: QWidget | None
    ) -> None:
        super().__init__(worker, parent)
        self._workstation = workstation
        self.username = username
        self.setObjectName("changePasswordDialog")
        self.setWindowTitle("Change password")
        self.setMinimumWidth(480)
        self.current = password_field("currentPassword")
        self.new = password_field("newPassword", "At least 10 characters")
        self.confirm = password_field("confirmPassword")
        self.strength = StrengthHint(self.new, lambda: (username,))
        form = self.add_rows(
            [
                ("Current password", "current", self.current),
                ("New password", "new", self.new),
                ("Repeat new password", "confirm", self.confirm),
            ],
            hint=self.strength,
        )
        intro = paragraph(
            "Choose a password of at least 10 characters that you do not use anywhere else. "
            "Your password also unlocks the clinic's records on this computer.",
            "hint",
        )
        self.buttons, self.save_button = action_buttons(self, self.save, "Change password")
        self.heading = heading_label(f"Change the password of {username}")
        dialog_layout(
            self,
            self.heading,
            intro,
            form,
            self.general_error,
            self.progress,
            self.busy,
            self.buttons,
            room_above_last=True,
        )
        self.current.setFocus()

    def save(self) -> None:
        """Check the form, then change the password on the worker."""
        if self.working:
            return
        self.clear_errors()
        current, new = self.current.text(), self.new.text()
        problems = {"current": "Enter your current password."} if not current else {}
        problems |= self.new_password_problems(
            "new", new, self.confirm, "new passwords", self.strength
        )
        if not problems and new == current:
            problems["new"] = "The new password is the same as the current one."
        if self.show_errors(problems):
            return
        ws, username = self._workstation, self.username
        self.run(
            lambda: ws.change_password(username, current, new),
            "Changing your password… This takes a few seconds.",
        )

    def succeeded(self) -> None:
        """Close and let the window say it worked."""
        self.changed.emit()
        self.accept()

    def failed(self, exc: Exception) -> None:
        """A wrong current password is named as such; the rest as core says."""
        if isinstance(exc, AuthenticationError):
            self.current.clear()
            self.show_error("current", "Your current password is not correct.")
        elif isinstance(exc, ValidationError) and exc.field == "password":
            self.show_error("new", worded(exc))
        else:
            super().failed(exc)


class RecoverPasswordDialog(FormDialog):
    """From the sign-in screen: open with the recovery key and set a new password."""

    recovered = Signal(str)  # the user name whose password was set

    def __init__(
        self, worker: Worker, workstation: Workstation, username: str, parent: QWidget | None
    ) -> None:
        super().__init__(worker, parent)
        self._workstation = workstation
        self.setObjectName("recoverPasswordDialog")
        self.setWindowTitle("Forgotten password")
        self.setMinimumWidth(560)
        self.recovery_key = QLineEdit()
        self.recovery_key.setObjectName("recoveryKeyInput")
        self.recovery_key.setPlaceholderText("XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXXX")
        # Shown while typing: it is copied from paper, and hidden characters invite mistakes.
        self.username = QLineEdit(username)
        self.username.setObjectName("recoverUsername")
        self.new = password_field("recoverNewPassword", "At least 10 characters")
        self.confirm = password_field("recoverConfirm")
        self.strength = StrengthHint(self.new, lambda: (self.username.text(),))
        form = self.add_rows(
            [
                ("Recovery key", "recovery_key", self.recovery_key),
                ("User name", "username", self.username),
                ("New password", "password", self.new),
                ("Repeat password", "confirm", self.confirm),
            ],
            hint=self.strength,
        )
        intro = paragraph(
            "The recovery key was shown once when Careline was set up on this computer, as "
            "eight groups of letters and digits. It is usually kept on paper, for example in "
            "the clinic safe. With it you can choose a new password for any staff account.",
            "hint",
        )
        note = paragraph(
            "Each computer has its own recovery key; capital letters, spaces and dashes do "
            "not matter. The change is recorded in the audit log.",
            "hint",
        )
        self.buttons, self.save_button = action_buttons(self, self.save, "Set new password")
        dialog_layout(
            self,
            heading_label("Set a new password with the recovery key"),
            intro,
            form,
            note,
            self.general_error,
            self.progress,
            self.busy,
            self.buttons,
            room_above_last=True,
        )
        self.recovery_key.setFocus()

    def save(self) -> None:
        """Check the form, then prove the key and set the password on the worker."""
        if self.working:
            return
        self.clear_errors()
        key = self.recovery_key.text().strip()
        username = self.username.text().strip()
        new = self.new.text()
        problems = {"recovery_key": "Enter the recovery key."} if not key else {}
        if not username:
            problems["username"] = "Enter the user name whose password you are setting."
        problems |= self.new_password_problems(
            "password", new, self.confirm, "passwords", self.strength
        )
        if self.show_errors(problems):
            return
        ws = self._workstation
        self._username = username.lower()
        self.run(
            lambda: ws.recover_password(key, username, new),
            "Checking the recovery key and saving the new password…",
        )

    def clear_secrets(self) -> None:
        """The recovery key goes too, whichever way the dialog closes."""
        super().clear_secrets()
        self.recovery_key.clear()

    def succeeded(self) -> None:
        """Close; the sign-in screen says what to do next."""
        self.recovered.emit(self._username)
        self.accept()

    def failed(self, exc: Exception) -> None:
        """Name the field that was wrong, in words for the person holding the paper."""
        if isinstance(exc, WrongSecretError):
            # One line under the field (a form row does not grow for more); the note
            # below the form says what to check.
            self.show_error("recovery_key", "This key does not open this computer's records.")
        elif isinstance(exc, NoSlotError):
            self.show_error(None, "This computer has no recovery key. Ask your administrator.")
        elif isinstance(exc, NotFoundError):
            self.show_error(
                "username", f"There is no account named {self._username!r} in this clinic."
            )
        elif isinstance(exc, ValidationError) and exc.field == "username":
            self.show_error("username", validation_text(exc))
        else:
            super().failed(exc)


class _StagedDialog(TypedForm):
    """A dialog in steps (explain → work → result) on a stacked widget.

    Nothing in it is typed, so it never asks before closing; but while its work runs,
    Escape and the close button do nothing and its Cancel is disabled (``cancel_button``;
    ``TypedForm.must_stay_open``): what the work makes must reach the screen (a new
    recovery key is shown only then), and a re-key is not hidden half done. Only the
    program closes it then (a sign-out, the auto-lock; the work finishes on the worker).
    """

    cancel_button: QPushButton

    def __init__(self, worker: Worker, parent: QWidget | None) -> None:
        super().__init__(parent)
        self._worker = worker
        self._job: Job[Any] | None = None
        self.steps = QStackedWidget()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.steps)

    def add_step(self, *parts: QWidget, buttons: QWidget) -> QWidget:
        """A page laid out like every other dialog, its buttons at the bottom (pages share
        one height, so the shorter ones keep their text at the top)."""
        page = QWidget()
        inner = QVBoxLayout(page)
        inner.setContentsMargins(24, 20, 24, 20)
        inner.setSpacing(12)
        for part in parts:
            inner.addWidget(part)
        inner.addStretch(1)
        inner.addWidget(buttons)
        self.steps.addWidget(page)
        return page

    @property
    def working(self) -> bool:
        """True while the worker runs this dialog's job."""
        return self._job is not None

    def submit(self, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[Exception], None], label: str,
               outlives_session: bool = False) -> None:  # fmt: skip
        """Run the step's work on the worker; the dialog cannot be left until it ends.
        ``outlives_session``: a sign-out does not cancel it (see ``hand_over``)."""
        self.cancel_button.setEnabled(False)
        self._job = self._worker.submit(
            fn, on_done, on_error, label=label, outlives_session=outlives_session
        )

    def hand_over(
        self, on_done: Callable[[Any], None], on_error: Callable[[Exception], None]
    ) -> bool:
        """The dialog is closing while its work runs: the work's outcome goes to
        ``on_done``/``on_error`` instead of the dialog (a job submitted with
        ``outlives_session``, which a sign-out lets finish). False if nothing runs."""
        job, self._job = self._job, None
        if job is None:
            return False
        job.on_done, job.on_error = on_done, on_error
        return True

    def idle(self) -> None:
        """The work ended (done or failed): the dialog can be left again."""
        self._job = None
        self.cancel_button.setEnabled(True)

    def form_state(self) -> object:
        """Nothing typed in it: closing never asks."""
        return None

    def must_stay_open(self) -> bool:
        """While the work runs (see the class)."""
        return self.working

    def done(self, result: int) -> None:
        """Close; a job still in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)


NOT_MADE = (
    "Your new recovery key was not made: you were signed out while Careline was making it. "
    "The previous recovery key still works; to replace it, choose Settings → New recovery "
    "key… again."
)
NOT_CONFIRMED = (
    "The new recovery key shown to you was not put in use: you were signed out before you "
    "confirmed storing it. The previous recovery key still works. Destroy any copy of the "
    "new one, and choose Settings → New recovery key… again to replace the key."
)
IN_USE = (
    "Your new recovery key is in use (you confirmed storing it before you were signed "
    "out); the previous one no longer works."
)


def not_in_use(exc: Exception) -> str:
    """Putting a confirmed new recovery key in force failed: what to tell the person."""
    return (
        f"The new recovery key was not put in use: {describe_error(exc)} The previous "
        "recovery key still works; make a new one again (Settings → New recovery key…)."
    )


class NewRecoveryKeyDialog(_StagedDialog):
    """Admin only: replace this computer's recovery key and show the new one once, on the
    first-run wizard's own recovery page.

    The new key is made beside the current one (``Workstation.stage_recovery_key``) and is
    put in force only once the person confirms storing it and chooses Done; until then the
    previous key keeps working. Closed any other way (a sign-out, the auto-logoff, closing
    the window), the new key is withdrawn and the previous one stays: a key nobody
    confirmed never replaces one somebody holds. A sign-out after the person ticked "I
    have written down…" puts the key in force all the same. ``tell`` says to the person
    what became of a key when the dialog closed on it without them (at their next
    sign-in)."""

    def __init__(self, worker: Worker, workstation: Workstation, parent: QWidget | None,
                 tell: Tell = tell_nobody) -> None:  # fmt: skip
        super().__init__(worker, parent)
        self._workstation = workstation
        self._tell = tell
        self.setObjectName("newRecoveryKeyDialog")
        self.setWindowTitle("New recovery key")
        self.setMinimumWidth(620)
        self.key: str | None = None
        self.slot_id: str | None = None  # the staged key's, once made
        self.confirming = False  # Done chosen: the key is being put in force
        self._settled = False  # what becomes of the staged key is decided
        self.withdraw_box: QMessageBox | None = None  # "Close without storing the key?"

        self.error = error_label()
        self.progress = paragraph("", "hint")
        self.progress.hide()
        self.busy = busy_bar()
        self.confirm_buttons, self.make_button = action_buttons(
            self, self.make_key, "Make a new key"
        )
        self.cancel_button = self.confirm_buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.explain_page = self.add_step(
            heading_label("Make a new recovery key"),
            paragraph(
                "The recovery key opens this computer's records when every staff password is "
                "forgotten. Make a new one if the current key is lost, or may have been seen "
                "by someone who should not have it."
            ),
            paragraph(
                "The new key is shown only once: have paper and a pen ready before you "
                "continue. It replaces the current key when you confirm that you stored it; "
                "until then the current key keeps working.",
                "notice",
            ),
            self.error,
            self.progress,
            self.busy,
            buttons=self.confirm_buttons,
        )

        # The wizard's recovery page, reused so the key is shown with the same care.
        self.recovery_page = RecoveryPage()
        # Its margins line it up with a wizard's title; here, with the dialog's heading.
        page_layout = self.recovery_page.layout()
        assert page_layout is not None
        page_layout.setContentsMargins(0, 4, 0, 0)
        self.recovery_page.stored.toggled.connect(self._stored_toggled)
        self.done_buttons = QDialogButtonBox()
        self.done_button = QPushButton("Done")
        self.done_button.setObjectName("primary")
        self.done_button.setEnabled(False)
        self.done_buttons.addButton(self.done_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.done_buttons.accepted.connect(self.finish)
        self.key_progress = paragraph("", "hint")
        self.key_progress.hide()
        self.key_page = self.add_step(
            heading_label("Store the new recovery key"),
            paragraph(
                "Careline shows this key only now. It replaces the previous recovery key when "
                "you confirm below that you stored it and choose Done; until then the "
                "previous key keeps working.",
                "notice",
            ),
            self.recovery_page,
            self.key_progress,
            buttons=self.done_buttons,
        )

    def make_key(self) -> None:
        """Make the new key beside the current one, on the worker."""
        if self.working or self.key is not None:
            return
        self.error.hide()
        self.make_button.setEnabled(False)
        self.progress.setText("Making the new recovery key…")
        self.progress.show()
        self.busy.show()
        self._settled = False
        self.submit(self._workstation.stage_recovery_key, self._made, self._failed,
                    "new recovery key")  # fmt: skip

    def _idle(self) -> None:
        self.idle()
        self.progress.hide()
        self.busy.hide()

    def _made(self, staged: tuple[str, str]) -> None:
        self._idle()
        self.key, self.slot_id = staged
        self.recovery_page.show_key(ClinicCreated("", self.key, None))
        self.steps.setCurrentWidget(self.key_page)
        self.recovery_page.stored.setFocus()

    def _failed(self, exc: Exception) -> None:
        self._idle()
        self.make_button.setEnabled(True)
        self.error.setText(describe_error(exc))
        self.error.show()

    def _stored_toggled(self, checked: bool) -> None:
        self.done_button.setEnabled(checked and not self.confirming)

    @property
    def unconfirmed(self) -> bool:
        """True while a new key is on screen that nobody confirmed storing."""
        return self.key is not None and not self.recovery_page.stored.isChecked()

    def finish(self) -> None:
        """Done (only once the person confirmed storing the key): put the new key in force
        on the worker, then close (the dialog waits for it)."""
        if self.unconfirmed or self.confirming or self.slot_id is None:
            return
        self.confirming = True
        self.done_button.setEnabled(False)
        self.recovery_page.stored.setEnabled(False)
        self.key_progress.setText("Putting the new key in use…")
        self.key_progress.show()
        ws, slot_id = self._workstation, self.slot_id
        self.submit(lambda: ws.confirm_recovery_key(slot_id), self._confirmed,
                    self._confirm_failed, "put recovery key in use",
                    outlives_session=True)  # fmt: skip

    def _confirmed(self, _result: None) -> None:
        self.idle()
        self._settled = True
        self.accept()

    def _confirm_failed(self, exc: Exception) -> None:
        """Not put in force: back to the start, the key off the screen (the previous key
        still works), saying why."""
        self.idle()
        self._withdraw()
        self._forget_key()
        self.confirming = False
        self.recovery_page.stored.setEnabled(True)
        self.recovery_page.stored.setChecked(False)
        self.key_progress.hide()
        self.steps.setCurrentWidget(self.explain_page)
        self.make_button.setEnabled(True)
        self.error.setText(not_in_use(exc))
        self.error.show()

    def _withdraw(self) -> None:
        """The staged key (or the one being made) goes; the previous key stays in force."""
        ws, slot_id = self._workstation, self.slot_id
        self._worker.submit(lambda: ws.discard_recovery_key(slot_id),
                            label="withdraw recovery key", outlives_session=True)  # fmt: skip

    def _forget_key(self) -> None:
        self.recovery_page.key_actions.forget()
        self.recovery_page.key.clear()
        self.key = self.slot_id = None

    def _settle(self) -> None:
        """Closing: decide what becomes of the new key, once. Confirmed (Done chosen, or
        the box ticked when a sign-out closes the dialog): it is put in force, and the
        person told if that failed. Otherwise it is withdrawn, and the person told that the
        previous key still works (closing it themselves, they were asked already)."""
        if self._settled:
            return
        self._settled = True
        tell = self._tell
        if self.confirming or (self.key is not None and not self.unconfirmed):
            if not self.confirming:
                self.finish()  # submitted now (the session's end cancels it not)
            self.hand_over(lambda _r: tell(IN_USE, False),
                           lambda exc: tell(not_in_use(exc), True))  # fmt: skip
            return
        making = self.working
        if making:
            job, self._job = self._job, None
            if job is not None:
                job.cancel()  # its key is never shown; withdrawn just after it is made
        if making or self.key is not None:
            self._withdraw()
            tell(NOT_MADE if making else NOT_CONFIRMED, True)

    def settle_now(self) -> None:
        """The app is quitting and its worker has stopped: settle the new key here, on
        this thread (as ``_settle`` would on the worker); nobody is told any more."""
        if self._settled or not (self.working or self.key is not None):
            return
        self._settled = True
        ws, slot_id = self._workstation, self.slot_id
        try:
            if slot_id is not None and (self.confirming or not self.unconfirmed):
                ws.confirm_recovery_key(slot_id)
            else:
                ws.discard_recovery_key(slot_id)
        except Exception as exc:  # quitting must not fail; the next open withdraws it
            log.warning("could not settle the new recovery key on quitting: %s", exc)

    def done(self, result: int) -> None:
        """Closing (or an auto-lock) removes the key from the screen (and the clipboard),
        and puts it in force or withdraws it (``_settle``)."""
        box, self.withdraw_box = self.withdraw_box, None
        if box is not None:
            box.reject()
        self._settle()
        self._forget_key()
        super().done(result)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape does not throw away a key nobody confirmed storing; once the person
        confirmed, it is Done."""
        if event.key() == Qt.Key.Key_Escape and self.key is not None:
            event.accept()
            if not self.unconfirmed:
                self.finish()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closing the window before confirming asks first (an auto-lock does not ask);
        after, it is Done."""
        if self.key is not None and not self.unconfirmed:
            event.ignore()
            self.finish()  # the dialog closes once the key is in force
            return
        if self.unconfirmed and not self.working:
            event.ignore()
            self._ask_to_withdraw()
            return
        super().closeEvent(event)

    def _ask_to_withdraw(self) -> None:
        """Ask before a shown key nobody confirmed is withdrawn (window-modal, no nested
        event loop; Keep it open is the default and Escape)."""
        if self.withdraw_box is not None:
            self.withdraw_box.raise_()
            return

        def answered(withdraw: bool) -> None:
            self.withdraw_box = None
            if withdraw and self.unconfirmed:
                self._settled = True  # the person chose: withdrawn, nothing to tell them
                self._withdraw()
                self.reject()

        self.withdraw_box = ask_first(
            self,
            "withdrawKeyQuestion",
            self.windowTitle(),
            "Close without storing the key?",
            "You have not confirmed that you stored the new recovery key. If you close now, "
            "it is withdrawn and never shown again; the previous recovery key keeps working.",
            "Close",
            answered,
            keep="Keep it open",
        )


REKEYED_LATER = (
    "The re-encryption you started finished after you were signed out: the clinic's records "
    "on this computer are encrypted under a new key. Passwords and the recovery key open "
    "them as before."
)


def rekey_failed_later(exc: Exception) -> str:
    """A re-encryption whose dialog was closed failed: what to tell the person."""
    return (
        f"The re-encryption you started did not finish: {describe_error(exc)} Careline "
        "completes an interrupted re-encryption when it next opens the records; to start "
        "another, choose Settings → Re-encrypt database…"
    )


class RekeyDialog(_StagedDialog):
    """Admin only: re-encrypt the database under a new key (``PRAGMA rekey``, on the
    worker; crash-safe in core). A sign-out lets it finish; the person who started it is
    told how it ended at their next sign-in (``tell``)."""

    rekeyed = Signal()

    def __init__(self, worker: Worker, workstation: Workstation, parent: QWidget | None,
                 tell: Tell = tell_nobody) -> None:  # fmt: skip
        super().__init__(worker, parent)
        self._workstation = workstation
        self._tell = tell
        self.setObjectName("rekeyDialog")
        self.setWindowTitle("Re-encrypt the database")
        self.setMinimumWidth(560)
        self.error = error_label()
        self.progress = paragraph("", "hint")
        self.progress.hide()
        self.busy = busy_bar()
        self.start_buttons, self.start_button = action_buttons(self, self.start, "Re-encrypt")
        self.cancel_button = self.start_buttons.button(QDialogButtonBox.StandardButton.Cancel)
        self.explain_page = self.add_step(
            heading_label("Re-encrypt the clinic's records"),
            paragraph(
                "Careline encrypts every page of this computer's clinic database again, under "
                "a new key. Do this if a copy of the database key may have been exposed, or "
                "as your security policy requires."
            ),
            paragraph(
                "Staff passwords, the recovery key and the OS keyring keep working: nobody "
                "needs a new password. A large clinic can take a minute; Careline waits until "
                "it is done. If the computer stops in the middle, the next start finishes it.",
                "hint",
            ),
            self.error,
            self.progress,
            self.busy,
            buttons=self.start_buttons,
        )
        close_buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close_buttons.rejected.connect(self.accept)
        self.close_button = close_buttons.button(QDialogButtonBox.StandardButton.Close)
        self.close_button.setObjectName("primary")
        self.result_text = paragraph("", "notice")
        self.done_page = self.add_step(
            heading_label("The records are re-encrypted"), self.result_text, buttons=close_buttons
        )
        self.generation: int | None = None

    def start(self) -> None:
        """Re-key on the worker."""
        if self.working:
            return
        self.error.hide()
        self.start_button.setEnabled(False)
        self.progress.setText("Re-encrypting the clinic's records… Please wait.")
        self.progress.show()
        self.busy.show()
        ws = self._workstation

        def rekey() -> tuple[int, bool]:
            ws.rekey()
            chain = ws.keychain()
            return chain.db_key.generation, any(slot.kind == "keyring" for slot in chain.slots)

        self.submit(rekey, self._rekeyed, self._failed, "rekey", outlives_session=True)

    def _idle(self) -> None:
        self.idle()
        self.progress.hide()
        self.busy.hide()
        self.start_button.setEnabled(True)

    def _rekeyed(self, outcome: tuple[int, bool]) -> None:
        self._idle()
        self.generation, keyring = outcome
        opens = (
            "Passwords, the recovery key and the OS keyring"
            if keyring
            else ("Passwords and the recovery key")
        )
        self.result_text.setText(
            "Done. The clinic's records on this computer are now encrypted under a new key. "
            f"{opens} open them as before."
        )
        self.steps.setCurrentWidget(self.done_page)
        self.close_button.setFocus()
        self.rekeyed.emit()

    def _failed(self, exc: Exception) -> None:
        self._idle()
        self.error.setText(describe_error(exc))
        self.error.show()

    def done(self, result: int) -> None:
        """Closed while re-encrypting (a sign-out): it finishes, and the person who started
        it is told how it ended."""
        tell = self._tell
        self.hand_over(lambda _r: tell(REKEYED_LATER, False),
                       lambda exc: tell(rekey_failed_later(exc), True))  # fmt: skip
        super().done(result)

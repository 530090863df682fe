"""The sign-in screen: every session starts with a person identifying themselves."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error
from app.session.forced_change import ForcedPasswordChangeDialog
from app.session.key_dialogs import RecoverPasswordDialog
from app.widgets import form_layout
from app.worker import Job, Worker
from core.errors import sentence
from core.records.demo import is_demo_folder
from core.records.errors import SecondFactorRequiredError, SignInDelayedError, StaleSlotError
from core.records.lockout import delayed_text
from core.records.models import User
from core.records.workstation import Workstation, describe_openers


@dataclass(frozen=True)
class Session:
    """Who signed in, and the clinic they opened."""

    user: User
    clinic_name: str
    demo: bool = False  # the demo clinic of sample data (core.records.demo)
    # Whether the person may review and merge duplicate charts (the authorization model's
    # merge_patients on the clinic, whatever their primary role): read at sign-in, on the
    # worker, so the patient list shows the button without a query on the UI thread.
    may_merge: bool = False
    # Whether the person administers the clinic (manage_staff: staff, keys, pairing and
    # revoking workstations), whichever of their roles gives it.
    may_administer: bool = False


@dataclass(frozen=True)
class ClinicState:
    """Whether the clinic is open on this computer, and (when closed) the user names whose
    password opens it (None: the key file could not be read)."""

    open: bool
    openers: list[str] | None
    keyring: bool = False  # closed, but this computer's OS-keyring slot may open it
    closes_at_sign_out: bool = False  # close_after_idle_hours = 0


def describe_state(state: ClinicState) -> str:
    """What the sign-in screen says about who can sign in here."""
    if state.open:
        return "Anyone on the clinic’s staff can sign in here."
    if state.openers is None:
        return "The clinic is closed on this computer."
    if state.keyring:
        # Staff sign in as if it were open; the keyring is for whoever looks after the
        # computer, so it comes second, in words a non-technical reader can follow.
        return (
            "The clinic is closed on this computer; anyone on the clinic’s staff opens it by "
            "signing in with their own Careline password. Should this computer’s password "
            "storage (its keyring) stop working, "
            f"{describe_openers(state.openers)}."
        )
    if state.closes_at_sign_out:
        return (
            f"The clinic is closed on this computer: {describe_openers(state.openers)}. It "
            "closes again whenever someone signs out here."
        )
    return (
        f"The clinic is closed on this computer: {describe_openers(state.openers)}. Once one "
        "of them has signed in, anyone on the clinic’s staff can sign in here."
    )


def sign_in(
    workstation: Workstation,
    username: str,
    password: str,
    previous: str | None = None,
    totp_code: str | None = None,
) -> Session:
    """Runs on the worker: unlock if needed, check the password (and an admin's two-factor
    code), read the clinic name (``previous``: the password this workstation last knew,
    after a change elsewhere)."""
    user = workstation.sign_in(username, password, previous, totp_code)
    demo = is_demo_folder(workstation.data_dir)
    # Until a person whose password an admin set chooses their own, records are refused:
    # asked again once they have (SignInPage._ask_for_own_password).
    session = Session(user, workstation.clinic_name(), demo)
    return session if user.must_change_password else granted(session, workstation)


def granted(session: Session, workstation: Workstation) -> Session:
    """Runs on the worker: ``session`` with what the signed-in person may do that screens
    show or hide (``may_merge``, ``may_administer``), read from the authorization model."""
    records = workstation.records
    return dataclasses.replace(
        session,
        may_merge=records.may("merge_patients"),
        may_administer=records.may("manage_staff"),
    )


class SignInPage(QWidget):
    """User name and password; errors from core are shown under the form."""

    signed_in = Signal(object)  # Session
    close_requested = Signal()
    # A person declined to choose their own password: they are signed out, and the clinic
    # may have been closed again (core: Workstation.sign_out), so who can sign in changed.
    change_declined = Signal()

    def __init__(
        self, worker: Worker, workstation: Workstation, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._workstation = workstation
        self._job: Job[Session] | None = None
        self._clinic_name = ""
        self.recover_dialog: RecoverPasswordDialog | None = None
        self.change_dialog: ForcedPasswordChangeDialog | None = None
        # The password of the sign-in in flight: kept only until a forced change is done.
        self._typed = ""
        # The person the notice speaks to ("you need to choose your own password", "signed
        # you out after 10 minutes"), named in User name; "" when it names nobody. It goes
        # once another name is typed: it is not for the next person at this computer.
        self._notice_for = ""
        # An account told to wait after repeated failures: (user name, failures, when the
        # wait ends by the workstation's clock). The message counts down each second and
        # Sign in is off for that name until then; another name may sign in meanwhile.
        self._delayed: tuple[str, int, float] | None = None
        self.countdown = QTimer(self)
        self.countdown.setInterval(1000)
        self.countdown.timeout.connect(self._count_down)

        title = QLabel("Careline")
        title.setObjectName("appTitle")
        self.clinic = QLabel("Sign in to open the clinic’s records.")
        self.clinic.setObjectName("hint")
        self.clinic.setWordWrap(True)
        self.notice = QLabel()
        self.notice.setObjectName("notice")
        self.notice.setWordWrap(True)
        self.notice.hide()
        # Who can sign in here: anyone while the clinic is open, else the slot holders.
        self.state = QLabel()
        self.state.setObjectName("hint")
        self.state.setWordWrap(True)
        self.state.hide()

        self.username = QLineEdit()
        self.username.setObjectName("username")
        self.username.setAccessibleName("User name")
        self.password = QLineEdit()
        self.password.setObjectName("password")
        self.password.setAccessibleName("Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        # Shown only when the password did not open this workstation's key and it may have
        # been changed on another workstation: the previous one, once, updates this one.
        self.previous_hint = QLabel(
            "Changed your password on another computer? This one still knows your "
            "previous password: type it under “Previous password” as well, once. After "
            "that, the new password alone works here too."
        )
        self.previous_hint.setObjectName("hint")
        self.previous_hint.setWordWrap(True)
        self.previous_hint.hide()
        self.previous = QLineEdit()
        self.previous.setObjectName("previousPassword")
        self.previous.setAccessibleName("Previous password")
        self.previous.setEchoMode(QLineEdit.EchoMode.Password)
        self.previous.returnPressed.connect(self.submit)
        # Asked for only when the account has two-factor sign-in (core says so).
        self.code = QLineEdit()
        self.code.setObjectName("totpCode")
        self.code.setAccessibleName("Two-factor code")
        self.code.setPlaceholderText("6 digits from your authenticator app")
        self.code.setMaxLength(7)
        self.code.returnPressed.connect(self.submit)
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.hide()
        self.button = QPushButton("Sign in")
        self.button.setObjectName("primary")
        self.button.setDefault(True)
        self.button.clicked.connect(self.submit)
        self.forgot_button = QPushButton("Forgot password? Use the recovery key")
        self.forgot_button.setObjectName("link")
        self.forgot_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.forgot_button.setToolTip(
            "Set a new password with the recovery key shown when Careline was set up here"
        )
        self.forgot_button.clicked.connect(self.show_recovery)
        self.close_button = QPushButton("Close the clinic on this computer")
        self.close_button.setObjectName("link")
        self.close_button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.close_button.setToolTip(
            "Close the encrypted database here and remove its key from memory (e.g. at the "
            "end of the day). It then opens only with a password that has opened it here."
        )
        self.close_button.clicked.connect(self.close_requested)
        self.close_button.hide()
        self.username.returnPressed.connect(self.password.setFocus)
        self.username.textChanged.connect(self._enable_sign_in)
        self.username.textChanged.connect(self._drop_notice_for_another)
        self.password.returnPressed.connect(self.submit)

        form = form_layout(row_spacing=10)
        form.addRow("User name", self.username)
        form.addRow("Password", self.password)
        form.addRow("Previous password", self.previous)
        form.setRowVisible(self.previous, False)
        form.addRow("Two-factor code", self.code)
        form.setRowVisible(self.code, False)
        self._form = form

        card = QFrame()
        card.setObjectName("card")
        card.setFixedWidth(420)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(32, 28, 32, 28)
        inner.setSpacing(14)
        inner.addWidget(title)
        inner.addWidget(self.clinic)
        inner.addWidget(self.notice)
        inner.addWidget(self.state)
        inner.addLayout(form)
        inner.addWidget(self.error)
        inner.addWidget(self.previous_hint)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.button)
        inner.addLayout(buttons)
        inner.addWidget(self.forgot_button, 0, Qt.AlignmentFlag.AlignLeft)
        inner.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignLeft)

        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer = QVBoxLayout(self)
        outer.addStretch(2)
        outer.addLayout(row)
        outer.addStretch(3)

    @property
    def busy(self) -> bool:
        """True while a sign-in runs on the worker."""
        return self._job is not None

    def prepare(
        self,
        username: str = "",
        notice: str = "",
        clinic_name: str = "",
        *,
        same_person: bool = False,
    ) -> None:
        """Reset for a new sign-in: optional user name, a notice (e.g. why the person was
        signed out). Who can sign in is shown again once :meth:`show_state` is told. A
        notice given with a user name speaks to that person: it goes once another name is
        typed (the next person at a shared computer).

        Focus starts in User name, the name given selected: at a shared workstation the
        next person to sit down (after an auto-lock, say) may not be the one it names, and
        typing their own name replaces it, where with focus in Password their name would be
        typed as the named person's password and counted as a failed sign-in of theirs.
        The person named goes on with Tab (or Return). Only ``same_person`` (whoever is at
        the keyboard has just acted here as ``username``: set-up, a recovered password)
        starts in Password."""
        self.username.setText(username)
        self.password.clear()
        self._show_previous(False)
        self._show_code(False)
        self._typed = ""
        self._end_delay()
        self.error.hide()
        self.error.clear()
        self._clinic_name = clinic_name
        self.state.clear()
        self.state.hide()
        self.close_button.hide()
        self.notice.setText(notice)
        self.notice.setVisible(bool(notice))
        self._notice_for = username.strip().lower() if notice else ""
        self.clinic.setText(
            f"{clinic_name}: sign in to open the clinic’s records."
            if clinic_name
            else "Sign in to open the clinic’s records."
        )
        self._set_busy(False)
        if username and same_person:
            self.password.setFocus()
        else:
            self.username.setFocus()
            self.username.selectAll()

    def show_state(self, state: ClinicState) -> None:
        """Say who can sign in here; offer closing the clinic while it is open."""
        self.state.setText(describe_state(state))
        self.state.show()
        self.close_button.setVisible(state.open)

    def submit(self) -> None:
        """Sign in on the worker."""
        if self._job is not None or self._waiting():
            return
        username, password = self.username.text().strip(), self.password.text()
        if not username or not password:
            self._show_error("Enter your user name and password.")
            return
        previous = self.previous.text() if self.previous_hint.isVisibleTo(self) else ""
        code = self.code.text().strip() if self._form.isRowVisible(self.code) else ""
        if self._form.isRowVisible(self.code) and not code:
            self._show_error("Enter the 6-digit code your authenticator app shows.")
            return
        self.error.hide()
        self._end_delay()
        self._set_busy(True)
        ws = self._workstation
        self._typed = password
        self._job = self._worker.submit(
            lambda: sign_in(ws, username, password, previous or None, code or None),
            self._succeeded,
            self._failed,
            label="sign in",
        )

    def cancel(self) -> None:
        """Forget a sign-in in flight (the window is closing)."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        if self.recover_dialog is not None:
            self.recover_dialog.reject()
        if self.change_dialog is not None:
            self.change_dialog.reject()
        self._typed = ""
        self._set_busy(False)

    def show_recovery(self) -> None:
        """Forgot password: open the recovery-key dialog for the name typed so far."""
        if self.recover_dialog is not None:
            self.recover_dialog.raise_()
            return
        dialog = RecoverPasswordDialog(
            self._worker, self._workstation, self.username.text().strip(), self
        )
        dialog.recovered.connect(self._recovered)
        dialog.finished.connect(self._forget_recovery)
        self.recover_dialog = dialog
        dialog.open()

    def _forget_recovery(self) -> None:
        if self.recover_dialog is not None:
            self.recover_dialog.deleteLater()
            self.recover_dialog = None

    def _recovered(self, username: str) -> None:
        # Signing in now proves the new password works before anyone relies on it.
        self.prepare(
            username,
            f"A new password was set for {username}. Sign in with it now.",
            self._clinic_name,
            same_person=True,
        )

    def _set_busy(self, busy: bool) -> None:
        widgets = (
            self.username,
            self.password,
            self.previous,
            self.code,
            self.button,
            self.forgot_button,
            self.close_button,
        )
        for widget in widgets:
            widget.setEnabled(not busy)
        self.button.setText("Signing in…" if busy else "Sign in")
        if not busy:
            self._enable_sign_in()

    def _drop_notice_for_another(self, text: str) -> None:
        """Someone else is signing in: the notice spoke to the person named before."""
        if self._notice_for and text.strip().lower() != self._notice_for:
            self._notice_for = ""
            self.notice.clear()
            self.notice.hide()

    def _waiting(self) -> bool:
        """Whether the name typed is an account that must still wait (see ``_delayed``)."""
        delayed = self._delayed
        if delayed is None:
            return False
        name, _failures, until = delayed
        same = self.username.text().strip().lower() == name
        return same and until > self._workstation.clock()

    def _enable_sign_in(self) -> None:
        # Pressing Sign in during the wait could only be refused again: it is off for the
        # account that waits, and on as soon as another name is typed (other staff may
        # sign in meanwhile, as the message says).
        self.button.setEnabled(not self.busy and not self._waiting())

    def _start_delay(self, exc: SignInDelayedError) -> None:
        until = self._workstation.clock() + exc.seconds_left
        self._delayed = (exc.user, exc.failures, until)
        self.countdown.start()
        self._enable_sign_in()

    def _end_delay(self) -> None:
        self._delayed = None
        self.countdown.stop()

    def _count_down(self) -> None:
        """Say the wait again, a second shorter; when it is over, say so and offer Sign in."""
        if self._delayed is None:
            self.countdown.stop()
            return
        name, failures, until = self._delayed
        left = until - self._workstation.clock()
        if left > 0:
            self._show_error(sentence(delayed_text(name, failures, left)))
        else:
            self._end_delay()
            self._show_error(f"{name!r} may sign in again now.")
        self._enable_sign_in()

    def _succeeded(self, session: Session) -> None:
        self._job = None
        self.password.clear()
        self._show_previous(False)
        self._show_code(False)
        self._set_busy(False)
        if session.user.must_change_password:
            self._ask_for_own_password(session)
            return
        self._typed = ""
        self.signed_in.emit(session)

    def _ask_for_own_password(self, session: Session) -> None:
        """Someone else set this password: the person chooses theirs before the session
        starts (cancelling signs them out)."""
        user = session.user
        dialog = ForcedPasswordChangeDialog(
            self._worker, self._workstation, user.username, user.full_name, self._typed, self
        )
        self._typed = ""
        self.change_dialog = dialog

        def changed() -> None:
            self._forget_change_dialog()
            done = dataclasses.replace(user, must_change_password=False)
            workstation = self._workstation

            def start(ready: Session) -> None:
                self.signed_in.emit(ready)

            self._worker.submit(
                lambda: granted(dataclasses.replace(session, user=done), workstation),
                start,
                lambda exc: self.prepare(
                    user.username, describe_error(exc), self._clinic_name, same_person=True
                ),
                label="read what you may do",
            )

        def refused() -> None:
            self._forget_change_dialog()
            # Closes the clinic again if this sign-in opened it (core decides).
            self._worker.submit(self._workstation.sign_out, label="sign out")
            # Said to this person by name (and gone once another name is typed): the next
            # person at the computer must not read it as meant for them.
            self.prepare(
                user.username,
                f"{user.full_name or user.username}, you need to choose your own password "
                "before using Careline. Sign in again when you are ready.",
                self._clinic_name,
                same_person=True,
            )
            self.change_declined.emit()

        dialog.accepted.connect(changed)
        dialog.rejected.connect(refused)
        dialog.open()

    def _forget_change_dialog(self) -> None:
        if self.change_dialog is not None:
            self.change_dialog.deleteLater()
            self.change_dialog = None

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self._set_busy(False)
        if isinstance(exc, SecondFactorRequiredError):
            # The password was right: keep it, and ask for the code.
            self._show_code(True)
            self.code.clear()
            self._show_error(describe_error(exc))
            self.code.setFocus()
            return
        self._typed = ""
        self.password.clear()
        self.previous.clear()
        self.code.clear()
        if isinstance(exc, StaleSlotError):
            self._show_previous(True)
        self._show_error(describe_error(exc))
        if isinstance(exc, SignInDelayedError) and exc.user:
            self._start_delay(exc)
        self.password.setFocus()

    def _show_code(self, shown: bool) -> None:
        if not shown:
            self.code.clear()
        self._form.setRowVisible(self.code, shown)

    def _show_previous(self, shown: bool) -> None:
        if not shown:
            self.previous.clear()
        self._form.setRowVisible(self.previous, shown)
        self.previous_hint.setVisible(shown)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

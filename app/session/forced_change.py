"""Right after signing in with a password someone else set (a new account's first password,
an administrator's reset): the person chooses their own before anything else. Core refuses
every other operation until they have (``Workstation.records``); this dialog is the way on.
Cancelling signs them out again."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.session.key_dialogs import FormDialog, heading_label, password_field
from app.session.strength_hint import StrengthHint, worded
from app.widgets import action_buttons, dialog_layout, paragraph
from app.worker import Worker
from core.records.errors import ValidationError
from core.records.workstation import Workstation


class ForcedPasswordChangeDialog(FormDialog):
    """New password, repeated, with a live strength hint; the given password is the current
    one (just typed at sign-in), so it is not asked again."""

    def __init__(
        self,
        worker: Worker,
        workstation: Workstation,
        username: str,
        full_name: str,
        given_password: str,
        parent: QWidget | None,
    ) -> None:
        super().__init__(worker, parent)
        self._workstation = workstation
        self.username = username
        self._given = given_password
        self.setObjectName("forcedPasswordChangeDialog")
        self.setWindowTitle("Choose your password")
        self.setMinimumWidth(580)
        self.new = password_field("newPassword", "A few words only you would put together")
        self.confirm = password_field("confirmPassword")
        self.strength = StrengthHint(self.new, lambda: (username, full_name))
        form = self.add_rows(
            [("New password", "new", self.new), ("Repeat new password", "confirm", self.confirm)],
            hint=self.strength,
        )
        intro = paragraph(
            "Your administrator set the password you just used. Choose your own now: nobody "
            "else should know it. It also unlocks the clinic's records on this computer.",
            "hint",
        )
        self.buttons, self.save_button = action_buttons(self, self.save, "Set my password")
        dialog_layout(
            self,
            heading_label(f"Welcome, {full_name or username}"),
            intro,
            form,
            self.general_error,
            self.progress,
            self.busy,
            self.buttons,
            room_above_last=True,
        )
        self.new.setFocus()

    def save(self) -> None:
        """Check the form, then change the password on the worker."""
        if self.working:
            return
        self.clear_errors()
        new = self.new.text()
        problems = self.new_password_problems(
            "new", new, self.confirm, "new passwords", self.strength
        )
        if not problems and new == self._given:
            problems["new"] = "Choose a password of your own, not the one you were given."
        if self.show_errors(problems):
            return
        ws, username, given = self._workstation, self.username, self._given
        self.run(
            lambda: ws.change_password(username, given, new),
            "Setting your password… This takes a few seconds.",
        )

    def succeeded(self) -> None:
        """Done: the session may start."""
        self._given = ""
        self.accept()

    def failed(self, exc: Exception) -> None:
        """A weak password is explained under the field; the rest as core says."""
        if isinstance(exc, ValidationError) and exc.field == "password":
            self.show_error("new", worded(exc))
        else:
            super().failed(exc)

    def done(self, result: int) -> None:
        """Forget the given password whichever way the dialog closes."""
        self._given = ""
        super().done(result)

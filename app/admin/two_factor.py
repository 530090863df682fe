"""Settings → Two-factor sign-in… (administrators): enrol the signed-in admin's TOTP, or
turn it off. The secret is shown as text and as an ``otpauth://`` URI to type or paste into
an authenticator app (no QR code), and is stored only once a code from the app confirms
it. README "Two-factor sign-in" says what it protects and what it does not."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QLineEdit, QWidget

from app.messages import validation_text
from app.session.key_dialogs import FormDialog, heading_label
from app.widgets import action_buttons, dialog_layout, paragraph
from app.worker import Worker
from core.records import two_factor
from core.records.errors import ValidationError
from core.records.workstation import Workstation


def selectable(text: str, name: str) -> QLabel:
    """A label whose text can be selected and copied (the secret, the URI)."""
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class TwoFactorDialog(FormDialog):
    """Enrol (when off) or turn off (when on) the signed-in admin's two-factor sign-in."""

    def __init__(
        self,
        worker: Worker,
        workstation: Workstation,
        username: str,
        enrolled: bool,
        clinic: str,
        parent: QWidget | None,
    ) -> None:
        super().__init__(worker, parent)
        self._workstation = workstation
        self.enrolled = enrolled
        self.setObjectName("twoFactorDialog")
        self.setWindowTitle("Two-factor sign-in")
        self.setMinimumWidth(560)
        self.secret = "" if enrolled else two_factor.new_secret()
        self.code = QLineEdit()
        self.code.setObjectName("enrolCode")
        self.code.setPlaceholderText("6 digits")
        self.code.setMaxLength(7)
        if enrolled:
            intro = paragraph(
                f"Two-factor sign-in is on for {username}: every sign-in asks for the code "
                "from your authenticator app. Turning it off leaves the password alone.",
                "hint",
            )
            self.buttons, self.save_button = action_buttons(self, self.save, "Turn off")
            dialog_layout(
                self,
                heading_label("Two-factor sign-in is on"),
                intro,
                self.general_error,
                self.progress,
                self.busy,
                self.buttons,
            )
            return
        uri = two_factor.provisioning_uri(self.secret, username, clinic)
        intro = paragraph(
            "Add this account to an authenticator app on your phone: type the secret, or "
            "paste the link. Then type the code the app shows, to confirm. From then on "
            "every sign-in of yours asks for a code after the password.",
            "hint",
        )
        limits = paragraph(
            "It protects against a stolen password. The secret is kept in the clinic's "
            "encrypted database, so it does not protect against someone who can read that "
            "database.",
            "hint",
        )
        self.secret_label = selectable(
            " ".join(self.secret[i : i + 4] for i in range(0, len(self.secret), 4)), "totpSecret"
        )
        self.uri_label = selectable(uri, "totpUri")
        form = self.add_rows([("Code from the app", "code", self.code)])
        form.insertRow(0, "Secret", self.secret_label)
        form.insertRow(1, "Link", self.uri_label)
        self.buttons, self.save_button = action_buttons(self, self.save, "Turn on")
        dialog_layout(
            self,
            heading_label("Turn on two-factor sign-in"),
            intro,
            form,
            limits,
            self.general_error,
            self.progress,
            self.busy,
            self.buttons,
        )
        self.code.setFocus()

    def save(self) -> None:
        """Enrol with the typed code, or turn it off, on the worker."""
        if self.working:
            return
        self.clear_errors()
        staff = self._workstation.staff
        if self.enrolled:

            def off() -> None:
                staff().disable_totp()

            self.run(off, "Turning two-factor sign-in off…")
            return
        code, secret = self.code.text().strip(), self.secret
        if not code:
            self.show_error("code", "Type the code your authenticator app shows.")
            return

        def enrol() -> None:
            staff().enrol_totp(secret, code)

        self.run(enrol, "Checking the code…")

    def succeeded(self) -> None:
        """Done."""
        self.accept()

    def failed(self, exc: Exception) -> None:
        """A code that does not match is shown under the code field."""
        if isinstance(exc, ValidationError) and exc.field == "code":
            self.code.clear()
            self.show_error("code", validation_text(exc))
        else:
            super().failed(exc)

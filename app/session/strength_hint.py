"""A live password-strength hint under a new-password field: zxcvbn's verdict, the
estimated time to guess it offline, and its warning and suggestions
(core/records/password_strength.py), updated as the person types. The same check refuses
a weak password in core, so the hint only says early what saving would say."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QLineEdit

from core.records.password_strength import assess
from core.records.validation import MIN_PASSWORD_LENGTH


class StrengthHint(QLabel):
    """Follows ``field``; ``user_inputs()`` gives the words that count as easy guesses (the
    user name and full name typed so far).

    ``refusal`` is the field's own message (the form's error line under it): while it is
    shown, the hint steps aside, so a refused password is explained once. Both said it:
    "Password must be at least 10 characters." over "Too short: at least 10 characters.".
    The hint is back as soon as the person edits the field (which hides the message)."""

    def __init__(
        self,
        field: QLineEdit,
        user_inputs: Callable[[], Sequence[str]] = tuple,
        refusal: QLabel | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("passwordStrength")
        self.setWordWrap(True)
        self._field = field
        self._inputs = user_inputs
        # Room for zxcvbn's longest explanations, so the form does not jump (or clip the
        # hint) as the verdict changes while the person types.
        self.setMinimumHeight(self.fontMetrics().lineSpacing() * 4 + 4)
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.acceptable = False
        field.textChanged.connect(self.update_hint)
        self.update_hint()
        self._refusal = refusal
        if refusal is not None:
            refusal.installEventFilter(self)
            if not refusal.isHidden():
                self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The refusal shown: the hint hides; hidden again: the hint is back."""
        if watched is self._refusal and event.type() in (
            QEvent.Type.ShowToParent,
            QEvent.Type.HideToParent,
        ):
            self.setVisible(event.type() == QEvent.Type.HideToParent)
        return super().eventFilter(watched, event)

    def update_hint(self) -> None:
        """Rate what is typed now (zxcvbn takes milliseconds for a password's length)."""
        text = self._field.text()
        if not text:
            self.acceptable = False
            self.setProperty("strength", "none")
            self.setText(
                "Use a few unrelated words or a long phrase; no need for symbols or digits."
            )
        elif len(text) < MIN_PASSWORD_LENGTH:
            self.acceptable = False
            self.setProperty("strength", "weak")
            self.setText(f"Too short: at least {MIN_PASSWORD_LENGTH} characters.")
        else:
            verdict = assess(text, tuple(self._inputs()))
            self.acceptable = verdict.acceptable
            self.setProperty("strength", "ok" if verdict.acceptable else "weak")
            self.setText(verdict.explanation()[:1].upper() + verdict.explanation()[1:])
        # A dynamic property changed: let the stylesheet pick the new colour.
        self.style().unpolish(self)
        self.style().polish(self)

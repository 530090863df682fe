"""A live password-strength hint under a new-password field: zxcvbn's verdict, the
estimated time to guess it offline, and its warning and suggestions
(core/records/password_strength.py), updated as the person types. The same check refuses
a weak password in core, so the hint only says early what saving would say."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QObject, QRect, Qt
from PySide6.QtWidgets import QLabel, QLineEdit

from app.messages import validation_text
from app.widgets import keep_room_when_hidden
from core.records.errors import ValidationError
from core.records.password_strength import assess
from core.records.validation import MIN_PASSWORD_LENGTH, password


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
        # No room kept for zxcvbn's longest explanations: four lines held for them left a
        # blank band under a one-line hint. The room grows to the longest verdict shown
        # and stays (``_keep_room``), so the form does not jump back and forth as the
        # person types.
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.acceptable = False
        self._longest = ""
        field.textChanged.connect(self.update_hint)
        self.update_hint()
        self._refusal = refusal
        if refusal is not None:
            refusal.installEventFilter(self)
            if not refusal.isHidden():
                self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The refusal shown: the hint hides; hidden again: the hint is back, in at least
        the refusal's room (so Repeat does not move), which the refusal no longer keeps."""
        refusal = self._refusal
        if watched is refusal and event.type() in (
            QEvent.Type.ShowToParent,
            QEvent.Type.HideToParent,
        ):
            back = event.type() == QEvent.Type.HideToParent
            if back and refusal is not None and refusal.sizePolicy().retainSizeWhenHidden():
                keep_room_when_hidden(refusal, False)
                self.setMinimumHeight(max(self.minimumHeight(), refusal.height()))
            self.setVisible(back)
        return super().eventFilter(watched, event)

    def refusal(self) -> str | None:
        """What core's check would refuse the password typed now with, worded as the
        form's messages are (None: core's check here passes it)."""
        try:
            password(self._field.text(), tuple(self._inputs()))
        except ValidationError as exc:
            return validation_text(exc)
        return None

    def _keep_room(self) -> None:
        """Remember the longest verdict shown so far in this form (see heightForWidth)."""
        if self.isVisible():
            width = self.fontMetrics().horizontalAdvance
            if width(self.text()) > width(self._longest):
                self._longest = self.text()
                self.updateGeometry()

    def heightForWidth(self, width: int) -> int:
        """The lines of the text shown, or of the longest verdict shown so far, whichever
        are more: the form does not jump back as a shorter verdict replaces a longer."""
        own = super().heightForWidth(width)
        if not self._longest or width <= 0:
            return own
        margins = self.contentsMargins()
        inner = max(1, width - margins.left() - margins.right())
        box = self.fontMetrics().boundingRect(
            QRect(0, 0, inner, 100_000), int(Qt.TextFlag.TextWordWrap), self._longest
        )
        return max(own, box.height() + margins.top() + margins.bottom())

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
        self._keep_room()

"""A live password-strength hint under a new-password field: zxcvbn's verdict, the
estimated time to guess it offline, and its warning and suggestions
(core/records/password_strength.py), updated as the person types. The same check refuses
a weak password in core, so the hint only says early what saving would say.

The hint is the field's one message place: a form's refusal of the password (too weak,
empty, the one given, core's own check after the work ran) is shown in it, in the same
words, and the live hint is back at the next key typed in the field. Two places said the
same thing in two wordings, and the refusal's lines stayed as a blank band once the hint
replaced it.

The hint keeps the room of its longest text from the moment it is shown, so the field
under it (Repeat) is where the person saw it, whatever they type: it used to take the
lines of the text shown (then of the longest verdict yet), and the first verdict typed
moved Repeat two lines down just as the person clicked where it had been, so the repeat
went on into the password."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QLabel, QLineEdit

from core.records.errors import ValidationError
from core.records.password_strength import LONGEST_EXPLANATION, assess
from core.records.validation import MIN_PASSWORD_LENGTH, password

TOO_SHORT = f"Too short: at least {MIN_PASSWORD_LENGTH} characters."
# The longest text the hint shows, as it shows it: the room it keeps.
_LONGEST = LONGEST_EXPLANATION[:1].upper() + LONGEST_EXPLANATION[1:]


def worded(exc: ValidationError) -> str:
    """Core's refusal of a password in the hint's words ("Too short: …", "Too easy to
    guess (weak): …"), not prefixed "Password: " as other fields' messages are."""
    detail = str(exc).removeprefix(f"{exc.field}: ")
    if detail.startswith("must be at least"):
        return TOO_SHORT
    detail = detail[:1].upper() + detail[1:]
    return detail if detail.endswith(".") else f"{detail}."


class StrengthHint(QLabel):
    """Follows ``field``; ``user_inputs()`` gives the words that count as easy guesses (the
    user name and full name typed so far).

    A text the form sets (``setText``: its refusal, shown by ``show_problems``) is drawn
    as a field's message; the person's next edit of the field puts the live hint back."""

    def __init__(self, field: QLineEdit, user_inputs: Callable[[], Sequence[str]] = tuple) -> None:
        super().__init__()
        self.setObjectName("passwordStrength")
        self.setWordWrap(True)
        self.field = field
        self._inputs = user_inputs
        self.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.acceptable = False
        field.textChanged.connect(self.update_hint)
        self.update_hint()

    def setText(self, text: str) -> None:
        """The form's message about the password (a refusal), in place of the hint."""
        self._show(text, "refused")

    def refused(self) -> bool:
        """True while it shows the form's refusal, not the live hint."""
        return bool(self.property("strength") == "refused")

    def refusal(self) -> str | None:
        """What core's check would refuse the password typed now with, in the hint's words
        (None: core's check here passes it)."""
        try:
            password(self.field.text(), tuple(self._inputs()))
        except ValidationError as exc:
            return worded(exc)
        return None

    def heightForWidth(self, width: int) -> int:
        """The lines of the longest text the hint can show (or of the text shown, should
        it ever be longer): the same from the start, so nothing under it moves."""
        own = super().heightForWidth(width)
        if width <= 0:
            return own
        margins = self.contentsMargins()
        inner = max(1, width - margins.left() - margins.right())
        box = self.fontMetrics().boundingRect(
            QRect(0, 0, inner, 100_000), int(Qt.TextFlag.TextWordWrap), _LONGEST
        )
        return max(own, box.height() + margins.top() + margins.bottom())

    def update_hint(self) -> None:
        """Rate what is typed now (zxcvbn takes milliseconds for a password's length)."""
        text = self.field.text()
        if not text:
            self.acceptable = False
            hint, strength = (
                "Use a few unrelated words or a long phrase; no need for symbols or digits.",
                "none",
            )
        elif len(text) < MIN_PASSWORD_LENGTH:
            self.acceptable = False
            hint, strength = TOO_SHORT, "weak"
        else:
            verdict = assess(text, tuple(self._inputs()))
            self.acceptable = verdict.acceptable
            explained = verdict.explanation()
            hint = explained[:1].upper() + explained[1:]
            strength = "ok" if verdict.acceptable else "weak"
        self._show(hint, strength)

    def _show(self, text: str, strength: str) -> None:
        super().setText(text)
        self.setProperty("strength", strength)
        # A dynamic property changed: let the stylesheet pick the new colour.
        self.style().unpolish(self)
        self.style().polish(self)

"""The Starts field of the booking dialog: a date and a time typed as text.

Coming to it from the keyboard (Enter on the patient, Tab, back from registering, the
overlap warning) selects its time only: "14:30" typed keeps the day offered and gives
``2026-12-06 14:30``. A whole date and time typed over that selection
(``2026-12-07 10:00``) would follow the day left in front of it; once what was typed after
that day reads as a date and time on its own, or is a date and more (a date and a time,
refused or not), the field holds just that. A time after the day (``2:30 pm``, refused for
its am/pm) keeps the day: nothing typed is dropped.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import QLineEdit, QWidget

from core.records import validation
from core.records.errors import ValidationError

# Where QLineEdit selects all its text on coming in: the keyboard moved there.
_KEYBOARD_REASONS = (
    Qt.FocusReason.TabFocusReason,
    Qt.FocusReason.BacktabFocusReason,
    Qt.FocusReason.ShortcutFocusReason,
)


# Written as a date, possible or not (year first or last): three runs of digits between
# dashes, slashes or dots, or eight digits. A time ("2:30", "14.30") is never one.
_DATE_LIKE = re.compile(r"\d+[-/.]\d+[-/.]\d+|\d{8}")


def _reads_as_time(text: str) -> bool:
    """``text`` is a date and time core accepts."""
    try:
        validation.local_datetime("starts_at", text)
    except ValidationError:
        return False
    return True


class StartField(QLineEdit):
    """A line edit for ``YYYY-MM-DD HH:MM`` whose time, not its day, is typed over."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.textEdited.connect(self._whole_time_typed)

    def select_time(self) -> None:
        """Select the time after the day (the cursor at its end); text that is not a day
        and a time is selected whole."""
        text = self.text()
        day, space, time = text.rpartition(" ")
        if space and day.strip() and time:
            self.setSelection(len(day) + 1, len(time))
        else:
            self.selectAll()

    def focusInEvent(self, event: QFocusEvent) -> None:
        """Tab (or a shortcut) into the field: its time selected, not the whole text."""
        super().focusInEvent(event)
        if event.reason() in _KEYBOARD_REASONS:
            self.select_time()

    def _whole_time_typed(self, text: str) -> None:
        # "2026-12-06 2026-12-07 10:00": the day offered, then a whole date and time typed
        # over its time. The person's typing is what counts, never the day left in front.
        day, space, typed = text.strip().partition(" ")
        typed = typed.strip()
        if not (space and day and typed) or _reads_as_time(text):
            return
        # A second date (and a time) typed after the day: theirs, even if refused
        # ("31/12/2026 10:00" is told it has the year last, not of the day before it). Only
        # a date: "2026-12-11 2:30 pm" is a day and a time, and the day was typed too.
        words = typed.split()
        if _reads_as_time(typed) or (len(words) > 1 and _DATE_LIKE.fullmatch(words[0])):
            self.setText(typed)

"""Where a form's keyboard was: the field, and the cursor and selection in it.

A form kept across a sign-out (app/session/drafts.py) comes back with its keyboard where
the person left it, not in its first field: the "1" that finished a date of birth typed
before the auto-lock went on the end of the family name. Every form (``TypedForm``) keeps
this place in its draft and puts the keyboard back there on restore (app/widgets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit, QWidget

# The draft's key for the place (no form has a field of that name).
KEYBOARD = "_keyboard"


def _field_holding(widget: QWidget | None, fields: Sequence[QWidget]) -> QWidget | None:
    """The field ``widget`` is or is part of (the line edit of a choice box, a number)."""
    while widget is not None and widget not in fields:
        widget = widget.parentWidget()
    return widget


def keyboard_place(form: QWidget, fields: Sequence[QWidget]) -> dict[str, Any] | None:
    """Which of ``fields`` (the form's own, in a fixed order) the form's keyboard is in,
    with the cursor and selection in it; None when it is on none (a button)."""
    field = _field_holding(form.focusWidget(), fields)
    if field is None:
        return None
    place: dict[str, Any] = {"field": fields.index(field), "active": form.isActiveWindow()}
    if isinstance(field, QLineEdit):
        start = field.selectionStart()
        if start >= 0:
            # The cursor is at one end of the selection; typing replaces it either way.
            place.update(anchor=start, cursor=start + field.selectionLength())
        else:
            place.update(anchor=field.cursorPosition(), cursor=field.cursorPosition())
    elif isinstance(field, (QPlainTextEdit, QTextEdit)):
        cursor = field.textCursor()
        place.update(anchor=cursor.anchor(), cursor=cursor.position())
    return place


def put_keyboard_back(form: QWidget, fields: Sequence[QWidget], place: object) -> None:
    """The keyboard back in the field ``place`` names, cursor and selection as they were
    (within the text as restored), once the form's own opening focus has been set; the
    form is made the active window if it had the keyboard. A place that fits no field is let be."""
    if not isinstance(place, dict) or not isinstance(place.get("field"), int):
        return
    index: int = place["field"]
    if not 0 <= index < len(fields):
        return
    field = fields[index]

    def back() -> None:
        if not field.isEnabled() or field.focusPolicy() == Qt.FocusPolicy.NoFocus:
            return
        if place.get("active") and form.isVisible() and not form.isActiveWindow():
            form.activateWindow()
        field.setFocus(Qt.FocusReason.OtherFocusReason)
        anchor, cursor = place.get("anchor"), place.get("cursor")
        if not isinstance(anchor, int) or not isinstance(cursor, int):
            return
        if isinstance(field, QLineEdit):
            length = len(field.text())
            anchor, cursor = min(anchor, length), min(cursor, length)
            if anchor != cursor:
                field.setSelection(anchor, cursor - anchor)
            else:
                field.setCursorPosition(cursor)
        elif isinstance(field, (QPlainTextEdit, QTextEdit)):
            text_cursor = field.textCursor()
            end = len(field.toPlainText())
            text_cursor.setPosition(min(anchor, end))
            text_cursor.setPosition(min(cursor, end), QTextCursor.MoveMode.KeepAnchor)
            field.setTextCursor(text_cursor)

    # After the code that opened and filled the form has set its own first focus.
    QTimer.singleShot(0, form, back)

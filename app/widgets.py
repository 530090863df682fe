"""Small building blocks every screen uses, so forms and messages look the same everywhere."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel


def error_label() -> QLabel:
    """A hidden, word-wrapped label for a field's validation message."""
    label = QLabel()
    label.setObjectName("fieldError")
    label.setWordWrap(True)
    label.hide()
    return label


def paragraph(text: str, name: str = "") -> QLabel:
    """A word-wrapped block of plain explanatory text (``name`` picks a style)."""
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    if name:
        label.setObjectName(name)
    return label


def form_layout(row_spacing: int = 6) -> QFormLayout:
    """Labels on the left, centred on their field; fields take the remaining width."""
    form = QFormLayout()
    form.setHorizontalSpacing(16)
    form.setVerticalSpacing(row_spacing)
    form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
    return form

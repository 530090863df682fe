"""What a person can read on a screen, checked on the real widgets: a label shows every line
of its text, nothing is drawn over it, and a button's or heading's words fit its width."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QFontMetricsF, QTextLayout, QTextOption
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QListView,
    QScrollArea,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionFrame,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

# What a person reads or types into: the widgets that must not be drawn over each other.
_CONTROLS = (QAbstractButton, QAbstractItemView, QComboBox, QLabel, QLineEdit)


def rect_in(widget: QWidget, ancestor: QWidget) -> QRect:
    """``widget``'s rectangle in ``ancestor``'s coordinates."""
    return QRect(widget.mapTo(ancestor, widget.rect().topLeft()), widget.size())


def _related(one: QWidget, other: QWidget) -> bool:
    """One holds the other (a combo box's own line edit, a scroll area's viewport)."""
    return one.isAncestorOf(other) or other.isAncestorOf(one)


def controls(window: QWidget) -> list[QWidget]:
    """The visible controls in ``window`` (labels with text only)."""
    found = [w for w in window.findChildren(QWidget) if isinstance(w, _CONTROLS)]
    return [
        w
        for w in found
        if w.isVisible() and w.window() is window and not (isinstance(w, QLabel) and not w.text())
    ]


def assert_whole(label: QLabel) -> None:
    """``label`` is shown with every line of its text, inside its window, and no other
    control overlaps it."""
    window = label.window()
    where = label.text()[:50]
    assert label.isVisible(), f"{where!r} is not shown"
    lines = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
    assert label.height() >= lines, f"{where!r} is cut: {label.height()} < {lines} pixels"
    if not label.wordWrap():
        width = label.fontMetrics().horizontalAdvance(label.text())
        assert label.width() >= width, f"{where!r} is cut: {label.width()} < {width} pixels"
    box = rect_in(label, window)
    area = _scroll_area(label)
    if area is None:
        assert window.rect().contains(box), f"{where!r} runs out of its window: {box}"
        neighbours = controls(window)
    else:  # it scrolls into view; what is outside the area is not drawn over it
        content = area.widget()
        assert content is not None
        assert content.rect().contains(rect_in(label, content)), f"{where!r} runs out"
        if area.horizontalScrollBarPolicy() == Qt.ScrollBarPolicy.ScrollBarAlwaysOff:
            seen = rect_in(label, area.viewport())  # it scrolls up and down, never sideways
            width = area.viewport().width()
            assert seen.left() >= 0 and seen.right() < width, f"{where!r} is cut at the side"
        neighbours = [w for w in controls(window) if content.isAncestorOf(w)]
    for other in neighbours:
        if other is label or _related(other, label):
            continue
        assert not rect_in(other, window).intersects(box), (
            f"{where!r} overlaps {type(other).__name__} {_name(other)!r}"
        )


def assert_text_fits(button: QAbstractButton) -> None:
    """The button's whole label fits inside it: the text's width in the button's font plus
    the padding its style gives it is no more than the button's width."""
    text = button.text()
    width = button.fontMetrics().horizontalAdvance(text)
    padding = button.sizeHint().width() - width  # the style's frame and padding
    assert width + padding <= button.width(), (
        f"{text!r} needs {width} + {padding} pixels, its button has {button.width()}"
    )


def assert_placeholder_fits(edit: QLineEdit) -> None:
    """``edit``'s placeholder shows whole, not cut with "…": eliding it to the line the
    edit draws it on (the style's contents rectangle less the text margins and the 2-pixel
    margin a line edit keeps each side) leaves it as it is, as QLineEdit's painting does.
    (Comparing the whole-pixel width passed a hint 192.36 pixels wide on a 192-pixel line,
    which the edit drew cut.)"""
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    contents = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    room = contents.width() - margins.left() - margins.right() - 2 * 2
    text = edit.placeholderText()
    drawn = edit.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, room)
    assert drawn == text, f"{text!r} is drawn as {drawn!r} on its {room}-pixel line"


def assert_typed_text_fits(edit: QLineEdit) -> None:
    """What is typed in ``edit`` shows whole with the cursor after it: QLineEdit scrolls
    its start out of sight once the text reaches the end of its line (the line as
    :func:`assert_placeholder_fits` measures it)."""
    option = QStyleOptionFrame()
    edit.initStyleOption(option)
    contents = edit.style().subElementRect(QStyle.SubElement.SE_LineEditContents, option, edit)
    margins = edit.textMargins()
    room = contents.width() - margins.left() - margins.right() - 2 * 2
    width = QFontMetricsF(edit.font()).horizontalAdvance(edit.text())
    assert width < room, f"{edit.text()!r} needs {width:.1f} pixels; its line has {room}"


def cell_text_shown(table: QAbstractItemView, row: int, column: int) -> str:
    """What a table's cell (a list's row) shows of its text, elided as its delegate draws
    it: in the style's text rectangle (the stylesheet's cell padding and the text margin
    taken off), at a word's end where the view wraps words (QTableView's default)."""
    text, option, _box, room = _cell_room(table, row, column)
    metrics = option.fontMetrics
    wraps = isinstance(table, (QTableView, QListView)) and table.wordWrap()
    if metrics.horizontalAdvance(text) <= room or not wraps:
        return metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
    # Wrapped at its words, of which one line shows, ended by "…": "Flu …" of "Flu symptoms".
    line = ""
    for word in text.split(" "):
        longer = f"{line} {word}".strip()
        if metrics.horizontalAdvance(f"{longer} …") > room:
            break
        line = longer
    return f"{line} …" if line else metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)


def _cell_room(
    table: QAbstractItemView, row: int, column: int
) -> tuple[str, QStyleOptionViewItem, QRect, int]:
    """A cell's text, its style option, the rectangle its text is drawn in and the width
    a line of it has there."""
    index = table.model().index(row, column)
    option = QStyleOptionViewItem()
    delegate = table.itemDelegateForIndex(index)
    assert isinstance(delegate, QStyledItemDelegate)
    delegate.initStyleOption(option, index)
    # As far as the view shows it (a list's row runs on past its edge, to be scrolled to).
    option.rect = table.visualRect(index).intersected(table.viewport().rect())
    style = table.style()
    box = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, option, table)
    margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1
    return str(index.data()), option, box, box.width() - 2 * margin


def cell_lines_shown(table: QAbstractItemView, row: int, column: int) -> list[str]:
    """The lines a word-wrapping table's cell shows of its text: wrapped at its words to
    the cell's width, as many lines as its height holds, a line too long ending in "…"
    (and the last shown, when more lines did not fit)."""
    assert isinstance(table, (QTableView, QListView)) and table.wordWrap()
    text, option, box, room = _cell_room(table, row, column)
    metrics = option.fontMetrics
    wrap = QTextOption()
    wrap.setWrapMode(QTextOption.WrapMode.WordWrap)
    layout = QTextLayout(text, option.font)
    layout.setTextOption(wrap)
    layout.beginLayout()
    lines = []
    while (line := layout.createLine()).isValid():
        line.setLineWidth(room)
        lines.append(text[line.textStart() : line.textStart() + line.textLength()].strip())
    layout.endLayout()
    fit = max(1, box.height() // metrics.lineSpacing())
    shown = [metrics.elidedText(line, Qt.TextElideMode.ElideRight, room) for line in lines[:fit]]
    if len(lines) > fit and not shown[-1].endswith("…"):
        shown[-1] = metrics.elidedText(
            f"{shown[-1]} {lines[fit]}", Qt.TextElideMode.ElideRight, room
        )
    return shown


def cell_ink_at_edges(table: QAbstractItemView, row: int, column: int) -> list[str]:
    """The edges of a cell ("top", "bottom") its text is drawn against, as painted: a
    pixel of ink in its first or last pixel row. Qt clips what is painted to the cell, so
    a mark drawn there was most likely cut there (an accent over a capital)."""
    index = table.model().index(row, column)
    cell = table.visualRect(index)
    image = table.viewport().grab(cell).toImage()

    # The row's ground, at its left edge's middle (padding there): light, or a chosen
    # row's dark fill under light text. Ink is what stands well apart from it.
    ground = image.pixelColor(0, image.height() // 2).lightness()

    def inked(y: int) -> bool:
        return any(
            abs(image.pixelColor(x, y).lightness() - ground) > 100 for x in range(image.width())
        )

    return [edge for edge, y in (("top", 0), ("bottom", image.height() - 1)) if inked(y)]


def header_shown_whole(table: QTableView, column: int) -> bool:
    """A table's column header has the room its text needs (narrower, Qt cuts it at the
    sides: "Reasor" of "Reason")."""
    header = table.horizontalHeader()
    return header.sectionSize(column) >= header.sectionSizeHint(column)


def _scroll_area(widget: QWidget) -> QScrollArea | None:
    """The scroll area ``widget`` is shown in within its window, if any."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = None if parent.isWindow() else parent.parentWidget()
    return parent


def _name(widget: QWidget) -> str:
    for attribute in ("text", "placeholderText", "currentText"):
        value = getattr(widget, attribute, None)
        if callable(value) and value():
            return str(value())[:40]
    return widget.objectName() or widget.accessibleName()


def shot(widget: QWidget, name: str) -> None:
    """Save a picture of ``widget``'s window as ``name``.png in the folder named by
    CARELINE_SCREENSHOTS (nothing when unset), to look at what the test saw."""
    folder = os.environ.get("CARELINE_SCREENSHOTS")
    if folder:
        widget.window().grab().save(str(Path(folder) / f"{name}.png"))


def open_popup_rows(combo: QComboBox) -> tuple[int, int]:
    """Open ``combo``'s list as a person does from the keyboard (Alt+Down) and return the
    pixels its view shows and the pixels its first ``min(count, 5)`` rows need. The list
    is left open (``combo.hidePopup()`` closes it)."""
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    view = combo.view()
    QApplication.processEvents()
    assert view.isVisible(), f"{_name(combo)}: Alt+Down opened no list"
    wanted = min(combo.count(), 5)
    needed = sum(view.visualRect(combo.model().index(r, 0)).height() for r in range(wanted))
    return view.viewport().height(), needed


def blank_above(dialog: QWidget, field: QWidget, message: QLabel) -> int:
    """Pixels between ``field`` and the first line of ``message`` under it, beyond the
    spacing of the form they are in (an empty line, or a part of one)."""
    top = rect_in(message, dialog).top()
    text = message.fontMetrics().boundingRect(
        QRect(0, 0, message.contentsRect().width(), 10_000),
        int(Qt.TextFlag.TextWordWrap),
        message.text(),
    )
    if message.alignment() & Qt.AlignmentFlag.AlignVCenter:  # drawn centred in its room
        top += (message.contentsRect().height() - text.height()) // 2
    forms = [f for f in dialog.findChildren(QFormLayout) if f.indexOf(field) >= 0]
    spacing = forms[0].verticalSpacing() if forms else 0
    return top - rect_in(field, dialog).bottom() - 1 - spacing


def blank_below(dialog: QWidget, message: QLabel, field: QWidget) -> int:
    """Pixels between the last line of ``message`` and ``field`` under it."""
    lines = message.heightForWidth(message.width())
    return rect_in(field, dialog).top() - (rect_in(message, dialog).top() + lines)

"""How the schedule's lists share a narrow width among their columns.

Each column gets what its cells and header need; when the list is narrower than that, the
columns named give way one after the other, each only down to the least of its text that
must stay readable (a reason's first dozen characters, a patient's family name), and a
header is never cut. What is left over goes to one column. Below the least of every column,
the list scrolls sideways rather than cutting a header mid-word.

Qt's own modes could not say this: with ResizeToContents a long name took the row's room
and left the Reason column "Back…" under a header cut to "Reasor" on a 1024-pixel screen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QMargins, QModelIndex, QObject, QPersistentModelIndex, QSize
from PySide6.QtGui import QFont, QFontMetricsF, QPainterPath
from PySide6.QtWidgets import (
    QHeaderView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
)

# The least of a cell's text that must show (the rest may be elided or wrapped).
Least = Callable[[str], str]

REASON_SHOWN = 12  # a reason's characters that show, at the least, before "…"


def family_and_initial(name: str) -> str:
    """``D'ARCY-NÚÑEZ, Zoë Anaïs`` → ``D'ARCY-NÚÑEZ, Z…``: the family name whole, which
    with the first letter of the given names tells most patients apart."""
    family, _, given = name.partition(", ")
    return f"{family}, {given[:1]}…" if given else name


def first_characters(count: int) -> Least:
    """The first ``count`` characters and "…" (the text itself when no longer)."""
    return lambda text: text if len(text) <= count else f"{text[:count]}…"


def longest_word(text: str) -> str:
    """The longest word: a wrapped cell needs room for it on one line."""
    return max(text.split(), key=len, default="")


def family_line(name: str) -> str:
    """A wrapped patient's first line at the least: the family name and its comma."""
    family, comma, _ = name.partition(",")
    return family + comma


# Letters whose marks reach furthest above a font's ascent and below its descent.
_TALL_MARKS, _LOW_MARKS = "ÅÁÑÚÊÖŻ", "ÇŞĄŢgjy"
_ROOM: dict[str, int] = {}  # by QFont.key(): measured once a font


def marks_room(font: QFont) -> int:
    """Pixels a capital's accent (Ñ, Å) reaches above the font's ascent, or a cedilla
    below its descent, and one more: room a row's first and last lines need."""
    key = font.key()
    if key not in _ROOM:
        metrics = QFontMetricsF(font)
        above, below = QPainterPath(), QPainterPath()
        above.addText(0, 0, font, _TALL_MARKS)
        below.addText(0, 0, font, _LOW_MARKS)
        over = max(-above.boundingRect().top() - metrics.ascent(), 0.0)
        under = max(below.boundingRect().bottom() - metrics.descent(), 0.0)
        _ROOM[key] = math.ceil(max(over, under)) + 1
    return _ROOM[key]


class RoomForMarks(QStyledItemDelegate):
    """Rows sized to their lines with room for the marks on capitals. Qt sizes a wrapped
    cell to its lines' ascents and descents and centres them: "ÑÚÑEZ-ÖZTÜRK," on the
    first of two lines had its accents drawn above the row, cut off under the header."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        """Qt's size, taller by the marks' room above and below (the text is centred)."""
        room = marks_room(option.font)
        return super().sizeHint(option, index).grownBy(QMargins(0, room, 0, room))


class SharedColumns(QObject):
    """Keeps ``table``'s column widths shared as the module says, whenever the table is
    resized and when :meth:`fit` is called after its rows change.

    ``give_way``: (column, least) in the order they give way; ``spare``: the column that
    takes what is left over. Other columns keep their whole text and header.
    """

    def __init__(
        self, table: QTableWidget, give_way: Sequence[tuple[int, Least]], spare: int
    ) -> None:
        super().__init__(table)
        self.table = table
        self.give_way = list(give_way)
        self.spare = spare
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setStretchLastSection(False)
        table.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Share the width again when the list's visible width changes."""
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def _widths(self, column: int, least: Least | None) -> tuple[int, int]:
        """The column's whole width and its least (both at least its header's)."""
        table = self.table
        header = table.horizontalHeader().sectionSizeHint(column)
        # Fractional widths, rounded up: the line is laid out at them, and 117 pixels held
        # "ÑÚÑEZ-ÖZTÜRK," (117.48) only as "ÑÚÑEZ-" over "ÖZTÜRK,".
        metrics = QFontMetricsF(table.font())

        def advance(text: str) -> int:
            return math.ceil(metrics.horizontalAdvance(text))

        grid = 1 if table.showGrid() else 0
        whole = fewest = header
        for row in range(table.rowCount()):
            item = table.item(row, column)
            if item is None:
                continue
            text = item.text()
            # As sizeHintForColumn has it: the grid line takes a pixel of the cell.
            needed = table.sizeHintForIndex(table.model().index(row, column)).width() + grid
            # The cell's padding and margins, measured from Qt's own width for it.
            around = needed - max(advance(line) for line in text.split("\n"))
            whole = max(whole, needed)
            if least is not None:
                fewest = max(fewest, around + advance(least(text)))
        return whole, min(whole, fewest) if least is not None else whole

    def fit(self) -> None:
        """Set each column's width for the table's present rows and visible width."""
        table = self.table
        leasts = dict(self.give_way)
        widths, fewest = {}, {}
        for column in range(table.columnCount()):
            widths[column], fewest[column] = self._widths(column, leasts.get(column))
        over = sum(widths.values()) - table.viewport().width()
        for column, _least in self.give_way:
            if over <= 0:
                break
            cut = min(over, widths[column] - fewest[column])
            widths[column] -= cut
            over -= cut
        if over < 0:
            widths[self.spare] -= over
        header = table.horizontalHeader()
        for column, width in widths.items():
            if header.sectionSize(column) != width:
                header.resizeSection(column, width)

"""What the chart's list cards share: the card frame, a read-only table sized to its rows
(the Overview scrolls, so each list shows its rows instead of a scroll box of two), and
filling it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

MAX_ROWS = 12  # taller lists scroll inside their card


def list_table(columns: tuple[str, ...], name: str) -> QTableWidget:
    """A read-only, row-selecting table as the chart's cards show lists."""
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(columns))
    table.verticalHeader().hide()
    table.setShowGrid(False)
    table.setAlternatingRowColors(True)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 16)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def card(title: str, *buttons: QWidget) -> tuple[QFrame, QVBoxLayout]:
    """A card as the Overview shows them: a heading with its buttons, then the content."""
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(18, 14, 18, 16)
    layout.setSpacing(10)
    head = QHBoxLayout()
    heading = QLabel(title)
    heading.setObjectName("cardHeading")
    head.addWidget(heading)
    head.addStretch(1)
    for button in buttons:
        head.addWidget(button)
    layout.addLayout(head)
    return frame, layout


def fill(table: QTableWidget, rows: list[tuple[str, list[str]]], muted: set[int]) -> None:
    """Rows of (item id, cells); rows in ``muted`` are history, shown greyed."""
    table.setRowCount(len(rows))
    for row, (item_id, cells) in enumerate(rows):
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, item_id)
            if row in muted:
                item.setForeground(Qt.GlobalColor.gray)
            table.setItem(row, column, item)
    fit_rows(table)


def fit_rows(table: QTableWidget) -> None:
    """Make ``table`` exactly as tall as its rows (at most ``MAX_ROWS``, at least one)."""
    rows = min(max(table.rowCount(), 1), MAX_ROWS)
    height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
    height += rows * table.verticalHeader().defaultSectionSize()
    table.setFixedHeight(height)

"""Finding the chart's cards and reading their tables, for the card tests."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtWidgets import QTableWidget

from app.chart.page import ChartPage

T = TypeVar("T")


def card_of(chart: ChartPage, kind: type[T]) -> T:
    """The chart's section of this class (each is registered once)."""
    [found] = [s for s in chart.sections if isinstance(s, kind)]
    return found


def rows(table: QTableWidget) -> list[list[str]]:
    """Every cell's text, row by row."""
    out = []
    for r in range(table.rowCount()):
        items = [table.item(r, c) for c in range(table.columnCount())]
        out.append([item.text() if item is not None else "" for item in items])
    return out

"""What the review dialogs share (Possible duplicates, Break-glass reviews): a table of items
read on the worker with a count line, the selected item, and one write at a time on the
worker whose buttons wait for it and whose failure shows in the status line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFocusEvent, QKeyEvent
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem

from app.chart.cards import list_table
from app.messages import describe_error
from app.operations import Operations
from app.worker import Job

T = TypeVar("T")
R = TypeVar("R")


def counted(count: int, thing: str, none: str) -> str:
    """``2 possible duplicates.`` / ``1 possible duplicate.`` / ``none``."""
    return f"{count} {thing}{'s' if count != 1 else ''}." if count else none


_MOVES = {Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Home, Qt.Key.Key_End,
          Qt.Key.Key_PageUp, Qt.Key.Key_PageDown}  # fmt: skip
_REACHED = {Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason,
            Qt.FocusReason.ShortcutFocusReason, Qt.FocusReason.OtherFocusReason}  # fmt: skip


class _SelectsWhereTheKeyboardIs(QObject):
    """The row the keyboard is on is the chosen row: reached by Tab, or moved in with the
    arrow keys while nothing is chosen, the table chooses it. Qt put the keyboard on the
    first row unchosen, and Down or Home on the only row (nowhere to move) chose nothing:
    Mark reviewed stayed grey, only Space or a click chose it."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Choose the current row (the first, if none) on focus or on a move key while no
        row is chosen; a move key so answered goes no further."""
        kind = event.type()
        if kind not in (QEvent.Type.FocusIn, QEvent.Type.KeyPress):
            return False
        table = watched
        if not isinstance(table, QTableWidget) or table.rowCount() == 0:
            return False
        if table.selectionModel().hasSelection():
            return False
        row = table.currentRow() if table.currentRow() >= 0 else 0
        if isinstance(event, QKeyEvent):
            if event.key() in _MOVES:
                table.selectRow(row)
                return True
        elif isinstance(event, QFocusEvent) and event.reason() in _REACHED:
            table.selectRow(row)  # a click chooses its own row; a window coming back, none
        return False


class ReviewTable(Generic[T]):
    """A read-only table of items, one row each, and which one is selected."""

    def __init__(self, columns: tuple[str, ...], name: str) -> None:
        self.table: QTableWidget = list_table(columns, name)
        # A cell wrapped on a narrow screen (a chart's details in the last column) gets the
        # lines it needs instead of being cut in half; a row is never lower than usual.
        rows = self.table.verticalHeader()
        rows.setMinimumSectionSize(rows.defaultSectionSize())
        rows.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.installEventFilter(_SelectsWhereTheKeyboardIs(self.table))
        self.items: list[T] = []

    def show(self, items: Sequence[T], cells: Callable[[T], Sequence[str]]) -> None:
        """Fill the table (each row's items carry the row's index as their data). The row
        chosen stays chosen only while it shows the same item: a refresh after Mark
        reviewed left the row's index chosen, now the next opening's, so the second click
        of a double-click reviewed an opening nobody had chosen."""
        before = self.selected()
        self.table.clearSelection()
        self.items = list(items)
        self.table.setRowCount(len(self.items))
        for r, item in enumerate(self.items):
            for column, text in enumerate(cells(item)):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)  # a long cell (a merge's reason) is read whole
                cell.setData(Qt.ItemDataRole.UserRole, r)
                self.table.setItem(r, column, cell)
        if before is not None and before in self.items:
            self.table.selectRow(self.items.index(before))

    def selected(self) -> T | None:
        """The item whose row is selected."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.items):
            return None
        return self.items[rows[0].row()]


class OneWrite:
    """One write at a time on the worker: ``busy`` while it runs (buttons wait), then
    ``after`` (enable buttons again), with a failure's message in ``status``."""

    def __init__(self, operations: Operations, status: QLabel, after: Callable[[], None]) -> None:
        self._operations = operations
        self._status = status
        self._after = after
        self._job: Job[Any] | None = None

    @property
    def busy(self) -> bool:
        """Whether a write is running."""
        return self._job is not None

    def run(
        self,
        fn: Callable[[], R],
        done: Callable[[R], None],
        label: str,
        failed_prefix: str = "",
    ) -> None:
        """Run ``fn`` on the worker unless a write is running; ``done`` with its result."""
        if self._job is not None:
            return

        def finished(result: R) -> None:
            self._job = None
            done(result)
            self._after()

        def failed(exc: Exception) -> None:
            self._job = None
            self._after()
            self._status.setText(f"{failed_prefix}{describe_error(exc)}")

        self._job = self._operations.submit(fn, finished, failed, label=label)
        self._after()

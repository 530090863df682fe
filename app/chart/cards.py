"""What the chart's list cards share: the card frame, a read-only table sized to its rows
(the Overview scrolls, so each list shows its rows instead of a scroll box of two),
filling it, and ``ListCard``: reading and showing a list of the patient's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import tab_leaves
from core.records.changeset import Changes
from core.records.clinic import ClinicRecords
from core.records.list_history import people

T = TypeVar("T")
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
    tab_leaves(table)  # on to the card's buttons, the chosen row kept
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 16)
    header = table.horizontalHeader()
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    return table


def columns_in_sight(table: QTableWidget, short: Iterable[int]) -> None:
    """Every column of ``table`` in sight at the table's width: the ``short`` ones (a time,
    a date of birth, a yes) as wide as their contents, the others sharing what is left,
    their long text cut short with "…" (the whole of it in the cell's tooltip). Sized to
    their contents, a long column (what was done, a chart's details) pushed the rest off to
    the right, reached only by scrolling sideways."""
    header = table.horizontalHeader()
    header.setStretchLastSection(False)
    short = set(short)
    for column in range(table.columnCount()):
        mode = (
            QHeaderView.ResizeMode.ResizeToContents
            if column in short
            else (QHeaderView.ResizeMode.Stretch)
        )
        header.setSectionResizeMode(column, mode)
    table.setTextElideMode(Qt.TextElideMode.ElideRight)


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


def fill(
    table: QTableWidget,
    rows: list[tuple[str, list[str]]],
    muted: set[int],
    tips: list[str] | None = None,
) -> None:
    """Rows of (item id, cells); rows in ``muted`` are history, shown greyed; ``tips``: each
    row's tooltip (over every cell of it), if any."""
    table.setRowCount(len(rows))
    for row, (item_id, cells) in enumerate(rows):
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, item_id)
            if tips is not None and tips[row]:
                item.setToolTip(tips[row])
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


class ListCard(Generic[T]):
    """A card listing one of the patient's lists (problems, medications): it reads its
    items on the worker when a chart shows and whenever the patient's record changes, shows
    the current ones or (``history`` ticked) the past ones too, greyed, and opens one dialog
    at a time. Subclasses say how to read, show and act on their items."""

    READ = ""  # the key of this card's reads (Operations.read)
    COLUMNS: tuple[str, ...] = ()
    NOUN = ""  # "problems", in messages

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        title: str,
        history: QCheckBox,
        buttons: tuple[QPushButton, ...],
    ) -> None:
        self._operations = operations
        self._records = records
        self._patient_id: str | None = None
        self._items: list[T] = []
        # Full names of the people the items' history names (user name -> full name).
        self.names: dict[str, str] = {}
        operations.changed.connect(self._changed)
        self.history = history
        history.toggled.connect(lambda _on: self._read())
        self.frame, layout = card(title, history, *buttons)
        self.table = list_table(self.COLUMNS, f"{self.NOUN}Table")
        self.table.itemSelectionChanged.connect(self.update_buttons)
        self.empty = QLabel(f"No {self.NOUN} recorded.")
        self.empty.setObjectName("hint")
        self.message = QLabel()
        self.message.setObjectName("statusText")
        self.message.setWordWrap(True)
        layout.addWidget(self.empty)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.message)
        self.dialog: QDialog | None = None

    # ----- what a subclass says -----------------------------------------------------------

    def fetch(self, records: ClinicRecords, patient_id: str, history: bool) -> list[T]:
        """The items to show (on the worker)."""
        raise NotImplementedError

    def cells(self, item: T) -> list[str]:
        """One item's row."""
        raise NotImplementedError

    def is_history(self, item: T) -> bool:
        """A past item (shown greyed, not acted on)."""
        raise NotImplementedError

    def tooltip(self, item: T) -> str:
        """What the row says when pointed at (who recorded the item, when...)."""
        return ""

    def update_buttons(self) -> None:
        """Enable the card's buttons for the patient and the selected item."""
        raise NotImplementedError

    # ----- ChartSection -----------------------------------------------------------------

    def widget(self) -> QWidget:
        """The card."""
        return self.frame

    def show_patient(self, patient_id: str) -> None:
        """Show this patient's items."""
        self._patient_id = patient_id
        self.update_buttons()
        self._read()

    def clear(self) -> None:
        """Forget the patient: cancel the read, close a dialog, empty the table."""
        self._operations.cancel(self.READ)
        self._patient_id = None
        if self.dialog is not None:
            self.dialog.reject()
        self._items = []
        self.table.setRowCount(0)
        self.table.hide()
        self.empty.hide()
        self.message.hide()
        self.history.setChecked(False)
        self.update_buttons()

    # ----- reading ----------------------------------------------------------------------

    @property
    def items(self) -> list[T]:
        """The items shown, in order."""
        return list(self._items)

    @property
    def patient_id(self) -> str | None:
        """The patient shown."""
        return self._patient_id

    def _changed(self, changes: Changes) -> None:
        if self._patient_id is None:
            return
        # On a merged chart the items shown include the merged-in registrations': a
        # change to one of those records (a medication of theirs stopped here) is this
        # card's too, or it went on showing the medication as taken.
        shown = {str(pid) for i in self._items if (pid := getattr(i, "patient_id", None))}
        if any(changes.touches(p) for p in {self._patient_id, *shown}):
            self._read()

    def _read(self) -> None:
        patient_id, records = self._patient_id, self._records
        if patient_id is None:
            return
        history = self.history.isChecked()

        def read() -> tuple[list[T], dict[str, str]]:
            opened = records()
            items = self.fetch(opened, patient_id, history)
            return items, opened.full_names(people(items))

        self._operations.read(self.READ, read, self._arrived, self._failed)

    def _arrived(self, read: tuple[list[T], dict[str, str]]) -> None:
        items, self.names = read
        self._items = items
        rows = [(str(getattr(i, "id", "")), self.cells(i)) for i in items]
        muted = {n for n, i in enumerate(items) if self.is_history(i)}
        fill(self.table, rows, muted, [self.tooltip(i) for i in items])
        self.table.setVisible(bool(items))
        self.empty.setVisible(not items)
        self.update_buttons()

    def _failed(self, exc: Exception) -> None:
        self.message.setText(f"The {self.NOUN} could not be read. {describe_error(exc)}")
        self.message.show()

    def selected(self) -> T | None:
        """The item whose row is selected."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._items):
            return None
        return self._items[rows[0].row()]

    # ----- dialogs ----------------------------------------------------------------------

    def open_dialog(self, dialog: QDialog) -> None:
        """Show ``dialog`` (one at a time); forgotten when it closes."""
        dialog.finished.connect(self._forget_dialog)
        self.dialog = dialog
        dialog.open()

    def _forget_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

"""The patient list: a lazy table model fed a page at a time, and search-as-you-type.

The model never holds the whole clinic: it asks core for pages of ``PAGE_SIZE`` rows on the
database worker when the view scrolls near the end (``canFetchMore``/``fetchMore``), so a
clinic of 100,000 patients opens as fast as one of 100. Pages are read through
:meth:`app.operations.Operations.read`, where a new query supersedes the one in flight, so
fast typing never shows the results of a query the person has already typed past. The list
reloads when a patient changes, here or on another workstation (``Operations.changed``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.widgets import tab_leaves
from core.records.changeset import Changes
from core.records.models import PatientSummary

PAGE_SIZE = 200
CONFLICT_COLOUR = "#b7791f"
CONFLICT_TIP = "This record has an unresolved conflict: open Conflicts to resolve it"


def conflict_icon(size: int = 12) -> QIcon:
    """A small amber dot: the marker of a record with an open conflict."""
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(0, 0, 0, 0))
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(CONFLICT_COLOUR))
    painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


SEARCH_DEBOUNCE_MS = 150

# Runs on the worker: (search text, limit, offset) -> one page in name order.
FetchPage = Callable[[str, int, int], list[PatientSummary]]
CountPatients = Callable[[], int]

Index = QModelIndex | QPersistentModelIndex


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def age_on(birth_date: str, today: dt.date) -> str:
    """Age on ``today`` in the unit clinics use for it: ``"41 years"`` from 2 years,
    ``"7 months"`` under 2 years, ``"3 weeks"`` from 2 weeks and ``"5 days"`` under a
    month (an infant is never "0 years"). ``""`` if the date cannot be read or is later.

    Whole units, counted by the calendar: someone born on 29 February is a year older on
    1 March in other years, and a month older on the same day of the next month (or on the
    first of the month after, when that month has no such day).
    """
    try:
        born = dt.date.fromisoformat(birth_date)
    except ValueError:
        return ""
    if born > today:
        return ""
    not_yet = (today.month, today.day) < (born.month, born.day)
    years = today.year - born.year - not_yet
    if years >= 2:
        return _count(years, "year")
    months = (today.year - born.year) * 12 + today.month - born.month - (today.day < born.day)
    if months >= 1:
        return _count(months, "month")
    days = (today - born).days
    return _count(days // 7, "week") if days >= 14 else _count(days, "day")


@dataclass(frozen=True)
class PatientRow:
    """One row as displayed (formatted once when the page arrives, not on every paint)."""

    id: str
    name: str
    birth_date: str
    age: str
    sex: str
    mrn: str

    @classmethod
    def from_summary(cls, p: PatientSummary, today: dt.date) -> PatientRow:
        """Format a core summary for display."""
        return cls(
            id=p.id,
            name=f"{p.family.upper()}, {p.given}",
            birth_date=p.birth_date,
            age=age_on(p.birth_date, today),
            sex=(p.sex or "").capitalize(),
            mrn=p.mrn or "",
        )

    def cell(self, column: int) -> str:
        """Text of one column."""
        return (self.name, self.birth_date, self.age, self.sex, self.mrn)[column]


class PatientListModel(QAbstractTableModel):
    """Patients matching the current search, loaded lazily in pages on the worker."""

    COLUMNS = ("Name", "Date of birth", "Age", "Sex", "MRN")
    PatientIdRole = Qt.ItemDataRole.UserRole + 1
    ConflictRole = Qt.ItemDataRole.UserRole + 2

    query_finished = Signal(str)  # the first page of this search text has arrived
    page_loaded = Signal()  # any page (first or later) has arrived
    load_failed = Signal(str)  # plain-language message

    # The key of the model's reads: a new first page supersedes any page in flight.
    READ = "patients.page"

    def __init__(
        self,
        operations: Operations,
        fetch_page: FetchPage,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._fetch_page = fetch_page
        self._page_size = page_size
        self._rows: list[PatientRow] = []
        self._query = ""
        self._active = False  # False while locked: nothing may be fetched
        self._has_more = False
        self._loading = False
        self._conflicted: set[str] = set()
        self._conflict_icon: QIcon | None = None

    # ----- state ------------------------------------------------------------------------

    @property
    def query(self) -> str:
        """The search text whose results are shown (or being fetched)."""
        return self._query

    @property
    def loading(self) -> bool:
        """True while a page is being fetched."""
        return self._loading

    @property
    def has_more(self) -> bool:
        """True if core may hold more rows for this query than are loaded."""
        return self._has_more

    def patient_id(self, row: int) -> str:
        """The record id shown in ``row``."""
        return self._rows[row].id

    def set_conflicted(self, record_ids: set[str]) -> None:
        """Mark the rows of these patients as having an open conflict."""
        if record_ids == self._conflicted:
            return
        self._conflicted = set(record_ids)
        if self._rows:
            last = len(self._rows) - 1
            self.dataChanged.emit(self.index(0, 0), self.index(last, 0))

    def set_query(self, text: str) -> None:
        """Show patients matching ``text`` (all patients when blank), from the first page."""
        self._active = True
        self._query = text.strip()
        self._start_fetch(offset=0)

    def refresh(self) -> None:
        """Reload the current query (after a patient was added or changed): as many rows as
        are loaded now, so the view can keep its place."""
        if self._active:
            self._start_fetch(offset=0, limit=max(self._page_size, len(self._rows)))

    def clear(self) -> None:
        """Forget every row and stop fetching (the workstation is locking)."""
        self._operations.cancel(self.READ)
        self.beginResetModel()
        self._rows = []
        self._query = ""
        self._active = False
        self._has_more = False
        self._loading = False
        self.endResetModel()

    def _start_fetch(self, offset: int, limit: int | None = None) -> None:
        # Under one key: a first page supersedes whatever is in flight, first page or later
        # (a later page is only asked for while nothing is loading).
        self._loading = True
        fetch, query = self._fetch_page, self._query
        size = limit or self._page_size
        self._operations.read(
            self.READ,
            lambda: fetch(query, size, offset),
            lambda page: self._page_arrived(offset, page, size),
            self._page_failed,
            label=f"patients page {offset}",
        )

    def _page_arrived(self, offset: int, page: list[PatientSummary], size: int) -> None:
        self._loading = False
        today = dt.date.today()
        rows = [PatientRow.from_summary(p, today) for p in page]
        self._has_more = len(page) >= size
        if offset == 0:
            self.beginResetModel()
            self._rows = rows
            self.endResetModel()
            self.query_finished.emit(self._query)
        elif offset == len(self._rows) and rows:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()
        self.page_loaded.emit()

    def _page_failed(self, exc: Exception) -> None:
        self._loading = False
        self._has_more = False
        self.load_failed.emit(describe_error(exc))

    # ----- QAbstractTableModel ----------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt default)
        """Rows loaded so far."""
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt default)
        """Name, date of birth, age, sex, MRN."""
        return 0 if parent.isValid() else len(self.COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text, the patient id (PatientIdRole), and alignment."""
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return row.cell(index.column())
        if role == self.PatientIdRole:
            return row.id
        if role == self.ConflictRole:
            return row.id in self._conflicted
        if index.column() == 0 and row.id in self._conflicted:
            if role == Qt.ItemDataRole.DecorationRole:
                if self._conflict_icon is None:
                    self._conflict_icon = conflict_icon()
                return self._conflict_icon
            if role == Qt.ItemDataRole.ToolTipRole:
                return CONFLICT_TIP
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ) -> Any:
        """Column titles."""
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole and section == 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def canFetchMore(self, parent: Index) -> bool:
        """True when the view may ask for the next page."""
        if parent.isValid():
            return False
        return self._active and self._has_more and not self._loading

    def fetchMore(self, parent: Index) -> None:
        """Ask the worker for the next page; rows are inserted when it arrives."""
        if self.canFetchMore(parent):
            self._start_fetch(offset=len(self._rows))


class PatientTable(QTableView):
    """The list view: whole-row selection; Enter or a double-click opens the chart."""

    open_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("patientTable")
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        tab_leaves(self)  # on to Open chart, the chosen patient kept
        self.verticalHeader().hide()
        # Fixed row heights: the view never measures rows, which keeps long lists fast.
        rows = self.verticalHeader()
        rows.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        rows.setDefaultSectionSize(self.fontMetrics().height() + 16)
        self.doubleClicked.connect(self._open_index)

    def setModel(self, model: Any) -> None:
        """Set the model, then size the columns (names get the spare width)."""
        super().setModel(model)
        header = self.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        # Wide enough for the (bold) title and typical content, plus the cell padding.
        title_font = QFont(self.font())
        title_font.setBold(True)
        titles, cells = QFontMetrics(title_font), self.fontMetrics()
        samples = ((1, "0000-00-00"), (2, "00 months"), (3, "Unknown"), (4, "RFP-00000-0"))
        for column, sample in samples:
            title = PatientListModel.COLUMNS[column]
            width = max(titles.horizontalAdvance(title), cells.horizontalAdvance(sample))
            header.resizeSection(column, width + 44)

    def current_patient_id(self) -> str | None:
        """Id of the selected row, if any."""
        index = self.currentIndex()
        if not index.isValid():
            return None
        value = index.siblingAtColumn(0).data(PatientListModel.PatientIdRole)
        return str(value) if value is not None else None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter opens the selected chart; other keys navigate as usual."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.open_current()
            return
        super().keyPressEvent(event)

    def open_current(self) -> None:
        """Open the chart of the selected row (nothing when none is)."""
        self._open_index(self.currentIndex())

    def _open_index(self, index: QModelIndex) -> None:
        if index.isValid():
            value = index.siblingAtColumn(0).data(PatientListModel.PatientIdRole)
            if value is not None:
                self.open_requested.emit(str(value))


class PatientListPage(QWidget):
    """Search box, status line and the lazy patient table."""

    open_requested = Signal(str)
    duplicates_requested = Signal()  # Possible duplicates… (clinicians and admins)

    COUNT = "patients.count"  # the key of the count's reads

    def __init__(
        self,
        operations: Operations,
        fetch_page: FetchPage,
        count_patients: CountPatients,
        debounce_ms: int = SEARCH_DEBOUNCE_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._count_patients = count_patients
        self._total: int | None = None

        self.search = QLineEdit()
        self.search.setObjectName("searchBox")
        self.search.setPlaceholderText("Search by name, MRN or date of birth (YYYY-MM-DD)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search patients")
        self.search.installEventFilter(self)

        self.status = QLabel()
        self.status.setObjectName("statusText")

        self.model = PatientListModel(operations, fetch_page, parent=self)
        self.table = PatientTable()
        self.table.setModel(self.model)
        self.table.setAccessibleName("Patients")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        layout.addWidget(self.search)
        layout.addWidget(self.table, 1)
        # Below the list: the status line, and for those who merge charts, the way to the
        # likely duplicates (app/patients/duplicates.py); hidden until a sign-in shows it.
        self.duplicates_button = QPushButton("Possible duplicates…")
        self.duplicates_button.setObjectName("duplicatesButton")
        self.duplicates_button.setToolTip(
            "Charts that may be one person's, to merge (clinicians and administrators)"
        )
        self.duplicates_button.hide()
        self.duplicates_button.clicked.connect(self.duplicates_requested)
        footer = QHBoxLayout()
        footer.addWidget(self.status, 1)
        footer.addWidget(self.duplicates_button)
        layout.addLayout(footer)

        # Debounce: search once typing pauses, not on every keystroke.
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._run_search)
        self.search.textChanged.connect(self._debounce.start)

        self.table.open_requested.connect(self.open_requested)
        self.model.query_finished.connect(self._update_status)
        self.model.page_loaded.connect(self._update_status)
        # (selected patient id, scroll position) to restore after a refresh's reset
        self._keep: tuple[str | None, int] | None = None
        self.model.modelReset.connect(self._select_first_row)
        self.model.load_failed.connect(self.status.setText)
        operations.changed.connect(self.records_changed)

    def activate(self) -> None:
        """Load the first page and the patient count (just signed in)."""
        self._debounce.stop()
        self._keep = None
        self.model.set_query(self.search.text())
        self.refresh_count()

    def refresh(self) -> None:
        """Reload after a change, keeping the search text, the selected patient and the
        scroll position (a colleague's change arriving by sync must not move the list)."""
        self._keep = (self.table.current_patient_id(), self.table.verticalScrollBar().value())
        self.model.refresh()
        self.refresh_count()

    def records_changed(self, changes: Changes) -> None:
        """Reload when any patient was added, changed or deleted (a list row may differ)."""
        if changes.changed("patient"):
            self.refresh()

    def refresh_count(self) -> None:
        """Fetch the number of patients in the clinic for the status line."""
        self._operations.read(
            self.COUNT, self._count_patients, self._count_arrived, self._count_failed
        )

    def clear(self) -> None:
        """Remove every patient detail shown (the workstation is locking)."""
        self._debounce.stop()
        self._operations.cancel(self.COUNT)
        self.search.blockSignals(True)
        self.search.clear()
        self.search.blockSignals(False)
        self.model.clear()
        self._total = None
        self.status.clear()

    def _run_search(self) -> None:
        self._keep = None  # a new search starts at its first match
        self.model.set_query(self.search.text())
        self.status.setText("Searching…")

    def _count_arrived(self, total: int) -> None:
        self._total = total
        self._update_status()

    def _count_failed(self, exc: Exception) -> None:
        self.status.setText(describe_error(exc))

    def _select_first_row(self) -> None:
        keep, self._keep = self._keep, None
        if keep is not None:
            patient_id, scrolled = keep
            for row in range(self.model.rowCount()):
                if self.model.patient_id(row) == patient_id:
                    self.table.selectRow(row)
                    break
            # After the selection, which may have scrolled to show the row.
            self.table.verticalScrollBar().setValue(scrolled)
            return
        if self.model.rowCount() > 0:
            self.table.selectRow(0)

    def _update_status(self) -> None:
        model = self.model
        shown = model.rowCount()
        if model.query:
            if shown == 0:
                text = (
                    f"No patients match “{model.query}”. Check the spelling, or search by "
                    "MRN or date of birth."
                )
            else:
                more = " (scroll for more)" if model.has_more else ""
                noun = "patient matches" if shown == 1 else "patients match"
                text = f"{shown:,}{'+' if model.has_more else ''} {noun} “{model.query}”{more}"
        elif self._total is None:
            text = ""
        elif self._total == 0:
            text = "No patients yet. Use “New patient” to register the first one."
        else:
            noun = "patient" if self._total == 1 else "patients"
            text = f"{self._total:,} {noun} in the clinic"
        self.status.setText(text)

    def searched(self) -> bool:
        """True when the list shows the patients found for what the search box holds (not
        those of an earlier search, with this one waiting or on its way)."""
        return (
            not self._debounce.isActive()
            and not self.model.loading
            and self.model.query == self.search.text().strip()
        )

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """In the search box, Enter opens the selected chart (the first found: README,
        "Enter opens the selected chart"; it took a second Enter, in the list); Down goes
        into the list to choose another. Pressed before the search has run, Enter runs it
        and opens nothing: the row selected was an earlier search's, another patient."""
        if watched is self.search and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                if self.searched():
                    self.table.open_current()
                elif self._debounce.isActive():
                    self._debounce.stop()
                    self._run_search()
                return True
            if key == Qt.Key.Key_Down:
                if self._debounce.isActive():
                    self._debounce.stop()
                    self._run_search()
                self.table.setFocus()
                if not self.table.currentIndex().isValid() and self.model.rowCount():
                    self.table.selectRow(0)
                return True
        return super().eventFilter(watched, event)

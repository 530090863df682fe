"""The schedule page: a day or a week, for one clinician or the whole clinic, and the
waiting room (who has arrived, and for how long).

Reads and writes go through :class:`~app.operations.Operations`; the page refreshes when an
appointment (or a patient, whose name it shows) changes, here or by sync. The waiting times
are worked out again every minute from each arrival time, without a database read.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.chart.permits import ANY, restrict
from app.chart.printing import PrintDialog, print_day
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.schedule.booking import BookingDialog, CancelDialog, clash_lines, overlap_heading
from app.schedule.columns import (
    REASON_SHOWN,
    RoomForMarks,
    SharedColumns,
    family_and_initial,
    family_line,
    first_characters,
    longest_word,
)
from app.widgets import ask_first, ignore_wheel, tab_leaves
from core.records.changeset import Changes
from core.records.schedule import (
    STATUS_LABELS,
    Appointment,
    Clinician,
    OverlapError,
    Schedule,
    describe,
    now_local,
    week_start,
)
from core.records.visits import Visits

READ_KEY = "schedule.view"
DAY, WEEK = "day", "week"
DAY_COLUMNS = ("Time", "Patient", "Clinician", "Reason", "Status")
REASON = DAY_COLUMNS.index("Reason")
PATIENT, CLINICIAN = DAY_COLUMNS.index("Patient"), DAY_COLUMNS.index("Clinician")
WAITING_COLUMNS = ("Patient", "Clinician", "Waiting")
SIDE_WIDTH = (280, 420)  # the waiting room's narrowest and widest
# What "Back to booked" undoes, by the status it is pressed on (README "The schedule").
BACK_TO_BOOKED = {
    "arrived": "Undo the check-in (the wrong patient was checked in): back to booked, "
    "out of the waiting room",
    "cancelled": "Reinstate the cancelled appointment (its cancellation reason goes)",
    "no_show": "Book the no-show again (one who turned up late is checked in with Arrived)",
}


@dataclass(frozen=True)
class ScheduleView:
    """What one read brings: the appointments shown, today's waiting room, the clinicians."""

    appointments: list[Appointment]
    waiting: list[Appointment]
    clinicians: list[Clinician]
    # What the signed-in person may do on the chart of each patient who has arrived (read
    # with the schedule, on the worker): Start visit is offered only where they may.
    permitted: dict[str, frozenset[str]] = field(default_factory=dict)


def waiting_text(minutes: int) -> str:
    """``just arrived``, ``5 min``, ``1 h 05 min``."""
    if minutes < 1:
        return "just arrived"
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _item(text: str, appointment_id: str | None = None) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
    if appointment_id is not None:
        item.setData(Qt.ItemDataRole.UserRole, appointment_id)
    return item


def _table(name: str, columns: tuple[str, ...], stretch: int | None) -> QTableWidget:
    """A read-only table selecting one row; column ``stretch`` takes the spare width
    (None: every column shares it)."""
    table = QTableWidget(0, len(columns))
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().hide()
    # Tab goes on to the buttons under the list, acting on the appointment chosen in it.
    tab_leaves(table)
    header = table.horizontalHeader()
    if stretch is None:
        header.setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    else:
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
    return table


class SchedulePage(QWidget):
    """Day and week views with the waiting room beside them."""

    # The visits part connects here: the person chose "Start visit" on an arrived patient
    # and the visit has started (core's Visits.start set the appointment in visit and
    # created the visit in one write); they show it.
    start_visit_requested = Signal(str, str)  # appointment id, patient id
    open_chart_requested = Signal(str)  # patient id

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        clock: Callable[[], dt.datetime] = now_local,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("schedulePage")
        self._operations = operations
        self._records = records
        self.clock = clock  # the clinic's local time now (tests set their own)
        self.day = clock().date()
        self.mode = DAY
        self.appointments: list[Appointment] = []
        self.waiting: list[Appointment] = []
        self.clinicians: list[Clinician] = []
        self.dialog: BookingDialog | CancelDialog | None = None
        self.action: QAction | None = None  # the main window's Schedule button, once added
        self._draft: dict[str, Any] | None = None  # a booking to reopen once the page is read

        heading = QLabel("Schedule")
        heading.setObjectName("dialogHeading")
        self.day_button = QPushButton("Day")
        self.week_button = QPushButton("Week")
        self.modes = QButtonGroup(self)
        for button in (self.day_button, self.week_button):
            button.setCheckable(True)
            self.modes.addButton(button)
        self.day_button.setChecked(True)
        self.previous_button = QPushButton("◀")
        self.previous_button.setAccessibleName("Previous")
        self.previous_button.setToolTip("Previous day or week (Alt+Left)")
        self.today_button = QPushButton("Today")
        self.next_button = QPushButton("▶")
        self.next_button.setAccessibleName("Next")
        self.next_button.setToolTip("Next day or week (Alt+Right)")
        self.previous_button.setShortcut("Alt+Left")
        self.next_button.setShortcut("Alt+Right")
        self.span_label = QLabel()
        self.span_label.setObjectName("scheduleSpan")
        self.clinician = QComboBox()
        self.clinician.setAccessibleName("Clinician")
        self.clinician.addItem("Whole clinic", None)
        ignore_wheel(self.clinician)
        self.book_button = QPushButton("Book appointment…")
        self.book_button.setObjectName("primary")
        self.book_button.setShortcut("Ctrl+B")
        self.book_button.setToolTip("Book an appointment (Ctrl+B)")
        self.print_button = QPushButton("Print day…")
        self.print_button.setToolTip("The day's appointment list as a PDF or on paper")
        self.print_button.clicked.connect(self.print_day)
        self.print_dialog: PrintDialog | None = None
        # Two rows, so every button keeps its whole label on a 1024-pixel screen: what the
        # page does on top, and under it where in time it is (the day or week named whole).
        top = QHBoxLayout()
        top.addWidget(heading)
        top.addStretch(1)
        top.addWidget(self.clinician)
        top.addWidget(self.print_button)
        top.addWidget(self.book_button)
        moves = QHBoxLayout()
        moves.addWidget(self.day_button)
        moves.addWidget(self.week_button)
        moves.addSpacing(12)
        moves.addWidget(self.previous_button)
        moves.addWidget(self.today_button)
        moves.addWidget(self.next_button)
        moves.addSpacing(12)
        moves.addWidget(self.span_label, 1)

        self.day_table = _table("dayTable", DAY_COLUMNS, stretch=REASON)
        # One line a row, a long reason ending in "…" (whole in its tooltip): wrapped at its
        # words, the row's one line showed "Flu …" of "Flu symptoms" with room to spare.
        self.day_table.setWordWrap(False)
        # Narrow (a 1024-pixel screen), a reason keeps its first dozen characters and its
        # header whole: a long patient's given names give way ("D'ARCY-NÚÑEZ, Zoë…", whole
        # in the tooltip), then a clinician's name; spare width goes to the reason.
        self.day_columns = SharedColumns(
            self.day_table,
            [(REASON, first_characters(REASON_SHOWN)), (PATIENT, family_and_initial),
             (CLINICIAN, first_characters(10))],
            spare=REASON,
        )  # fmt: skip
        self.week_table = _table("weekTable", ("",) * 7, stretch=None)
        self.week_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.week_table.setWordWrap(False)
        self.views = QStackedWidget()
        self.views.addWidget(self.day_table)
        self.views.addWidget(self.week_table)

        self.arrived_button = QPushButton("Arrived")
        self.arrived_button.setToolTip("Check the patient in: they join the waiting room")
        self.start_visit_button = QPushButton("Start visit")
        self.start_visit_button.setToolTip("Start the patient's visit: they leave the waiting room")
        self.permitted: dict[str, frozenset[str]] = {}  # by patient id (ScheduleView)
        self.done_button = QPushButton("Done")
        self.no_show_button = QPushButton("No-show")
        # The front desk's way back from a slip (README "The schedule"); an in-visit
        # patient is not sent back from here: the visit Start visit made would stay open.
        self.back_button = QPushButton("Back to booked")
        self.back_button.setToolTip("Put a check-in, a cancellation or a no-show back to booked")
        self.question: QMessageBox | None = None  # "already booked: put it back anyway?"
        self.move_button = QPushButton("Move…")
        self.cancel_button = QPushButton("Cancel…")
        self.cancel_button.setObjectName("danger")
        self.open_chart_button = QPushButton("Open chart")
        actions = QHBoxLayout()
        for button in self.action_buttons()[:-1]:
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.open_chart_button)
        self.error = QLabel()
        self.error.setObjectName("fieldError")
        self.error.setWordWrap(True)
        self.error.hide()

        left = QVBoxLayout()
        left.addWidget(self.views, 1)

        self.waiting_heading = QLabel("Waiting room")
        self.waiting_heading.setObjectName("cardHeading")
        self.waiting_table = _table("waitingTable", WAITING_COLUMNS, stretch=0)
        # A waiting patient is named whole, on two lines where the room is narrow (the
        # family name on the first): one line cut it to "D'ARCY-NÚÑEZ, …" at 1120 wide and
        # "D'ARCY-…" at 1024. The wait wraps first, then the patient (down to the family
        # name's line), then the clinician, each at its words.
        self.waiting_table.setWordWrap(True)
        # Two lines sized by Qt left a capital's accent above the row, cut under the header.
        self.waiting_table.setItemDelegate(RoomForMarks(self.waiting_table))
        self.waiting_table.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.waiting_columns = SharedColumns(
            self.waiting_table, [(2, longest_word), (0, family_line), (1, longest_word)], spare=0
        )
        self.waiting_empty = QLabel("Nobody is waiting.")
        self.waiting_empty.setObjectName("hint")
        right = QVBoxLayout()
        # No margins of its own: a widget's layout gets the style's (9 px), which left the
        # waiting room 9 px short of the page's edge and below the day list's top.
        right.setContentsMargins(0, 0, 0, 0)
        right.addWidget(self.waiting_heading)
        right.addWidget(self.waiting_table, 1)
        right.addWidget(self.waiting_empty)
        self.side = QWidget()
        self.side.setLayout(right)
        # A third of the width beside the day list's two, up to 420 pixels: fixed at 420,
        # an empty waiting room kept half a 1024-pixel window and the day list's Reason was
        # crushed to "W…"; at three eighths a reason showed 4 characters there beside
        # "D'ARCY-NÚÑEZ, Zoë Anaïs". The waiting room wraps its names to fit a third.
        self.side.setMinimumWidth(SIDE_WIDTH[0])
        self.side.setMaximumWidth(SIDE_WIDTH[1])

        body = QHBoxLayout()
        body.addLayout(left, 2)
        body.addSpacing(16)
        body.addWidget(self.side, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addLayout(moves)
        layout.addLayout(body, 1)
        # The actions under both lists: they act on the appointment selected in either, and
        # across the page's width their labels fit beside the waiting room.
        layout.addLayout(actions)
        layout.addWidget(self.error)
        # Tab from the list goes to the buttons under it, which act on the appointment
        # chosen there, and then to the waiting room (whose choice they act on too).
        order = [self.day_table, self.week_table, *self.action_buttons(), self.waiting_table]
        for first, second in itertools.pairwise(order):
            QWidget.setTabOrder(first, second)

        # The waiting times move on by themselves (a minute at a time).
        self.tick = QTimer(self)
        self.tick.setInterval(60_000)
        self.tick.timeout.connect(self.show_waiting)

        self.day_button.clicked.connect(lambda: self.set_mode(DAY))
        self.week_button.clicked.connect(lambda: self.set_mode(WEEK))
        self.previous_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.today_button.clicked.connect(self.go_today)
        self.clinician.currentIndexChanged.connect(lambda _i: self._moved())
        self.book_button.clicked.connect(lambda: self.book())
        self.arrived_button.clicked.connect(lambda: self.set_status("arrived"))
        self.done_button.clicked.connect(lambda: self.set_status("done"))
        self.no_show_button.clicked.connect(lambda: self.set_status("no_show"))
        self.back_button.clicked.connect(lambda: self.set_status("booked"))
        self.start_visit_button.clicked.connect(self.start_visit)
        self.move_button.clicked.connect(self.move_selected)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_chart_button.clicked.connect(self._open_chart)
        self._source: QTableWidget = self.day_table  # where the person last selected
        for table in (self.day_table, self.week_table, self.waiting_table):
            table.itemSelectionChanged.connect(lambda t=table: self._selected_in(t))
        self.day_table.itemDoubleClicked.connect(lambda _i: self._open_chart())
        # A right click on an appointment, or the Menu key (Shift+F10) in a list, offers
        # what the buttons under the lists offer for it.
        for table in (self.day_table, self.week_table, self.waiting_table):
            table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
            table.customContextMenuRequested.connect(lambda pos, t=table: self.context_menu(t, pos))
            for keys in ("Menu", "Shift+F10"):
                shortcut = QShortcut(QKeySequence(keys), table)
                shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)
                shortcut.activated.connect(lambda t=table: self.context_menu(t))
        self.menu: QMenu | None = None
        operations.changed.connect(self.records_changed)
        self._selection_changed()

    def action_buttons(self) -> list[QPushButton]:
        """The buttons under the lists, in the order they sit (and Tab reaches them)."""
        return [
            self.arrived_button, self.start_visit_button, self.done_button,
            self.no_show_button, self.back_button, self.move_button, self.cancel_button,
            self.open_chart_button,
        ]  # fmt: skip

    # ----- what is shown ----------------------------------------------------------------

    @property
    def clinician_filter(self) -> str | None:
        """The chosen clinician's user name, or None for the whole clinic."""
        data = self.clinician.currentData()
        return None if data is None else str(data)

    def activate(self) -> None:
        """Shown: read the schedule and start the waiting-room clock."""
        self.tick.start()
        self.refresh()

    def set_mode(self, mode: str) -> None:
        """Day or week."""
        self.mode = mode
        (self.day_button if mode == DAY else self.week_button).setChecked(True)
        self.views.setCurrentWidget(self.day_table if mode == DAY else self.week_table)
        # The week needs the width; the waiting room is about today (the day view).
        self.side.setVisible(mode == DAY)
        self._moved()

    def step(self, direction: int) -> None:
        """The next (1) or previous (-1) day or week."""
        self.day += dt.timedelta(days=direction * (1 if self.mode == DAY else 7))
        self._moved()

    def go_today(self) -> None:
        """Back to today."""
        self.day = self.clock().date()
        self._moved()

    def show_day(self, day: dt.date) -> None:
        """Show ``day`` (or its week)."""
        self.day = day
        self._moved()

    def _moved(self) -> None:
        """Another day, week, view or clinician: read it. A refusal shown under the list
        was about an appointment of the span left behind, and goes with it."""
        self.error.hide()
        self.refresh()

    def refresh(self) -> None:
        """Read the shown span, the waiting room and the clinicians on the worker."""
        records, clinician, mode, day = self._records, self.clinician_filter, self.mode, self.day
        today = self.clock().date()

        def read() -> ScheduleView:
            clinic = records()
            schedule = Schedule(clinic)
            shown = schedule.day(day, clinician) if mode == DAY else schedule.week(day, clinician)
            waiting = schedule.waiting(today)
            arrived = {a.patient_id for a in (*shown, *waiting) if a.status == "arrived"}
            return ScheduleView(
                shown,
                waiting,
                schedule.clinicians(),
                {patient_id: clinic.permitted(patient_id) for patient_id in arrived},
            )

        self._show_span()
        self._operations.read(READ_KEY, read, self._arrived, self._read_failed)

    def loading(self) -> bool:
        """True while a read is in flight."""
        return self._operations.reading(READ_KEY)

    def records_changed(self, changes: Changes) -> None:
        """Read again when an appointment or a patient changed (here or by sync)."""
        if self.isVisible() and (changes.changed("appointment") or changes.changed("patient")):
            self.refresh()

    def print_day(self) -> None:
        """The day the page is on as a printable list (in the week view, the day it was
        opened from or moved to)."""
        dialog = print_day(self, self._operations, self._records, self.day.isoformat())
        dialog.finished.connect(lambda _result: setattr(self, "print_dialog", None))
        self.print_dialog = dialog

    def clear(self) -> None:
        """Signing out: nothing about patients stays on the page."""
        self._operations.cancel(READ_KEY)
        self._draft = None
        self.tick.stop()
        for dialog in (self.dialog, self.print_dialog, self.question):
            if dialog is not None:
                dialog.reject()
        if self.menu is not None:
            self.menu.close()
        self.appointments, self.waiting = [], []
        self.permitted = {}
        for table in (self.day_table, self.week_table, self.waiting_table):
            table.setRowCount(0)
        self.error.hide()

    def _show_span(self) -> None:
        if self.mode == DAY:
            self.span_label.setText(self.day.strftime("%A %d %B %Y"))
        else:
            monday = week_start(self.day)
            sunday = monday + dt.timedelta(days=6)
            self.span_label.setText(
                f"Week of {monday.strftime('%d %B')} to {sunday.strftime('%d %B %Y')}"
            )

    def _arrived(self, view: ScheduleView) -> None:
        self.appointments, self.waiting = view.appointments, view.waiting
        self.permitted = view.permitted
        if [c.username for c in view.clinicians] != [c.username for c in self.clinicians]:
            self._set_clinicians(view.clinicians)
        if self.mode == DAY:
            self._fill_day()
        else:
            self._fill_week()
        self.show_waiting()
        self._selection_changed()
        if self._draft is not None:  # the clinicians are known now
            draft, self._draft = self._draft, None
            self.book().restore(draft)

    def _read_failed(self, exc: Exception) -> None:
        self._show_error(describe_error(exc))

    def _set_clinicians(self, clinicians: list[Clinician]) -> None:
        self.clinicians = clinicians
        chosen = self.clinician_filter
        self.clinician.blockSignals(True)
        self.clinician.clear()
        self.clinician.addItem("Whole clinic", None)
        for c in clinicians:
            self.clinician.addItem(c.label, c.username)
        self.clinician.setCurrentIndex(max(self.clinician.findData(chosen), 0))
        self.clinician.blockSignals(False)

    def _clinician_name(self, username: str | None) -> str:
        found = next((c for c in self.clinicians if c.username == username), None)
        return found.label if found is not None else (username or "—")

    def _fill_day(self) -> None:
        selected = self.selected_id()
        table = self.day_table
        # The selection is of the appointment, not of a row: another day (or a refresh
        # that took it off the list) left the same row selected under someone else's
        # appointment, with the buttons acting on it. Chosen again below if still shown.
        table.clearSelection()
        table.setCurrentIndex(QModelIndex())
        table.setRowCount(len(self.appointments))
        for row, a in enumerate(self.appointments):
            start, end = a.starts_at[11:], a.ends_at[11:]
            reason = a.reason or ""
            if a.status == "cancelled" and a.cancel_reason:
                reason = f"{reason} (cancelled: {a.cancel_reason})".strip()
            cells = (f"{start}–{end}", a.patient_name, self._clinician_name(a.clinician),
                     reason, a.status_label)  # fmt: skip
            for column, text in enumerate(cells):
                item = _item(text, a.id)
                if a.status in ("cancelled", "no_show"):
                    item.setForeground(Qt.GlobalColor.gray)
                if column in (PATIENT, REASON) and text:
                    item.setToolTip(text)  # whole, where the column elides it
                table.setItem(row, column, item)
            if a.id == selected:
                table.selectRow(row)
        self.day_columns.fit()

    def _fill_week(self) -> None:
        monday = week_start(self.day)
        days = [monday + dt.timedelta(days=i) for i in range(7)]
        by_day: dict[dt.date, list[Appointment]] = {d: [] for d in days}
        for a in self.appointments:
            by_day.setdefault(dt.date.fromisoformat(a.starts_at[:10]), []).append(a)
        table = self.week_table
        selected = self.selected_id()
        table.clearSelection()  # as in the day view: the appointment, never a cell
        table.setCurrentIndex(QModelIndex())
        table.clearContents()
        table.setHorizontalHeaderLabels([d.strftime("%a %d %b") for d in days])
        table.setRowCount(max((len(v) for v in by_day.values()), default=0))
        for column, d in enumerate(days):
            for row, a in enumerate(by_day[d]):
                # Two lines, never wrapped (a long name is elided; the tooltip has it all).
                lines = [
                    a.patient_name,
                    f"{a.starts_at[11:]} · {self._clinician_name(a.clinician)}",
                ]
                if a.status != "booked":
                    lines.append(a.status_label)
                item = _item("\n".join(lines), a.id)
                item.setToolTip("\n".join([*lines, a.reason or ""]).strip())
                if a.status in ("cancelled", "no_show"):
                    item.setForeground(Qt.GlobalColor.gray)
                table.setItem(row, column, item)
                if a.id == selected:
                    table.setCurrentItem(item)
        table.resizeRowsToContents()

    def show_waiting(self) -> None:
        """The waiting room, with each wait worked out from the arrival time now."""
        now = self.clock()
        table = self.waiting_table
        table.setRowCount(len(self.waiting))
        for row, a in enumerate(self.waiting):
            minutes = a.waiting_minutes(now) or 0
            cells = (a.patient_name, self._clinician_name(a.clinician), waiting_text(minutes))
            for column, text in enumerate(cells):
                table.setItem(row, column, _item(text, a.id))
        self.waiting_columns.fit()
        self.waiting_empty.setVisible(not self.waiting)

    def waiting_texts(self) -> list[tuple[str, str]]:
        """(patient, waiting) as the waiting room shows them."""
        t = self.waiting_table

        def text(row: int, column: int) -> str:
            item = t.item(row, column)
            return item.text() if item is not None else ""

        return [(text(r, 0), text(r, 2)) for r in range(t.rowCount())]

    # ----- the selected appointment -----------------------------------------------------

    def selected_id(self) -> str | None:
        """The appointment last selected (in the visible view or the waiting room)."""
        for table in (self._source, self.views.currentWidget()):
            assert isinstance(table, QTableWidget)
            items = [i for i in table.selectedItems() if i.data(Qt.ItemDataRole.UserRole)]
            if items:
                return str(items[0].data(Qt.ItemDataRole.UserRole))
        return None

    def selected(self) -> Appointment | None:
        """The selected appointment."""
        wanted = self.selected_id()
        return next((a for a in (*self.appointments, *self.waiting) if a.id == wanted), None)

    def select(self, appointment_id: str) -> None:
        """Select an appointment in the visible view."""
        table = self.views.currentWidget()
        assert isinstance(table, QTableWidget)
        for row in range(table.rowCount()):
            for column in range(table.columnCount()):
                item = table.item(row, column)
                if item is not None and item.data(Qt.ItemDataRole.UserRole) == appointment_id:
                    table.setCurrentItem(item)
                    return

    def _selected_in(self, table: QTableWidget) -> None:
        if table.selectedItems():
            self._source = table
        self._selection_changed()

    def _selection_changed(self) -> None:
        # The window's focus, kept while a dialog of it (Cancel appointment) is active.
        pressed = self.window().focusWidget()
        self._enable_actions()
        # The button pressed (Arrived, No-show, Done, Cancel…) is greyed out by the status it
        # set, and Qt hands the keyboard on to the next button enabled: after Arrived, the
        # red Cancel…, where a stray Space then Return cancelled the appointment just
        # checked in. The keyboard goes back to the list instead.
        greyed = isinstance(pressed, QPushButton) and not pressed.isEnabled()
        if greyed and pressed in self.action_buttons():
            self._back_to_list()

    def _back_to_list(self) -> None:
        """The keyboard goes back to the list the appointment was chosen in (its row stays
        chosen): a harmless place, from which Tab reaches the buttons again."""
        table = self._source if self._source.isVisible() else self.views.currentWidget()
        if table is not None:
            table.setFocus(Qt.FocusReason.OtherFocusReason)

    def _enable_actions(self) -> None:
        a = self.selected()
        status = a.status if a is not None else None
        self.arrived_button.setEnabled(status in ("booked", "no_show"))
        # Only a nurse or a clinician (on the care team, for a restricted chart) starts a
        # visit: for anyone else (the front desk) the button says so instead of being
        # pressed for a refusal.
        restrict(
            self.start_visit_button,
            self.permitted.get(a.patient_id, frozenset())
            if a is not None and a.status == "arrived"
            else ANY,
            "encounter.create",
            enabled=status == "arrived",
        )
        self.done_button.setEnabled(status == "in_visit")
        self.no_show_button.setEnabled(status == "booked")
        self.back_button.setEnabled(status in BACK_TO_BOOKED)
        if status in BACK_TO_BOOKED:
            self.back_button.setToolTip(BACK_TO_BOOKED[status])
        self.move_button.setEnabled(status == "booked")
        self.cancel_button.setEnabled(status in ("booked", "arrived"))
        self.open_chart_button.setEnabled(a is not None)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()

    # ----- actions ----------------------------------------------------------------------

    def book(self, start: str = "") -> BookingDialog:
        """Open the booking dialog (at ``start`` if given, else the shown day at 09:00), for
        the clinician whose day the page shows (the person chose it), else for whichever
        clinician the person chooses in it (the only one, in a clinic of one)."""
        when = start or f"{self.day.isoformat()} 09:00"
        dialog = BookingDialog(
            self._operations, self._records, self.clinicians, when, self.clinician_filter,
            parent=self, clock=lambda: self.clock(),
        )  # fmt: skip
        self._open_dialog(dialog)
        dialog.patient_search.setFocus()
        return dialog

    def reopen_booking(self, draft: dict[str, Any]) -> None:
        """A booking kept across a sign-out: open it again, filled, once the page is read."""
        self._draft = draft
        if not self.loading():
            self.refresh()

    def move_selected(self) -> None:
        """Move the selected (booked) appointment."""
        a = self.selected()
        if a is None:
            return
        dialog = BookingDialog(
            self._operations, self._records, self.clinicians, appointment=a, parent=self,
            clock=lambda: self.clock(),
        )  # fmt: skip
        self._open_dialog(dialog)
        dialog.start.setFocus()
        dialog.start.select_time()  # a time typed moves it on its day; a date and time, there

    def _open_dialog(self, dialog: BookingDialog | CancelDialog) -> None:
        self.dialog = dialog
        dialog.finished.connect(self._forget_dialog)
        if isinstance(dialog, BookingDialog):
            dialog.saved.connect(self._saved)
        dialog.open()

    def _forget_dialog(self) -> None:
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None

    def _saved(self, appointment: Appointment) -> None:
        # The page refreshes from the change broadcast; show where it went.
        self.day = dt.date.fromisoformat(appointment.starts_at[:10])
        self.refresh()

    def cancel(self) -> None:
        """Ask for a reason and cancel the selected appointment."""
        a = self.selected()
        if a is None:
            return
        dialog = CancelDialog(a, self)
        appointment_id = a.id

        def confirmed() -> None:
            reason = dialog.reason.text()
            self._write(lambda s: s.cancel(appointment_id, reason))

        dialog.accepted.connect(confirmed)
        self._open_dialog(dialog)
        dialog.reason.setFocus()

    def set_status(self, status: str) -> None:
        """Arrived, done, no-show or back to booked for the selected appointment. One that
        held no time (cancelled, a no-show) put back on the schedule may now overlap the
        clinician's others: the person is asked first (:meth:`_ask_overlap`)."""
        a = self.selected()
        if a is not None:
            self._set_status(a, status, allow_overlap=False)

    def _set_status(self, a: Appointment, status: str, allow_overlap: bool) -> None:
        appointment_id = a.id

        def failed(exc: Exception) -> None:
            if isinstance(exc, OverlapError):
                self._ask_overlap(a, status, exc)
            else:
                self._write_failed(exc)

        self._write(
            lambda s: s.set_status(appointment_id, status, allow_overlap=allow_overlap),
            failed=failed,
        )

    def _ask_overlap(self, a: Appointment, status: str, exc: OverlapError) -> None:
        """The clinician's time was given to someone else meanwhile: list the clashes (as
        the booking dialog's warning does) and put it back only if the person says so;
        keeping it as it is has the keyboard."""
        if self.question is not None:
            self.question.reject()
        clashes = "\n".join(clash_lines(exc, self._clinician_name, a.starts_at[:10]))
        now = "a no-show" if a.status == "no_show" else STATUS_LABELS[a.status].lower()
        again = "Reinstate anyway" if status == "booked" else "Check in anyway"

        def answered(go: bool) -> None:
            self.question = None
            if go:
                self._set_status(a, status, allow_overlap=True)

        self.question = ask_first(
            self, "overlapQuestion", "Already booked",
            overlap_heading(exc),
            f"{describe(a, with_id=False)}\n\noverlaps:\n{clashes}\n\n"
            f"Put it back on the schedule anyway, or keep it {now}?",
            again, answered, keep=f"Keep it {now}",
        )  # fmt: skip

    def context_menu(self, table: QTableWidget, pos: QPoint | None = None) -> QMenu | None:
        """What the buttons under the lists offer for the appointment under ``pos`` (a
        right click) or chosen in ``table`` (the Menu key): the enabled ones, each
        pressing its button. None when it is not on an appointment."""
        if pos is not None:
            item = table.itemAt(pos)
            if item is None or not item.data(Qt.ItemDataRole.UserRole):
                return None
            table.setCurrentItem(item)
        chosen = [i for i in table.selectedItems() if i.data(Qt.ItemDataRole.UserRole)]
        if not chosen:
            return None
        if pos is None:
            pos = table.visualItemRect(chosen[0]).center()
        menu = QMenu(self)
        menu.setObjectName("appointmentMenu")
        for button in self.action_buttons():
            if button.isEnabled():
                action = menu.addAction(button.text())
                action.setToolTip(button.toolTip())
                action.triggered.connect(button.click)
        if self.menu is not None:
            self.menu.close()
        self.menu = menu
        menu.aboutToHide.connect(menu.deleteLater)
        menu.destroyed.connect(lambda: setattr(self, "menu", None))
        menu.popup(table.viewport().mapToGlobal(pos))
        return menu

    def start_visit(self) -> None:
        """Start the visit from the selected arrived appointment (one write: in visit and
        the visit itself), then say so to whoever shows visits (``start_visit_requested``);
        a refusal shows here, where the person clicked."""
        a = self.selected()
        if a is None:
            return
        appointment_id, patient_id = a.id, a.patient_id
        records, clock = self._records, self.clock
        self.error.hide()
        self._operations.submit(
            lambda: Visits(records(), clock).start(patient_id, appointment_id=appointment_id),
            lambda _visit: self.start_visit_requested.emit(appointment_id, patient_id),
            self._write_failed,
            "start visit",
        )

    def _write(
        self,
        fn: Callable[[Schedule], Appointment],
        then: Callable[[Appointment], None] | None = None,
        failed: Callable[[Exception], None] | None = None,
    ) -> None:
        records, clock = self._records, self.clock
        self.error.hide()

        def done(appointment: Appointment) -> None:
            if then is not None:
                then(appointment)

        self._operations.submit(
            lambda: fn(Schedule(records(), clock)), done, failed or self._write_failed,
            "schedule",
        )  # fmt: skip

    def _write_failed(self, exc: Exception) -> None:
        self._show_error(describe_error(exc))

    def _open_chart(self) -> None:
        a = self.selected()
        if a is not None:
            self.open_chart_requested.emit(a.patient_id)

"""The chart's Vitals tab: record a set of vital signs, see past readings (newest first,
flagged values highlighted) and a trend plot per vital.

Everything about a vital (units, conversions, ranges, flags) comes from the catalogue in
``core/records/vitals.py``; this module only shows it. A value is checked when the person
leaves its field (an impossible one is named next to the field, with the range) and the
whole set again when recorded; the set is stored by ``VitalSigns.record`` on the worker,
in one transaction.

The plot uses pyqtgraph (README, "Dependencies and why").
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QSize, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QHideEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.drafts import Draft, DraftKeeper, restored_notice
from app.widgets import (
    FocusKeeper,
    clear_when_edited,
    error_label,
    guard_choices,
    ignore_wheel,
    in_tab_order,
    numbers_never_choose,
    show_items_whole,
    tab_leaves,
)
from app.worker import Job
from core.records import merged
from core.records import vitals as cat
from core.records.changeset import Changes
from core.records.errors import ValidationError
from core.records.vital_signs import (
    Reading,
    VitalSet,
    VitalSigns,
    measure_all,
    observed_time,
)

FLAG_BACKGROUND = QColor("#fde2e1")
FLAG_TEXT = QColor("#9b1c1c")
LINE_COLOUR = "#2f6f9f"
SECOND_LINE_COLOUR = "#7a5195"  # diastolic, beside systolic
# Readings all at one time: the time axis spans the reading's own day (its hours under
# its date), not pyqtgraph's second with ms labels. Shifted back by this much so the
# day's midnight tick (its date label) is drawn and the next midnight's is not: a span
# centred on a 14:00 reading was labelled with the next day's date only.
ONE_DAY_LEAD = 30 * 60.0
FLAG_ARROWS = {"high": "▲", "low": "▼"}
# Said under the form when Record is pressed with no value typed (it goes as one is typed).
NO_VALUES = "Type at least one measurement."
# The form's width: the captions' column, a value with its unit, the card's margins (at
# least; a larger font widens it to what its rows need).
FORM_WIDTH = 316

# The form's fields, in Tab order (blood pressure is two fields on one row).
# Labelled from the catalogue's table, which the messages under the fields use too.
FORM_ROWS: tuple[tuple[str, tuple[cat.Vital, ...]], ...] = (
    (cat.FIELD_LABELS["bp"], (cat.SYSTOLIC, cat.DIASTOLIC)),
    (cat.FIELD_LABELS["pulse"], (cat.PULSE,)),
    (cat.FIELD_LABELS["temperature"], (cat.TEMPERATURE,)),
    (cat.FIELD_LABELS["respiratory_rate"], (cat.RESPIRATORY_RATE,)),
    (cat.FIELD_LABELS["spo2"], (cat.SPO2,)),
    (cat.FIELD_LABELS["weight"], (cat.WEIGHT,)),
    (cat.FIELD_LABELS["height"], (cat.HEIGHT,)),
    (f"{cat.FIELD_LABELS['pain']} (0-10)", (cat.PAIN,)),
)
# The table's columns after the time: a vital key each ("bp" shows both pressures).
TABLE_COLUMNS = (
    ("bp", "BP\nmmHg"),
    ("pulse", "Pulse\n/min"),
    ("temperature", "Temp"),
    ("respiratory_rate", "Resp\n/min"),
    ("spo2", "SpO2\n%"),
    ("weight", "Weight"),
    ("height", "Height"),
    ("bmi", "BMI"),  # kg/m², as everywhere (the header's tooltip says so)
    ("pain", "Pain\n0-10"),
)
# What the plot can show: a vital key each ("bp": systolic and diastolic together).
PLOTS = (
    ("bp", "Blood pressure"),
    ("pulse", "Pulse"),
    ("temperature", "Temperature"),
    ("respiratory_rate", "Respiratory rate"),
    ("spo2", "SpO2"),
    ("weight", "Weight"),
    ("height", "Height"),
    ("bmi", "BMI"),
    ("pain", "Pain score"),
)


def column_flag(key: str, s: VitalSet) -> str | None:
    """The flag (high, low) a column of the Readings table shows for set ``s``: blood
    pressure's from either number, BMI's as worked out (flagged like a reading)."""
    if key == "bp":
        pair = (s.readings.get("systolic"), s.readings.get("diastolic"))
        return next((r.flag for r in pair if r is not None and r.flag), None)
    if key == "bmi":
        return s.bmi_flag
    reading = s.readings.get(key)
    return reading.flag if reading else None


def recorded_note(count: int, s: VitalSet | None) -> str:
    """What the Readings heading says of a set just recorded: how many vital signs, and
    which cells of its row are flagged (as many as are shown red, blood pressure once,
    BMI included), by name."""
    names = dict(PLOTS)
    flagged = [names[key] for key, _ in TABLE_COLUMNS if s is not None and column_flag(key, s)]
    signs = "vital sign" if count == 1 else "vital signs"
    if not flagged:
        return f"Recorded {count} {signs}."
    return (
        f"Recorded {count} {signs}, {len(flagged)} outside the normal range ({', '.join(flagged)})."
    )


class MinuteAxis(pg.DateAxisItem):  # type: ignore[misc]  # pyqtgraph is untyped
    """The trend's time axis, to the minute at its finest: readings are measured to the
    minute, and two a minute apart were labelled 08:16:15, 08:16:30… (pyqtgraph's
    seconds and milliseconds zoom levels are left out)."""

    def __init__(self) -> None:
        super().__init__()
        finest = 15 * 60  # pyqtgraph's hours-and-minutes level
        levels: dict[float, Any] = getattr(self, "zoomLevels")  # noqa: B009 (untyped)
        self.zoomLevels = OrderedDict(
            (spacing, level) for spacing, level in levels.items() if spacing >= finest
        )


@dataclass(frozen=True)
class VitalsView:
    """What the tab shows for one patient (read on the worker)."""

    patient_id: str
    birth_date: str
    sets: list[VitalSet]
    visits: list[tuple[str, str]]  # (encounter id, description), newest first
    open_visit: str | None = None  # the newest visit not closed yet: where vitals belong
    open_visits: frozenset[str] = frozenset()  # every visit not closed yet
    recorders: dict[str, str] = field(default_factory=dict)  # user name -> full name


def read_vitals(signs: VitalSigns, patient_id: str) -> VitalsView:
    """The patient's vitals and visits (on the worker)."""
    patient = signs.records.get_patient(patient_id)
    rows = signs.records.db.query(
        f"SELECT id, started_at, reason, status FROM encounters WHERE {merged.IN_CHART} "
        "ORDER BY started_at DESC, id",
        (merged.chart_ids_json(signs.records.db, patient_id),),
    )
    visits = [(str(r[0]), f"{str(r[1]).replace('T', ' ')} {r[2] or ''}".strip()) for r in rows]
    open_visits = [str(r[0]) for r in rows if r[3] == "open"]
    sets = signs.sets(patient_id)
    # Who recorded each set, by their full name (a user name with no account, or an
    # account without a full name, stands for itself), as the allergies say it.
    recorders: dict[str, str] = {}
    for username in {s.recorded_by for s in sets} - {""}:
        user = signs.records.user(username)
        recorders[username] = (user.full_name if user else "") or username
    return VitalsView(
        patient_id,
        patient.birth_date,
        sets,
        visits,
        open_visits[0] if open_visits else None,
        frozenset(open_visits),
        recorders,
    )


def reading_day_span(when: float) -> tuple[float, float]:
    """The time axis for readings all taken at ``when`` (epoch seconds): the local day
    they fall on, from just before its midnight to just before the next (a day of a clock
    change is 23 or 25 hours)."""
    day = dt.datetime.fromtimestamp(when).date()
    start = dt.datetime.combine(day, dt.time()).timestamp()
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()).timestamp()
    return start - ONE_DAY_LEAD, end - ONE_DAY_LEAD


def one_day_label(day: dt.date) -> str:
    """What the trend's heading says when every reading plotted was taken on ``day``: the
    date alone, short enough to leave the blood pressure's caption whole at 1024 pixels."""
    return day.isoformat()


def age_now(birth_date: str) -> int:
    """The patient's age in completed years today."""
    return cat.age_in_years(dt.date.fromisoformat(birth_date), dt.date.today())


def _timestamp(observed_at: str) -> float:
    return dt.datetime.fromisoformat(observed_at).timestamp()


def card(title: str) -> tuple[QFrame, QVBoxLayout, QHBoxLayout]:
    """A card as the chart's Overview draws them: the frame, its layout and its heading
    row (stretched after the title, so buttons added to it sit on the right)."""
    frame = QFrame()
    frame.setObjectName("card")
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(18, 14, 18, 16)
    head = QHBoxLayout()
    heading = QLabel(title)
    heading.setObjectName("cardHeading")
    head.addWidget(heading)
    head.addStretch(1)
    layout.addLayout(head)
    return frame, layout, head


def longest_value(vital: cat.Vital) -> str:
    """The widest value a vital's box must show: as many digits as the top of its possible
    range has in its unit with the most ("0000.0" for 1102.3 lb), with the decimals that
    may be typed."""
    high = Fraction(vital.possible[1])
    digits = max(len(str(int(unit.from_canonical(high)))) for unit in vital.units)
    decimals = "." + "0" * vital.typed_decimals if vital.typed_decimals else ""
    return "0" * digits + decimals


class ReadingsTable(QTableWidget):
    """The Readings table: never lower than its header, scroll bar and a few whole rows.
    Sharing the height with the trend at the window's first size, it showed a sliver of
    one row."""

    ROWS_SHOWN = 3

    def minimumSizeHint(self) -> QSize:
        """Room for ``ROWS_SHOWN`` rows (measured in the font and style shown)."""
        hint = super().minimumSizeHint()
        rows = self.ROWS_SHOWN * self.verticalHeader().defaultSectionSize()
        header = self.horizontalHeader().sizeHint().height()
        bar = self.horizontalScrollBar().sizeHint().height()
        height = header + rows + bar + 2 * self.frameWidth()
        return QSize(hint.width(), max(hint.height(), height))


class Caption(QLabel):
    """A field's caption in the Vitals form, wrapped at its widest word ("Respiratory /
    rate"): the captions' column is no wider than that, which leaves the Readings table
    beside the form the width for all its columns."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.setWordWrap(True)

    def _widest_word(self) -> int:
        metrics = self.fontMetrics()
        margins = self.contentsMargins()
        widest = max((metrics.horizontalAdvance(w) for w in self.text().split()), default=0)
        return widest + margins.left() + margins.right() + 2

    def sizeHint(self) -> QSize:
        """As wide as the widest word, as tall as the lines at that width."""
        width = self._widest_word()
        return QSize(width, self.heightForWidth(width))

    def minimumSizeHint(self) -> QSize:
        """The same: never narrower than a word."""
        return self.sizeHint()


def keep_room(message: QLabel, keep: bool) -> None:
    """Keep ``message``'s room in the form once hidden (``keep``), or give it back.

    A field's message goes as the person corrects the field; the rows under it moved up
    each time, under the mouse (a click aimed at the °C box landed on a message line). So
    the room of a message once shown stays until the set is recorded or put aside."""
    policy = message.sizePolicy()
    policy.setRetainSizeWhenHidden(keep)
    message.setSizePolicy(policy)


class VitalField:
    """One vital's input: the text, its unit (where there is a choice), its message."""

    def __init__(self, vital: cat.Vital) -> None:
        self.vital = vital
        self.edit = QLineEdit()
        self.edit.setObjectName(f"vital_{vital.key}")
        self.edit.setMaximumWidth(90)
        # Room for the longest value in any unit (1102.3 lb) whatever else is on its row:
        # squeezed by the unit box, "101.2" showed as "01.2". (28: frame, padding, margins.)
        widest = self.edit.fontMetrics().horizontalAdvance(longest_value(vital))
        self.edit.setMinimumWidth(widest + 28)
        self.edit.setAccessibleName(vital.label)
        self.unit: QComboBox | None = None
        if len(vital.units) > 1:
            self.unit = QComboBox()
            self.unit.setObjectName(f"unit_{vital.key}")
            for unit in vital.units:
                self.unit.addItem(unit.symbol, unit.ucum)
            guard_choices(self.unit)  # as in every form (TypedForm): no stray letter chooses
            # A value read in the other unit may become possible (102 as degF, not degC).
            self.unit.currentIndexChanged.connect(lambda _i: self.check())
            self.unit.currentIndexChanged.connect(lambda _i: self._mark_unit())
            self._mark_unit()
        self.unit_label = QLabel(vital.canonical.symbol or "/10")
        self.unit_label.setObjectName("caption")
        self.message = error_label()
        self.hint = QLabel()
        self.hint.setObjectName("hint")
        self.hint.hide()
        # The message is about the whole set (shown on Record: a pressure without its
        # partner, diastolic not below systolic), not the field alone: leaving the field
        # keeps it (the section drops it once the set is right). Return in the field
        # records the set and then leaves it, which hid the message Record had just shown.
        self.about_set = False
        self.edit.editingFinished.connect(self.check)
        self.edit.textEdited.connect(lambda _t: setattr(self, "about_set", False))
        clear_when_edited(self.edit, self.message)  # the rule every form dialog follows

    @property
    def unit_code(self) -> str | None:
        """The UCUM code of the unit chosen (None: the vital's only unit)."""
        return str(self.unit.currentData()) if self.unit is not None else None

    @property
    def other_unit(self) -> bool:
        """True while a unit other than the clinic's (the stored one: kg, °C, cm) is
        chosen."""
        return self.unit is not None and self.unit.currentIndex() > 0

    def _mark_unit(self) -> None:
        """A unit other than the clinic's stands out (amber, bold; the stylesheet's
        ``otherUnit``), so a number is not typed in it by someone expecting kg."""
        if self.unit is None:
            return
        canonical = self.vital.canonical.symbol
        self.unit.setProperty("otherUnit", self.other_unit)
        self.unit.setToolTip(
            f"{self.vital.label} in {self.unit.currentText()}, not the clinic's {canonical}"
            if self.other_unit
            else f"{self.vital.label} in {canonical}"
        )
        self.unit.style().unpolish(self.unit)
        self.unit.style().polish(self.unit)

    def reset_unit(self) -> None:
        """Back to the clinic's unit (the stored one)."""
        if self.unit is not None:
            self.unit.setCurrentIndex(0)

    def check(self) -> cat.Measurement | None:
        """Read the field: show what is wrong next to it, or the stored equivalent. A
        message about the set (``about_set``) stays unless the field alone is wrong."""
        self.hint.hide()
        if not self.about_set:
            self.message.hide()
        if not self.edit.text().strip():
            return None
        try:
            m = cat.measure(self.vital, self.edit.text(), self.unit_code)
        except ValidationError as exc:
            self.show_error(exc)
            return None
        if m.entered_unit is not self.vital.canonical:
            self.hint.setText(f"= {self.vital.show(m.value)} {self.vital.canonical.symbol}")
            self.hint.show()
        return m

    def show_error(self, exc: ValidationError, about_set: bool = False) -> None:
        """A message next to the field (``about_set``: found checking the whole set, see
        ``about_set``). Its room stays once it goes (see ``keep_room``)."""
        self.about_set = about_set
        self.hint.hide()
        self.message.setText(validation_text(exc))
        keep_room(self.message, True)
        self.message.show()

    def clear(self) -> None:
        """Empty the field. The unit chosen stays for the next patient of the same person
        (a nurse weighing in lb all morning); signing out puts it back (``reset_unit``)."""
        self.edit.clear()
        self.about_set = False
        self.message.hide()
        keep_room(self.message, False)  # the set is recorded (or the form put aside)
        self.hint.hide()


class _ChoiceKeys(QObject):
    """Return (or Enter) on a closed drop-down of the Vitals form (a unit, the visit) records
    the set. (A number typed there goes on to the next value's box: ``guard_choices``.)"""

    def __init__(self, record: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._record = record

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Return on the box itself (its list closed); other keys go on."""
        if (
            event.type() != QEvent.Type.KeyPress
            or not isinstance(event, QKeyEvent)
            or not isinstance(watched, QComboBox)
            or watched.view().isVisible()
        ):
            return False
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._record()
            return True
        return False


# The object name of the tab's page, under which a sign-out keeps its typed values.
VITALS_FORM = "vitalsForm"


class VitalsPage(QWidget):
    """The tab's page: what the draft keeper finds (it asks widgets, by object name)."""

    def __init__(self, section: VitalsSection) -> None:
        super().__init__()
        self.section = section
        self.setObjectName(VITALS_FORM)
        self.setWindowTitle("Vitals")
        # Record vitals is greyed out while the set is stored: clicked, it held the keyboard,
        # which Qt then gave to the next control. It goes back to the field typed in.
        self.focus_keeper = FocusKeeper(self)

    def focusNextPrevChild(self, next: bool) -> bool:
        """Tab as usual; off Record vitals greyed out, back to the field typed in."""
        handled = self.focus_keeper.greyed()
        if handled is not None:
            return handled
        return super().focusNextPrevChild(next)

    def showEvent(self, event: QShowEvent) -> None:
        """Shown (its tab chosen, the chart opened): "Measured at" catches up with the
        clock, and follows it while shown."""
        super().showEvent(event)
        self.section.follow_clock()
        self.section.clock_timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        """Hidden: nobody reads the time, so it need not follow the clock."""
        super().hideEvent(event)
        self.section.clock_timer.stop()

    def draft(self) -> dict[str, Any] | None:
        """See :meth:`VitalsSection.draft`."""
        return self.section.draft()

    def restore(self, draft: dict[str, Any]) -> None:
        """See :meth:`VitalsSection.restore`."""
        self.section.restore(draft)


def draft_reopener(
    in_chart: Callable[[str, Callable[[], None]], None], sections: Callable[[], list[Any]]
) -> Callable[[Draft], None]:
    """How the workspace reopens kept vitals: the patient's chart, its Vitals tab, the
    values typed (``in_chart`` opens a chart, then calls back once it shows)."""

    def reopen(draft: Draft) -> None:
        def restore() -> None:
            for section in sections():
                if isinstance(section, VitalsSection):
                    section.restore(draft.values)

        in_chart(str(draft.values["patient_id"]), restore)

    return reopen


def local_now() -> dt.datetime:
    """This workstation's local wall-clock time (the clinic's), without an offset."""
    return dt.datetime.now()


class VitalsSection:
    """The Vitals tab (a :class:`app.chart.section.ChartSection`)."""

    READ = "chart.vitals"
    # How often a shown, empty form's "Measured at" catches up with the clock: it is kept
    # to the minute, so a few seconds late at most.
    CLOCK_INTERVAL_MS = 5_000

    def __init__(self, operations: Operations, records: RecordsProvider) -> None:
        self._operations = operations
        self._records = records
        self._patient_id: str | None = None
        self._view: VitalsView | None = None
        self._job: Job[tuple[list[Reading], VitalSet | None]] | None = None
        operations.changed.connect(self.records_changed)
        self.clock: Callable[[], dt.datetime] = local_now  # tests set their own
        # Where a form left unsaved waits for its person (keep_drafts_in): None until the
        # window wires it, and while nobody is signed in.
        self._drafts: DraftKeeper | None = None
        self._who: Callable[[], str | None] = lambda: None
        self._notify: Callable[[str, Sequence[str]], None] = lambda _text, _forms: None
        self._done: Callable[[str], None] = lambda _form: None

        self.page = VitalsPage(self)

        # ----- the form -----
        self.fields: dict[str, VitalField] = {v.key: VitalField(v) for v in cat.TYPED}
        # "Measured at" follows the clock (to the minute) while the form holds no values,
        # so a set is never stored at the time the chart was opened; a time the person
        # typed for the set they are entering is theirs until that set is recorded.
        self.observed_at = QLineEdit()
        self.observed_at.setObjectName("vitalsObservedAt")
        self.observed_at.setMaximumWidth(150)
        self._time_typed = False
        self.observed_at.textEdited.connect(lambda _t: setattr(self, "_time_typed", True))
        self.clock_timer = QTimer(self.page)
        self.clock_timer.setInterval(self.CLOCK_INTERVAL_MS)
        self.clock_timer.timeout.connect(self.follow_clock)
        self.observed_at_error = error_label()
        # As a value's message does: it goes as the time is corrected, and the time is
        # checked again as the field is left (a message about the time typed before
        # stayed under the corrected one).
        clear_when_edited(self.observed_at, self.observed_at_error)
        self.observed_at.editingFinished.connect(self._check_time)
        self.visit = QComboBox()
        self.visit.setObjectName("vitalsVisit")
        # A visit's long reason is cut in the box (the list shows it whole), never widening
        # the fixed-width form past its side.
        self.visit.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.visit.setMinimumContentsLength(10)
        guard_choices(self.visit)
        # Its items start with a time ("09:30 Follow-up"), which nobody types to pick a
        # visit: a number typed on it is a value typed one Tab short, for the pressure's box.
        numbers_never_choose(self.visit)
        show_items_whole(self.visit)
        # Until the person picks one, the visit follows the open visit (a nurse taking
        # vitals in the visit just started must not file them as "Not in a visit"). Once
        # picked (or brought back with a draft), the choice is theirs: a visit started
        # meanwhile by someone else never takes their set.
        self._visit_picked = False
        self._visit_choice: str | None = None
        # A restored draft's visit is checked once against the next read: closed or gone
        # since, the set is in no visit and the person is told (visit_notice).
        self._check_restored_visit = False
        self.visit.activated.connect(self._visit_activated)
        self.visit.currentIndexChanged.connect(lambda _i: self._tip_visit())
        self.visit_notice = error_label()
        self.record_button = QPushButton("Record vitals")
        self.record_button.setObjectName("primary")
        self.record_button.clicked.connect(self.submit)
        self.status = QLabel()
        self.status.setObjectName("statusText")
        self.status.setWordWrap(True)
        self.status.hide()  # shown with what it says ("Recorded 5 vital signs."), not empty
        self.general_error = error_label()

        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(3)
        row = 0

        # Captions wrap at the widest word ("Respiratory / rate"): their column is no
        # wider than that, so the form leaves the Readings table the width for all its
        # columns, and the Visit box room for a visit's time and reason.
        def caption(text: str) -> QLabel:
            label = Caption(text)
            label.setObjectName("caption")
            return label

        grid.addWidget(caption("Measured at"), row, 0)
        grid.addWidget(self.observed_at, row, 1, 1, 4)
        grid.addWidget(self.observed_at_error, row + 1, 1, 1, 4)
        row += 2
        grid.addWidget(caption("Visit"), row, 0)
        grid.addWidget(self.visit, row, 1, 1, 4)
        grid.addWidget(self.visit_notice, row + 1, 1, 1, 4)
        row += 2
        order: list[QWidget] = [self.observed_at, self.visit]
        for title, vitals in FORM_ROWS:
            grid.addWidget(caption(title), row, 0)
            if len(vitals) == 2:  # systolic / diastolic
                sys_f, dia_f = (self.fields[v.key] for v in vitals)
                line = QHBoxLayout()
                line.addWidget(sys_f.edit)
                line.addWidget(QLabel("/"))
                line.addWidget(dia_f.edit)
                line.addWidget(sys_f.unit_label)
                line.addStretch(1)
                grid.addLayout(line, row, 1, 1, 4)
                messages = QVBoxLayout()
                for f in (sys_f, dia_f):
                    messages.addWidget(f.hint)
                    messages.addWidget(f.message)
                grid.addLayout(messages, row + 1, 1, 1, 4)
                order += [sys_f.edit, dia_f.edit]
            else:
                f = self.fields[vitals[0].key]
                line = QHBoxLayout()
                line.addWidget(f.edit)
                line.addWidget(f.unit if f.unit is not None else f.unit_label)
                line.addStretch(1)
                grid.addLayout(line, row, 1, 1, 4)
                # The stored equivalent ("= 38.44 °C") under the value, as the messages
                # are: beside it, it squeezed the value and the captions out of the form's
                # width ("Respiratory ra"). Above the message: once a message goes, its room
                # stays (``keep_room``), and the hint sat under two blank lines.
                messages = QVBoxLayout()
                messages.addWidget(f.hint)
                messages.addWidget(f.message)
                grid.addLayout(messages, row + 1, 1, 1, 4)
                order += [f.edit] + ([f.unit] if f.unit is not None else [])
            row += 2
        self.page.focus_keeper.watch(order)
        for f in self.fields.values():
            f.edit.textEdited.connect(self._erased)
            f.edit.textEdited.connect(self._value_typed)
            f.edit.editingFinished.connect(self._recheck_set)  # after the field's own check
        order.append(self.record_button)
        self.tab_order = order
        # Return in any box of the form records the set, as a form's default button does:
        # a nurse going round types the values and presses Return, never reaching for the
        # mouse. The set is checked as on a click (nothing wrong is recorded).
        # The same in a drop-down (a unit, the visit), which by itself ignores Return; on
        # its open list, Return only chooses the item (the list has the keyboard then).
        self._return_in_choices = _ChoiceKeys(self._record_by_return, self.page)
        for widget in order:
            if isinstance(widget, QLineEdit):
                widget.returnPressed.connect(self._record_by_return)
            elif isinstance(widget, QComboBox):
                widget.installEventFilter(self._return_in_choices)

        form_card, form_layout, head = card("Record vital signs")
        # The heading and Record vitals stay in view; the fields between them scroll when
        # the page is too short for them. Room for every field, with the allergy banner, at
        # the window's first size and in a window 700 pixels tall (a 1024x740 screen; the
        # tighter fields: careline.qss). Under the demo clinic's banner as well, in a
        # 1024x700 window, the whole form scrolled there and Record vitals was half cut off.
        form_layout.setContentsMargins(0, 8, 0, 8)
        form_layout.setSpacing(6)
        head.setContentsMargins(14, 0, 14, 0)
        fields = QWidget()
        fields.setObjectName("vitalsFields")
        fields_layout = QVBoxLayout(fields)
        fields_layout.setContentsMargins(14, 0, 14, 0)
        fields_layout.addLayout(grid)
        fields_layout.addStretch(1)
        # The fields scroll rather than squeeze: with messages under several fields they can
        # need more than the window's height, and squeezed, the messages were cut to a line
        # or two and drawn over the next row.
        self.form_scroll = form_scroll = QScrollArea()
        form_scroll.setObjectName("vitalsFormScroll")
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Not a Tab stop of its own: it showed no ring, and a nurse counting Tabs from the
        # tab bar typed the blood pressure into the Visit box (its fields are the stops).
        form_scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        form_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        form_card.ensurePolished()  # its border, from the stylesheet
        border = 2 * form_card.frameWidth()
        width = max(FORM_WIDTH, fields.minimumSizeHint().width() + border)
        form_card.setFixedWidth(width)
        # No room kept for a scroll bar the form mostly does not need: when it does (a
        # message under every field, the restored notice), the bar covers the fields' right
        # margin, right of every field.
        fields.setFixedWidth(width - border)
        form_scroll.setWidget(fields)
        fields.setAutoFillBackground(False)  # the card's white, not the window's grey
        form_scroll.viewport().setAutoFillBackground(False)
        form_layout.addWidget(form_scroll, 1)
        under = QVBoxLayout()  # what is said of the set, and its button, always in view
        under.setContentsMargins(14, 0, 14, 0)
        under.addWidget(self.general_error)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.record_button)
        under.addLayout(buttons)
        form_layout.addLayout(under)

        # ----- the plot -----
        self.plot_choice = QComboBox()
        self.plot_choice.setObjectName("vitalsPlotChoice")
        for key, title in PLOTS:
            self.plot_choice.addItem(title, key)
        ignore_wheel(self.plot_choice)
        self.plot_choice.currentIndexChanged.connect(lambda _i: self._draw_plot())
        self.plot = pg.PlotWidget(axisItems={"bottom": MinuteAxis()})
        self.plot.setObjectName("vitalsPlot")
        self.plot.setBackground("w")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        # Low enough to leave the readings their rows at a 740-pixel height (it grows taller).
        self.plot.setMinimumHeight(96)
        self.curves: list[pg.PlotDataItem] = []
        self.normal_band: pg.LinearRegionItem | None = None
        self.no_plot = QLabel()
        self.no_plot.setObjectName("hint")
        # Systolic is always above diastolic (a set is refused otherwise): no legend needed.
        self.plot_caption = QLabel("Upper line systolic, lower line diastolic.")
        self.plot_caption.setObjectName("hint")
        self.plot_caption.setToolTip(self.plot_caption.text())
        # Whole from 1024 pixels wide; narrower, it gives way rather than widen the page.
        self.plot_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        plot_card, plot_layout, plot_head = card("Trend")
        # The caption sits on the heading's row, not under the plot: there it cost the
        # height that, with the allergy banner and the "form was restored" notice at a
        # 740-pixel height, the page lacked, and the plot (held at its minimum height) was
        # drawn under it, the caption over the time axis.
        plot_head.insertWidget(1, self.plot_caption, 1)
        plot_head.setStretch(2, 0)  # the caption, not the heading's spacer, takes the room
        plot_head.addWidget(self.plot_choice)
        # The day of readings all taken on one day, beside the heading: under the axis (its
        # label) it was drawn over the hours at the plot's height.
        self.plot_day = QLabel()
        self.plot_day.setObjectName("hint")
        self.plot_day.hide()
        plot_head.insertWidget(1, self.plot_day)
        plot_layout.addWidget(self.no_plot)
        plot_layout.addWidget(self.plot, 1)

        # ----- the table -----
        self.table = ReadingsTable(0, 1 + len(TABLE_COLUMNS))
        self.table.setObjectName("vitalsTable")
        self.table.setHorizontalHeaderLabels(["Measured", *(t for _, t in TABLE_COLUMNS)])
        bmi = self.table.horizontalHeaderItem(1 + [k for k, _ in TABLE_COLUMNS].index("bmi"))
        if bmi is not None:
            bmi.setToolTip("Body mass index, kg/m²")
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        tab_leaves(self.table)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setMinimumSectionSize(24)
        self.no_readings = QLabel("No vital signs recorded.")
        self.no_readings.setObjectName("hint")
        table_card, table_layout, table_head = card("Readings")
        # "Recorded 5 vital signs." beside the readings it added (under the form it cost
        # the form the line that made it scroll, its heading cut off).
        table_head.insertWidget(1, self.status, 1)
        table_head.setStretch(2, 0)
        table_layout.setContentsMargins(12, 14, 12, 16)  # the columns' width, not margins'
        table_layout.addWidget(self.no_readings)
        table_layout.addWidget(self.table, 1)

        right = QVBoxLayout()
        right.setSpacing(14)
        right.addWidget(plot_card, 3)
        right.addWidget(table_card, 2)
        layout = QHBoxLayout(self.page)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.setSpacing(14)
        layout.addWidget(form_card)
        layout.addLayout(right, 1)
        # Field to field down the form, each unit right after its value (all are now in
        # one window, as setTabOrder needs).
        for first, second in itertools.pairwise(self.tab_order):
            QWidget.setTabOrder(first, second)
        self.clear()

    # ----- ChartSection -------------------------------------------------------------------

    def widget(self) -> QWidget:
        """The tab's page."""
        return self.page

    def keep_drafts_in(
        self,
        drafts: DraftKeeper,
        who: Callable[[], str | None],
        notify: Callable[[str, Sequence[str]], None],
        done: Callable[[str], None],
    ) -> None:
        """Put a form left unsaved aside in ``drafts`` for the person signed in (``who``:
        their user name, None while nobody is), and tell them (``notify``, with the form's
        name) when it is given back; ``done`` says the form is done with (its set recorded,
        or every value erased), so a notice that it was restored goes."""
        self._drafts, self._who, self._notify, self._done = drafts, who, notify, done

    def show_patient(self, patient_id: str) -> None:
        """Show this patient's vitals, and the form the person left unsaved on this chart
        (put aside when they opened another) or a fresh one."""
        if patient_id == self._patient_id:
            self.reload()  # the same chart read again (a merge): the form stays as it is
            return
        self.clear()
        self._patient_id = patient_id
        self.follow_clock()
        self.reload()
        user = self._who()
        if self._drafts is None or user is None:
            return
        left = self._drafts.take_back(user, VITALS_FORM, patient_id)
        if left is not None:
            self.restore(left.values)
            self._notify(restored_notice([left]), [VITALS_FORM])

    def _put_aside(self) -> None:
        """Keep the form's unsaved values for the person signed in, by patient, before it is
        emptied (leaving the chart). Not at sign-out, where nobody is signed in any more:
        the sign-out's own drafts take the form then. Not while its set is being recorded:
        those values are on their way to the database."""
        user, draft = self._who(), self.draft()
        if self._drafts is None or user is None or draft is None or self._job is not None:
            return
        kept = Draft(VITALS_FORM, self.page.windowTitle(), draft)
        self._drafts.put_aside(user, str(draft["patient_id"]), kept)

    def end_session(self) -> None:
        """The person signed out: the units they chose go back to the clinic's (kg, °C,
        cm), so the next person's 64 is never stored as lb. Their own unsaved form, kept as
        a draft, brings its units back with it."""
        for f in self.fields.values():
            f.reset_unit()

    def follow_clock(self) -> None:
        """Set "Measured at" to now (to the minute), unless the person typed a time for the
        set they are entering or has begun typing its values (the time shown is then the
        one they will record, and it does not move under them)."""
        if self._patient_id is None or self._time_typed:
            return
        if any(f.edit.text().strip() for f in self.fields.values()):
            return
        now = self.clock().strftime("%Y-%m-%d %H:%M")
        if self.observed_at.text() != now:
            self.observed_at.setText(now)
            self.observed_at_error.hide()

    def clear(self) -> None:
        """Forget the patient: cancel reads, empty the form (its unsaved values put aside
        for the person who typed them), the table and the plot."""
        self._put_aside()
        self._operations.cancel(self.READ)
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._patient_id = None
        self._view = None
        for f in self.fields.values():
            f.clear()
        self.observed_at.clear()
        self._time_typed = False
        self.observed_at_error.hide()
        self.visit.clear()
        self.visit.addItem("Not in a visit", None)
        self._visit_picked = False
        self._visit_choice = None
        self._check_restored_visit = False
        self.visit_notice.hide()
        self.status.clear()
        self.status.hide()
        self.general_error.hide()
        self.table.setRowCount(0)
        self.no_readings.show()
        self.table.hide()
        self._draw_plot()
        self.record_button.setEnabled(False)

    # ----- reading --------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the patient's vitals again (on the worker)."""
        patient_id = self._patient_id
        if patient_id is None:
            return
        records = self._records
        self._operations.read(
            self.READ,
            lambda: read_vitals(VitalSigns(records()), patient_id),
            self._arrived,
            self._read_failed,
        )

    def records_changed(self, changes: Changes) -> None:
        """Observations or visits changed (here or by sync): read again."""
        if self._patient_id is None:
            return
        if changes.changed("observation") or changes.changed("encounter"):
            self.reload()
        elif changes.touches(self._patient_id):
            self.reload()  # the birth date decides the normal ranges shown

    def _arrived(self, view: VitalsView) -> None:
        if view.patient_id != self._patient_id:
            return
        self._view = view
        self.record_button.setEnabled(True)
        self._fill_visits(view)
        self._fill_table()
        self._draw_plot()

    def _tip_visit(self) -> None:
        """The box's tooltip: the visit chosen, its date and reason whole."""
        tip = self.visit.currentData(Qt.ItemDataRole.ToolTipRole)
        self.visit.setToolTip(str(tip) if tip else "")

    def _visit_activated(self, _index: int) -> None:
        """The person chose a visit (or "Not in a visit"): it stays theirs."""
        self._visit_picked = True
        self._visit_choice = self.visit.currentData()
        self._check_restored_visit = False
        self.visit_notice.hide()

    def _fill_visits(self, view: VitalsView) -> None:
        """List the patient's visits and select the one the set goes into: the person's
        choice, else the open visit."""
        chosen = self._visit_choice if self._visit_picked else view.open_visit
        if self._check_restored_visit:
            self._check_restored_visit = False
            if chosen is not None and chosen not in view.open_visits:
                # Closed (or merged away) since the values were typed: the set is not
                # recorded into it, nor into another visit nobody chose.
                described = dict(view.visits).get(chosen)
                self.visit_notice.setText(
                    f"The visit these values were typed for ({described}) is closed now: "
                    "they are not in a visit. Choose a visit if they belong in one."
                    if described
                    else "The visit these values were typed for no longer exists: they are "
                    "not in a visit. Choose a visit if they belong in one."
                )
                self.visit_notice.show()
                chosen = self._visit_choice = None
        self.visit.blockSignals(True)
        self.visit.clear()
        self.visit.addItem("Not in a visit", None)
        today = self.clock().date().isoformat()
        for visit_id, text in view.visits:
            # Today's visits by their time alone (the form's "Measured at" shows the day):
            # the date took the box's width, and the reason that tells visits apart was
            # cut ("2026-12-06 04:57 F"). The whole is the box's tooltip.
            shown = text[len(today) + 1 :] if text.startswith(f"{today} ") else text
            self.visit.addItem(shown, visit_id)
            self.visit.setItemData(self.visit.count() - 1, text, Qt.ItemDataRole.ToolTipRole)
        found = self.visit.findData(chosen)
        self.visit.setCurrentIndex(max(found, 0))
        self.visit.blockSignals(False)
        self._tip_visit()

    def _read_failed(self, exc: Exception) -> None:
        self.general_error.setText(f"The vitals could not be read. {describe_error(exc)}")
        self.general_error.show()

    # ----- the table --------------------------------------------------------------------

    def _fill_table(self) -> None:
        sets = self._view.sets if self._view else []
        self.table.setRowCount(len(sets))
        self.no_readings.setVisible(not sets)
        self.table.setVisible(bool(sets))
        recorders = self._view.recorders if self._view else {}
        for row, s in enumerate(sets):
            measured = QTableWidgetItem(s.observed_at.replace("T", " "))
            # Who recorded the set, on its time (a column of its own would not leave the
            # table all its columns at the window's first size).
            if s.recorded_by:
                measured.setToolTip(f"Recorded by {recorders.get(s.recorded_by, s.recorded_by)}")
            self.table.setItem(row, 0, measured)
            for column, (key, _title) in enumerate(TABLE_COLUMNS, start=1):
                self.table.setItem(row, column, self._cell(key, s))

    def _cell(self, key: str, s: VitalSet) -> QTableWidgetItem:
        flag = column_flag(key, s)
        tip = ""
        if key == "bp":
            # Both numbers of a set are one recording's (VitalSigns.sets); a number stored
            # without its partner (an older record) is shown, not hidden: "150/–".
            sys_r, dia_r = s.readings.get("systolic"), s.readings.get("diastolic")
            parts = [(r.entered_value or r.value) if r else "–" for r in (sys_r, dia_r)]
            text = "/".join(parts) if sys_r or dia_r else ""
        elif key == "bmi":
            text = str(s.bmi) if s.bmi is not None else ""
            tip = "Worked out from the weight and the latest height" if text else ""
        else:
            reading = s.readings.get(key)
            vital = cat.BY_KEY[key]
            # One unit: named in the header, the cell holds the number.
            text = (
                ""
                if reading is None
                else reading.text
                if len(vital.units) > 1
                else (reading.entered_value or reading.value)
            )
            if reading and reading.entered_unit not in (None, vital.canonical.ucum):
                tip = f"Stored as {reading.value} {vital.canonical.symbol}"
        item = QTableWidgetItem(f"{text} {FLAG_ARROWS[flag]}" if flag else text)
        item.setData(Qt.ItemDataRole.UserRole, flag)
        if flag:
            item.setBackground(QBrush(FLAG_BACKGROUND))
            item.setForeground(QBrush(FLAG_TEXT))
            bold = QFont()
            bold.setBold(True)
            item.setFont(bold)
            tip = f"{flag.capitalize()} for the patient's age. {tip}".strip()
        if tip:
            item.setToolTip(tip)
        return item

    # ----- the plot ---------------------------------------------------------------------

    def series(self, key: str) -> list[tuple[str, list[tuple[float, float, str | None]]]]:
        """What the plot shows for ``key``: (name, [(time, canonical value, flag)]) per line,
        oldest first."""
        sets = list(reversed(self._view.sets)) if self._view else []
        keys = ("systolic", "diastolic") if key == "bp" else (key,)
        out: list[tuple[str, list[tuple[float, float, str | None]]]] = []
        for k in keys:
            points: list[tuple[float, float, str | None]] = []
            for s in sets:
                if k == "bmi":
                    if s.bmi is not None:
                        points.append((_timestamp(s.observed_at), float(s.bmi), s.bmi_flag))
                elif k in s.readings:
                    r = s.readings[k]
                    points.append((_timestamp(r.observed_at), float(r.number), r.flag))
            out.append((cat.BY_KEY[k].label, points))
        return out

    def _draw_plot(self) -> None:
        self.plot.clear()
        self.curves = []
        self.normal_band = None
        key = str(self.plot_choice.currentData())
        lines = self.series(key)
        self.plot_caption.setVisible(key == "bp" and self._view is not None)
        if not any(points for _, points in lines):
            self.plot_day.hide()
            self.no_plot.setText(
                f"No {self.plot_choice.currentText().lower()} readings yet."
                if self._view is not None
                else ""
            )
            self.no_plot.setVisible(self._view is not None)
            self.plot.hide()
            return
        self.no_plot.hide()
        self.plot.show()
        times = {t for _, points in lines for t, _, _ in points}
        if len(times) == 1:
            [only] = times
            self.plot.setXRange(*reading_day_span(only), padding=0)
        else:
            self.plot.enableAutoRange(axis=pg.ViewBox.XAxis)  # setXRange turned it off
        # Readings all of one day are plotted on its hours (06:00, 12:00…), which name no
        # date: a reading of 2025 looked like today's. The heading then says which day.
        days = {dt.datetime.fromtimestamp(t).date() for t in times}
        self.plot_day.setText(one_day_label(next(iter(days))) if len(days) == 1 else "")
        self.plot_day.setToolTip(
            f"Every reading shown was taken on {next(iter(days)):%A %d %B %Y}"
            if len(days) == 1
            else ""
        )
        self.plot_day.setVisible(len(days) == 1)
        vital = cat.BY_KEY["systolic" if key == "bp" else key]
        self.plot.setLabel("left", vital.canonical.symbol or "score")
        if self._view is not None:
            normal = vital.normal_range(age_now(self._view.birth_date))
            if normal is not None and key != "bp":
                band = pg.LinearRegionItem(
                    values=(float(normal[0]), float(normal[1])),
                    orientation="horizontal",
                    movable=False,
                    brush=pg.mkBrush(46, 139, 87, 28),
                    pen=pg.mkPen(None),
                )
                self.plot.addItem(band)
                self.normal_band = band
        for index, (name, points) in enumerate(lines):
            colour = LINE_COLOUR if index == 0 else SECOND_LINE_COLOUR
            brushes = [pg.mkBrush(FLAG_TEXT if flag else colour) for _, _, flag in points]
            curve = self.plot.plot(
                [p[0] for p in points],
                [p[1] for p in points],
                name=name,
                pen=pg.mkPen(colour, width=2),
                symbol="o",
                symbolSize=[11 if p[2] else 7 for p in points],
                symbolBrush=brushes,
                symbolPen=pg.mkPen(None),
            )
            self.curves.append(curve)

    # ----- recording --------------------------------------------------------------------

    def typed(self) -> tuple[dict[str, str], dict[str, str]]:
        """The values typed (by vital key) and the units chosen."""
        values = {k: f.edit.text() for k, f in self.fields.items() if f.edit.text().strip()}
        units = {k: f.unit_code for k, f in self.fields.items() if f.unit_code is not None}
        return values, {k: u for k, u in units.items() if u is not None}

    def submit(self) -> None:
        """Check every field (messages next to each), then record the set on the worker."""
        patient_id = self._patient_id
        if patient_id is None or self._job is not None:
            return
        self.status.clear()
        self.status.hide()
        self.general_error.hide()
        values, units = self.typed()
        for f in self.fields.values():
            f.check()
        _found, errors = measure_all(values, units)
        for key, exc in errors.items():
            held = self.fields[key]
            # Only what the field's own check did not find is about the set: a message
            # about the field alone goes once the field is right (its unit changed too).
            if not (held.message.isVisible() and not held.about_set):
                held.show_error(exc, about_set=True)
        when = self.observed_at.text().strip()
        wrong_time = self._check_time()
        if wrong_time is not None:
            errors["observed_at"] = wrong_time
        if not values and not errors:
            self.general_error.setText(NO_VALUES)
            self.general_error.show()
            return
        if errors:
            wrong = [
                self.observed_at if k == "observed_at" else self.fields[k].edit for k in errors
            ]
            self.focus_whole(in_tab_order(self.page, wrong)[0])
            return
        visit = self.visit.currentData()
        records, clock = self._records, self.clock
        self.record_button.setEnabled(False)

        def record() -> tuple[list[Reading], VitalSet | None]:
            signs = VitalSigns(records())
            # Checked against the clock "Measured at" follows, as the form checked it.
            readings = signs.record(patient_id, values, units, when, visit, now=clock())
            return readings, signs.set_of(patient_id, readings)

        self._job = self._operations.submit(
            record,
            self._recorded,
            self._failed,
            label="record vitals",
        )

    def _check_time(self) -> ValidationError | None:
        """Check "Measured at" (a date and a time, not ahead of the clock): what is wrong
        is said under it (its room kept, see ``keep_room``), or its message goes."""
        try:
            observed_time(self.observed_at.text().strip(), self.clock())
        except ValidationError as exc:
            self.observed_at_error.setText(validation_text(exc))
            keep_room(self.observed_at_error, True)
            self.observed_at_error.show()
            return exc
        self.observed_at_error.hide()
        return None

    def _value_typed(self, _text: str) -> None:
        """A value is typed: "Type at least one measurement." no longer holds."""
        if self.general_error.text() == NO_VALUES:
            self.general_error.hide()

    def _recheck_set(self) -> None:
        """A field was left: a message Record showed about the set goes once the set no
        longer has that problem (the systolic raised above the diastolic), and stays while
        it does (an emptied systolic beside a diastolic)."""
        held = [f for f in self.fields.values() if f.about_set and f.message.isVisible()]
        if not held:
            return
        values, units = self.typed()
        _found, errors = measure_all(values, units)
        for f in held:
            if f.vital.key not in errors:
                f.about_set = False
                f.message.hide()

    def focus_whole(self, field: QWidget) -> None:
        """The keyboard to ``field`` (its text selected, to type over), scrolled fully into
        view with the message under it.

        The messages just shown lengthen the form only at Qt's next layout pass, after
        which the scroll position left the field half cut off at the top: the layout is
        done first, so the scroll goes where the field now is."""
        field.setFocus()
        if isinstance(field, QLineEdit):
            # Typing over the typo replaces it: with the cursor at its end, "120" typed
            # into a refused "12O" made "12O120".
            field.selectAll()
        card = self.form_scroll.widget()
        if card is None:
            return
        layout = card.layout()
        if layout is not None:
            layout.activate()
        # The card takes the height its contents now need (widgetResizable does it later).
        card.resize(
            card.width(), max(card.sizeHint().height(), self.form_scroll.viewport().height())
        )
        message = next(
            (f.message for f in self.fields.values() if f.edit is field and f.message.isVisible()),
            None,
        )
        if message is not None:
            self.form_scroll.ensureWidgetVisible(message, 0, 8)
        self.form_scroll.ensureWidgetVisible(field, 0, 8)

    def _scroll_to_top(self) -> None:
        """The form back at its top, "Measured at" in view: the next set's time is read
        there (after a set with messages, the form stayed scrolled to where they were, its
        time cut off above). The room the messages kept is given back first."""
        card = self.form_scroll.widget()
        layout = card.layout() if card is not None else None
        if card is not None and layout is not None:
            layout.activate()
            card.resize(
                card.width(), max(card.sizeHint().height(), self.form_scroll.viewport().height())
            )
        self.form_scroll.verticalScrollBar().setValue(0)
        self.form_scroll.horizontalScrollBar().setValue(0)

    def _erased(self, _text: str) -> None:
        """Every value erased by hand: nothing is left of a restored form (its notice
        goes)."""
        if self._patient_id is not None and not self.typed()[0]:
            self._done(VITALS_FORM)

    def _record_by_return(self) -> None:
        if self.record_button.isEnabled():  # not while a set is being recorded
            self.submit()

    def _recorded(self, recorded: tuple[list[Reading], VitalSet | None]) -> None:
        readings, recorded_set = recorded
        self._job = None
        self.record_button.setEnabled(True)
        for f in self.fields.values():
            f.clear()
        # The next set is measured later: its time follows the clock again.
        self._time_typed = False
        self.follow_clock()
        keep_room(self.observed_at_error, False)
        self.status.setText(recorded_note(len(readings), recorded_set))
        self.status.show()
        self.fields["systolic"].edit.setFocus()
        self._scroll_to_top()
        self._done(VITALS_FORM)  # a restored form is saved: its notice goes

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.record_button.setEnabled(True)
        if isinstance(exc, ValidationError) and exc.field in self.fields:
            self.fields[exc.field].show_error(exc)
            self.focus_whole(self.fields[exc.field].edit)  # answered where it was refused
            return
        if isinstance(exc, ValidationError) and exc.field == "observed_at":
            self.observed_at_error.setText(validation_text(exc))
            keep_room(self.observed_at_error, True)
            self.observed_at_error.show()
            self.focus_whole(self.observed_at)
            return
        self.general_error.setText(f"The vitals were not recorded. {describe_error(exc)}")
        self.general_error.show()

    # ----- drafts (DraftForm) -------------------------------------------------------------

    def draft(self) -> dict[str, Any] | None:
        """What is typed and not recorded yet (None when nothing is), with the time it was
        measured at (typed, or the clock's when the values were typed)."""
        values, units = self.typed()
        if not values or self._patient_id is None:
            return None
        return {
            "patient_id": self._patient_id,
            "values": values,
            "units": units,
            "observed_at": self.observed_at.text(),
            # The visit the form shows is the one the person meant the set for ("Not in a
            # visit" included): it comes back with the values, never the open visit then.
            "visit": self.visit.currentData(),
        }

    def restore(self, draft: dict[str, Any]) -> None:
        """Put a draft's values back into the form, and show the tab."""
        tabs = self.page.parentWidget()
        while tabs is not None and not isinstance(tabs, QTabWidget):
            tabs = tabs.parentWidget()
        if tabs is not None:
            tabs.setCurrentWidget(self.page)
        if draft.get("observed_at"):
            # The values were measured then, not when they are restored: kept as typed.
            self.observed_at.setText(str(draft["observed_at"]))
            self._time_typed = True
        for key, text in dict(draft.get("values", {})).items():
            if key in self.fields:
                self.fields[key].edit.setText(str(text))
        for key, ucum in dict(draft.get("units", {})).items():
            combo = self.fields[key].unit if key in self.fields else None
            if combo is not None and combo.findData(ucum) >= 0:
                combo.setCurrentIndex(combo.findData(ucum))
        if "visit" in draft:
            visit = draft["visit"]
            self._visit_picked = True
            self._visit_choice = None if visit is None else str(visit)
            self._check_restored_visit = True
            self.visit_notice.hide()
            if self._view is not None and self._view.patient_id == self._patient_id:
                self._fill_visits(self._view)  # read already: checked now
        # Each value shows what it will be stored as ("= 38.44 °C" after 101.2 °F), as when
        # it was typed.
        for f in self.fields.values():
            f.check()

"""The chart's Visits tab: the patient's visits as a timeline (newest first), the visit
opened (its notes with their addenda, observations, problems and medication changes),
starting a walk-in visit (or one from an appointment), closing a visit (after asking) and
reopening one closed by mistake. The note editor
and the addendum form are in :mod:`app.chart.note_editor`, the visit's text in
:mod:`app.chart.visit_view`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.chart.note_editor import AddendumDialog, NoteEditor, ask_to_discard
from app.chart.permits import ANY, restrict
from app.chart.printing import PrintDialog, print_visit
from app.chart.visit_view import (
    authorship,
    contents_html,
    local_time,
    note_summary,
    read_visit,
    visit_title,
)
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.drafts import SAVED_OPEN, Draft, DraftKeeper
from app.widgets import (
    TypedForm,
    action_buttons,
    ask_first,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
    message_beside,
)
from app.worker import Job
from core.records.changeset import Changes
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.notes import Note, Notes
from core.records.schedule import Appointment, Clinician, Schedule
from core.records.types import ENCOUNTER
from core.records.visits import Visit, VisitContents, Visits

REASON_HINT = "e.g. cough for three days"


# The Visit box's choice of a walk-in (None: nothing chosen yet; else an appointment id).
WALK_IN = ""


@dataclass(frozen=True)
class StartChoices:
    """What Start visit offers: the clinicians (the booking dialog's list, by name), the
    person signed in (who may be a nurse starting it), and the patient's appointments of
    today that a visit can still start from."""

    clinicians: list[Clinician]
    me: Clinician
    appointments: list[Appointment]

    @property
    def i_see_patients(self) -> bool:
        """True when the person signed in is one of the clinicians."""
        return any(c.username == self.me.username for c in self.clinicians)


def start_choices(records: ClinicRecords, patient_id: str) -> StartChoices:
    """Read what Start visit offers for ``patient_id`` (on the worker)."""
    user = records.user(records.actor)
    me = Clinician(records.actor, (user.full_name if user else "") or "")
    return StartChoices(
        Schedule(records).clinicians(), me, Visits(records).appointments_to_start(patient_id)
    )


def appointment_label(a: Appointment, names: dict[str, str]) -> str:
    """``14:30 with Dr Doug Lee: BP check (booked)``."""
    who = names.get(a.clinician or "", a.clinician or "no clinician")
    reason = f": {a.reason}" if a.reason else ""
    return f"{a.starts_at[11:16]} with {who}{reason} ({a.status_label.lower()})"


class StartVisitDialog(TypedForm):
    """Start a visit: from one of the patient's appointments of today, or a walk-in.

    A patient with appointments today that a visit can start from gets a Visit box listing
    them and "Walk-in (no appointment)"; it reads "Choose the appointment or walk-in…"
    until the person picks one (a walk-in started for a booked patient left the booking
    Booked and the visit with whoever started it). From an appointment, the visit is the
    appointment's clinician's (shown in the Clinician box) and takes its reason unless
    another is typed; a booking still booked is marked arrived as the visit starts (core's
    ``Visits.start``, as the schedule's Start visit). Nor is a walk-in's clinician chosen
    for the person: "Choose the clinician…" until they pick one, unless the person signed
    in is a clinician themselves (then them)."""

    started = Signal(object)  # Visit
    CHOICES = "start visit choices"  # the key of the choices' read

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient_id: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations, self._records, self._patient_id = operations, records, patient_id
        self._job: Job[Visit] | None = None
        self._choices: StartChoices | None = None
        self._picked = False  # the person chose in the Clinician box
        self._wanted_from: str | None = None  # a kept draft's choices, once the lists are read
        self._wanted_clinician: str | None = None
        self.setObjectName("startVisitDialog")
        self.setWindowTitle("Start visit")
        self.setMinimumWidth(460)
        self.heading = QLabel("Start a visit")
        self.heading.setObjectName("dialogHeading")
        self.source = QComboBox()
        self.source.setAccessibleName("Visit")
        # The dialog widens to show an appointment whole (time, clinician, reason, status).
        self.source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.source.setPlaceholderText("Choose the appointment or walk-in…")
        self.reason = QLineEdit()
        self.reason.setPlaceholderText(REASON_HINT)
        self.clinician = QComboBox()
        self.clinician.setAccessibleName("Clinician")
        self.clinician.setPlaceholderText("Choose the clinician…")
        ignore_wheel(self.source, self.clinician)
        self.source.activated.connect(lambda _index: self._follow_source())
        self.clinician.activated.connect(self._clinician_picked)
        self._choices_key = f"{self.CHOICES} {id(self)}"
        operations.read(
            self._choices_key,
            lambda: start_choices(records(), patient_id),
            self._choices_arrived,
            self._choices_failed,
        )
        fields = {"appointment_id": self.source, "reason": self.reason,
                  "clinician": self.clinician}  # fmt: skip
        self.errors = {name: error_label() for name in fields}
        self.clears_on_edit((widget, self.errors[name]) for name, widget in fields.items())
        # In the order they are read, which is the order Tab takes.
        self.form = form_layout()
        for name, widget in fields.items():
            caption = "Visit" if name == "appointment_id" else ENCOUNTER.label(name)
            self.form.addRow(caption, widget)
            self.form.addRow("", self.errors[name])
        self.form.setRowVisible(self.source, False)  # shown if there are appointments
        self.buttons, self.start_button = action_buttons(self, self.start, "Start visit")
        self.start_button.setDefault(True)
        self.start_button.setEnabled(False)  # until the lists are read (milliseconds)
        # The form's message beside the buttons: above them, it pushed them down.
        beside = message_beside(self.general_error, self.buttons)
        dialog_layout(self, self.heading, self.form, beside)
        self.reason.setFocus()

    # ----- the lists ----------------------------------------------------------------------

    def _choices_arrived(self, choices: StartChoices) -> None:
        self._choices = choices
        names = {c.username: c.label for c in choices.clinicians}
        listed = list(choices.clinicians)
        if not choices.i_see_patients:
            listed.insert(0, choices.me)  # a nurse-led walk-in, say: never chosen for them
        for c in listed:
            self.clinician.addItem(c.label, c.username)
        for a in choices.appointments:
            self.source.addItem(appointment_label(a, names), a.id)
        self.source.addItem("Walk-in (no appointment)", WALK_IN)
        self.source.setCurrentIndex(-1)
        offered = bool(choices.appointments)
        self.form.setRowVisible(self.source, offered)
        self._widen_to_show_the_appointments()
        self.heading.setText("Start a visit" if offered else "Start a walk-in visit")
        self._apply_wanted()
        self.start_button.setEnabled(True)
        # The first step is the appointment: there, unless the person has begun typing.
        if offered and self.focusWidget() in (None, self.reason) and not self.reason.text():
            self.source.setFocus(Qt.FocusReason.OtherFocusReason)

    def _widen_to_show_the_appointments(self) -> None:
        """An open dialog keeps its width: widen it (as far as its screen allows) so that
        each appointment is read whole in the Visit box, not cut before its status."""
        layout = self.layout()
        if layout is not None:
            layout.activate()
        wanted = self.sizeHint().width()
        screen = self.screen()
        if screen is not None:
            wanted = min(wanted, screen.availableGeometry().width() - 40)
        if wanted > self.width():
            self.resize(wanted, self.height())

    def _apply_wanted(self) -> None:
        """Choose what a kept draft chose, if it is still offered; then the boxes follow."""
        if self._wanted_from is not None:
            self.source.setCurrentIndex(self.source.findData(self._wanted_from))
        if self._wanted_clinician is not None:
            self.clinician.setCurrentIndex(self.clinician.findData(self._wanted_clinician))
            self._picked = self.clinician.currentIndex() >= 0
        self._follow_source()

    def _choices_failed(self, exc: Exception) -> None:
        self.general_error.setText(f"The clinicians could not be read: {describe_error(exc)}")
        self.general_error.show()

    def _appointment(self) -> Appointment | None:
        """The appointment chosen in the Visit box (None: a walk-in, or nothing yet)."""
        chosen = self.source.currentData()
        listed = self._choices.appointments if self._choices else []
        return next((a for a in listed if a.id == chosen), None)

    def _follow_source(self) -> None:
        """The Clinician box and the reason's hint follow the Visit chosen, until the
        person picks a clinician: an appointment's clinician, or for a walk-in the person
        signed in if they are a clinician, else nobody."""
        appointment = self._appointment()
        self.reason.setPlaceholderText(
            f"{appointment.reason} (the appointment's)"
            if appointment is not None and appointment.reason
            else REASON_HINT
        )
        if self._picked or self._choices is None:
            return
        if appointment is not None:
            wanted = appointment.clinician
        else:
            wanted = self._choices.me.username if self._choices.i_see_patients else None
        self.clinician.setCurrentIndex(self.clinician.findData(wanted) if wanted else -1)

    def _clinician_picked(self, _index: int) -> None:
        self._picked = True

    def _chosen_clinician(self) -> str | None:
        """The user name to start the visit with (None: the appointment's, in core)."""
        data = self.clinician.currentData()
        if not self._picked and self._appointment() is not None:
            return None  # core takes the appointment's, as the box shows
        return None if data is None else str(data)

    # ----- typed ------------------------------------------------------------------------

    def form_state(self) -> object:
        """The Visit chosen, the reason, and the clinician the person picked (the lists
        read after the form opened, and what they fill in, are no choice of theirs)."""
        picked = self.clinician.currentData() if self._picked else None
        return (self.source.currentData(), self.reason.text(), picked)

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input (DraftForm), or None: the Visit chosen, the reason typed, and the
        clinician picked."""
        picked = self.clinician.currentData() if self._picked else None
        values = {"visit_from": self.source.currentData(), "reason": self.reason.text(),
                  "clinician": picked}  # fmt: skip
        return {**values, "patient_id": self._patient_id} if any(values.values()) else None

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the form with a kept draft (its choices once the lists are read)."""
        self.reason.setText(draft.get("reason") or "")
        self._wanted_from = draft.get("visit_from")
        self._wanted_clinician = draft.get("clinician") or None
        if self._choices is not None:
            self._apply_wanted()

    # ----- starting ---------------------------------------------------------------------

    def _refuse(self, field: str, text: str, widget: QWidget) -> None:
        self.errors[field].setText(text)
        self.errors[field].show()
        widget.setFocus(Qt.FocusReason.OtherFocusReason)

    def start(self) -> None:
        """Start the visit on the worker; close when it is recorded."""
        if self._job is not None or self._choices is None:
            return
        for label in (*self.errors.values(), self.general_error):
            label.hide()
        source = self.source.currentData()
        if self._choices.appointments and source is None:
            self._refuse("appointment_id", "Choose today's appointment, or Walk-in.", self.source)
            return
        appointment_id = source or None
        clinician = self._chosen_clinician()
        if appointment_id is None and clinician is None:
            self._refuse("clinician", "Choose the clinician the visit is with.", self.clinician)
            return
        records, patient_id = self._records, self._patient_id
        reason = self.reason.text().strip() or None
        self.start_button.setEnabled(False)
        self._job = self._operations.submit(
            lambda: Visits(records()).start(
                patient_id, reason, clinician, appointment_id=appointment_id, arrived_now=True
            ),
            self._started,
            self._failed,
            label="start visit",
        )

    def done(self, result: int) -> None:
        """Close; a start or a read still in flight is not reported back to a closed
        dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._operations.cancel(self._choices_key)
        super().done(result)

    def _started(self, visit: Visit) -> None:
        self._job = None
        self.started.emit(visit)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.start_button.setEnabled(True)
        if isinstance(exc, ValidationError) and exc.field in self.errors:
            label = self.errors[exc.field]
            label.setText(validation_text(exc))
        else:
            label = self.general_error
            label.setText(describe_error(exc))
        label.show()


class VisitsSection:
    """The Visits tab (a :class:`app.chart.section.ChartSection`)."""

    READ_LIST = "visits"
    READ_VISIT = "visit"
    permitted: frozenset[str] = ANY

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient_name: Callable[[], str] = lambda: "",
    ) -> None:
        self._operations, self._records = operations, records
        self._patient_name = patient_name  # as the chart's header shows it
        self._patient_id: str | None = None
        self._visits: list[Visit] = []
        self._contents: VisitContents | None = None
        self._names: dict[str, str] = {}  # the staff of the visit shown, full names
        self._job: Job[Any] | None = None
        self.start_dialog: StartVisitDialog | None = None
        self.editor: NoteEditor | None = None
        self.addendum_dialog: AddendumDialog | None = None
        self.confirm_box: QMessageBox | None = None  # Close visit's question
        self.discard_box: QMessageBox | None = None  # Discard draft's question
        self._parked = False  # focus waits on the timeline while the visit's buttons change
        operations.changed.connect(self.records_changed)

        self.page = QWidget()
        self.page.setObjectName("visitsTab")
        self.start_button = QPushButton("Start visit…")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self.start_visit)
        self.timeline = QListWidget()
        self.timeline.setObjectName("visitTimeline")
        self.timeline.setWordWrap(True)
        self.timeline.setSpacing(3)
        self.timeline.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.timeline.currentRowChanged.connect(self._visit_selected)
        self.empty = QLabel("No visits yet. Start one when the patient is seen.")
        self.empty.setObjectName("hint")
        self.empty.setWordWrap(True)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        heading = QLabel("Visits")
        heading.setObjectName("cardHeading")
        head.addWidget(heading)
        head.addStretch(1)
        head.addWidget(self.start_button)
        left_layout.addLayout(head)
        left_layout.addWidget(self.empty)
        left_layout.addWidget(self.timeline, 1)

        self.view = QTextBrowser()
        self.view.setObjectName("visitView")
        self.notes = QListWidget()
        self.notes.setObjectName("visitNotes")
        self.notes.setMaximumHeight(76)
        self.notes.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.notes.itemActivated.connect(lambda _item: self.open_note())
        self.new_note_button = QPushButton("New note")
        self.new_note_button.clicked.connect(self.new_note)
        self.open_note_button = QPushButton("Edit note…")
        self.open_note_button.clicked.connect(self.open_note)
        # A draft started on the wrong patient or visit leaves the chart (asked first). In
        # Add addendum's place while a draft is selected (a signed note takes addenda, a
        # draft may be discarded): both side by side made the window wider than a
        # 1024-pixel screen. Hidden from the start, as Reopen visit is (below).
        self.discard_button = QPushButton("Discard draft…")
        self.discard_button.setObjectName("discardDraft")
        self.discard_button.clicked.connect(self.discard_note)
        self.discard_button.hide()
        self.addendum_button = QPushButton("Add addendum…")
        self.addendum_button.clicked.connect(self.add_addendum)
        self.close_button = QPushButton("Close visit…")
        self.close_button.clicked.connect(self.close_visit)
        # In Close's place once the visit is closed: a visit closed by mistake takes its
        # note after all.
        self.reopen_button = QPushButton("Reopen visit")
        self.reopen_button.clicked.connect(self.reopen_visit)
        # Hidden from the start: hidden only later, before the window first showed, it was
        # still counted in the row's minimum width, and the window could not be made
        # narrower than 1027 pixels (a 1024-pixel screen's width).
        self.reopen_button.hide()
        self.print_button = QPushButton("Print visit…")
        self.print_button.clicked.connect(self.print_visit)
        self.print_dialog: PrintDialog | None = None
        self.message = QLabel()
        self.message.setObjectName("statusText")
        self.message.setWordWrap(True)
        buttons = QHBoxLayout()
        for button in (
            self.new_note_button,
            self.open_note_button,
            self.discard_button,
            self.addendum_button,
        ):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.print_button)
        buttons.addWidget(self.close_button)
        buttons.addWidget(self.reopen_button)
        right = QFrame()
        right.setObjectName("card")
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(18, 14, 18, 16)
        right_layout.addWidget(self.view, 1)
        notes_caption = QLabel("Notes in this visit")
        notes_caption.setObjectName("caption")
        right_layout.addWidget(notes_caption)
        right_layout.addWidget(self.notes)
        right_layout.addLayout(buttons)
        right_layout.addWidget(self.message)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([330, 900])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self.page)
        layout.setContentsMargins(0, 10, 0, 0)
        layout.addWidget(splitter)
        self.clear()

    # ----- ChartSection -----------------------------------------------------------------

    def widget(self) -> QWidget:
        """The tab's page."""
        return self.page

    def show_patient(self, patient_id: str) -> None:
        """Show this patient's visits."""
        self._patient_id = patient_id
        self.reload()

    def clear(self) -> None:
        """Forget the patient; typed note text not saved yet is saved first (sign-out; the
        text of a note discarded elsewhere is kept as a draft before, see ``reopen``)."""
        if self.editor is not None:
            self.editor.leave()
        self._operations.cancel(self.READ_LIST, self.READ_VISIT)
        if self._job is not None:
            self._job.cancel()
            self._job = None
        dialogs = (self.start_dialog, self.editor, self.addendum_dialog, self.print_dialog,
                   self.confirm_box, self.discard_box)  # fmt: skip
        for dialog in dialogs:
            if dialog is not None:
                dialog.reject()
        self._patient_id = None
        self._visits = []
        self._contents = None
        self._parked = False
        self.timeline.clear()
        self.notes.clear()
        self.view.clear()
        self.message.hide()
        self.empty.hide()
        self._update_buttons()

    # ----- reading ----------------------------------------------------------------------

    @property
    def visits(self) -> list[Visit]:
        """The visits shown, newest first."""
        return list(self._visits)

    @property
    def contents(self) -> VisitContents | None:
        """What the visit opened holds."""
        return self._contents

    def reload(self, select: str | None = None, from_appointment: str | None = None) -> None:
        """Re-read the patient's visits and open ``select`` (a visit id), or the visit
        started from the appointment ``from_appointment``, else the one open now."""
        patient_id = self._patient_id
        if patient_id is None:
            return
        current = self.current_visit()
        chosen = select or (current.id if current else None)
        records = self._records

        def arrived(visits: list[Visit]) -> None:
            started = (v.id for v in visits if v.appointment_id == from_appointment)
            self._visits_arrived(visits, next(started, None) if from_appointment else chosen)

        self._operations.read(
            self.READ_LIST, lambda: Visits(records()).list_visits(patient_id), arrived, self._failed
        )

    def records_changed(self, changes: Changes) -> None:
        """Refresh when visits, notes or observations changed, or the patient did."""
        if self._patient_id is None:
            return
        types = ("encounter", "note", "observation")
        if changes.touches(self._patient_id) or any(changes.changed(t) for t in types):
            self.reload()

    def _visits_arrived(self, visits: list[Visit], chosen: str | None) -> None:
        self._visits = visits
        self.timeline.blockSignals(True)
        self.timeline.clear()
        row = 0
        for i, visit in enumerate(visits):
            item = QListWidgetItem(visit_title(visit))
            item.setData(Qt.ItemDataRole.UserRole, visit.id)
            self.timeline.addItem(item)
            if visit.id == chosen:
                row = i
        self.timeline.blockSignals(False)
        self.empty.setVisible(not visits)
        self.timeline.setVisible(bool(visits))
        if visits:
            self.timeline.setCurrentRow(row)
            self._visit_selected(row)
        else:
            self._contents = None
            self.view.clear()
            self.notes.clear()
        self._update_buttons()

    def current_visit(self) -> Visit | None:
        """The visit selected in the timeline."""
        row = self.timeline.currentRow()
        return self._visits[row] if 0 <= row < len(self._visits) else None

    def _visit_selected(self, _row: int) -> None:
        visit = self.current_visit()
        if visit is None:
            return
        records = self._records
        self._operations.read(
            self.READ_VISIT,
            lambda: read_visit(records(), visit.id),
            self._contents_arrived,
            self._failed,
        )

    def _contents_arrived(self, read: tuple[VisitContents, dict[str, str]]) -> None:
        contents, names = read
        selected = self.selected_note()
        keep = selected.id if selected else None
        self._contents, self._names = contents, names
        self.view.setHtml(contents_html(contents, names))
        self.notes.clear()
        for i, note in enumerate(contents.notes):
            self.notes.addItem(note_summary(note, names))
            if note.id == keep:
                self.notes.setCurrentRow(i)
        if self.notes.currentRow() < 0 and contents.notes:
            self.notes.setCurrentRow(len(contents.notes) - 1)
        self._update_buttons()

    def selected_note(self) -> Note | None:
        """The note selected in the visit view."""
        row = self.notes.currentRow()
        notes = self._contents.notes if self._contents else ()
        return notes[row] if 0 <= row < len(notes) else None

    def _update_buttons(self) -> None:
        # The window's own focus widget: the one focused again when the window is, also
        # while a question (Close visit?) has just closed and the window is not yet active.
        focused = self.page.window().focusWidget()
        visit = self._contents.visit if self._contents else None
        note = self.selected_note()
        busy = self._job is not None
        is_open = visit is not None and visit.is_open and not busy
        is_closed = visit is not None and not visit.is_open
        self.print_button.setEnabled(visit is not None)
        self.close_button.setVisible(not is_closed)
        self.reopen_button.setVisible(is_closed)
        draft = note is not None and note.signed_at is None
        self.discard_button.setVisible(draft)
        self.addendum_button.setVisible(not draft)
        for button, action, enabled in (
            (self.start_button, "encounter.create", self._patient_id is not None),
            (self.new_note_button, "note.create", is_open),
            (self.close_button, "encounter.close", is_open),
            (self.reopen_button, "encounter.reopen", is_closed and not busy),
            (self.open_note_button, "note.edit", draft),
            (self.discard_button, "note.discard", draft and not busy),
            (self.addendum_button, "note.addendum", note is not None and bool(note.signed_at)),
        ):
            restrict(button, self.permitted, action, enabled=enabled)
        self._keep_focus(focused)

    def _keep_focus(self, focused: QWidget | None) -> None:
        """Keyboard focus on a button of the visit that goes (Close visit and Reopen visit
        take each other's place; the buttons wait while the visit is closed or reopened)
        stays in the visit view: on New note once the visit is open again, else on Close
        or Reopen. Qt moved it on to the next control, the toolbar's New patient, where the
        next Space registered a patient. Meanwhile it waits on the visits list."""
        buttons = (self.new_note_button, self.open_note_button, self.discard_button,
                   self.addendum_button, self.print_button, self.close_button,
                   self.reopen_button)  # fmt: skip

        def can_focus(button: QPushButton) -> bool:
            return not button.isHidden() and button.isEnabled()

        if isinstance(focused, QPushButton) and focused in buttons and not can_focus(focused):
            self._parked = True
        elif self._parked and focused is not self.timeline:
            self._parked = False  # the person went elsewhere meanwhile
        if not self._parked:
            return
        best = (self.new_note_button, self.close_button, self.reopen_button)
        target = next((b for b in best if can_focus(b)), None) if self._job is None else None
        if target is None:
            self.timeline.setFocus(Qt.FocusReason.OtherFocusReason)
            return
        self._parked = False
        target.setFocus(Qt.FocusReason.OtherFocusReason)

    def set_permitted(self, permitted: frozenset[str]) -> None:
        """What the signed-in person may do on this chart (buttons follow)."""
        self.permitted = permitted
        self._update_buttons()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.message.setText(describe_error(exc))
        self.message.show()
        self._update_buttons()

    # ----- actions ----------------------------------------------------------------------

    def print_visit(self) -> None:
        """Offer the visit shown as a PDF or on paper (the note, its addenda and vitals)."""
        visit = self._contents.visit if self._contents else None
        if visit is not None:
            dialog = print_visit(self.page, self._operations, self._records, visit.id)
            dialog.finished.connect(lambda _result: setattr(self, "print_dialog", None))
            self.print_dialog = dialog

    def start_visit(self) -> None:
        """Open the Start visit dialog (a walk-in)."""
        if self._patient_id is None:
            return
        dialog = StartVisitDialog(self._operations, self._records, self._patient_id, self.page)
        dialog.started.connect(lambda visit: self.reload(select=visit.id))
        dialog.finished.connect(lambda _r: setattr(self, "start_dialog", None))
        self.start_dialog = dialog
        dialog.open()

    def show_from_appointment(self, appointment_id: str) -> None:
        """Open the visit the schedule's Start visit has just started from
        ``appointment_id`` (core's ``Visits.start`` wrote it; this tab only shows it)."""
        self.reload(from_appointment=appointment_id)

    def new_note(self) -> None:
        """Open the note editor on the SOAP template for a new note of the visit opened;
        nothing is stored until the person types (a stray click leaves no empty draft)."""
        visit = self._contents.visit if self._contents else None
        if visit is None or self._job is not None or self.editor is not None:
            return
        self._edit(None, visit.id)

    def open_note(self) -> None:
        """Edit the selected unsigned note."""
        note = self.selected_note()
        if note is not None and note.signed_at is None:
            self._edit(note)

    def _edit(self, note: Note | None, visit_id: str | None = None) -> None:
        editor = NoteEditor(
            self._operations, self._records, note, self.page, self.permitted, visit_id
        )
        editor.finished.connect(lambda _r: setattr(self, "editor", None))
        self.editor = editor
        editor.open()

    def discard_note(self) -> None:
        """Ask, then take the selected draft off the chart (Cancel is the default)."""
        note = self.selected_note()
        if note is None or note.signed_at is not None or self._job is not None:
            return
        if self.discard_box is not None:
            self.discard_box.raise_()
            return
        self.discard_box = ask_to_discard(
            self.page, lambda chosen: self._discard_answered(chosen, note.id)
        )

    def _discard_answered(self, chosen: bool, note_id: str) -> None:
        self.discard_box = None
        if not chosen or self._job is not None:
            return
        records = self._records

        def discarded(_note: Note) -> None:
            """The change broadcast re-reads the visit, without the note."""
            self._job = None
            self.message.setText("The draft note was discarded: it is no longer on the chart.")
            self.message.show()
            self._update_buttons()

        self._job = self._operations.submit(
            lambda: Notes(records()).discard(note_id), discarded, self._failed, "discard note"
        )
        self._update_buttons()

    def add_addendum(self) -> None:
        """Add an addendum to the selected signed note."""
        note = self.selected_note()
        if note is None or note.signed_at is None:
            return
        self._open_addendum(note)

    def _open_addendum(self, note: Note) -> None:
        dialog = AddendumDialog(self._operations, self._records, note, self.page)
        dialog.finished.connect(lambda _r: setattr(self, "addendum_dialog", None))
        self.addendum_dialog = dialog
        dialog.open()

    def reopen(self, kind: str, values: dict[str, Any]) -> None:
        """Open a form of this tab again with a draft kept across a sign-out (the chart of
        the draft's patient is shown)."""
        if kind == "startVisitDialog":
            self.start_visit()
            if self.start_dialog is not None:
                self.start_dialog.restore(values)
            return
        if kind == "noteEditor" and values.get(SAVED_OPEN):
            self._reopen_editor(str(values["note_id"]), int(values.get("cursor") or 0))
            return
        if kind == "noteEditor":  # the text of a note discarded elsewhere, stored nowhere
            if self.editor is None:
                self._edit(None, str(values["visit_id"]))
            if self.editor is not None:
                self.editor.restore(values)
            return
        records, note_id = self._records, str(values["note_id"])

        def reopened(note: Note) -> None:
            self._open_addendum(note)
            if self.addendum_dialog is not None:
                self.addendum_dialog.restore(values)

        self._operations.read("addendum draft", lambda: Notes(records()).get(note_id), reopened)

    def _reopen_editor(self, note_id: str, cursor: int) -> None:
        """Open the editor again on a draft its author had open at a sign-out (its text as
        saved then), the cursor where it was; not if it was signed or discarded since."""
        records = self._records

        def reopened(note: Note) -> None:
            if self.editor is not None or note.signed_at or note.discarded_at:
                return
            self._edit(note)
            if self.editor is not None:
                self.editor.put_cursor(cursor)

        self._operations.read("note editor draft", lambda: Notes(records()).get(note_id), reopened)

    def close_visit(self) -> None:
        """Ask before closing the visit opened (a closed visit takes no new notes), naming
        the patient and the visit; the safe answer is the default, so a stray Space or
        Return closes nothing. A visit with no note yet, or with a draft not signed (each
        named: whose, started when), is warned of in so many words."""
        contents = self._contents
        if contents is None or not contents.visit.is_open or self._job is not None:
            return
        if self.confirm_box is not None:
            self.confirm_box.raise_()
            return
        visit = contents.visit
        when = visit.started_at.replace("T", " ")
        reason = f" ({visit.reason})" if visit.reason else ""
        patient = self._patient_name() or "this patient"
        drafts = [n for n in contents.notes if not n.signed_at]
        keep = None
        if drafts:
            icon = QMessageBox.Icon.Warning
            detail = unsigned_drafts_warning(drafts, self._names)
            keep = "Keep visit open"
        elif contents.notes:
            icon = QMessageBox.Icon.Question
            detail = "A closed visit takes no new notes; signed notes still take addenda."
        else:
            icon = QMessageBox.Icon.Warning
            detail = (
                "This visit has no note. Once it is closed, no note can be written in it "
                "unless someone reopens it."
            )
        self.confirm_box = ask_first(
            self.page,
            "confirmCloseVisit",
            "Close visit",
            f"Close {patient}’s visit of {when}{reason}?",
            detail,
            "Close visit",
            lambda chosen: self._close_answered(chosen, visit.id),
            keep=keep,
            icon=icon,
        )

    def _close_answered(self, chosen: bool, visit_id: str) -> None:
        self.confirm_box = None
        visit = self._contents.visit if self._contents else None
        # The visit asked about, still shown and open (a sync may have closed it meanwhile).
        if not chosen or visit is None or visit.id != visit_id or self._job is not None:
            return
        records = self._records
        self._job = self._operations.submit(
            lambda: Visits(records()).close(visit_id), self._closed, self._failed
        )
        self._update_buttons()

    def reopen_visit(self) -> None:
        """Open the closed visit shown again, so that its note can be written (audited;
        closing it again asks again)."""
        visit = self._contents.visit if self._contents else None
        if visit is None or visit.is_open or self._job is not None:
            return
        records = self._records
        self._job = self._operations.submit(
            lambda: Visits(records()).reopen(visit.id), self._closed, self._failed
        )
        self._update_buttons()

    def _closed(self, _visit: Visit) -> None:
        """Closed or reopened: the change broadcast re-reads the visit."""
        self._job = None
        self._update_buttons()


def unsigned_drafts_warning(drafts: Sequence[Note], names: dict[str, str]) -> str:
    """What closing a visit with drafts not signed says: each draft, whose and started
    when, and that it stays unsigned (a visit note printed says "not signed")."""
    described = [
        f"by {authorship(n, names)}"
        + (f", started {local_time(n.started_at)}" if n.started_at else "")
        for n in drafts
    ]
    if len(drafts) == 1:
        said = f"This visit has a draft note that is not signed: {described[0]}."
        it, stays = "it", "the draft stays"
    else:
        said = f"This visit has {len(drafts)} draft notes that are not signed: "
        said += "; ".join(described) + "."
        it, stays = "them", "the drafts stay"
    return (
        f"{said} Closed, the visit takes no new notes and {stays} unsigned (a visit note "
        f"printed says so). Sign or discard {it} first, or close the visit anyway."
    )


ChartOpener = Callable[[str, Callable[[], None]], None]


def reopen_visit_drafts_with(
    drafts: DraftKeeper, in_chart: ChartOpener, sections: Sequence[object]
) -> None:
    """Tell ``drafts`` how to reopen the Visits tab's forms (Start visit, Add addendum)
    after their author signs in again: open the patient's chart, then the form. (The note
    editor needs no draft, what it holds being saved before the sign-out ends, unless its
    note was discarded elsewhere: its text is then stored nowhere, and kept as a draft.)"""
    section = next(s for s in sections if isinstance(s, VisitsSection))

    def reopen(draft: Draft) -> None:
        values = draft.values
        in_chart(str(values["patient_id"]), lambda: section.reopen(draft.kind, values))

    for kind in ("startVisitDialog", "addendumDialog", "noteEditor"):
        drafts.reopen_with(kind, reopen)

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

from app.chart.note_editor import AddendumDialog, NoteEditor
from app.chart.permits import ANY, restrict
from app.chart.printing import PrintDialog, print_visit
from app.chart.visit_view import contents_html, note_summary, read_visit, visit_title
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.drafts import Draft, DraftKeeper
from app.widgets import (
    TypedForm,
    action_buttons,
    ask_first,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
)
from app.worker import Job
from core.records.changeset import Changes
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.notes import Note, Notes
from core.records.schedule import Clinician, Schedule
from core.records.types import ENCOUNTER
from core.records.visits import Visit, VisitContents, Visits


@dataclass(frozen=True)
class ClinicianChoices:
    """Whom a walk-in visit may be with: the clinic's clinicians, and the person signed in
    (who may be a nurse starting it), by user name."""

    clinicians: list[Clinician]
    me: Clinician


def clinician_choices(records: ClinicRecords) -> ClinicianChoices:
    """The clinicians the booking dialog lists, and the signed-in person (on the worker)."""
    user = records.user(records.actor)
    me = Clinician(records.actor, (user.full_name if user else "") or "")
    return ClinicianChoices(Schedule(records).clinicians(), me)


class StartVisitDialog(TypedForm):
    """Start a walk-in visit: the reason, and the clinician, picked by name from the same
    list as a booking's (the signed-in person until another is picked)."""

    started = Signal(object)  # Visit
    CHOICES = "start visit clinicians"  # the key of the clinicians' read

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
        self.setObjectName("startVisitDialog")
        self.setWindowTitle("Start visit")
        self.setMinimumWidth(420)
        heading = QLabel("Start a walk-in visit")
        heading.setObjectName("dialogHeading")
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("e.g. cough for three days")
        self.clinician = QComboBox()
        self.clinician.setAccessibleName("Clinician")
        self.clinician.addItem("You", None)  # until the clinic's clinicians are read
        ignore_wheel(self.clinician)
        self._me: str | None = None
        self._wanted: str | None = None  # a kept draft's choice, once the list is read
        self._choices_key = f"{self.CHOICES} {id(self)}"
        operations.read(
            self._choices_key,
            lambda: clinician_choices(records()),
            self._choices_arrived,
            lambda _exc: None,  # "You" stays: core starts the visit for the signed-in person
        )
        self.errors = {name: error_label() for name in ("reason", "clinician")}
        self.clears_on_edit(
            [(self.reason, self.errors["reason"]), (self.clinician, self.errors["clinician"])]
        )
        form = form_layout()
        for name, widget in (("reason", self.reason), ("clinician", self.clinician)):
            form.addRow(ENCOUNTER.label(name), widget)
            form.addRow("", self.errors[name])
        self.buttons, self.start_button = action_buttons(self, self.start, "Start visit")
        self.start_button.setDefault(True)
        dialog_layout(self, heading, form, self.general_error, self.buttons)

    def _choices_arrived(self, choices: ClinicianChoices) -> None:
        self._me = choices.me.username
        listed = list(choices.clinicians)
        if all(c.username != self._me for c in listed):
            listed.insert(0, choices.me)  # a nurse starting a walk-in, say
        wanted = self._wanted or self.clinician.currentData() or self._me
        self.clinician.clear()
        for c in listed:
            self.clinician.addItem(c.label, c.username)
        self.clinician.setCurrentIndex(max(self.clinician.findData(wanted), 0))

    def _chosen_clinician(self) -> str | None:
        """The user name picked (None: the signed-in person, the list not read yet)."""
        data = self.clinician.currentData()
        return self._wanted if data is None else str(data)

    def form_state(self) -> object:
        """The reason, and the clinician picked when not the signed-in person (the list
        read after the form opened fills the box: that is no choice of the person's)."""
        chosen = self._chosen_clinician()
        return (self.reason.text(), chosen if chosen != self._me else None)

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input (DraftForm), or None: the reason typed, and the clinician when
        another than the signed-in person was picked."""
        chosen = self._chosen_clinician()
        values = {
            "reason": self.reason.text(),
            "clinician": chosen if chosen != self._me else None,
        }
        return {**values, "patient_id": self._patient_id} if any(values.values()) else None

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the form with a kept draft."""
        self.reason.setText(draft.get("reason") or "")
        self._wanted = draft.get("clinician") or None
        if self._wanted is not None:
            self.clinician.setCurrentIndex(max(self.clinician.findData(self._wanted), 0))

    def start(self) -> None:
        """Start the visit on the worker; close when it is recorded."""
        if self._job is not None:
            return
        for label in (*self.errors.values(), self.general_error):
            label.hide()
        records, patient_id = self._records, self._patient_id
        reason = self.reason.text().strip() or None
        clinician = self._chosen_clinician()
        self.start_button.setEnabled(False)
        self._job = self._operations.submit(
            lambda: Visits(records()).start(patient_id, reason, clinician),
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
        self._job: Job[Any] | None = None
        self.start_dialog: StartVisitDialog | None = None
        self.editor: NoteEditor | None = None
        self.addendum_dialog: AddendumDialog | None = None
        self.confirm_box: QMessageBox | None = None  # Close visit's question
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
        """Forget the patient; typed note text not saved yet is saved first (sign-out)."""
        if self.editor is not None:
            self.editor.flush()
        self._operations.cancel(self.READ_LIST, self.READ_VISIT)
        if self._job is not None:
            self._job.cancel()
            self._job = None
        dialogs = (self.start_dialog, self.editor, self.addendum_dialog, self.print_dialog,
                   self.confirm_box)  # fmt: skip
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
        self._contents = contents
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
        for button, action, enabled in (
            (self.start_button, "encounter.create", self._patient_id is not None),
            (self.new_note_button, "note.create", is_open),
            (self.close_button, "encounter.close", is_open),
            (self.reopen_button, "encounter.reopen", is_closed and not busy),
            (self.open_note_button, "note.edit", note is not None and note.signed_at is None),
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
        buttons = (self.new_note_button, self.open_note_button, self.addendum_button,
                   self.print_button, self.close_button, self.reopen_button)  # fmt: skip

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
        """Start a note from the SOAP template in the visit opened, and edit it."""
        visit = self._contents.visit if self._contents else None
        if visit is None or self._job is not None:
            return
        records = self._records
        self._job = self._operations.submit(
            lambda: Visits(records()).add_note(visit.id), self._note_created, self._failed
        )
        self._update_buttons()

    def _note_created(self, note: Note) -> None:
        self._job = None
        self._update_buttons()
        self._edit(note)

    def open_note(self) -> None:
        """Edit the selected unsigned note."""
        note = self.selected_note()
        if note is not None and note.signed_at is None:
            self._edit(note)

    def _edit(self, note: Note) -> None:
        editor = NoteEditor(self._operations, self._records, note, self.page, self.permitted)
        editor.finished.connect(lambda _r: setattr(self, "editor", None))
        self.editor = editor
        editor.open()

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
        records, note_id = self._records, str(values["note_id"])

        def reopened(note: Note) -> None:
            self._open_addendum(note)
            if self.addendum_dialog is not None:
                self.addendum_dialog.restore(values)

        self._operations.read("addendum draft", lambda: Notes(records()).get(note_id), reopened)

    def close_visit(self) -> None:
        """Ask before closing the visit opened (a closed visit takes no new notes), naming
        the patient and the visit; Cancel is the default, so a stray Space or Return closes
        nothing. A visit with no note yet is warned of in so many words."""
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
        if contents.notes:
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


ChartOpener = Callable[[str, Callable[[], None]], None]


def reopen_visit_drafts_with(
    drafts: DraftKeeper, in_chart: ChartOpener, sections: Sequence[object]
) -> None:
    """Tell ``drafts`` how to reopen the Visits tab's forms (Start visit, Add addendum)
    after their author signs in again: open the patient's chart, then the form. (The note
    editor needs no draft: what it holds is saved before the sign-out ends.)"""
    section = next(s for s in sections if isinstance(s, VisitsSection))

    def reopen(draft: Draft) -> None:
        values = draft.values
        in_chart(str(values["patient_id"]), lambda: section.reopen(draft.kind, values))

    for kind in ("startVisitDialog", "addendumDialog"):
        drafts.reopen_with(kind, reopen)

"""Book an appointment (finding or registering the patient), move one, or cancel one.

Times are typed as text and read by core (``validation.local_datetime``): nothing is
guessed, an impossible time is refused next to its field. Nor is the clinician: the box
reads "Choose the clinician…" until the person picks one (booking without one is refused
under it), unless the page shows one clinician's day or the clinic has only one. Return
books from the form's fields and the Book button only; on another button it presses that
button, never Book. A booking that overlaps the clinician's other appointments, or the
patient's, is not refused: the dialog lists the clashes and the person confirms with "Book
anyway" (core checks again in the same transaction as the write), each clash saying whose
time it is (the clinician's, the patient's). A start already past by the clinic's clock is
asked about the same way (a walk-in entered afterwards is meant; a typo is not).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import PatientDialog, RecordsProvider
from app.schedule.columns import RoomForMarks, marks_room
from app.schedule.start_field import StartField
from app.widgets import (
    TypedForm,
    WarningPanel,
    action_buttons,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
    show_whole_placeholder,
)
from app.worker import Job
from core.records import validation
from core.records.errors import ValidationError
from core.records.models import Patient, PatientSummary
from core.records.schedule import (
    Appointment,
    Clinician,
    OverlapError,
    Schedule,
    describe,
    length_in_minutes,
    now_local,
)
from core.records.types import APPOINTMENT

SEARCH_KEY = "schedule.patient-search"


def overlap_heading(exc: OverlapError) -> str:
    """Whose time the clashes take: the clinician's, the patient's, or both."""
    if exc.clashes and exc.patient_clashes:
        return "The clinician and the patient are both booked then"
    if exc.patient_clashes:
        return "The patient already has an appointment then"
    return "The clinician is already booked at this time"


def clash_lines(
    exc: OverlapError, clinician_name: Callable[[str | None], str], day: str
) -> list[str]:
    """Each clash once, by start time, saying whose time it is: ``Dr Sam Lee is booked
    09:00-09:15 with GARCIA, Maria``, ``This patient is booked 09:30-10:00 with Dr Ana
    Kim``, or, both at once, ``Dr Sam Lee is booked 09:00-09:15 with this patient``. The
    date is given only where the clash starts on a day other than ``day`` (the time
    asked for's); the status where it is not booked."""
    clinicians = {a.id for a in exc.clashes}
    patients = {a.id for a in exc.patient_clashes}
    lines = []
    for a in exc.everything():
        start_day, start = a.starts_at.split("T")
        end_day, end = a.ends_at.split("T")
        when = f"{start}-{end}" if start_day == day else f"{start_day} {start}-{end_day} {end}"
        who = clinician_name(a.clinician)
        if a.id in clinicians:
            patient = "this patient" if a.id in patients else a.patient_name or a.patient_id
            line = f"{who} is booked {when} with {patient}"
        else:
            line = f"This patient is booked {when} with {who}"
        lines.append(line if a.status == "booked" else f"{line} ({a.status_label.lower()})")
    return lines


def clash_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """What the clashes found depend on: the form's values but the reason."""
    return {k: v for k, v in values.items() if k != "reason"}


class OverlapPanel(WarningPanel):
    """The appointments the new time overlaps (the clinician's, the patient's), or a start
    already past, and the way on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.confirm_button = QPushButton("Book anyway")
        # Never the default: Return anywhere in the form (a second Return, a key repeat)
        # books again with the check, never past it. Only a click or Space on it does.
        self.confirm_button.setAutoDefault(False)
        super().__init__(
            "The clinician is already booked at this time",
            "Overlapping appointments",
            (None, self.confirm_button),
            parent,
        )
        # One line: with the clashes and the form, the dialog must fit a 740-pixel screen.
        self.text.setText("Choose another time, or book it anyway.")
        self.heading.setWordWrap(True)  # a long name of whose time it is takes two lines
        self.clashes = self.items
        self.clashes.setObjectName("overlapClashes")
        self.asking = ""  # "overlap" or "past": what Book anyway books past

    def show_clashes(self, exc: OverlapError, lines: list[str]) -> None:
        """Say whose time is taken, list every clash once (``lines``) and show the
        panel."""
        self.asking = "overlap"
        self.heading.setText(overlap_heading(exc))
        self.text.setText("Choose another time, or book it anyway.")
        self.clashes.clear()
        for line in lines:
            self.clashes.addItem(line)
            self.clashes.item(self.clashes.count() - 1).setToolTip(line)
        self.clashes.show()
        self.fit_items(3)

    def show_past(self, start: dt.datetime, now: dt.datetime) -> None:
        """Say that ``start`` has gone by ``now`` (the clinic's clock) and show the
        panel."""
        self.asking = "past"
        when = f"{start:%H:%M} today" if start.date() == now.date() else f"{start:%Y-%m-%d %H:%M}"
        self.heading.setText(f"{when} has already passed")
        self.text.setText(
            f"It is {now:%Y-%m-%d %H:%M} now. Check the time, or book it anyway (a visit "
            "already over, entered afterwards)."
        )
        self.clashes.hide()
        self.show()


class BookingDialog(TypedForm):
    """Book a new appointment, or move ``appointment`` (its patient stays).

    ``saved`` carries the stored appointment. Opened with ``open()`` (no nested event loop).
    """

    saved = Signal(object)  # Appointment

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        clinicians: list[Clinician],
        start: str = "",
        clinician: str | None = None,
        appointment: Appointment | None = None,
        parent: QWidget | None = None,
        clock: Callable[[], dt.datetime] = now_local,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._appointment = appointment
        self._patient_id: str | None = appointment.patient_id if appointment else None
        self._clock = clock  # the clinic's local time now (the page's: tests set their own)
        self._names = {c.username: c.label for c in clinicians}
        # "Book anyway" books past the clashes shown, for the values they were found for
        # (``_warned``) and no others: a patient, time, length or clinician changed since
        # is checked again (the warning said "with this patient" of someone else).
        self._allow_overlap = False
        self._warned: dict[str, Any] | None = None
        self._asked: dict[str, Any] | None = None  # the values of the save in flight
        self._allow_past = False
        self._day = ""  # the day of the start last booked (clash_lines)
        self._job: Job[Appointment] | None = None
        self.patient_dialog: PatientDialog | None = None
        moving = appointment is not None
        self.setObjectName("bookingDialog")
        self.setWindowTitle("Move appointment" if moving else "Book appointment")
        self.setMinimumWidth(520)
        heading = QLabel(
            f"Move {appointment.patient_name}'s appointment"
            if appointment
            else "Book an appointment"
        )
        heading.setObjectName("dialogHeading")
        intro = QLabel("Times are the clinic's local time, e.g. 2026-12-07 09:30.")
        intro.setObjectName("hint")
        intro.setWordWrap(True)

        self.patient_search = QLineEdit()
        self.patient_search.setPlaceholderText("Name, MRN or date of birth")
        show_whole_placeholder(self.patient_search)
        self.patient_search.setAccessibleName("Find the patient")
        self.patient_results = QListWidget()
        self.patient_results.setObjectName("patientResults")
        self.patient_results.setAccessibleName("Patients found")
        # Rows with room for the marks over capitals (the chosen row's fill cut the tops
        # of "ÑÚÑEZ-ÖZTÜRK"'s accents, as the waiting room's did).
        self.patient_results.setItemDelegate(RoomForMarks(self.patient_results))
        # Four patients at a time (more scroll): room for the overlap warning under the
        # form on a 740-pixel screen.
        # A row: a line, the marks' room above and below, and Qt's pixel of margin.
        row = self.fontMetrics().height() + 2 * marks_room(self.font()) + 1
        self.patient_results.setFixedHeight(4 * row + 6)
        self.new_patient_button = QPushButton("Register new patient…")
        self.chosen = QLabel()
        self.chosen.setObjectName("chosenPatient")
        self.chosen.setWordWrap(True)  # a long name takes a second line, never cut
        self.start = StartField(start)
        self.start.setPlaceholderText("YYYY-MM-DD HH:MM")
        self.start.setAccessibleName("Starts")
        self.minutes = QLineEdit(str(appointment.minutes) if appointment else "15")
        self.minutes.setAccessibleName("Length in minutes")
        self.clinician = QComboBox()
        self.clinician.setAccessibleName("Clinician")
        self.clinician.setPlaceholderText("Choose the clinician…")
        for c in clinicians:
            self.clinician.addItem(c.label, c.username)
        wanted = appointment.clinician if appointment else clinician
        if wanted is None and len(clinicians) == 1:
            wanted = clinicians[0].username  # nobody else to book with
        # No silent first name on the list: an appointment booked with whoever sorts first
        # looks deliberate on the schedule. Not found (or not given): chosen by the person.
        self.clinician.setCurrentIndex(self.clinician.findData(wanted) if wanted else -1)
        ignore_wheel(self.clinician)
        self.reason = QLineEdit(appointment.reason or "" if appointment else "")
        self.reason.setPlaceholderText("Optional")
        if appointment is not None:
            self.start.setText(appointment.starts_at.replace("T", " "))
            self.reason.setEnabled(False)

        self.errors: dict[str, QLabel] = {}
        self._inputs: dict[str, QWidget] = {
            "patient_id": self.patient_search,
            "starts_at": self.start,
            "minutes": self.minutes,
            "clinician": self.clinician,
            "reason": self.reason,
        }
        form = form_layout()
        if appointment is None:
            # Register beside the search; the patient chosen on a row of its own under the
            # list, where a long name wraps (beside the button it was cut, and squeezed
            # into the list's row it was drawn over the list).
            search = QHBoxLayout()
            search.addWidget(self.patient_search, 1)
            search.addWidget(self.new_patient_button)
            form.addRow("Patient", search)
            form.addRow("", self.patient_results)
            form.addRow("", self.chosen)
        else:
            self.chosen.setText(appointment.patient_name)
            form.addRow("Patient", self.chosen)
        self.errors["patient_id"] = error_label()
        form.addRow("", self.errors["patient_id"])
        for field in ("starts_at", "minutes", "clinician", "reason"):
            label = "Minutes" if field == "minutes" else APPOINTMENT.label(field)
            form.addRow(label, self._inputs[field])
            self.errors[field] = error_label()
            form.addRow("", self.errors[field])
        self.clears_on_edit((widget, self.errors[f]) for f, widget in self._inputs.items())
        self.overlap = OverlapPanel()
        self.buttons, self.save_button = action_buttons(
            self, self.save, "Move" if moving else "Book"
        )
        dialog_layout(self, heading, intro, form, self.general_error, self.overlap, self.buttons)
        if appointment is None:
            QWidget.setTabOrder(self.patient_search, self.new_patient_button)
            QWidget.setTabOrder(self.new_patient_button, self.patient_results)
            QWidget.setTabOrder(self.patient_results, self.start)
        QWidget.setTabOrder(self.start, self.minutes)
        QWidget.setTabOrder(self.minutes, self.clinician)
        QWidget.setTabOrder(self.clinician, self.reason)

        self.patient_search.textEdited.connect(self._search)
        # Enter in the search takes the first patient found (and does not book yet); Down
        # goes into the list (eventFilter).
        self.patient_search.installEventFilter(self)
        self.patient_results.installEventFilter(self)
        self.patient_results.currentItemChanged.connect(self._picked)
        self.new_patient_button.clicked.connect(self.register_patient)
        # Return on a button presses that button (Register again, Cancel), never Book.
        for button in (self.new_patient_button, *self.buttons.buttons()):
            if isinstance(button, QPushButton):
                button.setAutoDefault(True)
        self.start.editingFinished.connect(self._check_start)
        self.overlap.confirm_button.clicked.connect(self._book_anyway)
        for edit in (self.start, self.minutes):
            edit.textEdited.connect(self._forget_overlap)
        self.start.textEdited.connect(self._forget_past)
        self.clinician.currentIndexChanged.connect(self._forget_overlap)

    # ----- the patient ------------------------------------------------------------------

    @property
    def patient_id(self) -> str | None:
        """The chosen patient's id."""
        return self._patient_id

    def _search(self, text: str) -> None:
        records = self._records
        if not text.strip():
            self._operations.cancel(SEARCH_KEY)
            self.patient_results.clear()
            return

        def find() -> list[PatientSummary]:
            return records().search_patients(text, limit=20)

        self._operations.read(SEARCH_KEY, find, self._found)

    def _found(self, patients: list[PatientSummary]) -> None:
        self.patient_results.clear()
        for p in patients:
            item = QListWidgetItem(f"{p.family.upper()}, {p.given}    born {p.birth_date}")
            item.setData(Qt.ItemDataRole.UserRole, (p.id, f"{p.family.upper()}, {p.given}"))
            self.patient_results.addItem(item)
        if not patients:
            self.patient_results.addItem("No patient found: register a new one")
            self.patient_results.item(0).setFlags(Qt.ItemFlag.NoItemFlags)

    def searching(self) -> bool:
        """True while a patient search is in flight."""
        return self._operations.reading(SEARCH_KEY)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Return books only from the form's fields (Starts, Minutes, Clinician, Reason),
        as a form's default button does. From the list of patients found it takes the
        patient highlighted; with nothing focused (the window given back by a dialog that
        closed) it goes to Starts: neither books."""
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            focused = self.focusWidget()
            fields = (self.start, self.minutes, self.clinician, self.reason, self.save_button)
            if focused is self.patient_results:
                self._picked(self.patient_results.currentItem())
                if self._patient_id is not None:
                    self._to_start()
                event.accept()
                return
            if focused not in fields:
                self._to_start()
                event.accept()
                return
        super().keyPressEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The keyboard, as in any search field: Enter in the patient search chooses the
        first patient found; Down goes into the list with the first one chosen, where
        Down and Up move through them (Up from the first back to the search) and Enter
        takes the chosen one and goes on to the time (none of them books yet)."""
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return super().eventFilter(watched, event)
        key = event.key()
        enter = key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        results = self.patient_results
        if watched is self.patient_search and enter:
            self._take_first()
            return True
        if watched is self.patient_search and key == Qt.Key.Key_Down:
            if self._first_selectable():
                results.setFocus()
                results.setCurrentRow(max(results.currentRow(), 0))
            return True
        if watched is results and enter:
            # Unhandled, Enter would reach the dialog's default button and book at once.
            if results.currentItem() is not None and self._patient_id is not None:
                self._to_start()
            return True
        if watched is results and key == Qt.Key.Key_Up and results.currentRow() <= 0:
            self.patient_search.setFocus()
            return True
        return super().eventFilter(watched, event)

    def _first_selectable(self) -> bool:
        """A patient was found (not the "No patient found" line)."""
        results = self.patient_results
        return bool(results.count() and results.item(0).flags())

    def _take_first(self) -> None:
        if self._first_selectable():
            self.patient_results.setCurrentRow(0)
            self._to_start()

    def _to_start(self) -> None:
        """On to the time, its time selected: "14:30" typed replaces the 09:00 offered and
        keeps the day (with the cursor at its end it made "2026-12-06 09:0014:30"; with the
        whole text selected, "14:30" alone, refused). A whole date and time typed over it
        is taken whole (StartField)."""
        self.start.setFocus(Qt.FocusReason.OtherFocusReason)
        self.start.select_time()

    def _picked(self, item: QListWidgetItem | None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.choose_patient(data[0], data[1])

    def choose_patient(self, patient_id: str, name: str) -> None:
        """Book for this patient (another than before: a clash warning shown goes, as
        it was about the one before)."""
        if patient_id != self._patient_id:
            self._forget_overlap()
        self._patient_id = patient_id
        self.chosen.setText(f"Booking for {name}")
        self.errors["patient_id"].hide()

    def register_patient(self) -> None:
        """The patient is new: the registration dialog, then book for them. One already
        open (one restored after a sign-in, with what was typed) comes forward instead of a
        second, empty one."""
        if self.patient_dialog is not None:
            self.patient_dialog.raise_()
            self.patient_dialog.activateWindow()
            return
        dialog = PatientDialog(self._operations, self._records, None, self)
        dialog.fill_from_search(self.patient_search.text())
        dialog.saved.connect(self._registered)
        dialog.open_existing.connect(self._existing_chosen)
        dialog.finished.connect(self._registration_closed)
        self.patient_dialog = dialog
        dialog.open()

    def _registered(self, patient: Patient) -> None:
        # The list shows who is booked for, not the "No patient found" the search left.
        name = f"{patient.family.upper()}, {patient.given}"
        self.patient_results.clear()
        item = QListWidgetItem(f"{name}    born {patient.birth_date}")
        item.setData(Qt.ItemDataRole.UserRole, (patient.id, name))
        self.patient_results.addItem(item)
        self.patient_results.setCurrentItem(item)
        self.choose_patient(patient.id, patient.display_name)

    def _registration_closed(self) -> None:
        """Back from registering: on to the time (the 09:00 offered selected, so a time
        typed replaces it on that day). Once the dialog has gone: focus set while it was
        open was given back to the Register button when it closed."""
        self.patient_dialog = None  # closed: Register opens a new one (this goes with us)
        if self._patient_id is None:
            return

        def to_start() -> None:
            self.activateWindow()
            self._to_start()

        QTimer.singleShot(0, self, to_start)

    def _existing_chosen(self, patient_id: str) -> None:
        self.choose_patient(patient_id, "the existing patient")

    # ----- saving -----------------------------------------------------------------------

    def _check_start(self) -> None:
        """Leaving the field: say at once what is wrong with a typed time."""
        typed = self.start.text().strip()
        label = self.errors["starts_at"]
        if not typed:
            label.hide()
            return
        try:
            stored = validation.local_datetime("starts_at", typed) or ""
        except ValidationError as exc:
            label.setText(validation_text(exc))
            label.show()
            return
        label.hide()
        if stored.replace("T", " ") != typed:
            self.start.setText(stored.replace("T", " "))

    def values(self) -> dict[str, Any]:
        """What the form holds, as typed."""
        return {
            "patient_id": self._patient_id,
            "starts_at": self.start.text().strip(),
            "minutes": self.minutes.text().strip(),
            "clinician": self.clinician.currentData(),
            "reason": self.reason.text().strip() or None,
        }

    def form_state(self) -> object:
        """The fields, and the patient chosen (a choice made, as a value typed)."""
        return (super().form_state(), self._patient_id)

    def draft(self) -> dict[str, Any] | None:
        """Unsaved input kept across a sign-out (the DraftForm protocol), or None."""
        values = self.values()
        if self._appointment is not None:
            return None  # a move is quickly typed again; only new bookings are kept
        # The patient search as typed too: a name half found is typed work like the rest.
        search = self.patient_search.text()
        # The registration opened from here is kept with it, and comes back on top of it.
        registration = self.patient_dialog.draft() if self.patient_dialog is not None else None
        typed = values["patient_id"] or values["reason"] or search.strip() or registration
        kept = {**values, "chosen": self.chosen.text(), "search": search}
        return {**kept, "registration": registration} if typed else None

    def restore(self, draft: dict[str, Any]) -> None:
        """Fill the form from a kept draft (a patient search typed is run again, so its
        list shows the patients it found)."""
        if self._appointment is None:
            search = str(draft.get("search") or "")
            self.patient_search.setText(search)
            if search.strip():
                self._search(search)
        if draft.get("patient_id") and self._appointment is None:
            self._forget_overlap()
            self._patient_id = draft["patient_id"]
            self.chosen.setText(str(draft.get("chosen") or ""))
        self.start.setText(str(draft.get("starts_at") or ""))
        self.minutes.setText(str(draft.get("minutes") or ""))
        self.reason.setText(str(draft.get("reason") or ""))
        if draft.get("clinician"):
            self.clinician.setCurrentIndex(self.clinician.findData(draft["clinician"]))
        registration = draft.get("registration")
        if registration and self._appointment is None:
            self.register_patient()  # on top of this dialog, as it was opened from it
            assert self.patient_dialog is not None
            self.patient_dialog.restore(registration)

    def show_error(self, field: str | None, message: str) -> None:
        """``message`` under ``field`` (or below the form), focus there."""
        label = self.errors.get(field or "", self.general_error)
        label.setText(message)
        label.show()
        if field in self._inputs:
            self._inputs[field].setFocus()

    def save(self) -> None:
        """Book (or move) on the worker; core validates every field."""
        if self._job is not None:
            return
        for label in (*self.errors.values(), self.general_error):
            label.hide()
        values = self.values()
        # Everything wrong is said under its field at once, the keyboard in the first in
        # the form (its text selected, to type over). A bad Minutes was said only once
        # Starts and Clinician were right: a third round for one form.
        missing: dict[str, str] = {}
        if values["patient_id"] is None:
            missing["patient_id"] = "Choose the patient (search above) or register one."
        for field, check in (
            ("starts_at", lambda: validation.local_datetime("starts_at", values["starts_at"])),
            ("minutes", lambda: length_in_minutes(values["minutes"])),
        ):
            try:
                check()
            except ValidationError as exc:
                missing[field] = validation_text(exc)
        if values["clinician"] is None:
            missing["clinician"] = "Choose the clinician the appointment is with."
        if self.show_problems({self.errors[f]: text for f, text in missing.items()}, select=True):
            return
        if not self._allow_past and self._past(values["starts_at"]):
            return
        # The day asked for, as Book read it (Starts may be typed in while it books).
        self._day = (validation.local_datetime("starts_at", values["starts_at"]) or "")[:10]
        # Past the clashes only if they were shown for exactly these values.
        allow = self._allow_overlap and clash_inputs(values) == self._warned
        records, current = self._records, self._appointment
        store: Callable[[], Appointment]
        if current is None:

            def store() -> Appointment:
                return Schedule(records()).book(
                    values["patient_id"], values["starts_at"], values["clinician"],
                    minutes=values["minutes"], reason=values["reason"], allow_overlap=allow,
                )  # fmt: skip

        else:

            def store() -> Appointment:
                return Schedule(records()).move(
                    current.id, values["starts_at"], minutes=values["minutes"],
                    clinician=values["clinician"], allow_overlap=allow,
                )  # fmt: skip

        self.save_button.setEnabled(False)
        self._asked = clash_inputs(values)
        self._job = self._operations.submit(store, self._stored, self._failed, "book")

    def saving(self) -> bool:
        """True while a save is in flight."""
        return self._job is not None

    def done(self, result: int) -> None:
        """Close; a save in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        self._operations.cancel(SEARCH_KEY)
        super().done(result)

    def _stored(self, appointment: Appointment) -> None:
        self._job = None
        self.saved.emit(appointment)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self.save_button.setEnabled(True)
        if isinstance(exc, OverlapError) and clash_inputs(self.values()) != self._asked:
            # Changed while it was checked (a patient picked, a time typed): the clashes
            # found are not those of the form as it now is. Check what it now holds.
            self._forget_overlap()
            self.save()
        elif isinstance(exc, OverlapError):
            self._warned = self._asked
            lines = clash_lines(exc, self._clinician_name, self._day)
            self.overlap.show_clashes(exc, lines)  # the dialog grows to hold it
            # The keyboard goes to the field to change, its time selected for typing
            # over; on Book anyway a second Return double-booked the clinician unread.
            self._to_start()
        elif isinstance(exc, ValidationError):
            self.show_error(exc.field, validation_text(exc))
        else:
            self.show_error(None, describe_error(exc))

    def _clinician_name(self, username: str | None) -> str:
        """As the Clinician box names them (one no longer listed: their username)."""
        return self._names.get(username or "", username or "no clinician")

    def _past(self, typed: str) -> bool:
        """The start typed has gone by the clinic's clock (a move's start left as it was
        is not asked about): the warning shown, the keyboard back in Starts."""
        start = dt.datetime.fromisoformat(validation.local_datetime("starts_at", typed) or "")
        current = self._appointment
        if current is not None and start == dt.datetime.fromisoformat(current.starts_at):
            return False
        now = self._clock()
        if start >= now.replace(second=0, microsecond=0):  # this minute is not past yet
            return False
        self.overlap.show_past(start, now)
        self._to_start()  # as after a clash: Return checks again, never books past it
        return True

    def _book_anyway(self) -> None:
        if self.overlap.asking == "past":
            self._allow_past = True
        else:
            self._allow_overlap = True
        self.save()

    def _forget_overlap(self) -> None:
        """What the clash warning was about changed: it goes, and Book checks again."""
        self._allow_overlap = False
        self._warned = None
        if self.overlap.asking == "overlap":
            self.overlap.hide()

    def _forget_past(self) -> None:
        """The start changed: a start asked about as past is asked about again."""
        self._allow_past = False
        if self.overlap.asking == "past":
            self.overlap.hide()


class CancelDialog(TypedForm):
    """Cancel an appointment, with an optional reason (a reason typed is not dropped
    unasked: "Keep it", Escape and the close button ask first, as in every form)."""

    def __init__(self, appointment: Appointment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cancelDialog")
        self.setWindowTitle("Cancel appointment")
        heading = QLabel(f"Cancel {describe(appointment, with_id=False)}?")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Optional, e.g. patient called")
        show_whole_placeholder(self.reason)
        form = form_layout()
        form.addRow(APPOINTMENT.label("cancel_reason"), self.reason)
        self.buttons, self.confirm_button = action_buttons(self, self.accept, "Cancel appointment")
        self.buttons.button(self.buttons.StandardButton.Cancel).setText("Keep it")
        dialog_layout(self, heading, form, self.buttons)

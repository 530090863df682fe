"""Book an appointment (finding or registering the patient), move one, or cancel one.

Times are typed as text and read by core (``validation.local_datetime``): nothing is
guessed, an impossible time is refused next to its field. A booking that overlaps the
clinician's other appointments is not refused: the dialog lists the clashes and the person
confirms with "Book anyway" (core checks again in the same transaction as the write).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
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
from app.widgets import (
    TypedForm,
    WarningPanel,
    action_buttons,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
)
from app.worker import Job
from core.records import validation
from core.records.errors import ValidationError
from core.records.models import Patient, PatientSummary
from core.records.schedule import Appointment, Clinician, OverlapError, Schedule, describe
from core.records.types import APPOINTMENT

SEARCH_KEY = "schedule.patient-search"


class OverlapPanel(WarningPanel):
    """The clinician's appointments the new time overlaps, and the way on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.confirm_button = QPushButton("Book anyway")
        super().__init__(
            "The clinician is already booked at this time",
            "Overlapping appointments",
            (None, self.confirm_button),
            parent,
        )
        self.text.setText("Choose another time, or book it anyway if the clinician will see both.")
        self.clashes = self.items
        self.clashes.setObjectName("overlapClashes")

    def show_clashes(self, clashes: list[Appointment]) -> None:
        """List ``clashes`` and show the panel."""
        self.clashes.clear()
        for a in clashes:
            self.clashes.addItem(describe(a, with_id=False))
        self.fit_items(3)


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
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._appointment = appointment
        self._patient_id: str | None = appointment.patient_id if appointment else None
        self._allow_overlap = False
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
        intro = QLabel(
            "Times are the clinic's local time: type the date and time, e.g. 2026-12-07 09:30."
        )
        intro.setObjectName("hint")
        intro.setWordWrap(True)

        self.patient_search = QLineEdit()
        self.patient_search.setPlaceholderText("Name, MRN or date of birth")
        self.patient_search.setAccessibleName("Find the patient")
        self.patient_results = QListWidget()
        self.patient_results.setObjectName("patientResults")
        self.patient_results.setAccessibleName("Patients found")
        self.patient_results.setFixedHeight(110)
        self.new_patient_button = QPushButton("Register new patient…")
        self.chosen = QLabel()
        self.chosen.setObjectName("chosenPatient")
        self.chosen.setWordWrap(True)  # a long name takes a second line, never cut
        self.start = QLineEdit(start)
        self.start.setPlaceholderText("YYYY-MM-DD HH:MM")
        self.start.setAccessibleName("Starts")
        self.minutes = QLineEdit(str(appointment.minutes) if appointment else "15")
        self.minutes.setAccessibleName("Length in minutes")
        self.clinician = QComboBox()
        for c in clinicians:
            self.clinician.addItem(c.label, c.username)
        wanted = appointment.clinician if appointment else clinician
        if wanted is not None:
            self.clinician.setCurrentIndex(max(self.clinician.findData(wanted), 0))
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
        # Enter in the search takes the first patient found (and does not book yet).
        self.patient_search.installEventFilter(self)
        self.patient_results.currentItemChanged.connect(self._picked)
        self.new_patient_button.clicked.connect(self.register_patient)
        self.start.editingFinished.connect(self._check_start)
        self.overlap.confirm_button.clicked.connect(self._book_anyway)
        for edit in (self.start, self.minutes):
            edit.textEdited.connect(self._forget_overlap)
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

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Enter in the patient search chooses the first patient found."""
        if (
            watched is self.patient_search
            and event.type() == QEvent.Type.KeyPress
            and isinstance(event, QKeyEvent)
            and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        ):
            self._take_first()
            return True
        return super().eventFilter(watched, event)

    def _take_first(self) -> None:
        if self.patient_results.count() and self.patient_results.item(0).flags():
            self.patient_results.setCurrentRow(0)
            self.start.setFocus()

    def _picked(self, item: QListWidgetItem | None) -> None:
        data = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if data:
            self.choose_patient(data[0], data[1])

    def choose_patient(self, patient_id: str, name: str) -> None:
        """Book for this patient."""
        self._patient_id = patient_id
        self.chosen.setText(f"Booking for {name}")
        self.errors["patient_id"].hide()

    def register_patient(self) -> None:
        """The patient is new: the registration dialog, then book for them."""
        dialog = PatientDialog(self._operations, self._records, None, self)
        dialog.fill_from_search(self.patient_search.text())
        dialog.saved.connect(self._registered)
        dialog.open_existing.connect(self._existing_chosen)
        self.patient_dialog = dialog
        dialog.open()

    def _registered(self, patient: Patient) -> None:
        self.choose_patient(patient.id, patient.display_name)
        self.start.setFocus()

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
        typed = values["patient_id"] or values["reason"]
        return {**values, "chosen": self.chosen.text()} if typed else None

    def restore(self, draft: dict[str, Any]) -> None:
        """Fill the form from a kept draft."""
        if draft.get("patient_id") and self._appointment is None:
            self._patient_id = draft["patient_id"]
            self.chosen.setText(str(draft.get("chosen") or ""))
        self.start.setText(str(draft.get("starts_at") or ""))
        self.minutes.setText(str(draft.get("minutes") or ""))
        self.reason.setText(str(draft.get("reason") or ""))
        if draft.get("clinician"):
            self.clinician.setCurrentIndex(max(self.clinician.findData(draft["clinician"]), 0))

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
        if values["patient_id"] is None:
            self.show_error("patient_id", "Choose the patient (search above) or register one.")
            return
        if values["clinician"] is None:
            self.show_error("clinician", "Clinician is required.")
            return
        records, allow, current = self._records, self._allow_overlap, self._appointment
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
        if isinstance(exc, OverlapError):
            self.overlap.show_clashes(exc.clashes)
            self.adjustSize()
            self.overlap.confirm_button.setFocus()
        elif isinstance(exc, ValidationError):
            self.show_error(exc.field, validation_text(exc))
        else:
            self.show_error(None, describe_error(exc))

    def _book_anyway(self) -> None:
        self._allow_overlap = True
        self.save()

    def _forget_overlap(self) -> None:
        self._allow_overlap = False
        self.overlap.hide()


class CancelDialog(QDialog):
    """Cancel an appointment, with an optional reason."""

    def __init__(self, appointment: Appointment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cancelDialog")
        self.setWindowTitle("Cancel appointment")
        heading = QLabel(f"Cancel {describe(appointment, with_id=False)}?")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText("Optional, e.g. patient called")
        form = form_layout()
        form.addRow(APPOINTMENT.label("cancel_reason"), self.reason)
        self.buttons, self.confirm_button = action_buttons(self, self.accept, "Cancel appointment")
        self.buttons.button(self.buttons.StandardButton.Cancel).setText("Keep it")
        dialog_layout(self, heading, form, self.buttons)

"""Register a new patient or correct a patient's demographics."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QDate, QEvent, QObject, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDateEdit,
    QDateTimeEdit,
    QDialog,
    QLabel,
    QLineEdit,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.widgets import action_buttons, dialog_layout, error_label, form_layout
from app.worker import Job, Worker
from core.records.clinic import ClinicRecords
from core.records.errors import ValidationError
from core.records.models import SEX_VALUES, Patient
from core.records.types import PATIENT

RecordsProvider = Callable[[], ClinicRecords]

DATE_FORMAT = "yyyy-MM-dd"
# One day before core's earliest allowed date stands for "not entered yet": a QDateEdit
# cannot be empty, and a plausible default date would be easy to save by mistake.
UNSET_DATE = QDate(1899, 12, 31)
TYPING_START = QDate(2000, 1, 1)
DATE_SEPARATORS = ("-", "/", ".")


class BirthDateEdit(QDateEdit):
    """A date edit that starts blank ("Not entered") and opens its calendar near today."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setCalendarPopup(True)
        self.setDisplayFormat(DATE_FORMAT)
        self.setMinimumDate(UNSET_DATE)
        self.setMaximumDate(QDate.currentDate())
        self.setSpecialValueText("Not entered")
        self.setDate(UNSET_DATE)
        self.calendarWidget().installEventFilter(self)
        self._section_filled = False

    def iso_date(self) -> str | None:
        """``YYYY-MM-DD``, or None when no date was entered."""
        self.interpretText()  # commit a half-typed day such as the "2" of "1984-3-2"
        if self.date() == UNSET_DATE:
            return None
        return self.date().toString(DATE_FORMAT)

    def set_iso_date(self, value: str | None) -> None:
        """Show a stored date (blank when None or unreadable)."""
        date = QDate.fromString(value or "", DATE_FORMAT)
        self.setDate(date if date.isValid() else UNSET_DATE)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Typing ``1984-03-02``, ``1984-3-2`` or ``19840302`` all give 2 March 1984."""
        text = event.text()
        if self.date() == UNSET_DATE and text.isdigit():
            # The blank text cannot be typed over: start from a neutral date, year selected.
            self.setDate(TYPING_START)
            self.setSelectedSection(QDateTimeEdit.Section.YearSection)
        if text in DATE_SEPARATORS and self._section_filled:
            # Qt already moved to the next section when the last one filled up; a typed
            # separator would skip a whole section (1984-03 would land in the day).
            self._section_filled = False
            return
        if text in DATE_SEPARATORS and text != "-":
            # Qt only recognises the display format's own separator.
            event = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Minus, event.modifiers(), "-")
        before = self.currentSection()
        super().keyPressEvent(event)
        self._section_filled = text.isdigit() and self.currentSection() != before

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Open the calendar on this month rather than on December 1899."""
        if event.type() == QEvent.Type.Show and self.date() == UNSET_DATE:
            today = QDate.currentDate()
            self.calendarWidget().setCurrentPage(today.year(), today.month())
        return super().eventFilter(watched, event)


class PatientDialog(QDialog):
    """Form for a patient's demographics; saving runs on the worker and core validates.

    Opened with ``open()`` (window-modal, no nested event loop) so an auto-lock can close
    it. ``saved`` carries the stored patient.
    """

    saved = Signal(object)  # Patient

    def __init__(
        self,
        worker: Worker,
        records: RecordsProvider,
        patient: Patient | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._records = records
        self._patient = patient
        self._saving = False
        self._job: Job[Patient] | None = None
        self.setObjectName("patientDialog")
        self.setWindowTitle("New patient" if patient is None else "Edit patient")
        self.setMinimumWidth(460)

        heading = QLabel(
            "Register a new patient" if patient is None else f"Edit {patient.display_name}"
        )
        heading.setObjectName("dialogHeading")
        intro = QLabel(
            "Family name, given name and date of birth are required."
            if patient is None
            else "Change what is wrong and choose Save. Every change is recorded in the audit log."
        )
        intro.setObjectName("hint")
        intro.setWordWrap(True)

        self.family = QLineEdit()
        self.given = QLineEdit()
        self.birth_date = BirthDateEdit()
        self.sex = QComboBox()
        self.sex.addItem("Not recorded", None)
        for value in SEX_VALUES:
            self.sex.addItem(value.capitalize(), value)
        self.mrn = QLineEdit()
        self.mrn.setPlaceholderText("Optional")
        self.phone = QLineEdit()
        self.phone.setPlaceholderText("Optional")

        self._inputs: dict[str, QWidget] = {
            "family": self.family,
            "given": self.given,
            "birth_date": self.birth_date,
            "sex": self.sex,
            "mrn": self.mrn,
            "phone": self.phone,
        }
        self.errors: dict[str, QLabel] = {}
        form = form_layout()
        for field, widget in self._inputs.items():
            form.addRow(PATIENT.label(field), widget)
            self.errors[field] = error_label()
            form.addRow("", self.errors[field])

        self.general_error = error_label()
        self.buttons, self.save_button = action_buttons(self, self.save)
        dialog_layout(self, heading, intro, form, self.general_error, self.buttons)

        if patient is not None:
            self.family.setText(patient.family)
            self.given.setText(patient.given)
            self.birth_date.set_iso_date(patient.birth_date)
            self.sex.setCurrentIndex(max(self.sex.findData(patient.sex), 0))
            self.mrn.setText(patient.mrn or "")
            self.phone.setText(patient.phone or "")

    def values(self) -> dict[str, str | None]:
        """The form's fields as core expects them (blank -> None)."""
        return {
            "family": self.family.text().strip() or None,
            "given": self.given.text().strip() or None,
            "birth_date": self.birth_date.iso_date(),
            "sex": self.sex.currentData(),
            "mrn": self.mrn.text().strip() or None,
            "phone": self.phone.text().strip() or None,
        }

    def show_error(self, field: str | None, message: str) -> None:
        """Show ``message`` under ``field`` (or below the form) and move focus there."""
        label = self.errors.get(field or "", self.general_error)
        label.setText(message)
        label.show()
        if field in self._inputs:
            self._inputs[field].setFocus()

    def clear_errors(self) -> None:
        """Hide every message."""
        for label in (*self.errors.values(), self.general_error):
            label.clear()
            label.hide()

    def save(self) -> None:
        """Validate through core on the worker; close when stored."""
        if self._saving:
            return
        self.clear_errors()
        values = self.values()
        if values["birth_date"] is None:
            # Core would say "'' is not a date"; a blank date edit deserves plainer words.
            self.show_error("birth_date", "Date of birth is required.")
            return
        records = self._records
        patient = self._patient
        if patient is None:
            birth = values["birth_date"]

            def store() -> Patient:
                return records().add_patient(
                    values["family"] or "",
                    values["given"] or "",
                    birth,
                    values["sex"],
                    values["mrn"],
                    values["phone"],
                )

        else:
            changes = {f: v for f, v in values.items() if getattr(patient, f) != v}
            if not changes:
                self.accept()
                return

            def store() -> Patient:
                return records().update_patient(patient.id, changes)

        self._set_saving(True)
        self._job = self._worker.submit(store, self._stored, self._failed, label="save patient")

    def done(self, result: int) -> None:
        """Close; a save still in flight is not reported back to a closed dialog."""
        if self._job is not None:
            self._job.cancel()
            self._job = None
        super().done(result)

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.save_button.setEnabled(not saving)
        self.save_button.setText("Saving…" if saving else "Save")

    def _stored(self, patient: Patient) -> None:
        self._job = None
        self._set_saving(False)
        self.saved.emit(patient)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self._set_saving(False)
        if isinstance(exc, ValidationError):
            self.show_error(exc.field, validation_text(exc))
        else:
            self.show_error(None, describe_error(exc))

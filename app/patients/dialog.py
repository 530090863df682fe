"""Register a new patient or correct a patient's demographics."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from app.messages import describe_error, validation_text
from app.widgets import (
    TypedForm,
    WarningPanel,
    action_buttons,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
)
from app.worker import Job, Submit
from core.records import validation
from core.records.clinic import ClinicRecords
from core.records.duplicates import DuplicatePatientError
from core.records.errors import ValidationError
from core.records.models import SEX_VALUES, Patient, PatientSummary
from core.records.search_text import read_search
from core.records.types import PATIENT

RecordsProvider = Callable[[], ClinicRecords]


class BirthDateEdit(QLineEdit):
    """A date of birth typed as text, year first, and read exactly as typed.

    A date edit with sections fills in what was not typed (``1984`` became 1984-01-01, a
    day that does not exist was moved to one that does) and changes under the wheel or the
    arrow keys; plain text cannot. Core's ``validation.birth_date`` reads it: anything it
    cannot read exactly is refused with the reason, next to the field.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setPlaceholderText("YYYY-MM-DD, e.g. 1984-03-02")
        self.setMaxLength(32)
        self.setAccessibleName("Date of birth")
        self.setToolTip(
            "Year, month, day: 1984-03-02, 1984-3-2 or 19840302. "
            "A date written day or month first (02/03/1984) is refused: it reads two ways."
        )

    def iso_date(self) -> str:
        """The typed date as ``YYYY-MM-DD``; ValidationError (field ``birth_date``) says
        why the text is not a date of birth."""
        return validation.birth_date(self.text())


def _match_text(p: PatientSummary) -> str:
    mrn = f"MRN {p.mrn}" if p.mrn else "no MRN"
    return f"{p.family.upper()}, {p.given}    born {p.birth_date}    {mrn}"


class DuplicatePanel(WarningPanel):
    """Patients who may be the one being registered, and the two ways on."""

    def __init__(self, parent: QWidget | None = None) -> None:
        self.open_button = QPushButton("Open existing chart")
        self.register_button = QPushButton("Register as new patient anyway")
        super().__init__(
            "This patient may already be registered",
            "Possible matches",
            (self.open_button, None, self.register_button),
            parent,
        )
        self.matches = self.items
        self.matches.setObjectName("duplicateMatches")

    def show_matches(self, matches: list[PatientSummary]) -> None:
        """List ``matches`` (the first selected) and show the panel."""
        one = len(matches) == 1
        self.text.setText(
            ("A patient" if one else f"{len(matches)} patients")
            + " with the same date of birth and the same or a similar name "
            + ("is" if one else "are")
            + " already registered. Open the existing chart rather than registering the "
            "same person twice; register a new patient only if this is someone else."
        )
        self.matches.clear()
        for p in matches:
            item = QListWidgetItem(_match_text(p))
            item.setData(Qt.ItemDataRole.UserRole, p.id)
            self.matches.addItem(item)
        self.fit_items(4)
        self.matches.setCurrentRow(0)

    def chosen_id(self) -> str | None:
        """The id of the selected match."""
        item = self.matches.currentItem()
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))


class PatientDialog(TypedForm):
    """Form for a patient's demographics; saving runs on the worker and core validates.

    Opened with ``open()`` (window-modal, no nested event loop) so an auto-lock can close
    it. ``saved`` carries the stored patient. A registration that may duplicate a patient
    already registered stores nothing and lists them; ``open_existing`` carries the id of
    the one the person chose to open instead.
    """

    saved = Signal(object)  # Patient
    open_existing = Signal(str)  # patient id

    def __init__(
        self,
        worker: Submit,  # app.operations.Operations: every screen hears of the save
        records: RecordsProvider,
        patient: Patient | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._worker = worker
        self._records = records
        self._patient = patient
        self._saving = False
        self._allow_duplicate = False
        self._job: Job[Patient] | None = None
        self.setObjectName("patientDialog")
        self.setWindowTitle("New patient" if patient is None else "Edit patient")
        self.setMinimumWidth(500)

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
        ignore_wheel(self.sex)
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
        self.clears_on_edit((widget, self.errors[f]) for f, widget in self._inputs.items())

        self.duplicates = DuplicatePanel()
        self.buttons, self.save_button = action_buttons(self, self.save)
        dialog_layout(self, heading, intro, form, self.general_error, self.duplicates, self.buttons)

        if patient is not None:
            self.family.setText(patient.family)
            self.given.setText(patient.given)
            self.birth_date.setText(patient.birth_date)
            self.sex.setCurrentIndex(max(self.sex.findData(patient.sex), 0))
            self.mrn.setText(patient.mrn or "")
            self.phone.setText(patient.phone or "")

        self.birth_date.editingFinished.connect(self._check_birth_date)
        for edit in (self.family, self.given, self.birth_date):
            # What the matches were found for has changed: they may no longer apply.
            edit.textEdited.connect(self._forget_matches)
        self.duplicates.open_button.clicked.connect(self._open_existing)
        self.duplicates.register_button.clicked.connect(self._register_anyway)

    def values(self) -> dict[str, str | None]:
        """The form's fields as core expects them (blank -> None). The birth date is the
        text as typed (core reads it); in an edit, the stored date while it is untouched."""
        typed = self.birth_date.text().strip()
        return {
            "family": self.family.text().strip() or None,
            "given": self.given.text().strip() or None,
            "birth_date": typed or None,
            "sex": self.sex.currentData(),
            "mrn": self.mrn.text().strip() or None,
            "phone": self.phone.text().strip() or None,
        }

    def fill_from_search(self, text: str) -> None:
        """A registration after a search found nobody: the name and date of birth typed
        there, in their fields (``Lopez, Maria``: family ``Lopez``, given ``Maria``), for
        the person to check before Save (core/records/search_text.py)."""
        typed = read_search(text)
        self.family.setText(typed.family)
        self.given.setText(typed.given)
        self.birth_date.setText(typed.birth_date)

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input kept across a sign-out (app/session/drafts.py), or None. For an
        edit, only the fields the person changed: restored onto the patient as read again
        later, they never undo what a colleague changed meanwhile."""
        values, patient = self.values(), self._patient
        if patient is None:
            return {**values, "patient_id": None} if any(values.values()) else None
        changed = {f: v for f, v in values.items() if getattr(patient, f) != v}
        return {**changed, "patient_id": patient.id} if changed else None

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the fields a kept draft holds."""
        for field, value in draft.items():
            widget = self._inputs.get(field)
            if isinstance(widget, QLineEdit):  # the date of birth too: kept as typed
                widget.setText(value or "")
            elif widget is self.sex:
                self.sex.setCurrentIndex(max(self.sex.findData(value), 0))

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
        patient = self._patient
        if patient is None or values["birth_date"] != patient.birth_date:
            # Read here, before anything is sent: a date that cannot be read exactly is
            # refused next to the field (a stored date left untouched is kept as it is).
            try:
                values["birth_date"] = self.birth_date.iso_date()
            except ValidationError as exc:
                self.show_error("birth_date", validation_text(exc))
                return
        records = self._records
        if patient is None:
            allow_duplicate = self._allow_duplicate

            def store() -> Patient:
                return records().add_patient(
                    values["family"] or "",
                    values["given"] or "",
                    values["birth_date"] or "",
                    values["sex"],
                    values["mrn"],
                    values["phone"],
                    allow_duplicate=allow_duplicate,
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

    def _check_birth_date(self) -> None:
        """Leaving the field: say at once what is wrong with a typed date, and show a good
        one as it will be stored (``1984-3-2`` -> ``1984-03-02``)."""
        typed = self.birth_date.text().strip()
        if not typed or (self._patient is not None and typed == self._patient.birth_date):
            self.errors["birth_date"].hide()
            return
        try:
            iso = self.birth_date.iso_date()
        except ValidationError as exc:
            self.errors["birth_date"].setText(validation_text(exc))
            self.errors["birth_date"].show()
            return
        self.errors["birth_date"].hide()
        if iso != self.birth_date.text():
            self.birth_date.setText(iso)

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        self.save_button.setEnabled(not saving)
        self.save_button.setText("Saving…" if saving else "Save")
        self.duplicates.setEnabled(not saving)

    def _stored(self, patient: Patient) -> None:
        self._job = None
        self._set_saving(False)
        self.saved.emit(patient)
        self.accept()

    def _failed(self, exc: Exception) -> None:
        self._job = None
        self._set_saving(False)
        if isinstance(exc, DuplicatePatientError):
            self.duplicates.show_matches(exc.matches)
            self.adjustSize()  # room for the panel, its buttons' full labels included
            self.duplicates.matches.setFocus()
        elif isinstance(exc, ValidationError):
            self.show_error(exc.field, validation_text(exc))
        else:
            self.show_error(None, describe_error(exc))

    def _forget_matches(self) -> None:
        self._allow_duplicate = False
        self.duplicates.hide()

    def _open_existing(self) -> None:
        chosen = self.duplicates.chosen_id()
        if chosen is not None:
            self.open_existing.emit(chosen)
            self.reject()

    def _register_anyway(self) -> None:
        self._allow_duplicate = True
        self.save()

"""Register a new patient or correct a patient's demographics."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidgetItem,
    QPushButton,
    QWidget,
)

from app.edit_base import ChangedSinceQuestion, EditBase
from app.messages import describe_error, validation_text
from app.widgets import (
    TypedForm,
    WarningPanel,
    action_buttons,
    check_all,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
    message_beside,
)
from app.worker import Job, Submit
from core.records import validation
from core.records.clinic import ClinicRecords
from core.records.duplicates import DuplicatePatientError
from core.records.edit_base import ChangedField, ChangedSinceOpened
from core.records.errors import ValidationError
from core.records.models import SEX_VALUES, Patient, PatientSummary
from core.records.search_text import read_search
from core.records.types import PATIENT

RecordsProvider = Callable[[], ClinicRecords]

# The fields of the form, in its order.
PATIENT_FORM = ("family", "given", "birth_date", "sex", "mrn", "phone")


def _check(field: str, value: str | None) -> object:
    """Core's check of one patient field (ValidationError says what is wrong)."""
    spec = PATIENT.field_named(field)
    return value if spec is None else spec.clean(value)


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

    An edit remembers what each field held when it opened (``EditBase``, kept with its
    draft too) and saves only the fields the person changed, on that base: a field someone
    else saved since is never replaced unasked (``ChangedSinceQuestion``, app/edit_base.py).
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
        # What each field held when the form opened (an edit only).
        self._base = EditBase({f: getattr(patient, f) for f in PATIENT_FORM} if patient else {})
        self._check_job: Job[tuple[ChangedField, ...]] | None = None  # a restored draft's
        self.changed_question: ChangedSinceQuestion | None = None
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
        # Height the form does not need stays above the buttons: spread over the heading
        # and the messages, it moved every field as a message came and went. The form's
        # message is beside the buttons: above them, it pushed them down.
        dialog_layout(
            self,
            heading,
            intro,
            form,
            self.duplicates,
            message_beside(self.general_error, self.buttons),
            room_above_last=True,
        )

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

    def draft(self) -> dict[str, Any] | None:
        """Unsaved input kept across a sign-out (app/session/drafts.py), or None. For an
        edit, only the fields the person changed, with what each held when the form was
        opened (``base``): restored onto the patient as read again later, they never undo
        what a colleague changed meanwhile, and a field the colleague changed too is asked
        about."""
        values, patient = self.values(), self._patient
        if patient is None:
            return {**values, "patient_id": None} if any(values.values()) else None
        changed = self._base.changed(values)
        if not changed:
            return None
        return {**changed, **self._base.for_draft(changed), "patient_id": patient.id}

    def restore(self, draft: dict[str, Any]) -> None:
        """Fill the fields a kept draft holds. An edit's then checks them against the
        patient as stored now, and asks about any someone else changed since the form was
        first opened (a draft without its base: about any that differ now)."""
        drafted = [f for f in draft if f in self._inputs]
        for field in drafted:
            self._set_field(field, draft[field])
        patient = self._patient
        if patient is None or not drafted:
            return
        self._base.restore(draft, drafted)
        saving = {f: self.values()[f] for f in drafted}
        based_on = self._base.based_on(drafted)
        records = self._records
        self._check_job = self._worker.submit(
            lambda: records().patient_changed_since(patient.id, saving, based_on),
            self._restored_checked,
            lambda exc: self.show_error(None, describe_error(exc)),
            label="check a restored form",
        )

    def _restored_checked(self, found: tuple[ChangedField, ...]) -> None:
        self._check_job = None
        if found and not self._saving and self.changed_question is None:
            self._ask_changed(found, then_save=False)

    def _set_field(self, field: str, value: str | None) -> None:
        widget = self._inputs[field]
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
        """Check every field as core will (all that is wrong shown at once), then store
        through core on the worker; close when stored."""
        if self._saving or self.changed_question is not None:
            return
        self.clear_errors()
        values = self.values()
        patient = self._patient
        # A registration checks every field; an edit those changed (a stored value left
        # untouched is kept as it is, even one today's checks would word differently).
        checked = values if patient is None else self._base.changed(values)
        if self.show_problems(
            check_all((self.errors[f], partial(_check, f, values[f])) for f in checked)
        ):
            return
        if "birth_date" in checked:
            values["birth_date"] = self.birth_date.iso_date()  # read exactly, as checked
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
            changes = {f: values[f] for f in checked}  # the changed ones, as core wants
            if not changes:
                self.accept()
                return
            # What the person saw when they began: core refuses, writing nothing, if a
            # field changed here holds something else now.
            based_on = self._base.based_on(changes)

            def store() -> Patient:
                return records().update_patient(patient.id, changes, based_on)

        self._set_saving(True)
        self._job = self._worker.submit(store, self._stored, self._failed, label="save patient")

    def done(self, result: int) -> None:
        """Close; a save or check still in flight is not reported back to a closed dialog,
        and an open question about a field changed since goes with it (nothing decided)."""
        for job in (self._job, self._check_job):
            if job is not None:
                job.cancel()
        self._job = self._check_job = None
        question, self.changed_question = self.changed_question, None
        if question is not None:
            question.close()
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
        elif isinstance(exc, ChangedSinceOpened):
            self._ask_changed(exc.fields, then_save=True)
        elif isinstance(exc, ValidationError):
            self.show_error(exc.field, validation_text(exc))
        else:
            self.show_error(None, describe_error(exc))

    def _ask_changed(self, fields: tuple[ChangedField, ...], then_save: bool) -> None:
        """Ask about each field someone else changed since the form opened; once each is
        decided, save (``then_save``: the person had pressed Save) with the choices."""
        yours = self.values()

        def decide(field: ChangedField, keep_mine: bool) -> None:
            if not keep_mine:  # theirs stays: what was typed in the field goes
                self._set_field(field.field, None if field.current is None else str(field.current))
            self._base.settle(field.field, field.current)

        def then(decided: bool) -> None:
            if self.changed_question is None:
                return  # the form closed meanwhile
            self.changed_question = None
            if decided and then_save:
                self.save()
            elif not decided:
                self._inputs[fields[0].field].setFocus()

        self.changed_question = ChangedSinceQuestion(self, fields, yours, decide, then)

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

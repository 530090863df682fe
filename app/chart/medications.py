"""The medications card on the chart's Overview: active list with Start, Change dose and
Stop; "Show past" adds the stopped ones (history, greyed; an old dose says it was changed,
not stopped), each row saying who prescribed and recorded it (its tooltip: who stopped it,
when). Starting a medication whose name matches a recorded allergy shows the allergy
warning, and one the patient takes already the duplicate warning; only "Start anyway"
saves it. The clinician starting it is its prescriber ("I prescribe it") unless they say
someone else prescribed it (named if known): a medication recorded from elsewhere."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

from PySide6.QtWidgets import (
    QCheckBox,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QRadioButton,
    QWidget,
)

from app.chart.cards import ListCard
from app.chart.list_dialogs import DateDialog, SavingDialog
from app.chart.permits import ANY, restrict
from app.chart.visit_view import OpenVisitLink
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import (
    action_buttons,
    ask_first,
    dialog_layout,
    error_label,
    form_layout,
    message_beside,
)
from core.records.chart_lists import DuplicateWarning, dated
from core.records.clinic import ClinicRecords
from core.records.list_history import when_by
from core.records.medications import DOSE_FIELDS, AllergyWarning, Medication, Medications
from core.records.types import MEDICATIONS

PLACEHOLDERS = {
    "name": "e.g. Metformin",
    "strength": "e.g. 500 mg",
    "dose": "e.g. 1 tablet",
    "route": "e.g. by mouth",
    "frequency": "e.g. twice daily",
    "start": "YYYY-MM-DD",
    "reason": "Optional, e.g. type 2 diabetes",
    "prescriber": "Their name, if known",
}


class MedicationDialog(SavingDialog):
    """Start a medication, or (given ``changing``) change its dose: the old one stops and
    the new one starts on the date typed. Either is recorded in the patient's open visit,
    if there is one, and the form names it."""

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient_id: str,
        parent: QWidget | None = None,
        changing: Medication | None = None,
    ) -> None:
        super().__init__(operations, parent)
        self._records = records
        self._patient_id = patient_id
        self._changing = changing
        self.edits = None if changing is None else "medication"
        self.warning_box: QMessageBox | None = None
        self._asked = (False, False)  # the last save's (confirm_allergy, allow_duplicate)
        starting = changing is None
        self.setObjectName("medicationDialog" if starting else "doseDialog")
        self.setWindowTitle("Start medication" if starting else "Change dose")
        self.setMinimumWidth(460)
        heading = QLabel(
            "Start a medication"
            if changing is None
            else f"Change the dose of {changing.name}: it stops and starts again from the date"
            # The reason is carried over (the same indication); the prescriber is not.
            + (f". Reason kept: {changing.reason}" if changing.reason else "")
        )
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        names = ("name", *DOSE_FIELDS, "start", "reason", "prescriber") if starting else (
            *DOSE_FIELDS, "start", "prescriber",
        )  # fmt: skip
        self.fields: dict[str, QLineEdit] = {}
        form = form_layout()
        # Who prescribed it: the clinician starting it, or someone else (named if known)
        # when it is only being recorded here. Typing a name chooses "Someone else".
        self.prescribing = QRadioButton("I prescribe it")
        self.prescribing.setChecked(True)
        self.elsewhere = QRadioButton("Someone else (prescribed elsewhere):")
        self.prescribing.toggled.connect(lambda _on: self.errors["prescriber"].hide())
        for name in names:
            edit = QLineEdit()
            edit.setPlaceholderText(PLACEHOLDERS[name])
            if changing is not None and name in DOSE_FIELDS:
                edit.setText(getattr(changing, name) or "")
            self.fields[name] = edit
            self.errors[name] = error_label()
            label = MEDICATIONS.item(name).label if name != "start" or starting else "From"
            if name == "prescriber":
                edit.textEdited.connect(lambda _text: self.elsewhere.setChecked(True))
                form.addRow("Prescribed by", self.prescribing)
                form.addRow("", self.elsewhere)
                label = ""
            form.addRow(label, edit)
            form.addRow("", self.errors[name])
        self.errors["stop"] = self.errors["start"]  # a change's date is the old one's stop
        self.clears_on_edit((edit, self.errors[name]) for name, edit in self.fields.items())
        self.fields["start"].setText(dt.date.today().isoformat())
        # A medication started, or its dose changed, while the patient has an open visit
        # is one of its changes: the new dose is recorded in it, and the form says so.
        # The visit is the list's own patient's (on a merged chart, the changed item's).
        owner = changing.patient_id if changing is not None else patient_id
        self.visit_link = OpenVisitLink(operations, records, owner)
        self.buttons, self.save_button = action_buttons(
            self, self.save, "Start" if starting else "Change dose"
        )
        beside = message_beside(self.general_error, self.buttons)  # not above: they stay
        dialog_layout(self, heading, form, self.visit_link.label, beside)
        self.first_field = self.fields[names[0]]

    def values(self) -> dict[str, str | None]:
        """What is typed, by field (blank: None); a prescriber's name only when someone
        else prescribed it."""
        typed = {name: edit.text().strip() or None for name, edit in self.fields.items()}
        if self.prescribing.isChecked():
            typed["prescriber"] = None
        return typed

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input kept across a sign-out (app/session/drafts.py), or None."""
        if self._changing is not None:
            return None  # the medication may have changed meanwhile
        values = self.values()
        values.pop("start")
        if not any(values.values()):
            return None
        return {**self.values(), "patient_id": self._patient_id}

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the form with a kept draft."""
        for name, edit in self.fields.items():
            edit.setText(draft.get(name) or "")
        if draft.get("prescriber"):  # kept only when someone else prescribed it
            self.elsewhere.setChecked(True)

    def done(self, result: int) -> None:
        """Close; the open-visit read still in flight is not delivered."""
        self.visit_link.cancel()
        super().done(result)

    def save(self, confirm_allergy: bool = False, allow_duplicate: bool = False) -> None:
        """Start (or change) through core, in the patient's open visit if there is one;
        an allergy match, or a medication the patient takes already, asks first."""
        records, patient_id, values = self._records, self._patient_id, self.values()
        changing, prescribing = self._changing, self.prescribing.isChecked()
        self._asked = (confirm_allergy, allow_duplicate)
        # A dose change's From, emptied, is refused as core refuses it (never taken as
        # today, a date nobody typed); a new medication's Start may be left unknown.
        date = self.fields["start"].text()
        own = {"start": partial(dated, MEDICATIONS, "start", date)} if changing else None
        if not self.items_pass(MEDICATIONS, values, own):
            return
        work: Callable[[], Any]
        visit = self.visit_link.encounter()
        if changing is not None:
            changes = {f: values[f] for f in DOSE_FIELDS}
            prescriber = values["prescriber"]
            work = lambda: Medications(records()).change_dose(  # noqa: E731
                changing.id, changes, date, prescriber, visit(), prescribing
            )
        else:
            work = lambda: Medications(records()).start(  # noqa: E731
                patient_id, {**values, "encounter_id": visit()}, confirm_allergy,
                allow_duplicate, prescribing,
            )  # fmt: skip

        self.run(work, "start medication" if changing is None else "change dose")

    def failed(self, exc: Exception) -> None:
        """An allergy match, or a medication taken already, asks the person; other errors
        show on the form."""
        if isinstance(exc, DuplicateWarning):
            self._warn_duplicate(exc)
            return
        if not isinstance(exc, AllergyWarning):
            super().failed(exc)
            return
        self._job = None
        self.save_button.setEnabled(True)
        self.warning_box = ask_first(
            self,
            "allergyWarning",
            "Allergy warning",
            f"{exc.name} matches a recorded allergy of this patient.",
            "\n".join(f"• {m.describe()}" for m in exc.matches)
            + "\n\nStart it only if you have checked this with the patient or the allergy "
            "record. Your decision, either way, is recorded in the audit log.",
            "Start anyway",
            self._warned,
            keep="Don’t start",
        )

    def _warn_duplicate(self, exc: DuplicateWarning) -> None:
        """Say the patient takes it already (when recorded, by whom): "Don't start", the
        default, saves nothing; "Start anyway" saves it as answered so far."""
        self._job = None
        self.save_button.setEnabled(True)
        confirm_allergy = self._asked[0]
        others = {m.id: m for m in exc.existing}

        def answered(anyway: bool) -> None:
            self.warning_box = None
            if anyway:
                self.save(confirm_allergy=confirm_allergy, allow_duplicate=True)

        self.warning_box = ask_first(
            self,
            "duplicateMedication",
            "Already taken",
            f"{exc.what} is already an active medication of this patient.",
            "\n".join(
                f"• {m.name} {m.instructions}".rstrip()
                + ": "
                + "; ".join(m.history_lines(exc.names, others))
                for m in exc.existing
            )
            + "\n\nTo take it differently, change the dose of the one listed instead. Start "
            "it again only if the patient is to take both.",
            "Start anyway",
            answered,
            keep="Don’t start",
        )

    def _warned(self, confirmed: bool) -> None:
        box, self.warning_box = self.warning_box, None
        if confirmed:
            self.save(confirm_allergy=True, allow_duplicate=self._asked[1])
        elif box is not None and box.clickedButton() is not None:
            # The person chose Don't start (or Escape, the same button): a decision the
            # box says is audited. A box closed by the program (a sign-out) decided nothing.
            records, patient_id = self._records, self._patient_id
            # Not tied to this form (it may be closed before the entry is written): a
            # failure is shown by the main window.
            self._operations.submit(
                lambda: Medications(records()).warning_heeded(patient_id),
                label="record the allergy warning heeded",
            )


class MedicationsCard(ListCard[Medication]):
    permitted: frozenset[str] = ANY
    """Active medications (Start, Change dose, Stop); "Show past" adds the history."""

    COLUMNS = (
        "Medication", "Strength and dose", "Start", "Stop", "Reason", "Prescribed by", "Recorded",
    )  # fmt: skip
    READ = "medications"
    NOUN = "medications"
    DRAFT_KIND = "medicationDialog"  # a half-typed prescription survives a sign-out

    def __init__(self, operations: Operations, records: RecordsProvider) -> None:
        self.start_button = QPushButton("Start…")
        self.change_button = QPushButton("Change dose…")
        self.stop_button = QPushButton("Stop…")
        self.show_past = QCheckBox("Show past")
        super().__init__(
            operations, records, "Medications", self.show_past,
            (self.start_button, self.change_button, self.stop_button),
        )  # fmt: skip
        self.start_button.clicked.connect(self.start_medication)
        self.change_button.clicked.connect(self.change_selected)
        self.stop_button.clicked.connect(self.stop_selected)
        self.clear()

    @property
    def medications(self) -> list[Medication]:
        """The medications shown, in order."""
        return self.items

    def fetch(self, records: ClinicRecords, patient_id: str, history: bool) -> list[Medication]:
        """Active medications, and past ones when asked."""
        return Medications(records).list(patient_id, include_past=history)

    def cells(self, item: Medication) -> list[str]:
        """Name, strength and dose, start, stop (an old dose: changed, not stopped),
        reason, prescriber, when recorded and by whom."""
        stop = item.stop or ""
        if item.changed_to is not None:
            stop = f"Dose changed {stop}".strip()
        return [
            item.name, item.instructions, item.start or "", stop, item.reason or "",
            item.prescribed_text(self.names),
            when_by(item.recorded_at, item.recorded_by, self.names),
        ]  # fmt: skip

    def tooltip(self, item: Medication) -> str:
        """Who recorded and prescribed it, and who stopped it (or changed its dose to
        what) when."""
        others = {m.id: m for m in self.items}
        return "\n".join(item.history_lines(self.names, others))

    def is_history(self, item: Medication) -> bool:
        """Stopped."""
        return not item.active

    def update_buttons(self) -> None:
        """Start needs a chart; Change dose and Stop an active medication selected."""
        chosen = self.selected()
        active = chosen is not None and chosen.active
        for button, action, enabled in (
            (self.start_button, "medication.start", self.patient_id is not None),
            (self.change_button, "medication.change_dose", active),
            (self.stop_button, "medication.stop", active),
        ):
            restrict(button, self.permitted, action, enabled=enabled)

    def set_permitted(self, permitted: frozenset[str]) -> None:
        """What the signed-in person may do on this chart (buttons follow)."""
        self.permitted = permitted
        self.update_buttons()

    def start_medication(self) -> None:
        """Open the start-medication form."""
        if self.patient_id is not None:
            self.open_dialog(
                MedicationDialog(self._operations, self._records, self.patient_id, self.frame)
            )

    def reopen(self, draft: dict[str, str | None]) -> None:
        """Open the start form again with a draft kept across a sign-out."""
        self.start_medication()
        if isinstance(self.dialog, MedicationDialog):
            self.dialog.restore(draft)

    def change_selected(self) -> None:
        """Open the change-dose form for the selected active medication."""
        chosen = self.selected()
        if chosen is not None and chosen.active and self.patient_id is not None:
            self.open_dialog(
                MedicationDialog(
                    self._operations, self._records, self.patient_id, self.frame, chosen
                )
            )

    def stop_selected(self) -> None:
        """Ask for the date the selected medication stopped, and record it (in the open
        visit on the chart, if any, as Start and Change dose)."""
        chosen, patient_id = self.selected(), self.patient_id
        if chosen is None or not chosen.active or patient_id is None:
            return
        records = self._records
        self.open_dialog(
            DateDialog(
                self._operations,
                "Stop medication",
                f"Stop {chosen.name} {chosen.instructions} on:".replace("  ", " "),
                ("stop", "Stopped on"),
                lambda date, visit: Medications(records()).stop(chosen.id, date, visit),
                "Stop",
                self.frame,
                edits="medication",
                # Stopped while the patient has an open visit: one of its changes.
                visit_link=OpenVisitLink(self._operations, records, chosen.patient_id),
            )
        )

"""A patient's chart: demographics (with Edit) and allergies (Add, Remove).

Opening a chart goes through ``ClinicRecords.open_chart`` on the worker, which writes the
audit entry. Edits run as operations (:mod:`app.operations`); when a change to the patient
shown arrives, from this screen, another one or a sync, the page re-reads the record
without a new audit entry: the audit log records one opening per visit, not one per edit.
Escape goes back to the patient list.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QTableWidgetItem,
    QTabWidget,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.chart.access_dialog import ChartAccessDialog
from app.chart.allergy_banner import AllergyBanner
from app.chart.attachments import AttachmentsSection
from app.chart.break_glass import BreakGlassSection
from app.chart.cards import card, fit_rows, list_table
from app.chart.chart_history import ChartHistoryDialog
from app.chart.list_dialogs import SavingDialog
from app.chart.medications import MedicationsCard
from app.chart.permits import ANY, allows, restrict
from app.chart.printing import PrintSummary
from app.chart.problems import ProblemsCard
from app.chart.section import ChartSection
from app.chart.visits import VisitsSection
from app.chart.vitals import VitalsSection
from app.conflicts.dialog import field_label
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import PatientDialog, RecordsProvider
from app.patients.list_page import age_on
from app.widgets import (
    action_buttons,
    ask_first,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
    message_beside,
)
from app.worker import Job
from core.records import merged
from core.records.allergy_status import AllergyRecords, AllergyState
from core.records.changeset import Changes
from core.records.chart_access import RESTRICTED_MEANS, is_restricted
from core.records.clinic import ClinicRecords
from core.records.merges import Merge, Merges
from core.records.models import CLINICAL_HIDDEN, SEVERITY_VALUES, Allergy, Chart, Patient
from core.records.types import ALLERGIES, choice_label

SEVERE_COLOUR = QColor("#9b1c1c")


@dataclass(frozen=True)
class ChartView:
    """What the page shows: the chart, and the full name of each person who recorded an
    allergy (by user name)."""

    chart: Chart
    recorders: dict[str, str]
    permitted: frozenset[str] = ANY  # what the signed-in person may do on this chart
    restricted: bool = False  # a restricted chart (its header says so)


def with_recorders(records: ClinicRecords, chart: Chart) -> ChartView:
    """``chart`` with its recorders' full names (on the worker); a user name with no
    account, or an account without a full name, stands for itself."""
    names: dict[str, str] = {}
    for allergy in chart.allergies:
        if allergy.recorded_by not in names:
            user = records.user(allergy.recorded_by)
            names[allergy.recorded_by] = (user.full_name if user else "") or allergy.recorded_by
    pid = chart.patient.id
    return ChartView(chart, names, records.permitted(pid), is_restricted(records.db, pid))


def describe_birth(birth_date: str) -> str:
    """``1984-03-02 (41 years)``, ``2026-05-02 (7 months)``."""
    age = age_on(birth_date, dt.date.today())
    return f"{birth_date} ({age})" if age else birth_date


class AllergyDialog(SavingDialog):
    """Record an allergy: substance (required), reaction and severity; or, given
    ``allergy``, edit its reaction and severity (the substance stays: another substance is
    another allergy)."""

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient: Patient,
        parent: QWidget | None = None,
        allergy: Allergy | None = None,
    ) -> None:
        super().__init__(operations, parent)
        self._records = records
        self._patient = patient
        self._editing = allergy
        self.edits = None if allergy is None else "allergy"
        self.setObjectName("allergyDialog" if allergy is None else "allergyEditDialog")
        self.setWindowTitle("Add allergy" if allergy is None else "Edit allergy")
        self.setMinimumWidth(420)

        heading = QLabel(
            f"Add an allergy for {patient.display_name}"
            if allergy is None
            else f"Edit the allergy to {allergy.substance} of {patient.display_name}"
        )
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        self.substance = QLineEdit()
        self.substance.setPlaceholderText("e.g. Penicillin, latex, peanuts")
        self.reaction = QLineEdit()
        self.reaction.setPlaceholderText("Optional, e.g. hives, anaphylaxis")
        self.severity = QComboBox()
        self.severity.addItem("Not recorded", None)
        for value in SEVERITY_VALUES:
            self.severity.addItem(choice_label(value), value)
        ignore_wheel(self.severity)
        self.errors = {name: error_label() for name in ("substance", "reaction", "severity")}
        form = form_layout()
        for field, widget in (
            ("substance", self.substance),
            ("reaction", self.reaction),
            ("severity", self.severity),
        ):
            form.addRow(ALLERGIES.item(field).label, widget)
            form.addRow("", self.errors[field])

        self.clears_on_edit(
            (widget, self.errors[field])
            for field, widget in (
                ("substance", self.substance),
                ("reaction", self.reaction),
                ("severity", self.severity),
            )
        )
        self.buttons, self.save_button = action_buttons(self, self.save)
        # The form's message beside the buttons: above them, it pushed them down.
        dialog_layout(self, heading, form, message_beside(self.general_error, self.buttons))
        if allergy is not None:
            self.substance.setText(allergy.substance)
            self.substance.setReadOnly(True)
            self.substance.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.reaction.setText(allergy.reaction or "")
            self.severity.setCurrentIndex(max(self.severity.findData(allergy.severity), 0))
        self.first_field = self.substance if allergy is None else self.reaction

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input kept across a sign-out (app/session/drafts.py), or None."""
        values = {
            "substance": self.substance.text(),
            "reaction": self.reaction.text(),
            "severity": self.severity.currentData(),
        }
        if self._editing is not None or not any(values.values()):
            return None  # an edit is not kept: the allergy may have changed meanwhile
        return {**values, "patient_id": self._patient.id}

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the form with a kept draft."""
        self.substance.setText(draft.get("substance") or "")
        self.reaction.setText(draft.get("reaction") or "")
        self.severity.setCurrentIndex(max(self.severity.findData(draft.get("severity")), 0))

    def save(self) -> None:
        """Store through core on the worker; close when stored."""
        records, patient_id = self._records, self._patient.id
        substance, reaction = self.substance.text(), self.reaction.text().strip() or None
        severity = self.severity.currentData()
        typed = {"substance": substance, "reaction": reaction, "severity": severity}
        if not self.items_pass(ALLERGIES, typed):
            return
        editing = self._editing
        if editing is not None:
            self.run(
                lambda: AllergyRecords(records()).edit(editing.id, reaction, severity),
                "edit allergy",
            )
        else:
            self.run(
                lambda: records().add_allergy(patient_id, substance, reaction, severity),
                "add allergy",
            )


class ChartPage(QWidget):
    """One patient's chart."""

    back_requested = Signal()
    chart_shown = Signal(str)  # the chart of this patient id is on screen
    title_changed = Signal(str)  # the name of the patient shown ("" when none)
    review_conflicts = Signal()

    ALLERGY_COLUMNS = ("Substance", "Reaction", "Severity", "Recorded")

    # The key of this page's reads (see Operations.read): a newer one supersedes the last.
    READ = "chart"
    GROUP = "chart merged"  # the key of the check for a merge or unmerge touching the chart

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._patient: Patient | None = None
        # The patients whose records this chart gathers (core/records/merged.py); None
        # until read for the chart shown.
        self._group: frozenset[str] | None = None
        self._patient_id: str | None = None  # the chart opened (shown, or on its way)
        self._sections_shown = False
        self.permitted: frozenset[str] = ANY
        self._allergies: list[Allergy] = []
        self._recorders: dict[str, str] = {}
        self._remove_job: Job[None] | None = None
        operations.changed.connect(self.records_changed)

        self.back_button = QPushButton("← All patients")
        self.back_button.setObjectName("link")
        self.back_button.clicked.connect(self.back_requested)

        self.name = QLabel()
        self.name.setObjectName("chartName")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.allergy_banner = AllergyBanner()
        self.message = QLabel()
        self.message.setObjectName("statusText")
        self.message.setWordWrap(True)
        # Shown while this record has open conflicts.
        self._conflicted: dict[str, list[str]] = {}
        self.conflict_text = QLabel()
        self.conflict_text.setWordWrap(True)
        self.conflict_button = QPushButton("Review…")
        self.conflict_button.setObjectName("link")
        self.conflict_button.clicked.connect(self.review_conflicts)
        self.conflict_banner = QFrame()
        self.conflict_banner.setObjectName("conflictBanner")
        self.conflict_banner.setStyleSheet(
            "#conflictBanner { background: #fdf6e3; border: 1px solid #e8c98a;"
            " border-radius: 6px; } #conflictBanner QLabel { color: #6b4a0f; }"
        )
        banner = QHBoxLayout(self.conflict_banner)
        banner.setContentsMargins(12, 8, 12, 8)
        banner.addWidget(self.conflict_text, 1)
        banner.addWidget(self.conflict_button)
        self.conflict_banner.hide()

        # Demographics card.
        self.birth = QLabel()
        self.sex = QLabel()
        self.mrn = QLabel()
        self.phone = QLabel()
        self.edit_button = QPushButton("Edit details…")
        self.edit_button.clicked.connect(self.edit_patient)
        details = QGridLayout()
        details.setHorizontalSpacing(24)
        details.setVerticalSpacing(8)
        for row, (caption, value) in enumerate(
            (
                ("Date of birth", self.birth),
                ("Sex", self.sex),
                ("MRN", self.mrn),
                ("Phone", self.phone),
            )
        ):
            label = QLabel(caption)
            label.setObjectName("caption")
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            details.addWidget(label, row, 0)
            details.addWidget(value, row, 1)
        details.setColumnStretch(1, 1)
        demo_card, demo_layout = card("Demographics", self.edit_button)
        demo_layout.addLayout(details)

        # Allergies card.
        self.allergy_table = list_table(self.ALLERGY_COLUMNS, "allergyTable")
        self.allergy_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.allergy_table.itemSelectionChanged.connect(self._update_buttons)
        self.no_allergies = QLabel("No allergies recorded.")
        self.no_allergies.setObjectName("hint")
        self.add_allergy_button = QPushButton("Add allergy…")
        self.add_allergy_button.clicked.connect(self.add_allergy)
        self.edit_allergy_button = QPushButton("Edit…")
        self.edit_allergy_button.clicked.connect(self.edit_allergy)
        self.allergy_table.itemDoubleClicked.connect(lambda _item: self.edit_allergy())
        self.no_known_button = QPushButton("No known allergies")
        self.no_known_button.setToolTip("The patient was asked and has no known allergies")
        self.no_known_button.clicked.connect(self.record_no_known_allergies)
        self.remove_allergy_button = QPushButton("Remove…")
        self.remove_allergy_button.setObjectName("danger")
        self.remove_allergy_button.clicked.connect(self.confirm_remove_allergy)
        allergy_card, allergy_layout = card(
            "Allergies",
            self.no_known_button,
            self.add_allergy_button,
            self.edit_allergy_button,
            self.remove_allergy_button,
        )
        allergy_layout.addWidget(self.no_allergies)
        allergy_layout.addWidget(self.allergy_table, 1)

        top = QHBoxLayout()
        top.addWidget(self.back_button)
        top.addStretch(1)
        self.print_summary = PrintSummary(operations, records)  # app/chart/printing.py
        top.addWidget(self.print_summary.widget())
        # Who has seen or changed this chart (app/chart/chart_history.py), and emergency
        # access with its banner across the chart (app/chart/break_glass.py).
        self.history_button = QPushButton("Who has seen this chart…")
        self.history_button.setObjectName("chartHistoryButton")
        self.history_button.setToolTip("Who has seen or changed this chart, and when")
        self.history_button.clicked.connect(self.show_history)
        top.insertWidget(2, self.history_button)
        self.break_glass = BreakGlassSection(
            operations, records, lambda: self._patient, self, self.load
        )
        top.insertWidget(3, self.break_glass.button)
        # The restricted flag and care team (app/chart/access_dialog.py), for those holding
        # manage_access on the chart; everyone sees the header's marker.
        self.access_button = QPushButton("Chart access…")
        self.access_button.setObjectName("chartAccessButton")
        self.access_button.setToolTip("Restrict this chart and choose its care team")
        self.access_button.clicked.connect(self.show_access)
        self.access_button.hide()
        top.insertWidget(4, self.access_button)
        self.restricted_marker = QLabel("Restricted chart")
        self.restricted_marker.setObjectName("restrictedMarker")
        self.restricted_marker.setToolTip(RESTRICTED_MEANS)
        self.restricted_marker.setStyleSheet(
            "#restrictedMarker { background: #eef2f7; color: #2d3f57; border: 1px solid"
            " #b8c4d4; border-radius: 4px; padding: 2px 8px; font-weight: 600; }"
        )
        self.restricted_marker.hide()
        header = QHBoxLayout()
        header.setSpacing(12)
        header.addWidget(self.name)
        header.addWidget(self.restricted_marker, 0, Qt.AlignmentFlag.AlignVCenter)
        header.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(14)
        layout.addLayout(top)
        layout.addLayout(header)
        layout.addWidget(self.break_glass.widget())
        layout.addWidget(self.allergy_banner)
        layout.addWidget(self.conflict_banner)
        layout.addWidget(self.message)
        # Overview (cards) first; other parts of the chart are tabs of their own.
        self.overview = QWidget()
        self.overview_layout = QVBoxLayout(self.overview)
        self.overview_layout.setContentsMargins(0, 10, 0, 0)
        self.overview_layout.setSpacing(14)
        self.overview_layout.addWidget(demo_card)
        # The charts merged into this one, as they stand (an edit made to one elsewhere
        # during the merge shows here); hidden when there are none.
        self.merged_note = QLabel()
        self.merged_note.setObjectName("mergedFrom")
        self.merged_note.setWordWrap(True)
        self.merged_note.hide()
        self.overview_layout.addWidget(self.merged_note)
        # For staff who see demographics only (front desk), instead of every clinical part.
        self.clinical_hidden = QLabel(CLINICAL_HIDDEN)
        self.clinical_hidden.setObjectName("clinicalHidden")
        self.clinical_hidden.setWordWrap(True)
        self.clinical_hidden.hide()
        self.overview_layout.addWidget(self.clinical_hidden)
        self.allergy_card = allergy_card
        self.overview_layout.addWidget(allergy_card)
        # Cards keep their natural height, packed at the top; the Overview scrolls.
        self.overview_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.tabs = QTabWidget()
        self.tabs.setObjectName("chartTabs")
        self.tabs.setDocumentMode(True)
        overview_scroll = QScrollArea()
        overview_scroll.setWidgetResizable(True)
        overview_scroll.setFrameShape(QFrame.Shape.NoFrame)
        overview_scroll.setWidget(self.overview)
        self.tabs.addTab(overview_scroll, "Overview")
        layout.addWidget(self.tabs, 1)
        self.sections: list[ChartSection] = [self.print_summary, self.break_glass]
        self.add_card(ProblemsCard(operations, records))
        self.add_card(MedicationsCard(operations, records))
        self.add_tab("Visits", VisitsSection(operations, records, self._shown_name))
        self.add_tab("Vitals", VitalsSection(operations, records))
        self.attachments = AttachmentsSection(operations, records)
        self.add_tab("Attachments", self.attachments)

        self.patient_dialog: PatientDialog | None = None
        self.allergy_dialog: AllergyDialog | None = None
        self.confirm_box: QMessageBox | None = None
        self.history_dialog: ChartHistoryDialog | None = None
        self.access_dialog: ChartAccessDialog | None = None
        self.clear()

    def _shown_name(self) -> str:
        """The patient's name as the header shows it ("" with no chart shown)."""
        return self._patient.display_name if self._patient is not None else ""

    def add_tab(self, title: str, section: ChartSection) -> None:
        """A part of the chart shown as a tab of its own (after those added before)."""
        self.sections.append(section)
        self.tabs.addTab(section.widget(), title)

    def add_card(self, section: ChartSection, stretch: int = 0) -> None:
        """A part of the chart shown as a card on the Overview tab."""
        self.sections.append(section)
        self.overview_layout.addWidget(section.widget(), stretch)

    # ----- state ------------------------------------------------------------------------

    @property
    def patient(self) -> Patient | None:
        """The patient shown, if any."""
        return self._patient

    @property
    def allergies(self) -> list[Allergy]:
        """The allergies shown."""
        return list(self._allergies)

    def set_conflicted(self, conflicted: dict[str, list[str]]) -> None:
        """Which records have open conflicts (record id -> fields); updates the banner."""
        self._conflicted = dict(conflicted)
        self._update_conflict_banner()

    def _update_conflict_banner(self) -> None:
        fields = self._conflicted.get(self._patient.id, []) if self._patient else []
        if not fields:
            self.conflict_banner.hide()
            return
        names = ", ".join(field_label(f) for f in fields)
        noun = "conflict" if len(fields) == 1 else "conflicts"
        self.conflict_text.setText(
            f"This record has {len(fields)} unresolved {noun} ({names}). "
            "Values from two workstations disagree."
        )
        self.conflict_banner.show()

    def load(self, patient_id: str) -> None:
        """Open ``patient_id``'s chart (audited by core) and show it when it arrives."""
        self.clear()
        self._patient_id = patient_id
        self.message.setText("Opening chart…")
        self.message.show()
        records = self._records
        self._operations.read(
            self.READ,
            lambda: with_recorders(records(), records().open_chart(patient_id)),
            self._chart_arrived,
            self._chart_failed,
            label="open chart",
        )

    def reload(self) -> None:
        """Re-read the chart shown (it changed): no new audit entry, as it is still open."""
        patient_id = self._patient_id
        if patient_id is None:
            return
        records = self._records

        def read() -> ChartView:
            clinic = records()
            # A merge or unmerge may have changed whose chart this id opens.
            patient = clinic.get_patient(merged.survivor(clinic.db, patient_id))
            clinical = clinic.may("view_clinical", patient_id)
            allergies = tuple(clinic.allergies(patient_id)) if clinical else ()
            return with_recorders(clinic, Chart(patient, allergies, clinical))

        self._operations.read(self.READ, read, self._chart_arrived, self._chart_failed)

    def records_changed(self, changes: Changes) -> None:
        """Reload when the patient shown changed, or an account whose name it shows.

        A chart still opening needs nothing: its (audited) read runs after the change.
        """
        if self._patient is None:
            return
        if (
            changes.touches(self._patient.id)
            or any(changes.touches(pid) for pid in self._group or ())
            or (changes.changed("user") and self._allergies)
            or changes.changed("relation")  # who may read it (restricted, care team, roles)
        ):
            self.reload()
        # Another patient changed: merged into this chart or out of it, perhaps.
        if changes.changed_besides("patient", {self._patient.id}):
            self._check_group()

    def _check_group(self) -> None:
        """Reload if the patients merged into this chart changed (on the worker)."""
        if self._patient is None:
            return
        records, shown = self._records, self._patient.id

        def read() -> list[tuple[Patient, Merge]]:
            return Merges(records()).merged_from(shown)

        self._operations.read(self.GROUP, read, self._group_arrived, lambda _exc: None)

    def _group_arrived(self, found: list[tuple[Patient, Merge]]) -> None:
        if self._patient is None:
            return
        self.merged_note.setText(
            "\n".join(
                f"Holds the records of {p.display_name}, born {p.birth_date}"
                + (f", phone {p.phone}" if p.phone else "")
                + f" (merged by {m.by} on {m.at[:10]}: {m.reason})"
                for p, m in found
            )
        )
        self.merged_note.setVisible(bool(found))
        group = frozenset({self._patient.id, *(p.id for p, _ in found)})
        if group == self._group:
            return
        known, self._group = self._group is not None, group
        if known:  # a merge or unmerge since the chart was read: every part reads again
            self.reload()
            if self._sections_shown:
                for section in self.sections:
                    section.show_patient(self._patient.id)

    def clear(self) -> None:
        """Remove every patient detail from the page (leaving it, or locking)."""
        self._operations.cancel(self.READ, self.GROUP)
        if self._remove_job is not None:
            self._remove_job.cancel()
        self._remove_job = None
        self._patient_id = None
        self._group = None
        self.merged_note.clear()
        self.merged_note.hide()
        self._sections_shown = False  # the chart's sections were given the patient
        for dialog in (
            self.patient_dialog,
            self.allergy_dialog,
            self.confirm_box,
            self.history_dialog,
            self.access_dialog,
        ):
            if dialog is not None:
                dialog.reject()
        self._patient = None
        self._allergies = []
        self._recorders = {}
        self.title_changed.emit("")
        for label in (self.name, self.birth, self.sex, self.mrn, self.phone, self.message):
            label.clear()
        self.message.hide()
        self.conflict_banner.hide()
        self.restricted_marker.hide()
        self.access_button.hide()
        self.allergy_banner.clear()
        self.allergy_table.setRowCount(0)
        self.no_allergies.hide()
        self._update_buttons()
        for section in self.sections:
            section.clear()
        self.tabs.setCurrentIndex(0)

    def end_session(self) -> None:
        """The person signed out: after :meth:`clear`, sections forget what they kept for
        that person across charts (the Vitals form's units)."""
        for section in self.sections:
            if hasattr(section, "end_session"):
                section.end_session()

    def _chart_arrived(self, view: ChartView) -> None:
        first = self._patient is None
        self.message.hide()
        self.permitted = view.permitted
        self.restricted_marker.setVisible(view.restricted)
        self.access_button.setVisible(allows(view.permitted, "access.grant"))
        self._show_clinical(view.chart.clinical)
        if not view.chart.clinical:
            self._show_patient(view.chart.patient)
            if first:
                # A restricted chart: a clinician or nurse is offered break-glass.
                self.break_glass.show_patient(view.chart.patient.id)
                self.chart_shown.emit(view.chart.patient.id)
            return
        self._recorders = view.recorders
        self._show_patient(view.chart.patient)
        self._allergies = list(view.chart.allergies)
        self.allergy_banner.show_allergies(view.chart.patient, view.chart.allergies)
        self._fill_allergies()
        for section in self.sections:  # permissions change with roles and care teams
            if hasattr(section, "set_permitted"):
                section.set_permitted(view.permitted)
        if not self._sections_shown:  # first arrival, or clinical access just gained
            self._sections_shown = True
            for section in self.sections:
                section.show_patient(view.chart.patient.id)
        if first:
            self.chart_shown.emit(view.chart.patient.id)

    def _show_clinical(self, clinical: bool) -> None:
        """Every clinical part of the chart, or (front desk) a plain sentence instead."""
        self.clinical_hidden.setVisible(not clinical)
        self.allergy_card.setVisible(clinical)
        self.allergy_banner.setVisible(clinical)
        self.print_summary.widget().setVisible(clinical)
        tab_pages = {self.tabs.widget(i) for i in range(self.tabs.count())}
        for section in self.sections[1:]:  # after the summary printer: cards and tabs
            # Its banner shows itself while a grant counts; a tab's page is shown by its tab
            # alone (shown here, a page not current would lie visible under the current
            # one, and take Tab-key focus unseen).
            if section is not self.break_glass and section.widget() not in tab_pages:
                section.widget().setVisible(clinical)
        for index in range(1, self.tabs.count()):
            self.tabs.setTabVisible(index, clinical)

    def _chart_failed(self, exc: Exception) -> None:
        self.message.setText(f"The chart could not be opened. {describe_error(exc)}")
        self.message.show()

    def _show_patient(self, patient: Patient) -> None:
        new_chart = self._patient is None or self._patient.id != patient.id
        self._patient = patient
        if new_chart:  # which patients' records it gathers, to notice a merge or unmerge
            self._group = None
            self._check_group()
        self.name.setText(patient.display_name)
        self._update_conflict_banner()
        self.birth.setText(describe_birth(patient.birth_date))
        self.sex.setText((patient.sex or "Not recorded").capitalize())
        self.mrn.setText(patient.mrn or "Not recorded")
        self.phone.setText(patient.phone or "Not recorded")
        self.title_changed.emit(patient.display_name)
        self._update_buttons()

    def _fill_allergies(self) -> None:
        table = self.allergy_table
        table.setRowCount(len(self._allergies))
        for row, allergy in enumerate(self._allergies):
            who = self._recorders.get(allergy.recorded_by, allergy.recorded_by)
            recorded = f"{allergy.recorded_at[:10]} by {who}"
            cells = (
                allergy.substance,
                allergy.reaction or "",
                choice_label(allergy.severity) if allergy.severity else "",
                recorded,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, allergy.id)
                if allergy.severity == "severe" and column in (0, 2):
                    # A severe allergy must stand out without shouting in red everywhere.
                    item.setForeground(SEVERE_COLOUR)
                    font = QFont(item.font())
                    font.setBold(True)
                    item.setFont(font)
                table.setItem(row, column, item)
        fit_rows(table)
        has_any = bool(self._allergies)
        table.setVisible(has_any)
        self.no_allergies.setVisible(not has_any)
        self._update_buttons()

    def _update_buttons(self) -> None:
        has_patient = self._patient is not None
        selected = has_patient and self.selected_allergy() is not None
        self.history_button.setEnabled(has_patient)
        # "No known allergies" answers a question not yet answered: never over allergies.
        self.no_known_button.setVisible(
            has_patient
            and not self._allergies
            and self.allergy_banner.state is not AllergyState.NONE_KNOWN
        )
        # Each gated button's state is recomputed for the person signed in now.
        for button, action, enabled in (
            (self.edit_button, "patient.update", has_patient),
            (self.add_allergy_button, "allergy.add", has_patient),
            (self.edit_allergy_button, "allergy.edit", selected),
            (self.remove_allergy_button, "allergy.remove", selected and self._remove_job is None),
            (self.no_known_button, "allergy.none_known", has_patient),
        ):
            restrict(button, self.permitted, action, enabled=enabled)

    def selected_allergy(self) -> Allergy | None:
        """The allergy whose row is selected."""
        rows = self.allergy_table.selectionModel().selectedRows()
        if not rows:
            return None
        row = rows[0].row()
        return self._allergies[row] if row < len(self._allergies) else None

    # ----- actions ----------------------------------------------------------------------

    def edit_patient(self) -> None:
        """Open the edit dialog for the patient shown."""
        if self._patient is None:
            return
        # Saved changes come back through Operations.changed, like any other change.
        dialog = PatientDialog(self._operations, self._records, self._patient, self)
        dialog.finished.connect(self._forget_patient_dialog)
        self.patient_dialog = dialog
        dialog.open()

    def show_history(self) -> None:
        """Who has seen or changed this chart (a dialog reading the audit log)."""
        if self._patient is None or self.history_dialog is not None:
            return
        dialog = ChartHistoryDialog(self._operations, self._records, self._patient, self)
        dialog.finished.connect(self._forget_history_dialog)
        self.history_dialog = dialog
        dialog.open()

    def show_access(self) -> None:
        """Chart access…: the restricted flag and the care team."""
        if self._patient is None or self.access_dialog is not None:
            return
        dialog = ChartAccessDialog(self._operations, self._records, self._patient, self)
        dialog.finished.connect(self._forget_access_dialog)
        self.access_dialog = dialog
        dialog.open()

    def _forget_access_dialog(self) -> None:
        if self.access_dialog is not None:
            self.access_dialog.deleteLater()
            self.access_dialog = None

    def _forget_history_dialog(self) -> None:
        if self.history_dialog is not None:
            self.history_dialog.deleteLater()
            self.history_dialog = None

    def _forget_patient_dialog(self) -> None:
        if self.patient_dialog is not None:
            self.patient_dialog.deleteLater()
            self.patient_dialog = None

    def add_allergy(self) -> None:
        """Open the add-allergy dialog."""
        if self._patient is None:
            return
        dialog = AllergyDialog(self._operations, self._records, self._patient, self)
        dialog.finished.connect(self._forget_allergy_dialog)
        self.allergy_dialog = dialog
        dialog.open()

    def edit_allergy(self) -> None:
        """Open the selected allergy's reaction and severity for editing."""
        allergy = self.selected_allergy()
        if self._patient is None or allergy is None:
            return
        dialog = AllergyDialog(self._operations, self._records, self._patient, self, allergy)
        dialog.finished.connect(self._forget_allergy_dialog)
        self.allergy_dialog = dialog
        dialog.open()

    def record_no_known_allergies(self) -> None:
        """Record that the patient was asked and has no known allergies."""
        if self._patient is None:
            return
        records, patient_id = self._records, self._patient.id
        self._operations.submit(
            lambda: AllergyRecords(records()).record_no_known_allergies(patient_id),
            None,
            self._nka_failed,
            label="record no known allergies",
        )

    def _nka_failed(self, exc: Exception) -> None:
        self.message.setText(f"No known allergies was not recorded. {describe_error(exc)}")
        self.message.show()

    def _forget_allergy_dialog(self) -> None:
        if self.allergy_dialog is not None:
            self.allergy_dialog.deleteLater()
            self.allergy_dialog = None

    def confirm_remove_allergy(self) -> None:
        """Ask before removing the selected allergy (only for entries made in error)."""
        allergy = self.selected_allergy()
        if allergy is None or self._patient is None:
            return
        self.confirm_box = ask_first(
            self,
            "confirmRemoveAllergy",
            "Remove allergy",
            f"Remove “{allergy.substance}” from {self._patient.display_name}’s chart?",
            "Only remove an allergy that was entered in error. The removal is recorded in "
            "the audit log.",
            "Remove allergy",
            lambda chosen: self._confirmed(chosen, allergy),
        )

    def _confirmed(self, chosen: bool, allergy: Allergy) -> None:
        self.confirm_box = None
        if not chosen:
            return
        records = self._records
        self._remove_job = self._operations.submit(
            lambda: records().remove_allergy(allergy.id),
            self._allergy_removed,
            self._remove_failed,
            label="remove allergy",
        )
        self._update_buttons()

    def _allergy_removed(self, _none: None) -> None:
        # The list itself updates from the change broadcast.
        self._remove_job = None
        self._update_buttons()

    def _remove_failed(self, exc: Exception) -> None:
        self._remove_job = None
        self._update_buttons()
        self.message.setText(f"The allergy was not removed. {describe_error(exc)}")
        self.message.show()

    # ----- keyboard ---------------------------------------------------------------------

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape goes back to the patient list, unless it would throw away typed text.

        Dialogs are windows of their own, so an Escape meant for one never arrives here.
        """
        if event.key() == Qt.Key.Key_Escape and not self._unsaved_text():
            event.accept()
            self.back_requested.emit()
            return
        super().keyPressEvent(event)

    def _unsaved_text(self) -> bool:
        focus = self.focusWidget()
        if isinstance(focus, QLineEdit):
            return not focus.isReadOnly() and focus.isModified() and bool(focus.text())
        if isinstance(focus, QTextEdit | QPlainTextEdit):
            return not focus.isReadOnly() and focus.document().isModified()
        return False

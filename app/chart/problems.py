"""The problem list card on the chart's Overview, and the ICD-10-CM search dialog.

A problem is chosen from the ICD-10-CM code list (``core.records.icd10``): type words or a
code, move down into the list with the arrow key, Enter picks; text is recorded without a
code only when the person ticks "Record without a code". Resolve asks for the date.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QKeyEvent, QPalette
from PySide6.QtWidgets import (
    QCheckBox,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableWidgetItem,
    QWidget,
)

from app.chart.cards import ListCard, list_table
from app.chart.list_dialogs import DateDialog, SavingDialog
from app.chart.permits import ANY, restrict
from app.chart.visit_view import OpenVisitLink
from app.messages import describe_error
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
from core.records import icd10
from core.records.chart_lists import DuplicateWarning
from core.records.clinic import ClinicRecords
from core.records.list_history import when_by
from core.records.problems import Problem, Problems

CATEGORY_TIP = "A category: a more specific code below it is usually wanted"
# Beside a row's code (Qt.ItemDataRole.UserRole): False for a category (not billable).
BILLABLE = Qt.ItemDataRole.UserRole + 1


class IcdSearchDialog(SavingDialog):
    """Add a problem: search ICD-10-CM by words or code, pick one, give the onset."""

    SEARCH = "icd search"

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient_id: str,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(operations, parent)
        self._records = records
        self._patient_id = patient_id
        self.setObjectName("icdSearchDialog")
        self.setWindowTitle("Add problem")
        self.setMinimumSize(620, 520)
        heading = QLabel("Add a problem: type words or an ICD-10-CM code, then pick one")
        heading.setObjectName("dialogHeading")
        heading.setWordWrap(True)
        self.search = QLineEdit()
        self.search.setPlaceholderText("e.g. type 2 diabetes, asthma, I10")
        self.search.installEventFilter(self)
        self.first_field = self.search
        self.results = list_table(("Code", "Description"), "icdResults")
        self.results.setWordWrap(True)
        self.results.setTabKeyNavigation(False)  # Tab leaves the list, on to the next field
        self.results.setMinimumHeight(300)
        header = self.results.horizontalHeader()
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.results.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.status = QLabel("Loading the code list…")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)  # the count and the note on grey codes, whole
        self.uncoded = QCheckBox("Record without a code (uses the text typed above)")
        self.onset = QLineEdit()
        self.onset.setPlaceholderText("Optional: 2019, 2019-05 or 2019-05-14")
        self.results.installEventFilter(self)
        self.results.itemDoubleClicked.connect(lambda _item: self.onset.setFocus())
        self.errors = {name: error_label() for name in ("code", "description", "onset")}
        self.clears_on_edit(
            [
                (self.search, self.errors["description"]),
                (self.uncoded, self.errors["code"]),
                (self.onset, self.errors["onset"]),
            ]
        )
        # Picking a code answers "Choose a code", as editing a field answers its message.
        self.results.itemSelectionChanged.connect(self.errors["code"].hide)
        self.results.itemSelectionChanged.connect(self.clear_form_error)
        form = form_layout()
        form.addRow("Search", self.search)
        form.addRow("", self.errors["description"])
        form.addRow("", self.status)
        form.addRow("Code", self.results)
        form.addRow("", self.errors["code"])
        form.addRow("", self.uncoded)
        form.addRow("Onset", self.onset)
        form.addRow("", self.errors["onset"])
        # A problem added while the patient has an open visit is one of its diagnoses.
        self.visit_link = OpenVisitLink(operations, records, patient_id)
        self.buttons, self.save_button = action_buttons(self, self.save)
        beside = message_beside(self.general_error, self.buttons)  # not above: they stay
        dialog_layout(self, heading, form, self.visit_link.label, beside)
        self.setTabOrder(self.search, self.results)
        self.setTabOrder(self.results, self.uncoded)
        self.setTabOrder(self.uncoded, self.onset)
        # Search as the person types, once they pause (the list has 98,000 codes).
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(200)
        self._timer.timeout.connect(self._search)
        self.search.textEdited.connect(lambda _text: self._timer.start())
        self._ready = False
        self.category_question: QMessageBox | None = None
        self._category_accepted: str | None = None  # "Save the category" said for it
        # "This problem is already on the list" asked, and the save it answers.
        self.duplicate_question: QMessageBox | None = None
        self._saving: Callable[[bool], object] | None = None
        operations.read(self.SEARCH, icd10.load, self._loaded, self._search_failed)

    def eventFilter(self, watched: Any, event: Any) -> bool:
        """Keyboard: Down or Enter in the search field goes into the list of codes, on the
        code picked there before, else the first row (the best match: often a category,
        which Save asks about; skipping to the first complete code picked "Eosinophilic
        asthma" for "asthma", a specific diagnosis nobody chose); Enter on a code picks it
        and goes on to the onset (Enter there saves)."""
        if event.type() != QEvent.Type.KeyPress or not isinstance(event, QKeyEvent):
            return super().eventFilter(watched, event)
        key = event.key()
        enter = key in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
        if watched is self.search and (key == Qt.Key.Key_Down or enter) and self.results.rowCount():
            picked = self.results.selectionModel().selectedRows()
            row = picked[0].row() if picked else 0
            self.results.setFocus()  # (which may make row 0 current without selecting it)
            self.results.selectRow(row)
            return True
        if watched is self.results and enter and self.chosen_code() is not None:
            self.onset.setFocus()
            return True
        return super().eventFilter(watched, event)

    def _loaded(self, count: int) -> None:
        self._ready = True
        self.status.setText(f"{count:,} ICD-10-CM codes. Type to search.")
        if self.search.text().strip():
            self._search()

    def _search(self) -> None:
        if not self._ready:
            return
        typed = self.search.text()
        self._operations.read(
            self.SEARCH, lambda: icd10.search(typed), self._found, self._search_failed
        )

    def _found(self, codes: list[icd10.Icd10Code]) -> None:
        self.results.setRowCount(len(codes))
        # A category (J45) is a heading over complete codes (J45.30): it stays choosable, as
        # a problem may be known only that far, but reads as a heading so nobody takes it
        # for a complete diagnosis (claims and most reports need one).
        heading = self.palette().color(QPalette.ColorRole.PlaceholderText)
        for row, code in enumerate(codes):
            for column, text in enumerate((code.code, code.description)):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, code.code)
                item.setData(BILLABLE, code.billable)
                if not code.billable:
                    item.setToolTip(CATEGORY_TIP)
                    item.setForeground(heading)
                self.results.setItem(row, column, item)
        # New codes: none picked yet (a row picked in the last list named another code).
        self.results.clearSelection()
        self.results.setCurrentCell(-1, -1)
        typed = self.search.text().strip()
        shown = (
            f"{len(codes)} code{'' if len(codes) == 1 else 's'} shown"
            f"{' (the first 50)' if len(codes) == 50 else ''}."
        )
        if any(not code.billable for code in codes):
            shown += " Grey codes are categories: choose a more specific code when you can."
        self.status.setText(
            "No codes match: try other words, or record it without a code."
            if typed and not codes
            else shown
        )

    def _search_failed(self, exc: Exception) -> None:
        self.status.setText(f"The code list could not be searched. {describe_error(exc)}")

    def chosen_is_category(self) -> bool:
        """True when the code picked is a category (a heading, not billable)."""
        rows = self.results.selectionModel().selectedRows()
        item = self.results.item(rows[0].row(), 0) if rows else None
        return item is not None and not item.data(BILLABLE)

    def chosen_code(self) -> str | None:
        """The code picked in the list, if any."""
        rows = self.results.selectionModel().selectedRows()
        item = self.results.item(rows[0].row(), 0) if rows else None
        return None if item is None else str(item.data(Qt.ItemDataRole.UserRole))

    def form_state(self) -> object:
        """The fields, and the code picked (a choice made, as a value typed)."""
        return (super().form_state(), self.chosen_code())

    def draft(self) -> dict[str, str | None] | None:
        """Unsaved input kept across a sign-out (app/session/drafts.py), or None."""
        values = {"search": self.search.text(), "onset": self.onset.text()}
        if not any(values.values()):
            return None
        return {**values, "uncoded": "yes" if self.uncoded.isChecked() else None,
                "patient_id": self._patient_id}  # fmt: skip

    def restore(self, draft: dict[str, str | None]) -> None:
        """Fill the form with a kept draft (the code is searched for again)."""
        self.search.setText(draft.get("search") or "")
        self.onset.setText(draft.get("onset") or "")
        self.uncoded.setChecked(draft.get("uncoded") == "yes")
        self._timer.start()

    def done(self, result: int) -> None:
        """Close; the open-visit read and a code search still in flight are not delivered
        (to labels gone with the dialog)."""
        self.visit_link.cancel()
        self._operations.cancel(self.SEARCH)
        for box in (self.category_question, self.duplicate_question):
            if box is not None:
                box.reject()
        self.category_question = self.duplicate_question = None
        super().done(result)

    def save(self) -> None:
        """Record the picked code (or, ticked, the text without a code), in the patient's
        open visit if there is one."""
        records, patient_id, onset = self._records, self._patient_id, self.onset.text()
        visit = self.visit_link.encounter()
        if self.uncoded.isChecked():
            text = self.search.text()
            self._add(
                lambda anyway: Problems(records()).add(
                    patient_id, uncoded=text, onset=onset, encounter_id=visit(),
                    allow_duplicate=anyway,
                )
            )  # fmt: skip
            return
        code = self.chosen_code()
        if code is None:
            self.errors["code"].setText(
                "Choose a code from the list, or tick “Record without a code”."
            )
            self.errors["code"].show()
            return
        if self.chosen_is_category() and code != self._category_accepted:
            self._ask_about_category(code)
            return
        self._add(
            lambda anyway: Problems(records()).add(
                patient_id, code=code, onset=onset, encounter_id=visit(), allow_duplicate=anyway
            )
        )

    def _add(self, adding: Callable[[bool], object]) -> None:
        """Save through ``adding(allow_duplicate)``: first not allowing a duplicate; one
        the person confirms (``failed``) is saved again allowing it."""
        self._saving = adding
        self.run(lambda: adding(False), "add problem")

    def failed(self, exc: Exception) -> None:
        """A problem already active on the list asks the person (Cancel, the default, adds
        nothing); other errors show on the form."""
        if not isinstance(exc, DuplicateWarning):
            super().failed(exc)
            return
        self._job = None
        self.save_button.setEnabled(True)
        adding = self._saving

        def answered(anyway: bool) -> None:
            self.duplicate_question = None
            if anyway and adding is not None:
                self.run(lambda: adding(True), "add problem")

        self.duplicate_question = ask_first(
            self,
            "duplicateProblem",
            "Add problem",
            f"{exc.what} is already an active problem of this patient.",
            "\n".join(
                f"• {p.label}{f' (onset {p.onset})' if p.onset else ''}: "
                + "; ".join(p.history_lines(exc.names))
                for p in exc.existing
            )
            + "\n\nAdd it again only if this is a separate problem (another episode, "
            "another site).",
            "Add anyway",
            answered,
            icon=QMessageBox.Icon.Question,
        )

    def _ask_about_category(self, code: str) -> None:
        """Ask once before a category is stored: a category saved by a Return or two
        (the tester's J02) read as a complete diagnosis. "Choose a specific code" is the
        default (Return, Space and Escape), and goes back to the list; "Save the category"
        saves it, and a later Save of the same code asks no more."""
        rows = self.results.selectionModel().selectedRows()
        described = self.results.item(rows[0].row(), 1) if rows else None
        name = f"{code} {described.text()}" if described is not None else code

        def answered(save: bool) -> None:
            self.category_question = None
            if save:
                self._category_accepted = code
                self.save()
            else:
                self.results.setFocus()

        self.category_question = ask_first(
            self,
            "categoryQuestion",
            "Add problem",
            f"{name} is a category, not a complete code. Save it anyway?",
            "Claims and most reports need a more specific code from under it (the codes "
            "not in grey). Save the category only when the problem is known no further.",
            "Save the category",
            answered,
            keep="Choose a specific code",
            icon=QMessageBox.Icon.Question,
        )


class ProblemsCard(ListCard[Problem]):
    permitted: frozenset[str] = ANY
    """The problem list on the Overview: Add (ICD-10-CM search), Resolve, and resolved
    problems on request."""

    COLUMNS = ("Code", "Problem", "Onset", "Status", "Recorded")
    READ = "problems"
    NOUN = "problems"
    DRAFT_KIND = "icdSearchDialog"  # its typed search and onset survive a sign-out

    def __init__(self, operations: Operations, records: RecordsProvider) -> None:
        self.add_button = QPushButton("Add problem…")
        self.resolve_button = QPushButton("Resolve…")
        self.show_resolved = QCheckBox("Show resolved")
        super().__init__(
            operations, records, "Problems", self.show_resolved,
            (self.add_button, self.resolve_button),
        )  # fmt: skip
        self.add_button.clicked.connect(self.add_problem)
        self.resolve_button.clicked.connect(self.resolve_selected)
        self.clear()

    @property
    def problems(self) -> list[Problem]:
        """The problems shown, in order."""
        return self.items

    def fetch(self, records: ClinicRecords, patient_id: str, history: bool) -> list[Problem]:
        """Active problems, and resolved ones when asked."""
        return Problems(records).list(patient_id, include_resolved=history)

    def cells(self, item: Problem) -> list[str]:
        """Code, description, onset, status, when recorded and by whom."""
        status = "Active" if item.status != "resolved" else f"Resolved {item.resolved or ''}"
        recorded = when_by(item.recorded_at, item.recorded_by, self.names)
        return [item.code or "(uncoded)", item.description, item.onset or "", status, recorded]

    def tooltip(self, item: Problem) -> str:
        """Who recorded it when, and who resolved it when."""
        return "\n".join(item.history_lines(self.names))

    def is_history(self, item: Problem) -> bool:
        """Resolved."""
        return item.status == "resolved"

    def update_buttons(self) -> None:
        """Add needs a chart; Resolve an active problem selected."""
        chosen = self.selected()
        active = chosen is not None and chosen.status != "resolved"
        shown = self.patient_id is not None
        restrict(self.add_button, self.permitted, "problem.add", enabled=shown)
        restrict(self.resolve_button, self.permitted, "problem.resolve", enabled=active)

    def set_permitted(self, permitted: frozenset[str]) -> None:
        """What the signed-in person may do on this chart (buttons follow)."""
        self.permitted = permitted
        self.update_buttons()

    def add_problem(self) -> None:
        """Open the ICD-10-CM search dialog."""
        if self.patient_id is not None:
            self.open_dialog(
                IcdSearchDialog(self._operations, self._records, self.patient_id, self.frame)
            )

    def reopen(self, draft: dict[str, str | None]) -> None:
        """Open the add-problem form again with a draft kept across a sign-out."""
        self.add_problem()
        if isinstance(self.dialog, IcdSearchDialog):
            self.dialog.restore(draft)

    def resolve_selected(self) -> None:
        """Ask for the date the selected problem resolved, and record it (in the open
        visit on the chart, if any, as Add problem)."""
        problem, patient_id = self.selected(), self.patient_id
        if problem is None or problem.status == "resolved" or patient_id is None:
            return
        records = self._records
        self.open_dialog(
            DateDialog(
                self._operations,
                "Resolve problem",
                f"Mark “{problem.label}” resolved on:",
                ("resolved", "Resolved on"),
                lambda date, visit: Problems(records()).resolve(problem.id, date, visit),
                "Resolve",
                self.frame,
                edits="problem",
                # Resolved while the patient has an open visit: one of its diagnoses.
                # The problem's own patient's visit (on a merged chart, its registration's).
                visit_link=OpenVisitLink(self._operations, records, problem.patient_id),
            )
        )

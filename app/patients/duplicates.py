"""Possible duplicates… (clinicians and administrators, from the patient list): pairs of
charts that may be one person's, found by the rules of registration after sync brought in
another workstation's registrations; merging keeps one chart and shows the other's
records on it (core/records/merges.py). Core refuses anyone else too; the button is shown
to those roles only to spare a pointless refusal."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidgetItem,
    QWidget,
)

from app.chart.cards import list_table
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import dialog_layout
from app.worker import Job
from core.records.changeset import Changes
from core.records.merges import DuplicatePair, Merge, Merges
from core.records.models import Patient, PatientSummary

# Roles that review and merge duplicates (core/records/permissions.py: merge_patients).
MERGING_ROLES = frozenset({"clinician", "admin"})


# Read on the worker: the likely pairs, the merges made, the survivors' names by id.
Found = tuple[list[DuplicatePair], list[tuple[PatientSummary, Merge]], dict[str, str]]


def _name(p: PatientSummary | Patient) -> str:
    mrn = f", MRN {p.mrn}" if p.mrn else ""
    return f"{p.family.upper()}, {p.given}{mrn}"


class DuplicatesDialog(QDialog):
    """The likely duplicates, and Merge (which chart stays, and why)."""

    READ = "patient duplicates"
    COLUMNS = ("Born", "One chart", "The other chart")
    MERGED_COLUMNS = ("Merged chart", "Into", "By", "When", "Why")

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._pairs: list[DuplicatePair] = []
        self._merges: list[tuple[PatientSummary, Merge]] = []
        self._job: Job[Merge] | None = None
        self._outcome = ""  # what the last merge or undo did, kept over the list's refresh
        self._merging = ("", "")  # the names of the charts merged (gone, kept)
        self._undoing = ""  # the name of the chart whose merge is undone
        self.setObjectName("duplicatesDialog")
        self.setWindowTitle("Possible duplicates")
        self.resize(900, 460)
        heading = QLabel("Charts that may be one person's")
        heading.setObjectName("dialogHeading")
        explain = QLabel(
            "Born the same day under the same or a similar name (often registered on two "
            "workstations while they were offline). Merging keeps one chart: the other's "
            "allergies, problems, medications, vitals, notes, visits, appointments and "
            "attachments show on it. A merge can be undone below, under Merged charts."
        )
        explain.setWordWrap(True)
        self.table = list_table(self.COLUMNS, "duplicatesTable")
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.keep_first = QRadioButton()
        self.keep_first.setObjectName("keepFirst")
        self.keep_second = QRadioButton()
        self.keep_second.setObjectName("keepSecond")
        self.keep_first.setChecked(True)
        self.reason = QLineEdit()
        self.reason.setObjectName("mergeReason")
        self.reason.setPlaceholderText("Why they are one person (required)")
        self.reason.textChanged.connect(self._update_buttons)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setObjectName("primary")
        self.merge_button.clicked.connect(self.merge)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        # Merges made (here or on any workstation), newest first, and undoing one.
        merged_heading = QLabel("Merged charts")
        merged_heading.setObjectName("dialogHeading")
        self.merged_table = list_table(self.MERGED_COLUMNS, "mergedTable")
        self.merged_table.itemSelectionChanged.connect(self._update_buttons)
        self.undo_button = QPushButton("Undo merge")
        self.undo_button.setObjectName("undoMerge")
        self.undo_button.setToolTip("The merged chart is its own again, with its records")
        self.undo_button.clicked.connect(self.undo)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(
            self, heading, explain, self.table, self.keep_first, self.keep_second,
            self.reason, self.merge_button, self.status, merged_heading, self.merged_table,
            self.undo_button, buttons,
        )  # fmt: skip
        operations.changed.connect(self._records_changed)
        self._selection_changed()
        self.refresh()

    def refresh(self) -> None:
        """Read the pairs again (on the worker)."""
        records = self._records

        def read() -> Found:
            merges = Merges(records())
            done = merges.merged()
            into = {m.survivor for _, m in done}
            names = {pid: _name(merges.records.get_patient(pid)) for pid in into}
            return merges.candidates(), done, names

        self._operations.read(self.READ, read, self._arrived, self._failed)

    def _records_changed(self, changes: Changes) -> None:
        if changes.patients:
            self.refresh()

    def _arrived(self, found: Found) -> None:
        pairs, self._merges, names = found
        self._pairs = pairs
        self.merged_table.setRowCount(len(self._merges))
        for r, (duplicate, merge) in enumerate(self._merges):
            when = merge.at[:16].replace("T", " ")  # UTC, to the minute
            into = names.get(merge.survivor, merge.survivor)
            row = (_name(duplicate), into, merge.by, f"{when} UTC", merge.reason)
            for column, text in enumerate(row):
                self.merged_table.setItem(r, column, QTableWidgetItem(text))
        self.table.setRowCount(len(pairs))
        for r, pair in enumerate(pairs):
            cells = (pair.first.birth_date, _name(pair.first), _name(pair.second))
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, pair.first.id)
                self.table.setItem(r, column, item)
        count = len(pairs)
        counted = f"{count} possible duplicate{'s' if count != 1 else ''}." if count else (
            "No likely duplicates.")  # fmt: skip
        merged = "" if self._merges else " No merged charts."
        self.status.setText(f"{self._outcome} {counted}{merged}".strip())
        if count and not self.table.selectionModel().selectedRows():
            self.table.selectRow(0)
        self._selection_changed()

    def _failed(self, exc: Exception) -> None:
        self.status.setText(describe_error(exc))

    def selected(self) -> DuplicatePair | None:
        """The pair whose row is selected."""
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._pairs):
            return None
        return self._pairs[rows[0].row()]

    def _selection_changed(self) -> None:
        pair = self.selected()
        for button, p in (
            (self.keep_first, pair and pair.first),
            (self.keep_second, pair and pair.second),
        ):
            button.setText(f"Keep {_name(p)} (id {p.id})" if p else "Keep")
            button.setEnabled(p is not None)
        self._update_buttons()

    def _update_buttons(self) -> None:
        ready = self.selected() is not None and bool(self.reason.text().strip())
        self.merge_button.setEnabled(ready and self._job is None)
        undoable = self.selected_merge() is not None
        self.undo_button.setEnabled(undoable and self._job is None)

    def selected_merge(self) -> Merge | None:
        """The merge whose row is selected in Merged charts."""
        rows = self.merged_table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self._merges):
            return None
        return self._merges[rows[0].row()][1]

    def undo(self) -> None:
        """Undo the selected merge (the chart and its records are its own again)."""
        merge = self.selected_merge()
        if merge is None or self._job is not None:
            return
        records, duplicate = self._records, merge.duplicate
        self._undoing = next(_name(p) for p, m in self._merges if m is merge)
        self._job = self._operations.submit(
            lambda: Merges(records()).unmerge(duplicate),
            self._undone,
            self._merge_failed,
            label="undo a merge of duplicate patients",
        )
        self._update_buttons()

    def _undone(self, done: Merge) -> None:
        self._job = None
        # Named as the list names charts (an id means nothing to the person who merged).
        self._outcome = f"Merge undone: {self._undoing} is a chart of its own again."
        self.status.setText(self._outcome)
        self._update_buttons()

    def merge(self) -> None:
        """Merge the selected pair: the chart not kept goes into the one kept."""
        pair = self.selected()
        if pair is None or self._job is not None:
            return
        keep, go = (pair.first, pair.second)
        if self.keep_second.isChecked():
            keep, go = go, keep
        records, reason = self._records, self.reason.text()
        self._merging = (_name(go), _name(keep))
        self._job = self._operations.submit(
            lambda: Merges(records()).merge(go.id, keep.id, reason),
            self._merged,
            self._merge_failed,
            label="merge duplicate patients",
        )
        self._update_buttons()

    def _merged(self, done: Merge) -> None:
        self._job = None
        self.reason.clear()
        gone, kept = self._merging
        self._outcome = f"Merged: the records of {gone} now show on {kept}."
        self.status.setText(self._outcome)
        self._update_buttons()  # the list refreshes from the change broadcast

    def _merge_failed(self, exc: Exception) -> None:
        self._job = None
        self.status.setText(describe_error(exc))
        self._update_buttons()

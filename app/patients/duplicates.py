"""Possible duplicates… (clinicians and administrators, from the patient list): pairs of
charts that may be one person's, found by the rules of registration after sync brought in
another workstation's registrations; merging keeps one chart and shows the other's
records on it (core/records/merges.py); "Not a duplicate" takes a pair off the list on every
workstation until undone (core/records/dismissals.py). Core refuses anyone else too; the
button is shown to those holding merge_patients (Session.may_merge) only, to spare a
pointless refusal."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QWidget,
)

from app.chart.cards import columns_in_sight
from app.chart.visit_view import local_time
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.review_list import OneWrite, ReviewTable, counted
from app.widgets import dialog_layout, keep_min_height_for_width
from core.records.changeset import Changes
from core.records.chart_access import is_restricted, merge_warning
from core.records.merges import DuplicatePair, Merge, Merges
from core.records.models import Patient, PatientSummary

# Read on the worker: the likely pairs, the merges made, both charts of each merge by id,
# the pairs' charts by id (their phone and registration time tell two namesakes apart),
# what merging each pair does to who may read it (by the pair's ids; none: no restriction)
# and the pairs' charts that are restricted.
Found = tuple[
    list[DuplicatePair],
    list[tuple[PatientSummary, Merge]],
    dict[str, Patient],
    dict[str, Patient],
    dict[tuple[str, str], str],
    set[str],
]


def _name(p: PatientSummary | Patient) -> str:
    mrn = f", MRN {p.mrn}" if p.mrn else ""
    return f"{p.family.upper()}, {p.given}{mrn}"


def _details(p: Patient) -> str:
    """What tells two charts of one name apart: sex, phone, when registered (local)."""
    parts = [p.sex or "sex not recorded", p.phone or "no phone"]
    parts.append(f"registered {local_time(p.created_at)}")
    return " · ".join(parts)


def _chart(p: Patient) -> str:
    return f"{_name(p)} · {_details(p)}"


def _show_rows(table: QTableWidget, rows: int) -> None:
    """At least ``rows`` rows tall (the dialog's column squashed each list to one), with
    room for the scroll bar under them that a wide list (a merge's details) shows."""
    row = table.verticalHeader().defaultSectionSize()
    header = table.horizontalHeader().sizeHint().height()
    bar = table.horizontalScrollBar().sizeHint().height()
    table.setMinimumHeight(header + rows * row + bar + 2 * table.frameWidth())


def _row(*parts: QWidget, stretch_after: int | None = None) -> QWidget:
    """``parts`` side by side; the spare width goes after part ``stretch_after``, or (None)
    to the parts that grow (a line edit)."""
    row = QWidget()
    bar = QHBoxLayout(row)
    bar.setContentsMargins(0, 0, 0, 0)
    for i, part in enumerate(parts):
        bar.addWidget(part)
        if i == stretch_after:
            bar.addStretch(1)
    return row


class DuplicatesDialog(QDialog):
    """The likely duplicates, Merge (which chart stays, and why) and Not a duplicate."""

    READ = "patient duplicates"
    COLUMNS = ("Born", "One chart", "The other chart")
    MERGED_COLUMNS = ("Merged chart", "Into", "By", "When", "Why")

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._pairs: ReviewTable[DuplicatePair] = ReviewTable(self.COLUMNS, "duplicatesTable")
        self._merges: ReviewTable[tuple[PatientSummary, Merge]] = ReviewTable(
            self.MERGED_COLUMNS, "mergedTable"
        )
        # The charts' details and the reason share the width (wrapping onto more lines),
        # the date of birth, who and when as wide as they are: no column off to the right.
        columns_in_sight(self._pairs.table, short=(0,))
        columns_in_sight(self._merges.table, short=(2, 3))
        self._outcome = ""  # what the last merge, undo or dismissal did, kept over the refresh
        self.setObjectName("duplicatesDialog")
        self.setWindowTitle("Possible duplicates")
        # Two charts' details side by side, and a merge's reason; smaller on a small screen
        # (OneDialog.open fits it to the screen, down to 1024x740).
        self.resize(1100, 720)
        heading = QLabel("Charts that may be one person's")
        heading.setObjectName("dialogHeading")
        explain = QLabel(
            "Born the same day under the same or a similar name (often registered on two "
            "workstations while they were offline), or imported as a likely duplicate. "
            "Merging keeps one chart: the other's allergies, problems, medications, vitals, "
            "notes, visits, appointments and attachments show on it. A merge can be undone "
            "below, under Merged charts. Not a duplicate takes the pair off this list on "
            "every workstation."
        )
        explain.setWordWrap(True)
        self.table = self._pairs.table
        _show_rows(self.table, 3)  # a few pairs, not one squashed row
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.keep_first = QRadioButton()
        self.keep_first.setObjectName("keepFirst")
        self.keep_second = QRadioButton()
        self.keep_second.setObjectName("keepSecond")
        self.keep_first.setChecked(True)
        # Shown instead of the Keep choices while no pair is selected.
        self.select_hint = QLabel("Select a pair above to merge it.")
        self.select_hint.setObjectName("hint")
        self._charts: dict[str, Patient] = {}
        # A restricted chart in the selected pair is said before anyone merges it: its Keep
        # choice says "restricted chart", and the outcome line what the merge does (a line
        # of its own did not fit a 1024x740 screen).
        self._warnings: dict[tuple[str, str], str] = {}
        self._restricted: set[str] = set()
        self._shown = ""  # the outcome line's own text, while no warning stands in it
        self.reason = QLineEdit()
        self.reason.setObjectName("mergeReason")
        self.reason.setPlaceholderText("Why they are one person (required)")
        self.reason.textChanged.connect(self._update_buttons)
        self.merge_button = QPushButton("Merge")
        self.merge_button.setObjectName("primary")
        self.merge_button.clicked.connect(self.merge)
        self.dismiss_button = QPushButton("Not a duplicate")
        self.dismiss_button.setObjectName("notDuplicate")
        self.dismiss_button.setToolTip("Two people: the pair leaves this list everywhere")
        self.dismiss_button.clicked.connect(self.dismiss)
        # The reason and its buttons share a line, as Undo merge shares the Merged charts
        # heading's: a line each squeezed the lists over the buttons on a 740-pixel screen.
        merge_row = _row(self.reason, self.merge_button, self.dismiss_button)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self._write = OneWrite(operations, self.status, self._update_buttons)
        # Merges made (here or on any workstation), newest first, and undoing one.
        merged_heading = QLabel("Merged charts")
        merged_heading.setObjectName("dialogHeading")
        self.merged_table = self._merges.table
        _show_rows(self.merged_table, 3)
        self.merged_table.itemSelectionChanged.connect(self._update_buttons)
        self.undo_button = QPushButton("Undo merge")
        self.undo_button.setObjectName("undoMerge")
        self.undo_button.setToolTip("The merged chart is its own again, with its records")
        self.undo_button.clicked.connect(self.undo)
        merged_row = _row(merged_heading, self.undo_button, stretch_after=0)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = dialog_layout(
            self, heading, explain, self.table, self.select_hint, self.keep_first,
            self.keep_second, merge_row, self.status, merged_row, self.merged_table, buttons,
        )  # fmt: skip
        # A little closer than other dialogs: with the app's font and a two-line outcome,
        # its smallest height was 8 pixels more than a 1024x740 screen has room for.
        layout.setSpacing(10)
        # Spare height goes to the lists (they scroll), never between the buttons.
        layout.setStretchFactor(self.table, 1)
        layout.setStretchFactor(self.merged_table, 1)
        keep_min_height_for_width(self)
        operations.changed.connect(self._records_changed)
        self._selection_changed()
        self.refresh()

    def refresh(self) -> None:
        """Read the pairs again (on the worker)."""
        records = self._records

        def read() -> Found:
            merges = Merges(records())
            done = merges.merged()
            # Both charts of each merge, whole: two charts of one name are told apart by
            # their details, as in the pairs above.
            ids_merged = {pid for _, m in done for pid in (m.survivor, m.duplicate)}
            names = {pid: merges.records.get_patient(pid) for pid in ids_merged}
            pairs = merges.candidates()
            ids = {p.id for pair in pairs for p in (pair.first, pair.second)}
            charts = {pid: merges.records.get_patient(pid) for pid in ids}
            warnings = {
                (pair.first.id, pair.second.id): merge_warning(
                    merges.records, pair.first.id, pair.second.id
                )
                for pair in pairs
            }
            closed = {pid for pid in ids if is_restricted(merges.records.db, pid)}
            return pairs, done, names, charts, {k: w for k, w in warnings.items() if w}, closed

        self._operations.read(self.READ, read, self._arrived, self._failed)

    def _records_changed(self, changes: Changes) -> None:
        if changes.changed("patient") or changes.changed("relation"):
            self.refresh()

    def _arrived(self, found: Found) -> None:
        pairs, merges, names, charts, warnings, restricted = found
        self._charts = charts
        self._warnings = warnings
        self._restricted = restricted

        def merged_row(entry: tuple[PatientSummary, Merge]) -> tuple[str, ...]:
            duplicate, merge = entry
            survivor, whole = names.get(merge.survivor), names.get(merge.duplicate)
            gone = _name(duplicate)
            into = merge.survivor if survivor is None else _name(survivor)
            if into == gone and survivor is not None and whole is not None:
                gone, into = _chart(whole), _chart(survivor)
            return (gone, into, merge.by, local_time(merge.at), merge.reason)

        self._merges.show(merges, merged_row)
        self._pairs.show(pairs, lambda p: (p.first.birth_date, self._described(p.first),
                                           self._described(p.second)))  # fmt: skip
        count = counted(len(pairs), "possible duplicate", "No likely duplicates.")
        merged = "" if merges else " No merged charts."
        self._set_status(f"{self._outcome} {count}{merged}".strip())
        if pairs and not self.table.selectionModel().selectedRows():
            self.table.selectRow(0)
        self._selection_changed()

    def _failed(self, exc: Exception) -> None:
        self._set_status(describe_error(exc))

    def _described(self, p: PatientSummary) -> str:
        chart = self._charts.get(p.id)
        return _name(p) if chart is None else _chart(chart)

    def selected(self) -> DuplicatePair | None:
        """The pair whose row is selected."""
        return self._pairs.selected()

    def _selection_changed(self) -> None:
        pair = self.selected()
        for button, p in (
            (self.keep_first, pair and pair.first),
            (self.keep_second, pair and pair.second),
        ):
            closed = " (restricted chart)" if p and p.id in self._restricted else ""
            button.setText(f"Keep {self._described(p)}{closed}" if p else "Keep")
            button.setVisible(p is not None)
        self.select_hint.setVisible(pair is None)
        self._set_status(self._shown)
        self._update_buttons()

    def _set_status(self, text: str) -> None:
        """The outcome line: ``text``, or while the selected pair holds a restricted
        chart, what merging it does (``text`` shows again once another pair is chosen)."""
        self._shown = text
        self.status.setText(self._warning(self.selected()) or text)

    def _warning(self, pair: DuplicatePair | None) -> str:
        return "" if pair is None else self._warnings.get((pair.first.id, pair.second.id), "")

    def _update_buttons(self) -> None:
        idle = not self._write.busy
        chosen = self.selected() is not None
        self.merge_button.setEnabled(chosen and bool(self.reason.text().strip()) and idle)
        self.dismiss_button.setEnabled(chosen and idle)
        self.undo_button.setEnabled(self.selected_merge() is not None and idle)

    def selected_merge(self) -> Merge | None:
        """The merge whose row is selected in Merged charts."""
        found = self._merges.selected()
        return None if found is None else found[1]

    def undo(self) -> None:
        """Undo the selected merge (the chart and its records are its own again)."""
        merge = self.selected_merge()
        if merge is None:
            return
        records, duplicate = self._records, merge.duplicate
        # Named as the list names charts (an id means nothing to the person who merged).
        name = next(_name(p) for p, m in self._merges.items if m is merge)

        def undone(_: Merge) -> None:
            self._said(f"Merge undone: {name} is a chart of its own again.")

        label = "undo a merge of duplicate patients"
        self._write.run(lambda: Merges(records()).unmerge(duplicate), undone, label)

    def merge(self) -> None:
        """Merge the selected pair: the chart not kept goes into the one kept."""
        pair = self.selected()
        if pair is None:
            return
        keep, go = (pair.first, pair.second)
        if self.keep_second.isChecked():
            keep, go = go, keep
        records, reason = self._records, self.reason.text()
        gone, kept = _name(go), _name(keep)
        if gone == kept:  # namesakes: which went where, as the pair's row shows them
            gone, kept = self._described(go), self._described(keep)

        restricted = " It is a restricted chart now." if self._warning(pair) else ""

        def merged(_: Merge) -> None:
            self.reason.clear()
            self._said(f"Merged: the records of {gone} now show on {kept}.{restricted}")

        label = "merge duplicate patients"
        self._write.run(lambda: Merges(records()).merge(go.id, keep.id, reason), merged, label)

    def dismiss(self) -> None:
        """Mark the selected pair as two people (replicated; undone from the CLI)."""
        pair = self.selected()
        if pair is None:
            return
        records, first, second = self._records, pair.first.id, pair.second.id

        def dismissed(_: None) -> None:
            self._said(
                f"Marked as two people: {_name(pair.first)} and {_name(pair.second)} "
                "(careline patient not-duplicate --undo to list them again)."
            )

        self._write.run(
            lambda: Merges(records()).dismiss(first, second), dismissed, "dismiss a duplicate"
        )

    def _said(self, outcome: str) -> None:
        # Kept: the change broadcast refreshes the list at once, which rewrites the status.
        self._outcome = outcome
        self._set_status(outcome)

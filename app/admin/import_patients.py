"""Settings → "Import patients…" (administrators): move a clinic in from a spreadsheet.

A wizard of five pages on one dialog: choose the CSV file; map its columns (the columns and
the first rows in a table, a field combo above each column, the date format, the allergy
separator); the dry run's problems, row by row; the import with a progress bar; a summary.
Reading the file, the dry run and the import run on the worker
(core/records/patient_import.py does the work): the window never waits for them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QStyle,
    QStyleOptionComboBox,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.key_dialogs import busy_bar, heading_label
from app.widgets import (
    TypedForm,
    choose_deliberately,
    dialog_layout,
    error_label,
    form_layout,
    ignore_wheel,
    message_beside,
    paragraph,
    tab_leaves,
)
from core.records import csv_table
from core.records.csv_table import CsvTable
from core.records.import_rows import (
    DATE_FORMATS,
    FIELD_LABELS,
    FIELDS,
    IGNORE,
    MappingError,
    ReadOptions,
    RowProblem,
    check_mapping,
    suggest_mapping,
)
from core.records.patient_import import (
    BATCH_ROWS,
    ImportPlan,
    ImportResult,
    plan_import,
    run_import,
)

PREVIEW_ROWS = 10
_CHOICES = (*FIELDS, IGNORE)


def _problems_table(name: str) -> QTableWidget:
    """A read-only table of rows that cannot be read: row, column, value, why."""
    table = QTableWidget(0, 4)
    table.setObjectName(name)
    table.setHorizontalHeaderLabels(["Row", "Column", "Value", "Why"])
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.horizontalHeader().setStretchLastSection(True)
    table.verticalHeader().hide()  # its own numbers read as a second "Row"
    tab_leaves(table)
    return table


def _fill_problems(table: QTableWidget, problems: Sequence[RowProblem]) -> None:
    table.setRowCount(len(problems))
    for index, problem in enumerate(problems):
        cells = (str(problem.row), problem.column, problem.value, problem.reason)
        for column, text in enumerate(cells):
            table.setItem(index, column, QTableWidgetItem(text))
    table.resizeColumnsToContents()


class _Progress(QObject):
    """Carries the import's progress from the worker thread to the GUI thread (queued)."""

    moved = Signal(int, int)


class ImportPatientsDialog(TypedForm):
    """The import wizard; ``pages`` holds its five pages in order.

    Until the import starts, a file chosen and a mapping made are not dropped unasked:
    Cancel, Escape and the close button ask first (``TypedForm``). During the import they
    stop it; on the summary they close at once."""

    FILE, MAPPING, CHECK, IMPORTING, SUMMARY = range(5)
    # Rows per transaction: Stop takes effect between two of them.
    BATCH_ROWS = BATCH_ROWS

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations, self._records = operations, records
        self.table_read: CsvTable | None = None
        self.plan: ImportPlan | None = None
        self.outcome: ImportResult | None = None
        self.setObjectName("importPatientsDialog")
        self.setWindowTitle("Import patients")
        self.resize(980, 620)
        self.pages = QStackedWidget()
        self.pages.addWidget(self._file_page())
        self.pages.addWidget(self._mapping_page())
        self.pages.addWidget(self._check_page())
        self.pages.addWidget(self._importing_page())
        self.pages.addWidget(self._summary_page())
        self.error = error_label()
        self.busy = busy_bar()
        self.back_button = QPushButton("Back")
        self.back_button.clicked.connect(self.back)
        self.next_button = QPushButton("Next")
        self.next_button.setObjectName("primary")
        self.next_button.clicked.connect(self.next)
        self.close_button = QPushButton("Cancel")
        self.close_button.clicked.connect(self._close_or_stop)
        self._stop = threading.Event()  # set by Stop; the worker reads it between batches
        buttons = QWidget()
        row = QHBoxLayout(buttons)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        for button in (self.back_button, self.next_button, self.close_button):
            row.addWidget(button)
        self._progress = _Progress(self)
        self._progress.moved.connect(self._moved)
        dialog_layout(
            self,
            heading_label("Import a patient list from a spreadsheet (CSV)"),
            self.pages,
            self.busy,
            message_beside(self.error, buttons),  # not above them: they stay put
        )
        # Return goes on to the next step (not Choose…, which had focus after choosing);
        # set once the button is in the dialog, which is what makes it its default.
        self.next_button.setDefault(True)
        self._show(self.FILE)

    # ----- pages ------------------------------------------------------------------------

    def _file_page(self) -> QWidget:
        page = QWidget()
        self.path = QLineEdit()
        self.path.setObjectName("importFile")
        self.path.setPlaceholderText("The CSV file saved from the spreadsheet")
        choose = QPushButton("Choose…")
        choose.setAutoDefault(False)
        choose.clicked.connect(self._choose)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(choose)
        layout = QVBoxLayout(page)
        layout.addWidget(
            paragraph(
                "Save the patient list from the spreadsheet as CSV (UTF-8 or Windows). The "
                "first row must name the columns. Nothing is written until the last step, "
                "and patients already registered are not added again."
            )
        )
        layout.addLayout(row)
        layout.addStretch(1)
        return page

    def _mapping_page(self) -> QWidget:
        page = QWidget()
        self.file_summary = paragraph("")
        self.preview = QTableWidget()
        self.preview.setObjectName("importPreview")
        self.preview.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        tab_leaves(self.preview)
        self.combos: list[QComboBox] = []
        self.date_format = QComboBox()
        self.date_format.setObjectName("importDateFormat")
        for fmt in DATE_FORMATS:
            self.date_format.addItem(fmt, fmt)
        choose_deliberately(self.date_format)
        self.separator = QLineEdit(";")
        self.separator.setObjectName("importSeparator")
        self.separator.setMaximumWidth(60)
        self.pivot = QSpinBox()
        self.pivot.setObjectName("importYearPivot")
        self.pivot.setRange(-1, 99)
        self.pivot.setValue(-1)
        self.pivot.setSpecialValueText("refused")
        ignore_wheel(self.date_format, self.pivot)
        options = form_layout()
        options.addRow("Birth dates are written", self.date_format)
        options.addRow("Allergies are separated by", self.separator)
        options.addRow("Two-digit years: below this are 20YY", self.pivot)
        layout = QVBoxLayout(page)
        layout.addWidget(self.file_summary)
        layout.addWidget(
            paragraph(
                "Choose what each column holds (the first row of the table). Dates are never "
                "guessed: choose how this file writes them."
            )
        )
        layout.addWidget(self.preview, 1)
        layout.addLayout(options)
        return page

    def _check_page(self) -> QWidget:
        page = QWidget()
        self.check_summary = paragraph("")
        self.check_summary.setObjectName("importCheckSummary")
        self.problems = _problems_table("importProblems")
        layout = QVBoxLayout(page)
        layout.addWidget(self.check_summary)
        layout.addWidget(self.problems, 1)
        return page

    def _importing_page(self) -> QWidget:
        page = QWidget()
        self.progress = QProgressBar()
        self.progress.setObjectName("importProgress")
        layout = QVBoxLayout(page)
        layout.addWidget(
            paragraph(
                "Importing… The window stays responsive; other screens catch up when the "
                "import ends."
            )
        )
        layout.addWidget(self.progress)
        layout.addStretch(1)
        return page

    def _summary_page(self) -> QWidget:
        page = QWidget()
        self.summary = paragraph("")
        self.summary.setObjectName("importSummary")
        # The rows left out, with why, to fix in the spreadsheet (hidden when none were).
        self.left_out = _problems_table("importLeftOut")
        self.left_out.hide()
        layout = QVBoxLayout(page)
        layout.addWidget(self.summary)
        layout.addWidget(self.left_out, 1)
        layout.addStretch(1)
        return page

    def _show(self, page: int) -> None:
        self.pages.setCurrentIndex(page)
        self.error.hide()
        self.back_button.setVisible(page in (self.MAPPING, self.CHECK))
        self.next_button.setVisible(page not in (self.IMPORTING, self.SUMMARY))
        self.next_button.setEnabled(True)
        texts = {self.SUMMARY: "Close", self.IMPORTING: "Stop import"}
        self.close_button.setText(texts.get(page, "Cancel"))
        self.close_button.setEnabled(True)
        labels = {self.FILE: "Next", self.MAPPING: "Check the rows", self.CHECK: "Import"}
        self.next_button.setText(labels.get(page, "Next"))
        if page == self.CHECK and self.plan is not None:
            count = len(self.plan.to_add)
            self.next_button.setText(f"Import {count} patient{'s' * (count != 1)}")
            self.next_button.setEnabled(count > 0)

    # ----- steps ------------------------------------------------------------------------

    def _choose(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Choose the patient list", "", "CSV files (*.csv *.txt);;All files (*)"
        )
        if chosen:
            self.path.setText(chosen)

    def next(self) -> None:
        """The primary button: on to the next step (after its work on the worker)."""
        page = self.pages.currentIndex()
        if page == self.FILE:
            self._read_file()
        elif page == self.MAPPING:
            self._dry_run()
        elif page == self.CHECK:
            self._import()

    def _close_or_stop(self) -> None:
        if self.pages.currentIndex() == self.IMPORTING:
            self.stop_import()
        else:
            self.cancel()

    def has_changes(self) -> bool:
        """A file or mapping chosen before the import (after it, nothing is left to lose:
        what was imported is stored, and the summary says what was not)."""
        before = self.pages.currentIndex() in (self.FILE, self.MAPPING, self.CHECK)
        return before and super().has_changes()

    def stop_import(self) -> None:
        """Stop the running import after the batch being written (whole batches only)."""
        self._stop.set()
        self.close_button.setEnabled(False)
        self.close_button.setText("Stopping…")

    def reject(self) -> None:
        """Escape or the window's close button: during the import, Stop instead (the
        summary then says what was imported)."""
        if self.pages.currentIndex() == self.IMPORTING:
            self.stop_import()
            return
        super().reject()

    def back(self) -> None:
        """One step back (the mapping from the check page, the file from the mapping)."""
        self._show(max(self.FILE, self.pages.currentIndex() - 1))

    def _busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.next_button.setEnabled(not busy)
        self.back_button.setEnabled(not busy)

    def _failed(self, exc: Exception) -> None:
        self._busy(False)
        self.error.setText(describe_error(exc))
        self.error.show()

    def _read_file(self) -> None:
        text = self.path.text().strip()
        if not text:
            self.error.setText("Choose the CSV file to import.")
            self.error.show()
            return
        path = Path(text)
        self._busy(True)
        self._operations.worker.submit(
            lambda: csv_table.read(path), self._file_read, self._failed, label="read CSV"
        )

    def _file_read(self, table: CsvTable) -> None:
        self._busy(False)
        self.table_read = table
        rows = sum(1 for r in table.rows if any(c.strip() for c in r))
        self.file_summary.setText(
            f"{rows} rows, {len(table.header)} columns, read as {table.encoding}."
        )
        mapping = suggest_mapping(table.header)
        shown = table.rows[:PREVIEW_ROWS]
        self.preview.clear()
        self.preview.setColumnCount(len(table.header))
        self.preview.setRowCount(1 + len(shown))
        self.preview.setHorizontalHeaderLabels(table.header)
        self.combos = []
        for column, name in enumerate(table.header):
            combo = QComboBox()
            combo.setObjectName(f"importColumn{column}")
            for choice in _CHOICES:
                combo.addItem(FIELD_LABELS[choice], choice)
            combo.setCurrentIndex(_CHOICES.index(mapping[name]))
            ignore_wheel(combo)
            choose_deliberately(combo)  # typed words never re-map a column
            self.preview.setCellWidget(0, column, combo)
            self.combos.append(combo)
            for row, cells in enumerate(shown, start=1):
                value = cells[column] if column < len(cells) else ""
                self.preview.setItem(row, column, QTableWidgetItem(value))
        self.preview.resizeColumnsToContents()
        for column, combo in enumerate(self.combos):  # the field names read whole
            wide = max(self.preview.columnWidth(column), self._column_for(combo))
            self.preview.setColumnWidth(column, wide)
        if self.combos:  # the combos' row as tall as they are, not the rows' default
            tall = max(combo.sizeHint().height() for combo in self.combos)
            self.preview.setRowHeight(0, max(self.preview.rowHeight(0), tall))
        self._show(self.MAPPING)

    def _column_for(self, combo: QComboBox) -> int:
        """The column width at which ``combo`` shows its longest field name whole: the text
        plus what the style takes around it, measured as the style lays them out (the
        stylesheet's padding and arrow inside the combo, the cell's padding around it).
        Sizing from the combo's outer width cut "Family name" to "Family nam"."""
        combo.ensurePolished()
        self.preview.ensurePolished()
        style = combo.style()
        longest = max(combo.fontMetrics().horizontalAdvance(t) for t in FIELD_LABELS.values())
        box = QStyleOptionComboBox()
        combo.initStyleOption(box)
        box.rect = QRect(0, 0, 1000, combo.sizeHint().height())
        field = style.subControlRect(
            QStyle.ComplexControl.CC_ComboBox, box, QStyle.SubControl.SC_ComboBoxEditField, combo
        )
        cell = QStyleOptionViewItem()
        cell.initFrom(self.preview)
        cell.rect = QRect(0, 0, 1000, 30)
        inner = self.preview.style().subElementRect(
            QStyle.SubElement.SE_ItemViewItemText, cell, self.preview
        )
        return longest + (1000 - field.width()) + (1000 - inner.width()) + 4

    def mapping(self) -> dict[str, str]:
        """Column name -> field, as the combos say."""
        assert self.table_read is not None
        return {
            name: str(combo.currentData())
            for name, combo in zip(self.table_read.header, self.combos, strict=True)
        }

    def _dry_run(self) -> None:
        table, mapping = self.table_read, self.mapping()
        assert table is not None
        try:
            check_mapping(mapping)
            pivot = self.pivot.value()
            options = ReadOptions(
                str(self.date_format.currentData()),
                self.separator.text(),
                None if pivot < 0 else pivot,
            )
        except MappingError as exc:
            self._failed(exc)
            return
        records = self._records
        self._busy(True)
        self._operations.worker.submit(
            lambda: plan_import(records(), table, mapping, options),
            self._checked,
            self._failed,
            label="import dry run",
        )

    def _checked(self, plan: ImportPlan) -> None:
        self._busy(False)
        self.plan = plan
        rows = len({p.row for p in plan.problems})
        self.check_summary.setText(
            f"{len(plan.to_add)} to import, {len(plan.already_present)} already present, "
            f"{rows} row{'s' * (rows != 1)} that cannot be read (left out; fix them in the "
            "spreadsheet and import the file again later: nobody is added twice)."
        )
        _fill_problems(self.problems, plan.problems)
        self._show(self.CHECK)

    def _import(self) -> None:
        plan, records, progress = self.plan, self._records, self._progress
        assert plan is not None
        self.progress.setRange(0, max(1, len(plan.to_add)))
        self.progress.setValue(0)
        self._show(self.IMPORTING)
        stop, rows = self._stop, self.BATCH_ROWS
        stop.clear()
        self._operations.submit(
            lambda: run_import(records(), plan, progress.moved.emit, rows, stop.is_set),
            self._imported,
            self._import_failed,
            label="import patients",
        )

    def _moved(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(1, total))
        self.progress.setValue(done)

    def _imported(self, result: ImportResult) -> None:
        self.outcome = result
        rows = len({p.row for p in result.problems})
        stopped = (
            f"Stopped on request: {result.rows_left} row{'s' * (result.rows_left != 1)} "
            "not imported (import the same file again to add them; nobody is added twice). "
            if result.cancelled
            else ""
        )
        self.summary.setText(
            f"{stopped}Imported {result.added} patients ({result.allergies} allergies). "
            f"{len(result.already_present)} were already present and were not added again. "
            f"{rows} row{'s' * (rows != 1)} could not be read and {'were' if rows != 1 else 'was'} "
            "left out"
            + (" (below: fix them in the spreadsheet and import the file again)." if rows else ".")
        )
        _fill_problems(self.left_out, result.problems)
        self.left_out.setVisible(bool(result.problems))
        self._show(self.SUMMARY)

    def _import_failed(self, exc: Exception) -> None:
        self._show(self.SUMMARY)
        self.summary.setText(
            f"The import stopped: {describe_error(exc)}\nWhat was imported stays; import the "
            "same file again to finish (nobody is added twice)."
        )

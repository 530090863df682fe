"""Settings → Audit log… (administrators): the clinic's audit log on this workstation,
filtered by person, patient, action and dates, and exported as CSV.

Reads and the export run on the worker: the window never waits for the log. The table shows
the newest :data:`SHOWN` entries that match; the export writes every one of them.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialogButtonBox,
    QFileDialog,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)

from app.admin.audit_table import Entries, audit_table, fill, with_names
from app.messages import describe_error, validation_text
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import (
    KeepsFocusDialog,
    clear_when_edited,
    dialog_layout,
    error_label,
    ignore_wheel,
    show_items_whole,
    show_whole_placeholder,
    show_whole_text,
)
from app.worker import Job
from core.records.audit_review import (
    ACTION_LABELS,
    AuditFilter,
    bound,
    entries_about,
    export_csv,
    require_reviewer,
)
from core.records.errors import ValidationError

SHOWN = 2000


class AuditLogDialog(KeepsFocusDialog):
    """The audit log with its filters and CSV export."""

    READ = "audit log"

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._export_job: Job[int] | None = None
        self.setObjectName("auditLogDialog")
        self.setWindowTitle("Audit log")
        self.resize(1180, 640)
        heading = QLabel("The clinic's audit log on this workstation")
        heading.setObjectName("dialogHeading")
        self.person = QLineEdit()
        self.person.setObjectName("auditPerson")
        self.person.setPlaceholderText("User name")
        self.patient = QLineEdit()
        self.patient.setObjectName("auditPatient")
        self.patient.setPlaceholderText("Name or patient id")
        self.action = QComboBox()
        self.action.setObjectName("auditAction")
        self.action.setEditable(True)
        self.action.addItem("Any action", "")
        for action, label in ACTION_LABELS.items():
            self.action.addItem(label, action)
        ignore_wheel(self.action)  # a pointer passing over it does not change the filter
        # The box gives way (its open list still shows each action whole), and Person's and
        # Patient's hints show whole: at 1024 wide, sized to its longest action, it left
        # them "User…" and "Name or …".
        self.action.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.action.setMinimumContentsLength(8)
        show_items_whole(self.action)
        for line in (self.person, self.patient):
            show_whole_placeholder(line)
        self.since = QLineEdit()
        self.since.setObjectName("auditSince")
        self.since.setPlaceholderText("YYYY-MM-DD")
        self.until = QLineEdit()
        self.until.setObjectName("auditUntil")
        self.until.setPlaceholderText("YYYY-MM-DD")
        # Wide enough for a date and a time (a day's width cut "2026-12-06 22:11" to
        # "-12-06 22:11", the year out of sight).
        for day in (self.since, self.until):
            show_whole_text(day, "0000-00-00 00:00")
        self.show_button = QPushButton("Show")
        self.show_button.setObjectName("primary")
        self.show_button.clicked.connect(self.refresh)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setObjectName("auditExport")
        self.export_button.clicked.connect(self.ask_export_file)
        for line in (self.person, self.patient, self.since, self.until):
            line.returnPressed.connect(self.refresh)
        filters = QWidget()
        grid = QGridLayout(filters)
        grid.setContentsMargins(0, 0, 0, 0)
        parts: tuple[tuple[str, QWidget], ...] = (
            ("Person", self.person),
            ("Patient", self.patient),
            ("Action", self.action),
            ("From", self.since),
            ("To", self.until),
        )
        # A bad date is said under its own box, in the words on screen ("From", not the
        # command line's "since"), both at once, in the error colour.
        self.since_error, self.until_error = error_label(), error_label()
        self._dates = (
            ("From", self.since, self.since_error),
            ("To", self.until, self.until_error),
        )
        for _caption, day, message in self._dates:
            clear_when_edited(day, message)
        for column, (caption, widget) in enumerate(parts):
            title = QLabel(caption)
            title.setObjectName("caption")
            grid.addWidget(title, 0, column)
            grid.addWidget(widget, 1, column)
        for column, (_caption, _day, message) in enumerate(self._dates, start=3):
            grid.addWidget(message, 2, column, Qt.AlignmentFlag.AlignTop)
        for column, stretch in enumerate((2, 3, 3, 1, 1)):
            grid.setColumnStretch(column, stretch)
        grid.addWidget(self.show_button, 1, 5)
        grid.addWidget(self.export_button, 1, 6)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self.table = audit_table("auditLogTable", with_patient=True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(self, heading, filters, self.status, self.table, buttons)
        self.file_dialog: QFileDialog | None = None
        self.refresh()

    def current_filter(self, limit: int | None = SHOWN) -> AuditFilter:
        """The filter as typed (an action typed by hand is used as typed)."""
        data = self.action.currentData()
        typed = self.action.currentText().strip()
        action = data if data is not None and self.action.findText(typed) >= 0 else typed
        return AuditFilter(
            patient=self.patient.text().strip() or None,
            user=self.person.text().strip().lower() or None,
            action=action or None,
            since=self.since.text().strip() or None,
            until=self.until.text().strip() or None,
            limit=limit,
        )

    def dates_ok(self) -> bool:
        """Check From and To as core will: each bad one's message under it, all at once,
        the keyboard in the first (its text selected, to type over). True when both
        are dates or times (or empty), and To is not before From (that range holds
        nothing: it showed "0 entries." and said nothing)."""
        bad: list[QLineEdit] = []
        stamps: list[str] = []
        for caption, day, message in self._dates:
            text = day.text().strip()
            try:
                if text:
                    stamps.append(bound(caption, text, end=day is self.until))
            except ValidationError as exc:
                message.setText(validation_text(exc))
                message.show()
                bad.append(day)
            else:
                message.hide()
        if not bad and len(stamps) == 2 and stamps[1] <= stamps[0]:
            self.until_error.setText("To is before From: no entry can fall between them.")
            self.until_error.show()
            bad.append(self.until)
        if bad:
            bad[0].setFocus()
            bad[0].selectAll()
        return not bad

    def refresh(self) -> None:
        """Read the entries matching the filters (on the worker). A bad date reads
        nothing: the table keeps what the last good filter showed."""
        if not self.dates_ok():
            return
        wanted, records = self.current_filter(), self._records
        self.status.setText("Reading the audit log…")

        def read() -> Entries:
            clinic = records()
            require_reviewer(clinic)
            return with_names(clinic, entries_about(clinic, wanted))

        self._operations.read(self.READ, read, self._arrived, self._failed)

    def _arrived(self, entries: Entries) -> None:
        fill(self.table, entries, with_patient=True)
        count = len(entries.rows)
        more = f" (the newest {SHOWN}; export to get them all)" if count >= SHOWN else ""
        emergency = sum(1 for r in entries.rows if r.break_glass)
        text = f"{count} entries{more}."
        if emergency:
            text += f" {emergency} under break-glass (in red)."
        self.status.setText(text)

    def _failed(self, exc: Exception) -> None:
        self.table.setRowCount(0)
        self.status.setText(describe_error(exc))

    # ----- export -----------------------------------------------------------------------

    def ask_export_file(self) -> None:
        """Ask where to save the CSV (without blocking: the dialog reports back), once
        From and To are good."""
        if self._export_job is not None or self.file_dialog is not None:
            return
        if not self.dates_ok():
            return  # said under the dates first: no file is chosen for nothing
        chooser = QFileDialog(self, "Export the audit log", str(Path.home() / "audit-log.csv"))
        chooser.setObjectName("auditExportFile")
        chooser.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        chooser.setNameFilter("CSV files (*.csv)")
        chooser.setDefaultSuffix("csv")
        chooser.fileSelected.connect(lambda name: self.export(Path(name)))
        chooser.finished.connect(self._forget_file_dialog)
        self.file_dialog = chooser
        chooser.open()

    def _forget_file_dialog(self) -> None:
        if self.file_dialog is not None:
            self.file_dialog.deleteLater()
            self.file_dialog = None

    def export(self, path: Path) -> None:
        """Write every entry matching the filters to ``path`` as CSV, on the worker."""
        if self._export_job is not None or not self.dates_ok():
            return
        wanted, records = self.current_filter(limit=None), self._records

        def work() -> int:
            clinic = records()
            require_reviewer(clinic)
            with path.open("w", encoding="utf-8", newline="") as fh:
                return export_csv(clinic, wanted, fh)

        self.export_button.setEnabled(False)
        self.status.setText(f"Exporting to {path}…")
        self._export_job = self._operations.worker.submit(
            work,
            lambda count: self._exported(path, count),
            self._export_failed,
            label="export audit log",
        )

    def _exported(self, path: Path, count: int) -> None:
        self._export_job = None
        self.export_button.setEnabled(True)
        self.status.setText(f"Exported {count} entries to {path}.")

    def _export_failed(self, exc: Exception) -> None:
        self._export_job = None
        self.export_button.setEnabled(True)
        self.status.setText(f"The audit log was not exported. {describe_error(exc)}")

    @property
    def exporting(self) -> bool:
        """True while an export runs."""
        return self._export_job is not None

    def done(self, result: int) -> None:
        """Close; reads in flight are dropped (an export still finishes its file)."""
        self._operations.cancel(self.READ)
        if self.file_dialog is not None:
            self.file_dialog.reject()
        super().done(result)

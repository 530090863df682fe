"""Settings → "FHIR export and import…" (administrators): the clinic's charts out as a
FHIR R4 bundle, and a bundle in (core/records/fhir does the work, on the worker, with
progress). The import's report lists what was created, matched (offered for merge) and
skipped, with reasons."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.session.key_dialogs import heading_label
from app.widgets import (
    KeepsFocusDialog,
    dialog_layout,
    error_label,
    grow_to_fit,
    message_beside,
    paragraph,
)
from app.worker import Job
from core.records.fhir.export import ExportResult, export_bundle
from core.records.fhir.importer import import_bundle
from core.records.fhir.reader import read_file
from core.records.fhir.report import ImportReport
from core.reports.pdf import save


class _Progress(QObject):
    """Carries ``(done, total)`` from the worker thread to the bar (a queued signal)."""

    moved = Signal(int, int)


def _row(edit: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    for button in buttons:
        layout.addWidget(button)
    return row


class FhirDialog(KeepsFocusDialog):
    """Export every chart to a bundle file, or import a bundle file."""

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._job: Job[ExportResult] | Job[ImportReport] | None = None
        self.setObjectName("fhirDialog")
        self.setWindowTitle("FHIR export and import")
        self.setMinimumWidth(640)
        self.export_path = QLineEdit()
        self.export_path.setPlaceholderText("Where to save the bundle (JSON)")
        choose_export = QPushButton("Choose…")
        choose_export.clicked.connect(self._choose_export)
        self.export_button = QPushButton("Export")
        self.export_button.clicked.connect(self.start_export)
        self.import_path = QLineEdit()
        self.import_path.setPlaceholderText("A FHIR bundle to import (JSON)")
        choose_import = QPushButton("Choose…")
        choose_import.clicked.connect(self._choose_import)
        self.import_button = QPushButton("Import")
        self.import_button.clicked.connect(self.start_import)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.hide()
        self._progress = _Progress(self)
        self._progress.moved.connect(self._moved)
        self.error = error_label()
        self.status = paragraph("", "notice")
        self.status.hide()  # an empty notice is an empty coloured box
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.hide()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(
            self,
            heading_label("FHIR R4 bundles"),
            paragraph(
                "Export writes every chart as a FHIR bundle: it holds patient data, keep the "
                "file safe. Import reads a bundle into this clinic; a patient already here "
                "is matched and offered for merge, never registered twice, and importing the "
                "same bundle again adds nothing."
            ),
            _row(self.export_path, choose_export, self.export_button),
            _row(self.import_path, choose_import, self.import_button),
            self.progress,
            self.status,
            self.report,
            message_beside(self.error, buttons),  # not above Close: it stays put
        )
        # Return in a path field starts that field's action; it pressed the first Choose…
        # (the dialog's default button) and opened a file dialog instead.
        close = buttons.button(QDialogButtonBox.StandardButton.Close)
        for button in (choose_export, self.export_button, choose_import, self.import_button,
                       close):  # fmt: skip
            button.setAutoDefault(False)
        self.export_path.returnPressed.connect(self.start_export)

        self.import_path.returnPressed.connect(self.start_import)

    def _choose_export(self) -> None:
        name = f"careline-fhir-{dt.date.today():%Y-%m-%d}.json"
        chosen, _ = QFileDialog.getSaveFileName(self, "Save the bundle as", name, "JSON (*.json)")
        if chosen:
            self.export_path.setText(chosen)

    def _choose_import(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "Import a bundle", "", "JSON (*.json)")
        if chosen:
            self.import_path.setText(chosen)

    def _begin(self) -> bool:
        if self._job is not None:
            return False
        self.error.hide()
        self.status.setText("")
        self.status.hide()
        self.export_button.setEnabled(False)
        self.import_button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.show()
        return True

    def _end(self) -> None:
        self._job = None
        self.progress.hide()
        self.export_button.setEnabled(True)
        self.import_button.setEnabled(True)

    def _moved(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def start_export(self) -> None:
        """Export every chart to the chosen file, on the worker."""
        text = self.export_path.text().strip()
        if not text:
            return self._show_error("Choose where to save the bundle.")
        if not self._begin():
            return None
        records, target, moved = self._records, Path(text), self._progress.moved.emit

        def run() -> ExportResult:  # on the worker, where the records live
            result = export_bundle(records(), on_progress=moved)
            save(target, result.json().encode())
            return result

        self._job = self._operations.submit(run, self._exported, self._failed, label="fhir export")
        return None

    def start_import(self) -> None:
        """Import the chosen bundle, on the worker."""
        text = self.import_path.text().strip()
        if not text:
            return self._show_error("Choose a bundle to import.")
        if not self._begin():
            return None
        records, source, moved = self._records, Path(text), self._progress.moved.emit

        def run() -> ImportReport:  # on the worker, where the records live
            return import_bundle(records(), read_file(source), moved)

        self._job = self._operations.submit(run, self._imported, self._failed, label="fhir import")
        return None

    def _exported(self, result: ExportResult) -> None:
        self._end()
        total = sum(result.counts.values())
        text = f"Exported {total} resources to {self.export_path.text().strip()}."
        if result.withheld:
            text += (
                f" {len(result.withheld)} chart(s) without clinical content: you may not see it."
            )
        self.status.setText(text)
        self.status.show()
        self._grow()

    def _imported(self, report: ImportReport) -> None:
        self._end()
        self.status.setText(report.text().splitlines()[0])
        self.status.show()
        self.report.setPlainText(report.text())
        self.report.show()
        self._grow()

    def _failed(self, exc: Exception) -> None:
        self._end()
        if isinstance(exc, OSError):  # a path typed wrong: said as such, not "unexpected"
            where = f" ({exc.filename})" if exc.filename else ""
            return self._show_error(f"The file could not be used: {exc.strerror or exc}{where}.")
        self._show_error(describe_error(exc))
        return None

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
        self._grow()

    def _grow(self) -> None:
        # The open window kept its height and squeezed the explanation above a line just
        # shown, cut off mid-sentence, and the Close button.
        grow_to_fit(self)

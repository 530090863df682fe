"""Who has seen or changed this chart: the chart's audit entries on this workstation, views
(chart openings) included, newest first, in a dialog from the chart page.

Each workstation's audit log holds what was done on it; the clinic server keeps every
workstation's entries for the clinic's administrators (see README "Audit review").
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QWidget

from app.admin.audit_table import Entries, audit_table, fill, with_names
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import dialog_layout
from core.records.audit_review import chart_history
from core.records.models import Patient


class ChartHistoryDialog(QDialog):
    """The chart's audit entries: person, workstation, what, when."""

    READ = "chart history"

    def __init__(
        self,
        operations: Operations,
        records: RecordsProvider,
        patient: Patient,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self.setObjectName("chartHistoryDialog")
        self.setWindowTitle("Who has seen or changed this chart")
        self.resize(960, 480)
        heading = QLabel(f"Who has seen or changed the chart of {patient.display_name}")
        heading.setObjectName("dialogHeading")
        self.status = QLabel("Reading the audit log…")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self.table = audit_table("chartHistoryTable", with_patient=False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(self, heading, self.status, self.table, buttons)
        patient_id = patient.id

        def read() -> Entries:
            clinic = records()
            return with_names(clinic, chart_history(clinic.db, patient_id))

        operations.read(self.READ, read, self._arrived, self._failed)

    def _arrived(self, entries: Entries) -> None:
        fill(self.table, entries, with_patient=False)
        views = sum(1 for r in entries.rows if r.action == "chart.open")
        emergency = sum(1 for r in entries.rows if r.break_glass)
        text = f"{len(entries.rows)} entries on this workstation, {views} of them views."
        if emergency:
            text += f" {emergency} under break-glass (in red)."
        self.status.setText(text)

    def _failed(self, exc: Exception) -> None:
        self.status.setText(f"The audit log could not be read. {describe_error(exc)}")

    def done(self, result: int) -> None:
        """Close; a read still in flight is dropped."""
        self._operations.cancel(self.READ)
        super().done(result)

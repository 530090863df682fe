"""Who has seen or changed this chart: the chart's audit entries on this workstation, views
(chart openings) included, newest first, in a dialog from the chart page.

Each workstation's audit log holds what was done on it; the clinic server keeps every
workstation's entries for the clinic's administrators (see README "Audit review").
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QWidget

from app.admin.audit_table import Entries, audit_table, fill, with_names
from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.widgets import dialog_layout
from core.records.audit_review import AuditRow, chart_history
from core.records.models import Patient

# What counts as seeing the chart's contents: opening it, opening a file of it or saving a
# copy of one (the decrypted file leaves the cache), and printing it.
_SEEN = {
    "chart.open": ("chart opening", "chart openings"),
    "attachment.view": ("file open", "file opens"),
    "attachment.save": ("file open", "file opens"),
    "print.summary": ("printout", "printouts"),
    "print.visit": ("printout", "printouts"),
}


def count(n: int, one: str, many: str) -> str:
    """``1 entry``, ``3 entries``."""
    return f"{n} {one if n == 1 else many}"


def seen_summary(rows: Sequence[AuditRow]) -> str:
    """``3 chart openings and 2 file opens by 2 people``: every way the entries show the
    chart's contents being seen, and by how many people; "" when none."""
    seen = [r for r in rows if r.action in _SEEN]
    if not seen:
        return ""
    kinds: dict[tuple[str, str], int] = {}
    for words in _SEEN.values():  # the order above: openings, files, printouts
        kinds.setdefault(words, 0)
    for r in seen:
        kinds[_SEEN[r.action]] += 1
    parts = [count(n, *words) for words, n in kinds.items() if n]
    listed = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    people = len({r.actor for r in seen})
    return f"{listed} by {count(people, 'person', 'people')}"


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
        emergency = sum(1 for r in entries.rows if r.break_glass)
        text = f"{count(len(entries.rows), 'entry', 'entries')} on this workstation"
        text += f": {seen_summary(entries.rows)}." if seen_summary(entries.rows) else "."
        if emergency:
            text += f" {emergency} under break-glass (in red)."
        self.status.setText(text)

    def _failed(self, exc: Exception) -> None:
        self.status.setText(f"The audit log could not be read. {describe_error(exc)}")

    def done(self, result: int) -> None:
        """Close; a read still in flight is dropped."""
        self._operations.cancel(self.READ)
        super().done(result)

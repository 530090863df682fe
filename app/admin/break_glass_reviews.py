"""Settings → Break-glass reviews… (administrators): emergency openings of charts waiting
for review, each with who, which patient, why and for how long; an administrator marks
each reviewed once satisfied (core records who did, when, in the audit log too)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWidget,
)

from app.messages import describe_error
from app.operations import Operations
from app.patients.dialog import RecordsProvider
from app.review_list import OneWrite, ReviewTable, counted
from app.widgets import dialog_layout
from core.records.break_glass import BreakGlass
from core.records.break_glass_audit import Grant
from core.records.changeset import Changes
from core.records.types import BREAK_GLASS


@dataclass(frozen=True)
class Openings:
    """Openings, with the names of their people and patients."""

    grants: list[Grant]
    people: dict[str, str]
    patients: dict[str, str]


def read_openings(provider: RecordsProvider, pending_only: bool) -> Openings:
    """Openings to show (on the worker)."""
    records = provider()
    grants = BreakGlass(records).openings(pending_only=pending_only)
    people: dict[str, str] = {}
    patients: dict[str, str] = {}
    for g in grants:
        for name in (g.username, g.reviewed_by or ""):
            if name and name not in people:
                user = records.user(name)
                people[name] = (user.full_name if user else "") or name
        if g.patient_id not in patients:
            rows = records.db.query(
                "SELECT family, given FROM patients WHERE id = ?", (g.patient_id,)
            )
            patients[g.patient_id] = (
                f"{str(rows[0][0]).upper()}, {rows[0][1]}" if rows else g.patient_id
            )
    return Openings(grants, people, patients)


def _local(stamp: str | None) -> str:
    if not stamp:
        return ""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return stamp


def _until(opened: str, expires: str) -> str:
    """The expiry, as a time alone when it falls on the day of the opening."""
    start, end = _local(opened), _local(expires)
    return end[11:] if start[:10] == end[:10] else end


class BreakGlassReviewsDialog(QDialog):
    """The openings waiting for review (or all of them), and Mark reviewed."""

    READ = "break-glass reviews"
    COLUMNS = ("Opened", "By", "Patient", "Reason", "Until", "Reviewed")

    def __init__(
        self, operations: Operations, records: RecordsProvider, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._operations = operations
        self._records = records
        self._grants: ReviewTable[Grant] = ReviewTable(self.COLUMNS, "breakGlassTable")
        self.setObjectName("breakGlassReviewsDialog")
        self.setWindowTitle("Break-glass reviews")
        self.resize(1080, 480)
        heading = QLabel("Emergency openings of charts waiting for review")
        heading.setObjectName("dialogHeading")
        explain = QLabel(
            "Each opening names who opened which chart, why, and until when. Check it with "
            "the person or the chart's history (Audit log, filtered by the patient), then "
            "mark it reviewed."
        )
        explain.setWordWrap(True)
        self.show_all = QCheckBox("Show reviewed openings too")
        self.show_all.setObjectName("showReviewed")
        self.show_all.toggled.connect(self.refresh)
        self.table = self._grants.table
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.status = QLabel()
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        self._write = OneWrite(operations, self.status, self._update_buttons)
        self.review_button = QPushButton("Mark reviewed")
        self.review_button.setObjectName("primary")
        self.review_button.clicked.connect(self.mark_reviewed)
        row = QWidget()
        bar = QHBoxLayout(row)
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.show_all)
        bar.addStretch(1)
        bar.addWidget(self.review_button)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        dialog_layout(self, heading, explain, row, self.table, self.status, buttons)
        operations.changed.connect(self._records_changed)
        self.refresh()

    def refresh(self) -> None:
        """Read the openings again (on the worker)."""
        records, pending_only = self._records, not self.show_all.isChecked()
        self._operations.read(
            self.READ, lambda: read_openings(records, pending_only), self._arrived, self._failed
        )

    def _records_changed(self, changes: Changes) -> None:
        if changes.changed(BREAK_GLASS.name):
            self.refresh()

    def _arrived(self, openings: Openings) -> None:
        def cells(g: Grant) -> tuple[str, ...]:
            reviewer = openings.people.get(g.reviewed_by or "", g.reviewed_by or "")
            reviewed = f"{_local(g.reviewed_at)} by {reviewer}" if g.reviewed_at else "Waiting"
            return (
                _local(g.opened_at),
                openings.people.get(g.username, g.username),
                openings.patients.get(g.patient_id, g.patient_id),
                g.reason,
                _until(g.opened_at, g.expires_at),
                reviewed,
            )

        self._grants.show(openings.grants, cells)
        waiting = sum(1 for g in openings.grants if not g.reviewed_at)
        self.status.setText(
            counted(waiting, "opening", "No openings waiting for review.")[:-1]
            + (" waiting for review." if waiting else ".")
        )
        self._update_buttons()

    def _failed(self, exc: Exception) -> None:
        self.status.setText(describe_error(exc))

    def selected(self) -> Grant | None:
        """The opening whose row is selected."""
        return self._grants.selected()

    def _update_buttons(self) -> None:
        grant = self.selected()
        self.review_button.setEnabled(
            grant is not None and not grant.reviewed_at and not self._write.busy
        )

    def mark_reviewed(self) -> None:
        """Mark the selected opening reviewed (core refuses anyone but an administrator)."""
        grant = self.selected()
        if grant is None:
            return
        records, grant_id = self._records, grant.id
        self._write.run(
            lambda: BreakGlass(records()).mark_reviewed(grant_id),
            lambda _grant: None,  # the list refreshes from the change broadcast
            "mark break-glass reviewed",
            failed_prefix="Not marked reviewed. ",
        )

    def done(self, result: int) -> None:
        """Close; a read in flight is dropped."""
        self._operations.cancel(self.READ)
        super().done(result)

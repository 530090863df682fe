"""The table of audit entries shared by the chart's history and the clinic's audit log."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from app.chart.cards import list_table
from core.records import merged
from core.records.audit_review import AuditRow
from core.records.clinic import ClinicRecords

BREAK_GLASS_COLOUR = QColor("#b42318")


@dataclass(frozen=True)
class Entries:
    """Audit entries, with the full names of the people and patients they name."""

    rows: list[AuditRow]
    people: dict[str, str]  # user name -> full name
    patients: dict[str, str]  # patient id -> FAMILY, Given


def with_names(records: ClinicRecords, rows: list[AuditRow]) -> Entries:
    """``rows`` with the names of their people and patients (on the worker)."""
    people: dict[str, str] = {}
    for actor in {r.actor for r in rows}:
        user = records.user(actor)
        people[actor] = (user.full_name if user else "") or actor
    # A merged duplicate's entries show the name of the chart that holds them now.
    links = merged.pointers(records.db)
    chart_of = {p: merged.resolve(links, p) for r in rows if (p := r.patient)}
    ids = sorted(set(chart_of.values()))
    names: dict[str, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        for pid, family, given in records.db.query(
            f"SELECT id, family, given FROM patients WHERE id IN ({marks})", tuple(chunk)
        ):
            names[str(pid)] = f"{str(family).upper()}, {given}"
    patients = {p: names[c] for p, c in chart_of.items() if c in names}
    return Entries(rows, people, patients)


def audit_table(name: str, with_patient: bool) -> QTableWidget:
    """An empty table of audit entries (``with_patient``: a Patient column too)."""
    patient = ("Patient",) if with_patient else ()
    columns = ("When", "Person", "Workstation", "What", *patient, "Record", "Break-glass")
    return list_table(columns, name)


def fill(table: QTableWidget, entries: Entries, with_patient: bool) -> None:
    """Show ``entries`` in ``table`` (made by :func:`audit_table`); work done under a
    break-glass grant stands out."""
    table.setRowCount(len(entries.rows))
    for row, r in enumerate(entries.rows):
        person = entries.people.get(r.actor, r.actor)
        if r.actor != person:
            person = f"{person} ({r.actor})"
        # This workstation's entries all say so; its replica id is in the tooltip and CSV.
        here = r.workstation.startswith("this workstation")
        cells = [r.local_time, person, "This workstation" if here else r.workstation, r.description]
        if with_patient:
            cells.append(entries.patients.get(r.patient or "", r.patient or ""))
        cells += [f"{r.entity} {r.entity_id}", "Yes" if r.break_glass else ""]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, r.seq)
            if r.break_glass:
                item.setForeground(BREAK_GLASS_COLOUR)
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
                item.setToolTip(f"Done under break-glass opening {r.break_glass}")
            elif column == 2:
                item.setToolTip(r.workstation)
            table.setItem(row, column, item)

"""The table of audit entries shared by the chart's history and the clinic's audit log."""

from __future__ import annotations

from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from app.chart.cards import columns_in_sight, list_table
from core.records import merged
from core.records.audit_review import AuditRow, patients_of
from core.records.clinic import ClinicRecords

BREAK_GLASS_COLOUR = QColor("#b42318")
WHAT = 3  # the What column
WHAT_SHOWN = 20  # What's characters that show, at the least, before "…"


@dataclass(frozen=True)
class Entries:
    """Audit entries, with the full names of the people and patients they name."""

    rows: list[AuditRow]
    people: dict[str, str]  # user name -> full name (who acted, whose account it is)
    patients: dict[str, str]  # patient id -> FAMILY, Given
    about: dict[int, str] = field(default_factory=dict)  # entry seq -> its patient's id

    def patient_of(self, row: AuditRow) -> str:
        """The name of the patient ``row`` is about ("" for none; an unknown patient's id)."""
        patient = self.about.get(row.seq) or row.patient or ""
        return self.patients.get(patient, patient)


def with_names(records: ClinicRecords, rows: list[AuditRow]) -> Entries:
    """``rows`` with the names of their people and patients (on the worker): the patient
    of an entry about a note, visit, appointment or file is the one whose chart holds it."""
    people: dict[str, str] = {}
    accounts = {r.entity_id.removeprefix("user:") for r in rows if r.entity == "user"}
    for name in {r.actor for r in rows} | accounts:
        user = records.user(name)
        people[name] = (user.full_name if user else "") or name
    # A merged duplicate's entries show the name of the chart that holds them now.
    links = merged.pointers(records.db)
    about = patients_of(records.db, rows)
    chart_of = {p: merged.resolve(links, p) for p in set(about.values())}
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
    return Entries(rows, people, patients, about)


def record_text(r: AuditRow, people: dict[str, str]) -> str:
    """The Record column: the kind of record in words, a staff account by its person's
    name (the record's id is in the cell's tooltip)."""
    if r.entity != "user":
        return r.record
    name = r.entity_id.removeprefix("user:")
    full = people.get(name, name)
    return f"{r.record}: {full} ({name})" if full != name else f"{r.record}: {name}"


def audit_table(name: str, with_patient: bool) -> QTableWidget:
    """An empty table of audit entries (``with_patient``: a Patient column too)."""
    patient = ("Patient",) if with_patient else ()
    columns = ("When", "Person", "Workstation", "What", *patient, "Record", "Break-glass")
    table = list_table(columns, name)
    # One line a row, every column in sight: long text ends in "…", whole in its tooltip.
    table.setWordWrap(False)
    columns_in_sight(table, short=(0, len(columns) - 1))
    WhatFirst(table)
    return table


class WhatFirst(QObject):
    """What happened is read first: the What column is never narrower than its first
    :data:`WHAT_SHOWN` characters (nor than the long columns' equal share); Person,
    Workstation, Patient and Record share the rest. Shared equally, at 1024 wide What
    showed "Opened th…" and could not be read without its tooltip."""

    def __init__(self, table: QTableWidget) -> None:
        super().__init__(table)
        self.table = table
        table.horizontalHeader().setSectionResizeMode(WHAT, QHeaderView.ResizeMode.Fixed)
        table.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The list's visible width changed: size What again. Events go on."""
        if event.type() == QEvent.Type.Resize:
            self.fit()
        return False

    def fit(self) -> None:
        """Set What's width for the table's visible width (the stretched long columns
        take what is left)."""
        table, header = self.table, self.table.horizontalHeader()
        stretched = [
            c
            for c in range(table.columnCount())
            if header.sectionResizeMode(c) == QHeaderView.ResizeMode.Stretch
        ]
        short = sum(
            header.sectionSize(c)
            for c in range(table.columnCount())
            if c != WHAT and c not in stretched
        )
        share = (table.viewport().width() - short) // (len(stretched) + 1)
        # About WHAT_SHOWN characters and "…" in bold (break-glass rows are), the cell's
        # padding (10 px a side, the stylesheet's) and the style's text margins.
        bold = QFont(table.font())
        bold.setBold(True)
        least = QFontMetrics(bold).averageCharWidth() * (WHAT_SHOWN + 2) + 2 * 10 + 8
        width = max(share, least, header.sectionSizeHint(WHAT))
        if header.sectionSize(WHAT) != width:
            header.resizeSection(WHAT, width)


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
            cells.append(entries.patient_of(r))
        record = len(cells)
        cells += [record_text(r, entries.people), "Yes" if r.break_glass else ""]
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, r.seq)
            item.setToolTip(text)  # read whole where the column cuts it short
            if r.break_glass:
                item.setForeground(BREAK_GLASS_COLOUR)
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
                item.setToolTip(f"Done under break-glass opening {r.break_glass}")
            elif column == 2:
                item.setToolTip(r.workstation)
            elif column == record:
                item.setToolTip(f"{r.entity} {r.entity_id}")  # the id, as the CSV has it
            table.setItem(row, column, item)

"""Moving a clinic in: a patient list from a spreadsheet, checked, then registered.

:func:`plan_import` is the dry run: it reads every row (core/records/import_rows.py) and
looks each patient up, so the person importing sees every row that cannot be read and why,
and which patients are already here, before anything is written. :func:`run_import`
registers the rest through the one write path (``ClinicRecords.add_patient`` with the
duplicate check a registration makes, ``add_allergy``, "No known allergies"), in
``Database.batch`` transactions of :data:`BATCH_ROWS` rows, with a progress callback.

Re-running the same file adds nothing twice: a row whose MRN is already registered to the
same person, or whose person matches an existing patient under the registration's duplicate
rules (core/records/duplicates.py), is reported as already present. So an import stopped
half-way (a crash, a closed laptop) is finished by running it again.

The import is one audited batch: a ``patient.import`` entry when it starts and one when it
ends (the counts, no names), which only an admin may write; every registration keeps its
own entry (naming the import's id) and op, every allergy its own entry and op, as usual.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.records.allergy_status import AllergyRecords
from core.records.clinic import ClinicRecords
from core.records.csv_table import CsvTable
from core.records.duplicates import (
    DuplicatePatientError,
    describe,
    find_possible_duplicates,
    names_match,
)
from core.records.errors import NotAllowedError, ValidationError
from core.records.import_rows import (
    PatientRow,
    ReadOptions,
    RowProblem,
    check_mapping,
    read_row,
)
from core.records.models import PatientSummary
from core.store.database import Database

BATCH_ROWS = 200  # rows per transaction: few commits, and other threads wait little
IMPORT_ACTION = "patient.import"

Progress = Callable[[int, int], object]  # (rows done, rows in all)


@dataclass(frozen=True)
class AlreadyPresent:
    """A row whose patient is already registered: ``patient`` is the existing record."""

    row: int
    patient: PatientSummary
    why: str  # "same MRN" or "same name and birth date"

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"row": self.row, "patient_id": self.patient.id, "why": self.why}

    def __str__(self) -> str:
        return f"row {self.row}: already present ({self.why}): {describe(self.patient)}"


@dataclass
class ImportPlan:
    """The dry run's findings: rows to add, rows already present, rows with problems."""

    encoding: str
    rows: int  # data rows that are not blank
    to_add: list[PatientRow] = field(default_factory=list)
    already_present: list[AlreadyPresent] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "encoding": self.encoding,
            "rows": self.rows,
            "to_add": len(self.to_add),
            "already_present": [a.to_dict() for a in self.already_present],
            "problems": [p.to_dict() for p in self.problems],
        }


@dataclass
class ImportResult:
    """What the import did."""

    import_id: str
    added: int = 0
    allergies: int = 0
    already_present: list[AlreadyPresent] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    # Stopped on request between two batches: what was added is whole, the rest was not
    # attempted (``rows_left`` of the plan's rows to add).
    cancelled: bool = False
    rows_left: int = 0

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "import_id": self.import_id,
            "added": self.added,
            "allergies": self.allergies,
            "cancelled": self.cancelled,
            "rows_left": self.rows_left,
            "already_present": [a.to_dict() for a in self.already_present],
            "problems": [p.to_dict() for p in self.problems],
        }


def plan_import(
    records: ClinicRecords, table: CsvTable, mapping: Mapping[str, str], options: ReadOptions
) -> ImportPlan:
    """The dry run: read and check every row, find who is already registered. Writes nothing
    (a refusal aside: only an admin may import, and a refused attempt is audited)."""
    check_mapping(mapping)
    records.require(IMPORT_ACTION)
    plan = ImportPlan(table.encoding, 0)
    in_file: dict[str, list[PatientRow]] = {}  # birth date -> rows of this file
    mrns: dict[str, int] = {}
    mrn_column = next((c for c, f in mapping.items() if f == "mrn"), "")
    for index, cells in enumerate(table.rows):
        if not any(cell.strip() for cell in cells):
            continue
        plan.rows += 1
        read = read_row(index, cells, table.header, mapping, options)
        if isinstance(read, list):
            plan.problems.extend(read)
            continue
        if read.mrn is not None and read.mrn.casefold() in mrns:
            seen = mrns[read.mrn.casefold()]
            plan.problems.append(
                RowProblem(read.row, mrn_column, read.mrn, f"row {seen} has this MRN too")
            )
            continue
        twin = next((r for r in in_file.get(read.birth_date, []) if _same_person(r, read)), None)
        if twin is not None:
            plan.problems.append(
                RowProblem(read.row, "", "", f"the same patient as row {twin.row}")
            )
            continue
        try:
            present = find_present(records.db, read)
        except ValidationError as exc:
            plan.problems.append(RowProblem(read.row, mrn_column, read.mrn or "", _reason(exc)))
            continue
        if read.mrn is not None:
            mrns[read.mrn.casefold()] = read.row  # as registration: case makes no other MRN
        in_file.setdefault(read.birth_date, []).append(read)
        if present is not None:
            plan.already_present.append(present)
        else:
            plan.to_add.append(read)
    return plan


def _same_person(a: PatientRow, b: PatientRow) -> bool:
    return a.birth_date == b.birth_date and names_match(a.family, a.given, b.family, b.given)


def _reason(exc: ValidationError) -> str:
    return str(exc).removeprefix(f"{exc.field}: ")


def find_present(db: Database, row: PatientRow) -> AlreadyPresent | None:
    """The registered patient this row is, if any: by MRN (which must then be the same
    person: ValidationError otherwise), else by the registration's duplicate rules."""
    if row.mrn is not None:
        found = db.query(
            "SELECT id, family, given, birth_date, mrn, sex FROM patients "
            "WHERE mrn = ? COLLATE NOCASE",  # MRNs differ by more than letter case
            (row.mrn,),
        )
        if found:
            patient = PatientSummary(*found[0])
            if patient.birth_date == row.birth_date and names_match(
                row.family, row.given, patient.family, patient.given
            ):
                return AlreadyPresent(row.row, patient, "same MRN")
            raise ValidationError("mrn", f"is already used by {describe(patient)}")
    matches = find_possible_duplicates(db, row.family, row.given, row.birth_date)
    if matches:
        return AlreadyPresent(row.row, matches[0], "same name and birth date")
    return None


def run_import(
    records: ClinicRecords,
    plan: ImportPlan,
    on_progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
    stop: Callable[[], bool] | None = None,
) -> ImportResult:
    """Register the plan's patients (see the module docstring); rows found present since the
    dry run are reported as such, not added. NotAllowedError if the signed-in person is not
    an admin, or (for a list with allergies) neither a nurse nor a clinician.

    ``stop`` is asked before each batch: once it says so the import ends there (each batch
    is one transaction, so nothing is half-written), ``cancelled`` set and the ended audit
    entry saying so; importing the same file again adds the rest."""
    result = ImportResult(uuid.uuid4().hex)
    result.already_present.extend(plan.already_present)
    result.problems.extend(plan.problems)
    needs_clinical = any(r.allergies or r.no_known_allergies for r in plan.to_add)
    if needs_clinical and not (records.may("clinician") or records.may("nurse")):
        raise NotAllowedError(
            "Only an admin who is also a nurse or a clinician can import allergies: "
            "map the allergies column to 'ignore', or ask such a colleague"
        )
    started = {"import_id": result.import_id, "stage": "started", "rows": plan.rows}
    with records.db.write(records.actor, IMPORT_ACTION, "clinic", "clinic", started):
        pass
    nka = AllergyRecords(records)
    total = len(plan.to_add)
    try:
        for start in range(0, total, batch_rows):
            if stop is not None and stop():
                result.cancelled, result.rows_left = True, total - start
                break
            with records.db.batch():
                for row in plan.to_add[start : start + batch_rows]:
                    _import_row(records, nka, row, result)
            if on_progress is not None:
                on_progress(min(start + batch_rows, total), total)
    finally:
        ended = {
            "import_id": result.import_id,
            "stage": "ended",
            "added": result.added,
            "allergies": result.allergies,
            "already_present": len(result.already_present),
            "problem_rows": len({p.row for p in result.problems}),
            "cancelled": result.cancelled,
        }
        with records.db.write(records.actor, IMPORT_ACTION, "clinic", "clinic", ended):
            pass
    return result


def _import_row(
    records: ClinicRecords, nka: AllergyRecords, row: PatientRow, result: ImportResult
) -> None:
    try:
        present = find_present(records.db, row)
    except ValidationError as exc:
        result.problems.append(RowProblem(row.row, "", row.mrn or "", _reason(exc)))
        return
    if present is not None:
        result.already_present.append(present)
        return
    try:
        patient = records.add_patient(
            row.family, row.given, row.birth_date, row.sex, row.mrn, row.phone,
            allow_duplicate=False, audit_details={"import_id": result.import_id},
        )  # fmt: skip
    except DuplicatePatientError as exc:  # registered elsewhere since the lookup
        result.already_present.append(
            AlreadyPresent(row.row, exc.matches[0], "same name and birth date")
        )
        return
    result.added += 1
    for allergy in row.allergies:
        records.add_allergy(patient.id, allergy.substance, allergy.reaction, allergy.severity)
        result.allergies += 1
    if row.no_known_allergies:
        nka.record_no_known_allergies(patient.id)

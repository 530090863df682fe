"""Turning a spreadsheet row into a patient: the column mapping, birth-date formats, and the
checks the registration form makes, with every problem named (row, column, value, reason).

Dates are never guessed. ``01/02/1984`` is 1 February in one clinic and 2 January in the
next, so the person importing chooses the file's format (:data:`DATE_FORMATS`) and a date
that does not read under it is a problem of its row. A two-digit year is refused unless a
pivot is given: with pivot 30, ``29`` is 2029 and ``30`` is 1930 (a birth date in the
future is refused anyway).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.records import validation as v
from core.records.allergy_cells import AllergyCell, read_allergies
from core.records.csv_table import CsvTable
from core.records.errors import RecordError, ValidationError

# What a column can become; IGNORE leaves it out.
FIELDS = ("family", "given", "birth_date", "sex", "phone", "mrn", "allergies")
IGNORE = "ignore"
REQUIRED = ("family", "given", "birth_date")
FIELD_LABELS = {
    "family": "Family name",
    "given": "Given name",
    "birth_date": "Birth date",
    "sex": "Sex",
    "phone": "Phone",
    "mrn": "MRN",
    "allergies": "Allergies",
    IGNORE: "(ignore)",
}

# Header words clinics use, folded (lower case, letters and digits only) -> field.
_SYNONYMS = {
    "family": ("family", "familyname", "surname", "lastname", "last", "nom", "apellido"),
    "given": ("given", "givenname", "firstname", "first", "forename", "prenom", "nombre"),
    "birth_date": (
        "birthdate",
        "dateofbirth",
        "dob",
        "born",
        "birthday",
        "datenaissance",
        "datedenaissance",
    ),
    "sex": ("sex", "gender", "sexe"),
    "phone": ("phone", "telephone", "tel", "mobile", "phonenumber", "cell"),
    "mrn": (
        "mrn",
        "medicalrecordnumber",
        "recordnumber",
        "patientid",
        "chartnumber",
        "chartno",
        "chart",
        "patientno",
        "patientnumber",
        "recordno",
        "fileno",
        "filenumber",
        "hospitalnumber",
        "hospitalno",
        "id",
        "dossier",
        "ndossier",
    ),
    "allergies": ("allergies", "allergy", "allergens", "knownallergies"),
}

DATE_FORMATS = ("YYYY-MM-DD", "DD/MM/YYYY", "MM/DD/YYYY")
_YEAR_FIRST = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_YEAR_LAST = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})$")

# Spreadsheet spellings of the form's sex values (the form's own words pass as they are).
_SEX_WORDS = {"f": "female", "m": "male", "o": "other", "u": "unknown", "w": "female"}


class MappingError(RecordError):
    """The column mapping cannot work (the message names the column or field)."""


def _fold(name: str) -> str:
    """``Prénom`` -> ``prenom``, ``D.O.B.`` -> ``dob``: letters and digits, no accents."""
    bare = unicodedata.normalize("NFKD", name.lower())
    return re.sub(r"[^a-z0-9]", "", "".join(c for c in bare if not unicodedata.combining(c)))


def suggest_mapping(header: Sequence[str]) -> dict[str, str]:
    """Column name -> field, guessed from the header; unrecognised columns are ignored, and a
    field is given to its first matching column only."""
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for column in header:
        folded = _fold(column)
        found = next(
            (f for f, words in _SYNONYMS.items() if folded in words and f not in taken), IGNORE
        )
        if found != IGNORE:
            taken.add(found)
        mapping[column] = found
    return mapping


def override_mapping(
    mapping: Mapping[str, str], header: Sequence[str], overrides: Sequence[str]
) -> dict[str, str]:
    """``mapping`` changed by ``COLUMN=FIELD`` overrides (``--map``); a field given to a new
    column is taken from the column that had it."""
    result = dict(mapping)
    for item in overrides:
        column, sep, target = item.partition("=")
        column, target = column.strip(), target.strip()
        if not sep or not column or not target:
            raise MappingError(f"{item!r} is not COLUMN=FIELD")
        if column not in header:
            raise MappingError(f"the file has no column {column!r}; it has {', '.join(header)}")
        if target not in (*FIELDS, IGNORE):
            raise MappingError(f"{target!r} is not one of {', '.join((*FIELDS, IGNORE))}")
        if target != IGNORE:
            for other, had in result.items():
                if had == target:
                    result[other] = IGNORE
        result[column] = target
    return result


def check_mapping(mapping: Mapping[str, str]) -> None:
    """Refuse a mapping that lacks a required field or gives one field two columns."""
    used = [f for f in mapping.values() if f != IGNORE]
    missing = [FIELD_LABELS[f] for f in REQUIRED if f not in used]
    if missing:
        raise MappingError(f"no column is mapped to {', '.join(missing)}")
    twice = sorted({f for f in used if used.count(f) > 1})
    if twice:
        raise MappingError(f"more than one column is mapped to {', '.join(twice)}")


@dataclass(frozen=True)
class ReadOptions:
    """How cells are read: the date format, the allergy separator, the two-digit-year pivot."""

    date_format: str = "YYYY-MM-DD"
    allergy_separator: str = ";"
    year_pivot: int | None = None  # None: a two-digit year is a problem

    def __post_init__(self) -> None:
        if self.date_format not in DATE_FORMATS:
            raise MappingError(
                f"{self.date_format!r} is not a date format; use one of {', '.join(DATE_FORMATS)}"
            )
        if not self.allergy_separator:
            raise MappingError("the allergy separator is empty")
        if self.year_pivot is not None and not 0 <= self.year_pivot <= 99:
            raise MappingError("the two-digit-year pivot must be between 0 and 99")


@dataclass(frozen=True)
class RowProblem:
    """Why a row cannot be imported: its spreadsheet row, the column, the value, the reason."""

    row: int
    column: str
    value: str
    reason: str

    def to_dict(self) -> dict[str, object]:
        """For ``--json``."""
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}

    def __str__(self) -> str:
        where = f"row {self.row}" + (f", column {self.column!r}" if self.column else "")
        value = f": {self.value!r}" if self.value else ""
        return f"{where}{value}: {self.reason}"


@dataclass(frozen=True)
class PatientRow:
    """One row, read and checked as the registration form checks it."""

    row: int
    family: str
    given: str
    birth_date: str
    sex: str | None = None
    phone: str | None = None
    mrn: str | None = None
    allergies: tuple[AllergyCell, ...] = field(default=())
    no_known_allergies: bool = False


def read_date(value: str, date_format: str, year_pivot: int | None = None) -> str:
    """``value`` in ``date_format`` as ``YYYY-MM-DD`` (checked as a birth date), or
    ValidationError saying why not."""
    raw = value.strip()
    if date_format == "YYYY-MM-DD":
        found = _YEAR_FIRST.match(raw)
        if found is None:
            raise ValidationError("birth_date", f"is not a date in the format {date_format}")
        year, month, day = found.groups()
    else:
        found = _YEAR_LAST.match(raw)
        if found is None:
            raise ValidationError("birth_date", f"is not a date in the format {date_format}")
        first, second, year = found.groups()
        day, month = (first, second) if date_format == "DD/MM/YYYY" else (second, first)
        if len(year) == 2:
            if year_pivot is None:
                raise ValidationError(
                    "birth_date", "has a two-digit year: give the whole year, or a pivot"
                )
            year = ("20" if int(year) < year_pivot else "19") + year
    normalised = f"{year}-{int(month):02d}-{int(day):02d}"
    try:
        return v.birth_date(normalised)
    except ValidationError as exc:
        # The reason quotes the cell as the file has it, which the person can find there.
        reason = str(exc).removeprefix("birth_date: ").replace(normalised, raw)
        raise ValidationError("birth_date", reason) from None


def _sex(value: str) -> str | None:
    cleaned = value.strip().lower()
    return v.sex(_SEX_WORDS.get(cleaned, cleaned))


def read_row(
    index: int, cells: Sequence[str], header: Sequence[str], mapping: Mapping[str, str],
    options: ReadOptions,
) -> PatientRow | list[RowProblem]:  # fmt: skip
    """Data row ``index`` as a patient, or every problem it has."""
    number = CsvTable.row_number(index)
    problems: list[RowProblem] = []
    if len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
        problems.append(
            RowProblem(number, "", "", f"has {len(cells)} cells, the header {len(header)}")
        )
    values: dict[str, str] = {}
    columns: dict[str, str] = {}
    for position, column in enumerate(header):
        target = mapping.get(column, IGNORE)
        if target != IGNORE:
            values[target] = cells[position] if position < len(cells) else ""
            columns[target] = column
    read: dict[str, Any] = {}
    for target, raw in values.items():
        try:
            read[target] = _read_cell(target, raw, options)
        except ValidationError as exc:
            reason = str(exc).removeprefix(f"{exc.field}: ")
            problems.append(RowProblem(number, columns[target], raw, reason))
    if problems:
        return problems
    allergies = read.pop("allergies", ())
    nka = allergies is None
    return PatientRow(number, **read, allergies=allergies or (), no_known_allergies=nka)


def _read_cell(target: str, raw: str, options: ReadOptions) -> Any:
    if target in ("family", "given"):
        return v.text(target, raw)
    if target == "birth_date":
        if not raw.strip():
            raise ValidationError("birth_date", "is required")
        return read_date(raw, options.date_format, options.year_pivot)
    if target == "sex":
        return _sex(raw)
    if target == "phone":
        return v.phone_number("phone", raw)
    if target == "mrn":
        return v.mrn(raw)
    return read_allergies(raw, options.allergy_separator)

"""A spreadsheet row becomes a patient only as the registration form would accept it, and
dates are read in the format the person chose, never guessed."""

from __future__ import annotations

import pytest

from core.records.allergy_cells import AllergyCell
from core.records.errors import ValidationError
from core.records.import_rows import (
    IGNORE,
    MappingError,
    PatientRow,
    ReadOptions,
    RowProblem,
    check_mapping,
    override_mapping,
    read_date,
    read_row,
    suggest_mapping,
)

HEADER = ["Last Name", "First name", "D.O.B.", "Gender", "Tel", "MRN", "Allergies", "Notes"]
MAPPING = suggest_mapping(HEADER)


def test_columns_are_mapped_from_the_names_clinics_use() -> None:
    assert MAPPING == {
        "Last Name": "family", "First name": "given", "D.O.B.": "birth_date", "Gender": "sex",
        "Tel": "phone", "MRN": "mrn", "Allergies": "allergies", "Notes": IGNORE,
    }  # fmt: skip


@pytest.mark.parametrize(
    "heading", ["Chart no", "Chart No.", "Chart number", "Patient no", "Patient number", "File no"]
)
def test_a_chart_or_patient_number_column_is_the_mrn(heading: str) -> None:
    assert suggest_mapping(["Surname", "Forename", "DOB", heading])[heading] == "mrn"


def test_a_bad_date_is_quoted_as_the_file_has_it() -> None:
    with pytest.raises(ValidationError) as refused:
        read_date("31/02/1990", "DD/MM/YYYY")
    assert "'31/02/1990'" in str(refused.value) and "1990-02-31" not in str(refused.value)


def test_an_override_moves_a_field_and_bad_overrides_are_named() -> None:
    moved = override_mapping(MAPPING, HEADER, ["Notes=phone"])
    assert (moved["Notes"], moved["Tel"]) == ("phone", IGNORE)
    with pytest.raises(MappingError, match="no column 'Surname'"):
        override_mapping(MAPPING, HEADER, ["Surname=family"])
    with pytest.raises(MappingError, match="'nickname' is not one of"):
        override_mapping(MAPPING, HEADER, ["Notes=nickname"])
    with pytest.raises(MappingError, match="not COLUMN=FIELD"):
        override_mapping(MAPPING, HEADER, ["Notes"])
    with pytest.raises(MappingError, match="no column is mapped to Birth date"):
        check_mapping(override_mapping(MAPPING, HEADER, ["D.O.B.=ignore"]))


@pytest.mark.parametrize(
    ("value", "date_format", "expected"),
    [
        ("1984-03-02", "YYYY-MM-DD", "1984-03-02"),
        ("1984/3/2", "YYYY-MM-DD", "1984-03-02"),
        ("02/03/1984", "DD/MM/YYYY", "1984-03-02"),
        ("2.3.1984", "DD/MM/YYYY", "1984-03-02"),
        ("02/03/1984", "MM/DD/YYYY", "1984-02-03"),  # the same cell, the other format
        ("12-31-1990", "MM/DD/YYYY", "1990-12-31"),
    ],
)
def test_dates_read_in_the_chosen_format(value: str, date_format: str, expected: str) -> None:
    assert read_date(value, date_format) == expected


@pytest.mark.parametrize(
    ("value", "date_format", "reason"),
    [
        ("31/12/1990", "MM/DD/YYYY", "there is no month 31"),
        ("1990-12-31", "DD/MM/YYYY", "not a date in the format DD/MM/YYYY"),
        ("02/03/1984", "YYYY-MM-DD", "not a date in the format YYYY-MM-DD"),
        ("29/02/1985", "DD/MM/YYYY", "February 1985 has 28 days"),
        ("02/03/84", "DD/MM/YYYY", "two-digit year"),
        ("01/01/2999", "DD/MM/YYYY", "in the future"),
        ("March 2 1984", "DD/MM/YYYY", "not a date"),
    ],
)
def test_a_date_that_does_not_read_is_refused(value: str, date_format: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        read_date(value, date_format)


def test_two_digit_years_read_only_with_a_pivot() -> None:
    assert read_date("02/03/84", "DD/MM/YYYY", year_pivot=30) == "1984-03-02"
    assert read_date("02/03/07", "DD/MM/YYYY", year_pivot=30) == "2007-03-02"
    with pytest.raises(MappingError, match="between 0 and 99"):
        ReadOptions(year_pivot=100)


def test_a_good_row_becomes_a_patient() -> None:
    cells = [
        "Okafor",
        "Chinedu",
        "1990-12-31",
        "M",
        "555 0101",
        "A-1",
        "peanut; latex;;peanut",
        "x",
    ]
    assert read_row(0, cells, HEADER, MAPPING, ReadOptions()) == PatientRow(
        2, "Okafor", "Chinedu", "1990-12-31", "male", "555 0101", "A-1",
        (AllergyCell("peanut"), AllergyCell("latex")),
    )  # fmt: skip


def test_an_allergy_brings_its_reaction_and_severity() -> None:
    cell = "Penicillin (rash, SEVERE); latex; aspirin (wheeze, hives); sulfa (mild)"
    cells = ["Okafor", "Chinedu", "1990-12-31", "", "", "", cell, ""]
    row = read_row(0, cells, HEADER, MAPPING, ReadOptions())
    assert isinstance(row, PatientRow)
    assert row.allergies == (
        AllergyCell("Penicillin", "rash", "severe"),
        AllergyCell("latex"),
        AllergyCell("aspirin", "wheeze, hives"),
        AllergyCell("sulfa", None, "mild"),
    )


def test_a_comma_separator_does_not_split_inside_brackets() -> None:
    cells = ["Okafor", "Chinedu", "1990-12-31", "", "", "", "penicillin (rash, severe), latex", ""]
    row = read_row(0, cells, HEADER, MAPPING, ReadOptions(allergy_separator=","))
    assert isinstance(row, PatientRow)
    assert row.allergies == (AllergyCell("penicillin", "rash", "severe"), AllergyCell("latex"))


@pytest.mark.parametrize(
    ("cell", "why"),
    [
        ("penicillin (rash", "'penicillin (rash' has a '(' without its ')'"),
        ("penicillin rash)", "'penicillin rash)' has a ')' without its '('"),
        ("(rash, severe)", "'(rash, severe)' gives a reaction or severity but no substance"),
        ("penicillin (mild, severe)", "'penicillin (mild, severe)' gives two severities"),
        ("penicillin (rash) daily", "'penicillin (rash) daily' has text after its ')'"),
        ("penicillin (rash (bad))", "has brackets inside its brackets"),
    ],
)
def test_an_allergy_that_cannot_be_read_is_a_problem_of_its_row(cell: str, why: str) -> None:
    cells = ["Okafor", "Chinedu", "1990-12-31", "", "", "", f"latex; {cell}", ""]
    [problem] = read_row(0, cells, HEADER, MAPPING, ReadOptions())  # type: ignore[misc]
    assert (problem.row, problem.column, problem.value) == (2, "Allergies", f"latex; {cell}")
    assert why in problem.reason


@pytest.mark.parametrize(
    ("cell", "first", "second"),
    [
        # The severe entry second: keeping the first recorded a mild rash only.
        ("penicillin (rash, mild); Penicillin (anaphylaxis, severe)",
         "penicillin (rash, mild)", "Penicillin (anaphylaxis, severe)"),
        ("latex; penicillin; PENICILLIN (hives)", "penicillin", "PENICILLIN (hives)"),
        ("sulfa (rash, moderate); sulfa (rash, severe)",
         "sulfa (rash, moderate)", "sulfa (rash, severe)"),
    ],
)  # fmt: skip
def test_a_substance_named_twice_with_other_details_is_a_problem_of_its_row(
    cell: str, first: str, second: str
) -> None:
    cells = ["Evans", "Eve", "1955-03-03", "", "", "", cell, ""]
    [problem] = read_row(0, cells, HEADER, MAPPING, ReadOptions())  # type: ignore[misc]
    assert (problem.row, problem.column, problem.value) == (2, "Allergies", cell)
    substance = second.split(" (")[0]
    assert f"names {substance} twice, with different details" in problem.reason
    assert f"{first!r} and {second!r}" in problem.reason


def test_a_substance_repeated_exactly_is_one_allergy() -> None:
    cell = "penicillin (rash, severe); latex; Penicillin (Rash, SEVERE); penicillin (severe, rash)"
    cells = ["Evans", "Eve", "1955-03-03", "", "", "", cell, ""]
    row = read_row(0, cells, HEADER, MAPPING, ReadOptions())
    assert isinstance(row, PatientRow)
    assert row.allergies == (AllergyCell("penicillin", "rash", "severe"), AllergyCell("latex"))


def test_no_known_allergies_is_an_answer_not_a_substance() -> None:
    cells = ["Okafor", "Chinedu", "1990-12-31", "", "", "", "NKDA", ""]
    row = read_row(0, cells, HEADER, MAPPING, ReadOptions())
    assert isinstance(row, PatientRow) and row.no_known_allergies and row.allergies == ()


def test_every_problem_of_a_row_is_named() -> None:
    cells = ["", "Chinedu", "31/12/1990", "robot", "555-O101", "A 1", "none; peanut", ""]
    problems = read_row(3, cells, HEADER, MAPPING, ReadOptions())
    assert problems == [
        RowProblem(5, "Last Name", "", "is required"),
        RowProblem(5, "D.O.B.", "31/12/1990", "is not a date in the format YYYY-MM-DD"),
        RowProblem(5, "Gender", "robot", "'robot' is not one of female, male, other, unknown"),
        RowProblem(
            5,
            "Tel",
            "555-O101",
            "'555-O101' holds the letter O where a digit goes (type 0 for a zero)",
        ),
        RowProblem(5, "MRN", "A 1", "'A 1' is not a valid medical record number"),
        RowProblem(5, "Allergies", "none; peanut", "lists allergies and says there are none"),
    ]
    assert str(problems[1]) == (
        "row 5, column 'D.O.B.': '31/12/1990': is not a date in the format YYYY-MM-DD"
    )


def test_a_short_row_is_read_and_a_long_one_is_a_problem() -> None:
    short = read_row(0, ["Okafor", "Chinedu", "1990-12-31"], HEADER, MAPPING, ReadOptions())
    assert isinstance(short, PatientRow) and short.mrn is None
    long = read_row(0, ["Okafor", "Chinedu", "1990-12-31", *[""] * 5, "extra"], HEADER,
                    MAPPING, ReadOptions())  # fmt: skip
    assert long == [RowProblem(2, "", "", "has 9 cells, the header 8")]

"""Spreadsheets saved as CSV are read whatever Excel chose: UTF-8 with or without its BOM,
Windows-1252, commas, semicolons or tabs; a file that is not a table is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.records.csv_table import UTF8, UTF8_BOM, WINDOWS_1252, CsvFileError, parse, read

ROWS = [["Family", "Given", "DOB"], ["Lefèvre", "Zoé", "1984-03-02"]]


def _text(delimiter: str = ",") -> str:
    return "\r\n".join(delimiter.join(row) for row in ROWS) + "\r\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (_text().encode("utf-8"), UTF8),
        (b"\xef\xbb\xbf" + _text().encode("utf-8"), UTF8_BOM),
        (_text().encode("cp1252"), WINDOWS_1252),
    ],
)
def test_the_encoding_is_found_and_named(data: bytes, encoding: str) -> None:
    table = parse(data)
    assert table.encoding == encoding
    assert table.header == ROWS[0]  # no BOM left on the first column's name
    assert table.rows == [ROWS[1]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_sniffed(delimiter: str) -> None:
    table = parse(_text(delimiter).encode())
    assert (table.delimiter, table.header, table.rows) == (delimiter, ROWS[0], [ROWS[1]])


def test_quoted_cells_keep_their_separators_and_line_breaks() -> None:
    table = parse(b'Family,Given,Allergies\n"Smith, Jr",Ann,"peanut;\nlatex"\n')
    assert table.rows == [["Smith, Jr", "Ann", "peanut;\nlatex"]]


def test_blank_rows_keep_the_spreadsheet_row_numbers() -> None:
    table = parse(b"Family,Given\nA,B\n,\nC,D\n")
    assert [table.row_number(i) for i, row in enumerate(table.rows) if row[0] == "C"] == [4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\xef\xbb\xbfFamily\n\xff\xfe\n", "starts as UTF-8"),
        (b"Family,\x81\x8d\n", "neither UTF-8 nor Windows-1252"),  # bytes 1252 leaves unused
        (b"Name,Name\nA,B\n", "two columns are named 'Name'"),
        (b",,\nA,B,C\n", r"column names\) is empty"),
    ],
)
def test_a_file_that_is_not_a_table_is_refused_by_name(data: bytes, message: str) -> None:
    with pytest.raises(CsvFileError, match=message):
        parse(data)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CsvFileError, match=r"cannot read .*nope\.csv"):
        read(tmp_path / "nope.csv")


def test_semicolons_inside_cells_do_not_fool_the_sniffer() -> None:
    data = (
        b"Family,Given,DOB,Allergies\nSmith,Ann,1970-01-01,peanut;latex;egg\nLee,Bo,1980-02-02,\n"
    )
    table = parse(data)
    assert table.delimiter == ","
    assert table.rows[0] == ["Smith", "Ann", "1970-01-01", "peanut;latex;egg"]

"""Reading a spreadsheet saved as CSV, the way clinics save them.

The encoding is UTF-8 (with or without the byte-order mark Excel writes), else
Windows-1252 (what Excel on Windows writes for "CSV" in Western locales); the table says
which it used, so a person can tell when accents look wrong. The dialect (comma, semicolon,
tab or bar; quoting) is sniffed by the standard library's ``csv.Sniffer``. The first row is
the header. Only the standard library is used: nothing here runs code from the file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from core.errors import CarelineError

UTF8_BOM = "UTF-8 with BOM"
UTF8 = "UTF-8"
WINDOWS_1252 = "Windows-1252"
_DELIMITERS = ",;\t|"
_SAMPLE_CHARS = 64 * 1024
MAX_BYTES = 200 * 1024 * 1024  # a patient list, not a database dump


class CsvFileError(CarelineError):
    """The file cannot be read as a table (named in the message)."""


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's header and data rows; ``rows[i]`` is the file's row ``i + 2``."""

    header: list[str]
    rows: list[list[str]]
    encoding: str  # UTF8_BOM, UTF8 or WINDOWS_1252
    delimiter: str

    @staticmethod
    def row_number(index: int) -> int:
        """The spreadsheet row of data row ``index`` (the header is row 1)."""
        return index + 2


def decode(data: bytes) -> tuple[str, str]:
    """``(text, encoding name)``: UTF-8 (BOM or not), else Windows-1252."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), UTF8_BOM
        except UnicodeDecodeError as exc:
            raise CsvFileError(
                f"the file starts as UTF-8 but byte {exc.start + 3} is not"
            ) from None
    try:
        return data.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), WINDOWS_1252
    except UnicodeDecodeError as exc:
        raise CsvFileError(
            f"the file is neither UTF-8 nor Windows-1252 (byte {exc.start} is 0x"
            f"{data[exc.start]:02x}): save it from the spreadsheet as 'CSV UTF-8'"
        ) from None


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:_SAMPLE_CHARS], delimiters=_DELIMITERS)
    except csv.Error:  # one column, or too regular to tell: a plain comma file
        return csv.excel


def parse(data: bytes) -> CsvTable:
    """The table in ``data`` (a whole CSV file); CsvFileError names what is wrong."""
    text, encoding = decode(data)
    if not text.strip():
        raise CsvFileError("the file is empty")
    dialect = _dialect(text)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), dialect)
        header = [cell.strip() for cell in next(reader)]
        rows = list(reader)  # blank rows kept, so row numbers stay the spreadsheet's
    except csv.Error as exc:
        raise CsvFileError(f"the file is not a readable CSV table: {exc}") from None
    if not any(header):
        raise CsvFileError("the first row (the column names) is empty")
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise CsvFileError(f"two columns are named {name!r}: rename one in the spreadsheet")
        seen.add(name)
    return CsvTable(header, rows, encoding, str(dialect.delimiter))


def read(path: Path) -> CsvTable:
    """Read the CSV file at ``path`` (see :func:`parse`)."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise CsvFileError(f"{path} is {size:,} bytes, more than a patient list should be")
        data = path.read_bytes()
    except OSError as exc:
        raise CsvFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse(data)

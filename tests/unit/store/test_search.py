"""Search terms and name folding agree with what the index holds."""

from __future__ import annotations

import os

import pytest

from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database
from core.store.search import NAME_JOINERS, fold_name, fts_prefix_query


@pytest.fixture
def records() -> ClinicRecords:
    db = Database.in_memory(SecureMemory.from_bytes(bytearray(os.urandom(32))))
    return ClinicRecords(db, "t")


@pytest.mark.parametrize("mark", list(NAME_JOINERS))
def test_the_index_drops_the_same_marks_as_fold_name(records: ClinicRecords, mark: str) -> None:
    """Migration V2's SQL and ``fold_name`` must leave out the same characters, or a name
    written with one of them would be found by one and not the other."""
    p = records.add_patient(f"O{mark}Brien", "Ann", "1970-01-01")
    assert fold_name(p.family) == "obrien"
    assert [x.id for x in records.search_patients("obrien")] == [p.id]


def test_case_accents_and_marks_do_not_matter(records: ClinicRecords) -> None:
    jose = records.add_patient("Ramírez", "José", "1970-01-01")
    obrien = records.add_patient("OBrien", "Ann", "1980-01-01")  # entered without the mark
    jean = records.add_patient("Dupont", "Jean-Luc", "1990-01-01")
    for text, found in (
        ("jose", jose), ("JOSÉ ramirez", jose), ("ramir", jose),
        ("o'brien", obrien), ("o brien", obrien), ("obrien ann", obrien),
        ("jeanluc", jean), ("jean-luc", jean), ("jean luc dupont", jean),
    ):  # fmt: skip
        assert [p.id for p in records.search_patients(text)] == [found.id], text


def test_fold_name() -> None:
    assert fold_name("O'Brien") == fold_name("o brien") == fold_name("OBRIEN") == "obrien"
    assert fold_name("José") == fold_name("Jose\u0301") == "jose"
    assert fold_name("Jean-Luc") == "jeanluc"
    assert fold_name("STRAßE") == "strasse"


def test_query_quotes_every_term() -> None:
    assert fts_prefix_query("smi") == '"smi"*'
    assert fts_prefix_query("o'brien") == '("o"* "brien"*) OR names : "obrien"*'
    assert fts_prefix_query('smi OR "jones" NEAR(') == (
        '("smi"* "OR"* "jones"* "NEAR"*) OR names : "smiORjonesNEAR"*'
    )
    assert fts_prefix_query(" -'. ") is None


def test_words_joined_by_an_underscore_are_searched_as_two_words(records: ClinicRecords) -> None:
    """The index splits ``Smith_Jones`` into two words; the query must too (a quoted term
    the index splits would be a phrase, which the index does not answer)."""
    p = records.add_patient("Smith_Jones", "Ann", "1970-01-01")
    records.add_patient("Smith", "Bo", "1970-01-01")
    assert fts_prefix_query("smith_jo") == '("smith"* "jo"*) OR names : "smithjo"*'
    for text in ("smith_jones", "smith_jo", "jones smith", "smith_jones ann"):
        assert [x.id for x in records.search_patients(text)] == [p.id], text


def test_the_index_stores_no_positions_and_no_token_counts(records: ClinicRecords) -> None:
    """Migration V14: columns per term, no positions (detail=column), no per-row sizes
    (columnsize=0); the prefix indexes that keep short prefixes fast stay."""
    [(sql,)] = records.db.query("SELECT sql FROM sqlite_master WHERE name = 'patients_fts'")
    assert "detail = column" in sql and "columnsize = 0" in sql and "prefix = '1 2 3'" in sql
    tables = {r[0] for r in records.db.query("SELECT name FROM sqlite_master")}
    assert "patients_fts_docsize" not in tables

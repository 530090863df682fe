"""Search terms and name folding agree with what the index holds."""

from __future__ import annotations

import os

import pytest

from core.crypto.secure_memory import SecureMemory
from core.records.clinic import ClinicRecords
from core.store.database import Database
from core.store.search import (
    FOLDED_LETTERS,
    NAME_JOINERS,
    date_words,
    fold_letters,
    fold_name,
    fts_prefix_query,
    search_names,
)


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
    # Letters with a stroke, and two letters joined, are no accented letters to Unicode.
    assert fold_name("ØDEGÅRD") == fold_name("Ødegård") == fold_name("odegard") == "odegard"
    assert fold_name("Małgorzata") == "malgorzata" and fold_name("ŁUKASZ") == "lukasz"
    assert fold_name("Søren") == "soren" and fold_name("Æsa") == "aesa"
    assert fold_name("Œuvray") == "oeuvray" and fold_name("Đorđević") == "dordevic"
    assert fold_name("Þóra") == "thora" and fold_name("Ħal") == "hal"
    assert fold_name("Yıldız") == "yildiz" and fold_name("Ŧ") == "t"


def test_fold_letters_keeps_accents_and_case_for_the_tokenizer() -> None:
    assert fold_letters("ØDEGÅRD Åse") == "ODEGÅRD Åse"
    assert fold_letters("Łukasz Æsa straße") == "Lukasz AEsa strasse"


@pytest.mark.parametrize(("letter", "plain"), sorted(FOLDED_LETTERS.items()))
def test_the_index_folds_the_same_letters_as_search(
    records: ClinicRecords, letter: str, plain: str
) -> None:
    """Migration V21's SQL and ``FOLDED_LETTERS`` must fold the same letters the same way,
    or a name written with one would be found by one spelling and not the other."""
    p = records.add_patient(f"Ka{letter}rn", "Ann", "1970-01-01")
    assert fold_name(p.family) == f"ka{plain}rn".casefold()
    for typed in (f"ka{letter}rn", f"ka{plain}rn", f"KA{plain.upper()}", f"ka{letter}rn ann"):
        assert [x.id for x in records.search_patients(typed)] == [p.id], typed
        # The walk a broad search takes reads the index's own view alike.
        assert [x.id for x in records.search_patients(typed, broad_at=0)] == [p.id], typed


def test_a_name_with_a_stroke_or_joined_letters_is_found_without_them(
    records: ClinicRecords,
) -> None:
    """The tester's clinic: "odegard", "malgorzata", "soren" and "lukasz" found nobody."""
    odegard = records.add_patient("ØDEGÅRD", "Åse", "1931-02-28")
    lee = records.add_patient("Lee", "Małgorzata", "1962-07-01")
    soren = records.add_patient("Kowalski", "Søren", "1975-03-09")
    lukasz = records.add_patient("Kowalczyk", "Łukasz", "1988-11-30")
    records.add_patient("Odell", "Sam", "1990-01-01")
    for text, found in (
        ("odegard", odegard), ("ødegård", odegard), ("Odegard Ase", odegard), ("ødeg", odegard),
        ("malgorzata", lee), ("małgorzata", lee), ("lee malg", lee),
        ("soren", soren), ("søren", soren), ("kowalski soren", soren),
        ("lukasz", lukasz), ("łukasz", lukasz), ("LUKASZ KOWALCZYK", lukasz),
    ):  # fmt: skip
        assert [p.id for p in records.search_patients(text)] == [found.id], text
    # Renamed, the index follows (the update trigger folds alike).
    records.update_patient(lukasz.id, {"given": "Łucja"})
    assert records.search_patients("lukasz") == []
    assert [p.id for p in records.search_patients("lucja")] == [lukasz.id]
    records.db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")


def test_the_query_folds_what_the_index_folds() -> None:
    assert fts_prefix_query("Ødegård") == '"Odegård"*'
    assert fts_prefix_query("łukasz kowal") == '("lukasz"* "kowal"*) OR names : "lukaszkowal"*'


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


@pytest.mark.parametrize(
    "typed",
    [
        "1982-06-14",
        "1982-6-14",
        "19820614",
        "1982/6/14",
        "1982.06.14",
        "14/06/1982",
        "14/6/1982",
        "mensah 1982-6-14",
        "1982-6-14 ama",
        "ama 19820614",
    ],
)
def test_a_birth_date_is_found_however_the_readme_says_it_may_be_typed(
    records: ClinicRecords, typed: str
) -> None:
    """README: search takes dates as 1984-03-02, 1984-3-2 or 19840302 (1982-6-14 and
    19820614 found nobody: their words 6 and 19820614 are not the stored 06, 1982)."""
    ama = records.add_patient("Mensah", "Ama", "1982-06-14")
    records.add_patient("Mensah", "Kofi", "1982-06-04")
    records.add_patient("Osei", "Ama", "1983-06-14")
    assert [p.id for p in records.search_patients(typed)] == [ama.id], typed
    # The walk a broad search takes (core/records/patient_search.py) reads it alike.
    assert [p.id for p in records.search_patients(typed, broad_at=0)] == [ama.id], typed


def test_a_month_typed_with_one_digit_finds_that_month(records: ClinicRecords) -> None:
    """``1982-6`` as ``1982-06`` finds it; the index keeps no word order, so a day of 6 in
    1982 matches as well (as ``1982-06`` always has), and ``1982-1`` finds January besides
    what its ``1`` finds as typed (the start of ``10``-``12`` and ``1x`` days)."""
    june = records.add_patient("Mensah", "Ama", "1982-06-14")
    sixth = records.add_patient("Mensah", "Kofi", "1982-11-06")
    records.add_patient("Osei", "Ama", "1983-06-14")
    january = records.add_patient("Boateng", "Yaw", "1982-01-20")
    assert {p.id for p in records.search_patients("1982-6")} == {june.id, sixth.id}
    assert {p.id for p in records.search_patients("1982-06")} == {june.id, sixth.id}
    assert {p.id for p in records.search_patients("1982-1")} == {january.id, sixth.id, june.id}


def test_what_a_date_s_words_found_before_is_still_found(records: ClinicRecords) -> None:
    """An MRN written like a date, or eight digits, still finds its patient."""
    compact = records.add_patient("Addo", "Efua", "1970-01-01", mrn="19820614")
    dashed = records.add_patient("Addo", "Kwame", "1970-01-01", mrn="1982-6-14")
    assert [p.id for p in records.search_patients("19820614")] == [compact.id]
    assert [p.id for p in records.search_patients("1982-6-14")] == [dashed.id]


@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("1984-3-2", ["1984", "03", "02"]),
        ("19840302", ["1984", "03", "02"]),
        ("1984/3/2", ["1984", "03", "02"]),
        ("1984.03.2", ["1984", "03", "02"]),
        ("1984-3", ["1984", "03"]),
        ("2/3/1984", ["02", "03", "1984"]),  # either reading: the search does not guess
        ("1984-03-02", None),  # already the stored words
        ("02/03/1984", None),
        ("1984-13-2", None),  # no month 13
        ("1984-02-30", None),
        ("19841302", None),  # eight digits that are no date: an MRN, searched as typed
        ("40/3/1984", None),
    ],
)
def test_date_words(typed: str, words: list[str] | None) -> None:
    assert date_words(typed) == words


def test_a_date_query_keeps_the_words_as_typed_beside_the_stored_ones() -> None:
    compact = '("19820614"* OR birth_date : ("1982"* "06"* "14"*))'
    assert fts_prefix_query("19820614") == compact
    assert fts_prefix_query("ama 1982-6-14") == (
        '("ama"* AND (("1982"* "6"* "14"*) OR birth_date : ("1982"* "06"* "14"*))) '
        'OR names : "ama1982614"*'
    )
    assert fts_prefix_query("1982-06-14") == '("1982"* "06"* "14"*) OR names : "19820614"*'
    # Inside a longer run of digits and separators (an MRN), no date is read.
    assert fts_prefix_query("12-1984-3-2-7") == (
        '("12"* "1984"* "3"* "2"* "7"*) OR names : "121984327"*'
    )
    # Past the word limit a date is cut to its first words, as typed.
    assert fts_prefix_query("a b c d e f g 1982-6-14") == (
        '("a"* "b"* "c"* "d"* "e"* "f"* "g"* "1982"*) OR names : "abcdefg1982"*'
    )


def test_names_are_found_spelled_out_as_on_a_keyboard_without_their_letters(
    records: ClinicRecords,
) -> None:
    """A receptionist without å or ü on the keyboard types "aase" for Åse and "mueller" for
    Müller (the index drops accents, so "ase" and "muller" found them; these found nobody)."""
    ase = records.add_patient("Ødegård", "Åse", "1931-02-28")
    muller = records.add_patient("Müller", "Jürgen", "1958-03-14")
    decomposed = records.add_patient("Bra\u0308ndstro\u0308m", "Ola", "1990-05-05")  # typed a+¨
    asel = records.add_patient("Asel", "Ann", "1970-01-01")
    for text, found in (
        ("aase", [ase]), ("oedegaard", [ase]), ("aase oedegaard", [ase]), ("åse", [ase, asel]),
        ("ase", [ase, asel]), ("odegard", [ase]), ("mueller juergen", [muller]),
        ("muller", [muller]), ("braendstroem", [decomposed]), ("brandstrom ola", [decomposed]),
    ):  # fmt: skip
        assert {p.id for p in records.search_patients(text)} == {p.id for p in found}, text
        assert {p.id for p in records.search_patients(text, broad_at=0)} == {p.id for p in found}, (
            text
        )
    # An ASCII name's index entry is as before: nothing spelled out, nothing to find twice.
    assert search_names("Asel", "Ann") == "Asel Ann"
    assert search_names("Müller", "Åse") == "Müller Åse Mueller Aase"
    records.update_patient(muller.id, {"family": "Muller"})
    assert records.search_patients("mueller") == []
    records.db.query("INSERT INTO patients_fts (patients_fts, rank) VALUES ('integrity-check', 1)")


def test_names_with_a_stroke_or_joined_letters_are_listed_with_their_plain_letters(
    records: ClinicRecords,
) -> None:
    """The patient list put Ødegård and Łukasz after Zhang; a receptionist looks for them
    among the O's and L's."""
    for family, given in (("Zhang", "Wei"), ("Ødegård", "Åse"), ("Oakes", "Ann"),
                          ("Oliver", "Tom"), ("Łukasiewicz", "Jan"), ("Lee", "Sam"),
                          ("Lyons", "Kim"), ("Æbelø", "Ida"), ("Adams", "Ray")):  # fmt: skip
        records.add_patient(family, given, "1970-01-01")
    assert [p.family for p in records.list_patients()] == [
        "Adams", "Æbelø", "Lee", "Łukasiewicz", "Lyons", "Oakes", "Ødegård", "Oliver", "Zhang",
    ]  # fmt: skip

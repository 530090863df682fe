"""The ICD-10-CM code list shipped in simple-icd-10-cm, searched offline."""

from __future__ import annotations

import pytest

from core.records import icd10
from core.records.errors import ValidationError


def test_a_code_finds_itself_and_the_codes_below_it() -> None:
    found = icd10.search("E11.6")
    assert found[0].code == "E11.6"
    assert all(c.code.startswith("E11.6") for c in found)
    assert {"E11.65", "E11.649"} <= {c.code for c in found}


def test_codes_are_typed_without_dots_or_in_lower_case() -> None:
    assert icd10.search("e119")[0].code == "E11.9"
    assert icd10.lookup("i10").description == "Essential (primary) hypertension"


def test_words_in_any_order_and_word_starts_find_the_description() -> None:
    found = icd10.search("diab typ 2 without compl")
    assert found[0].code == "E11.9"
    assert found[0].description == "Type 2 diabetes mellitus without complications"
    assert found[0].billable


def test_shorter_descriptions_come_first_so_the_plain_diagnoses_are_on_top() -> None:
    # Hundreds of codes mention hypertension; the plain ones fit on the first screen.
    found = [c.code for c in icd10.search("hypertension")]
    assert len(found) == 50
    assert "I10" in found[:20]
    assert "I13.2" not in found  # "Hypertensive heart and chronic kidney disease with..."


def test_accents_and_case_do_not_matter() -> None:
    assert icd10.search("HYPERTENSÍON essential")[0].code == "I10"


def test_nothing_matches_gibberish_and_blank_finds_nothing() -> None:
    assert icd10.search("qqqzzz") == []
    assert icd10.search("   ") == []


def test_a_category_is_not_billable_and_an_unknown_code_is_refused() -> None:
    assert not icd10.lookup("E11").billable
    with pytest.raises(ValidationError, match=r"'Z99\.999' is not an ICD-10-CM code"):
        icd10.lookup("Z99.999")

"""The ICD-10-CM code list shipped in simple-icd-10-cm, searched offline."""

from __future__ import annotations

import re

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


def test_a_common_clinical_word_gives_the_likeliest_code_first() -> None:
    # Hundreds of codes mention hypertension; the plain diagnosis comes before "Ocular
    # hypertension" and the "Hypertensive heart and chronic kidney disease with ..." codes.
    found = [c.code for c in icd10.search("hypertension")]
    assert len(found) == 50
    assert found[0] == "I10"
    assert "I13.2" not in found
    asthma = [c.code for c in icd10.search("asthma")]
    assert asthma[0] == "J45" and all(c.startswith("J45") for c in asthma[:6])
    assert asthma.index("J45.90") < asthma.index("J45.909")  # the less specific first
    # Type 1 and type 2 diabetes before the secondary and drug-induced kinds.
    assert {c.code for c in icd10.search("diabetes")[:2]} == {"E10", "E11"}


def test_a_description_that_is_just_the_words_typed_comes_first() -> None:
    assert icd10.search("constipation")[0].code == "K59.0"  # before "Irritable bowel ..."
    assert [c.code for c in icd10.search("headache")[:2]] == ["R51", "R51.9"]
    assert icd10.search("obesity")[0].description == "Obesity, unspecified"


def test_whole_words_come_before_word_starts() -> None:
    found = [c.description for c in icd10.search("anemia", limit=200)]
    whole = [re.search(r"\banemia\b", d, re.IGNORECASE) is not None for d in found]
    # Every "... anemia ..." before the first "Other anemias" (which only starts with it).
    assert whole.index(False) > 50 and not any(whole[whole.index(False) :])


def test_pregnancy_newborn_and_circumstance_codes_follow_unless_their_words_are_typed() -> None:
    found = [c.code for c in icd10.search("urinary tract infection")]
    assert found[0] == "N39.0"
    assert found.index("N39.0") < found.index("P39.3") < found.index("O86.20")
    assert icd10.search("neonatal urinary tract infection")[0].code == "P39.3"
    asthma = [c.code for c in icd10.search("asthma")]
    assert "Z82.5" not in asthma[:10]  # "Family history of asthma ..."
    assert icd10.search("family history asthma")[0].code == "Z82.5"


def test_accents_and_case_do_not_matter() -> None:
    assert icd10.search("HYPERTENSÍON essential")[0].code == "I10"


def test_nothing_matches_gibberish_and_blank_finds_nothing() -> None:
    assert icd10.search("qqqzzz") == []
    assert icd10.search("   ") == []


def test_a_category_is_not_billable_and_an_unknown_code_is_refused() -> None:
    assert not icd10.lookup("E11").billable
    with pytest.raises(ValidationError, match=r"'Z99\.999' is not an ICD-10-CM code"):
        icd10.lookup("Z99.999")

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


def test_a_description_saying_only_what_is_unspecified_counts_as_just_the_words_typed() -> None:
    # "Pneumonia, unspecified organism", not "Pneumonia due to Hemophilus influenzae".
    assert [c.code for c in icd10.search("pneumonia")[:2]] == ["J18", "J18.9"]
    # "Attention-deficit hyperactivity disorder, unspecified type"; "..., site not specified".
    assert icd10.search("attention deficit hyperactivity disorder")[0].code == "F90.9"
    assert icd10.search("urinary tract infection")[0].code == "N39.0"
    # Unspecified before and after: "Unspecified osteoarthritis, unspecified site".
    assert "M19.90" in [c.code for c in icd10.search("osteoarthritis")[:2]]
    # A closing clause that says more is not filler: "Alcohol use, unspecified with ...".
    assert icd10.search("alcohol use")[0].code == "F10.9"  # "Alcohol use, unspecified"


@pytest.mark.parametrize(
    ("typed", "first"),
    [
        ("uti", "N39.0"),  # not "Toxic effect of carbon monoxide from utility gas"
        ("copd", "J44.9"),
        ("htn", "I10"),
        ("chf", "I50"),
        ("t2dm", "E11"),  # looks like the start of a code (T2...): none is, so words
        ("dm2", "E11"),
        ("t1dm", "E10"),
        ("afib", "I48.91"),
        ("af", "I48.91"),
        ("gerd", "K21"),
        ("gord", "K21"),
        ("covid", "U07.1"),  # "COVID-19" before "Post COVID-19 condition"
        ("mi", "I21"),
        ("heart attack", "I21"),
        ("high blood pressure", "I10"),
        ("uri", "J06.9"),
        ("ckd", "N18.9"),
        ("oa", "M19.9"),
        ("ra", "M06.9"),
        ("bph", "N40"),
        ("dvt", "I82.4"),
        ("pe", "I26"),
        ("tia", "G45.9"),
        ("cad", "I25.1"),
        ("osa", "G47.33"),
        ("adhd", "F90.9"),
        ("ptsd", "F43.10"),
        ("esrd", "N18.6"),
    ],
)
def test_a_clinical_abbreviation_or_lay_term_finds_its_diagnosis_first(
    typed: str, first: str
) -> None:
    assert icd10.search(typed)[0].code == first
    assert icd10.search(typed.upper())[0].code == first


def test_every_abbreviation_finds_the_codes_its_phrase_finds() -> None:
    # The table's phrases are worded as the code list words them: each finds codes.
    for typed, phrase in icd10.SYNONYMS.items():
        by_phrase = icd10.search(phrase)[:5]
        assert by_phrase, phrase
        assert icd10.search(typed)[: len(by_phrase)] == by_phrase, typed


def test_an_abbreviation_goes_with_other_words_and_only_as_a_whole_word() -> None:
    assert icd10.search("copd exacerbation")[0].code == "J44.1"
    assert icd10.search("old mi")[0].code == "I25.2"
    assert icd10.search("dm 2")[0].code == "E11"
    assert icd10.search("uti pregnancy")[0].code == "O23.4"
    # "urin" is the start of "urinary", not an upper respiratory infection ("uri").
    assert all(not c.code.startswith("J06") for c in icd10.search("urin"))


def test_the_letters_as_typed_still_find_their_codes_after_the_abbreviations() -> None:
    found = [c.description for c in icd10.search("uti", limit=200)]
    utility = [i for i, d in enumerate(found) if "utility gas" in d]
    infection = [i for i, d in enumerate(found) if "urinary tract" in d.lower()]
    assert infection[0] == 0 and utility and max(infection) < min(utility)
    assert len(found) == len(set(found))  # a code found both ways is listed once

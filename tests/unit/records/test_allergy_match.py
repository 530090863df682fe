"""Starting a medication warns when its name matches a recorded allergy."""

from __future__ import annotations

from core.records.allergy_match import match
from core.records.models import Allergy


def _allergy(substance: str, severity: str | None = None) -> Allergy:
    return Allergy("a1", "p1", substance, None, severity, "2026-01-01", "ann")


def test_the_same_word_matches_whatever_the_case_and_accents() -> None:
    penicillin = _allergy("Penicillin", "severe")
    assert [m.reason for m in match("PENICILLIN V potassium", [penicillin])] == ["same name"]
    assert match("Pénicilline", [penicillin]) != []
    assert match("codeine phosphate 30 mg", [_allergy("Codeine")]) != []


def test_a_member_of_a_class_the_allergy_names_matches() -> None:
    [found] = match("Amoxicillin 500 mg", [_allergy("Penicillin", "severe")])
    assert found.reason == "amoxicillin is one of the penicillins"
    assert found.describe() == "Penicillin (severe): amoxicillin is one of the penicillins"
    assert match("Bactrim DS", [_allergy("Sulfa drugs")]) != []
    assert match("ibuprofen", [_allergy("NSAIDs")]) != []


def test_unrelated_drugs_and_other_classes_do_not_match() -> None:
    allergies = [_allergy("Penicillin"), _allergy("Latex"), _allergy("Peanuts")]
    assert match("Metformin", allergies) == []
    assert match("Ceftriaxone", allergies) == []  # a cephalosporin, not a penicillin
    assert match("Ibuprofen", [_allergy("Penicillin")]) == []


def test_singular_and_plural_are_the_same_word_both_ways() -> None:
    for allergy, drug in (
        ("Peanuts", "Peanut oil ear drops"),
        ("Peanut", "Peanuts extract"),
        ("Peanuts", "Peanuts extract"),
        ("Strawberries", "Strawberry flavour syrup"),
        ("Berry", "Mixed berries chewable"),
        ("Tomatoes", "Tomato seed oil"),
        ("Tomato", "tomatoes"),
        ("Eggs", "Egg lecithin emulsion"),
        ("Peaches", "Peach kernel"),
        ("Cheese", "Cheeses"),
        ("TREE NUTS", "Nut oil cream"),
        ("Cacahuètes", "cacahuete"),  # accents and case as well
    ):
        assert [m.reason for m in match(drug, [_allergy(allergy)])] == ["same name"], (
            allergy,
            drug,
        )


def test_plurals_do_not_make_unrelated_words_match() -> None:
    for allergy, drug in (
        ("Peanuts", "Metformin"),
        ("Peanuts", "Pea protein"),  # a shorter word is not a singular
        ("Glass", "Glas ointment"),  # "glass" is no plural
        ("Iris", "Iri drops"),
        ("Latex", "Lates"),
        ("Penicillin", "Pen V"),  # as before: a drug name inside the allergy's is not one
    ):
        assert match(drug, [_allergy(allergy)]) == [], (allergy, drug)
    # Still as before: a name inside the other.
    assert match("Penicillin V", [_allergy("Pen")]) != []

"""Possible duplicate registrations are found by birth date and a forgiving name match."""

from __future__ import annotations

import pytest

from core.records.duplicates import (
    DuplicatePatientError,
    find_possible_duplicates,
    names_match,
)
from core.records.workstation import Workstation


@pytest.mark.parametrize(
    ("family", "given"),
    [
        ("Okafor", "Chinedu"),
        ("OKAFOR", "chinedu"),  # case
        ("Chinedu", "Okafor"),  # given and family swapped
        ("Okafur", "Chinedu"),  # one slip in each name
        ("Okafor", "Chinendu"),
        (" Ókafor ", "Chinédu"),  # accents
    ],
)
def test_same_person_written_differently_matches(family: str, given: str) -> None:
    assert names_match(family, given, "Okafor", "Chinedu")


@pytest.mark.parametrize(
    ("family", "given", "other_family", "other_given"),
    [
        ("O'Brien", "Siobhán", "OBrien", "Siobhan"),
        ("O Brien", "Siobhan", "O’Brien", "Siobhan"),
        ("Jean-Baptiste", "Marie", "Jean Baptiste", "Marie"),
        ("Lee", "Mary Ann", "Ann Lee", "Mary"),  # a name split differently
    ],
)
def test_marks_and_spaces_do_not_hide_a_match(
    family: str, given: str, other_family: str, other_given: str
) -> None:
    assert names_match(family, given, other_family, other_given)


@pytest.mark.parametrize(
    ("family", "given"),
    [
        ("Okafor", "Chidi"),  # a twin: same family, same birthday, another person
        ("Okoro", "Chinedu"),
        ("Ng", "Al"),  # short names: one letter apart is another name
    ],
)
def test_different_people_do_not_match(family: str, given: str) -> None:
    other = ("Ng", "Ali") if family == "Ng" else ("Okafor", "Chinedu")
    assert not names_match(family, given, *other)


def test_only_patients_born_the_same_day_are_found(workstation: Workstation) -> None:
    r = workstation.records
    first = r.add_patient("O'Brien", "Siobhán", "1984-02-02", mrn="MRN-1")
    r.add_patient("OBrien", "Siobhan", "1984-02-03")  # another day: someone else
    r.add_patient("Okafor", "Chidi", "1984-02-02")
    found = find_possible_duplicates(workstation.database, "obrien", "SIOBHAN", "1984-02-02")
    assert [p.id for p in found] == [first.id]
    assert (
        find_possible_duplicates(
            workstation.database, "obrien", "siobhan", "1984-02-02", exclude=first.id
        )
        == []
    )


@pytest.mark.parametrize(
    ("family", "given", "other_family", "other_given"),
    [
        ("Odegard", "Ase", "ØDEGÅRD", "Åse"),  # letters with a stroke read as search reads them
        ("Kowalczyk", "Lukasz", "Kowalczyk", "Łukasz"),
        ("Lee", "Malgorzata", "LEE", "Małgorzata"),
        ("Aebischer", "Strasse", "Æbischer", "Straße"),
        ("Odegard", "Aase", "Ødegård", "Åse"),  # å spelled out, ø not: both are written so
        ("Oedegaard", "Aase", "Ødegård", "Åse"),
        ("Mueller", "Zoe", "Müller", "Zoë"),
        ("Kowalski", "Soeren", "Kowalski", "Søren"),
    ],
)
def test_letters_a_keyboard_lacks_do_not_hide_a_match(
    family: str, given: str, other_family: str, other_given: str
) -> None:
    assert names_match(family, given, other_family, other_given)
    assert names_match(other_family, other_given, family, given)


def test_spelling_letters_out_makes_no_short_names_alike() -> None:
    """Each name is read one way or the other, never a letter of each: Ase and Aase, both
    typed plainly, are short names one letter apart, so two people."""
    assert not names_match("Lee", "Ase", "Lee", "Aase")
    assert not names_match("Ødegård", "Åse", "Odegard", "Asa")


def test_registration_refuses_a_name_typed_without_its_letters(workstation: Workstation) -> None:
    """The tester's ``patient add --family Odegard --given Aase`` beside Ødegård Åse, born
    the same day, was added without a warning."""
    r = workstation.records
    first = r.add_patient("ØDEGÅRD", "Åse", "1931-02-28")
    for family, given in (("Odegard", "Aase"), ("odegard", "ase"), ("Oedegaard", "Aase")):
        with pytest.raises(DuplicatePatientError) as caught:
            r.add_patient(family, given, "1931-02-28", allow_duplicate=False)
        assert [p.id for p in caught.value.matches] == [first.id]
    assert r.count_patients() == 1


def test_the_lookup_uses_the_birth_date_index(workstation: Workstation) -> None:
    plan = workstation.database.query(
        "EXPLAIN QUERY PLAN SELECT id FROM patients WHERE birth_date = ? ORDER BY sort_key, id",
        ("1984-02-02",),
    )
    assert any("patients_by_birth_date" in str(row[-1]) for row in plan), plan


def test_registration_refuses_a_possible_duplicate_unless_allowed(
    workstation: Workstation,
) -> None:
    r = workstation.records
    first = r.add_patient("Okafor", "Chinedu", "1984-02-02", mrn="MRN-7")
    before = workstation.database.query("SELECT count(*) FROM audit_log")
    with pytest.raises(DuplicatePatientError) as caught:
        r.add_patient("okafor", "Chinedu", "1984-02-02", allow_duplicate=False)
    assert [p.id for p in caught.value.matches] == [first.id]
    assert str(caught.value) == (
        "this patient may already be registered: "
        f"OKAFOR, Chinedu, born 1984-02-02, MRN MRN-7 (id {first.id})"
    )
    # Nothing was written: no patient, no audit entry.
    assert r.count_patients() == 1
    assert workstation.database.query("SELECT count(*) FROM audit_log") == before

    second = r.add_patient("Okafor", "Chinedu", "1984-02-02", allow_duplicate=True)
    assert r.count_patients() == 2 and second.id != first.id
    # A different person born the same day is registered without a question.
    r.add_patient("Okafor", "Chidi", "1984-02-02", allow_duplicate=False)
    assert r.count_patients() == 3


def test_the_review_lists_keys_find_every_pair_registration_would() -> None:
    """``matching_pairs`` (the review list's, through name keys) finds exactly the pairs that
    comparing every pair with registration's ``names_match`` finds: names with slips,
    swapped, split differently, accented, short and long."""
    import random
    from itertools import combinations

    from core.records.duplicates import matching_pairs
    from core.records.models import PatientSummary

    rng = random.Random(16)
    stems = ["okafor", "chinedu", "lefevre", "zoe", "nguyen", "ann", "vandenberg", "mariaelena",
             "obrien", "li", "haddad", "rami", "katarzyna", "abdulrahman",
             "ødegård", "odegard", "oedegaard", "åse", "aase", "müller", "mueller", "łukasz",
             "lukasz", "søren", "soeren"]  # fmt: skip

    def slip(name: str) -> str:
        i = rng.randrange(len(name) + 1)
        letter = rng.choice("aeiouklmnrst")
        return rng.choice([name[:i] + letter + name[i:], name[:i] + name[i + 1 :],
                           name[:i] + letter + name[i + 1 :], name])  # fmt: skip

    people = []
    for n in range(300):
        family, given = rng.sample(stems, 2)
        for _ in range(rng.choice([0, 1, 2])):
            family, given = slip(family), slip(given)
        if rng.random() < 0.1:
            family, given = given, family
        if rng.random() < 0.05:
            family, given = family + given[:2], given[2:] or given
        people.append(PatientSummary(f"p{n:03d}", family.title() or "X", given or "Y",
                                     "2001-01-01", None, None))  # fmt: skip
    every = [
        (a, b)
        for a, b in combinations(people, 2)
        if names_match(a.family, a.given, b.family, b.given)
    ]
    assert len(every) > 50  # the sample has many near-matches to find
    assert list(matching_pairs(people)) == every

"""A search that found nobody, read as the new patient's details: each word in the field it
was typed for, the separating comma left out, nothing added and no case changed."""

from __future__ import annotations

import pytest

from core.records.search_text import TypedPatient, read_search


@pytest.mark.parametrize(
    ("typed", "family", "given"),
    [
        ("Lopez, Maria", "Lopez", "Maria"),  # as the lists show names
        ("Lopez,Maria", "Lopez", "Maria"),
        ("  Lopez ,  Maria  ", "Lopez", "Maria"),
        ("lopez, maria", "lopez", "maria"),  # no capitals invented
        ("LOPEZ, Maria", "LOPEZ", "Maria"),
        ("van der Berg, Anna Maria", "van der Berg", "Anna Maria"),
        ("Lopez,", "Lopez", ""),
        ("Lopez, Maria,", "Lopez", "Maria"),
        (", Maria", "", "Maria"),
        ("O'Brien, Ann", "O'Brien", "Ann"),
        # No comma: capitals say which words are the family name, as the lists write it.
        ("LOPEZ Maria", "LOPEZ", "Maria"),
        ("Maria LOPEZ", "LOPEZ", "Maria"),
        ("DE LA CRUZ Maria", "DE LA CRUZ", "Maria"),
        ("Maria J DE LA CRUZ", "DE LA CRUZ", "Maria J"),  # an initial is not a family name
        # Nothing says which: the first word, as the lists read (the person sees it).
        ("Ferreira Ines", "Ferreira", "Ines"),
        ("Maria Lopez", "Maria", "Lopez"),
        ("MARIA LOPEZ", "MARIA", "LOPEZ"),
        ("Ana MARIA Lopez", "Ana", "MARIA Lopez"),
        ("Lopez", "Lopez", ""),
        ("", "", ""),
    ],
)
def test_names(typed: str, family: str, given: str) -> None:
    assert read_search(typed) == TypedPatient(family, given)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("Lopez, Maria 1982-6-14", TypedPatient("Lopez", "Maria", "1982-6-14")),
        ("19820614", TypedPatient(birth_date="19820614")),  # as typed; the form reads it
        ("Lopez 1982-06-14", TypedPatient("Lopez", "", "1982-06-14")),
        # Not a whole year-first date, or an MRN: not a name either, so left out.
        ("Lopez 14/06/1982", TypedPatient("Lopez")),
        ("Lopez 1982-06", TypedPatient("Lopez")),
        ("MRN-1001 Lopez, Maria", TypedPatient("Lopez", "Maria")),
    ],
)
def test_dates_and_numbers(typed: str, expected: TypedPatient) -> None:
    assert read_search(typed) == expected

"""What a person typed in a patient search, read as a new patient's details: the search
found nobody, and "Register new patient…" fills the registration form with it.

The form is a suggestion the person sees, and corrects, before Save. So this only moves
what was typed into the field it was typed for: it never adds a word, never changes a
letter's case, and leaves out what is not a name (the comma between family and given
name, an MRN). Where the text does not say which word is the family name, the first word
is, as the patient lists show names (``GARCIA, Maria``), and the person sees it there.

- ``Lopez, Maria`` (the lists' form): family ``Lopez``, given ``Maria``.
- ``LOPEZ Maria`` or ``Maria LOPEZ``: the word or words in capitals are the family name
  (as the lists write it), when the other words are not all capitals.
- ``Lopez Maria``, ``Maria Lopez``: family ``Lopez`` and ``Maria`` respectively (the first
  word; nothing in the text says otherwise).
- A whole date, year first (``1982-6-14``, ``19820614``), is the date of birth, as typed
  (the form's field shows it as stored once left). Other words with digits are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records import validation
from core.records.errors import ValidationError


@dataclass(frozen=True)
class TypedPatient:
    """A new patient's details as typed in a search ("" where nothing was typed)."""

    family: str = ""
    given: str = ""
    birth_date: str = ""


def _is_date(word: str) -> bool:
    try:
        validation.calendar_date("birth_date", word)
    except ValidationError:
        return False
    return True


def _in_capitals(word: str) -> bool:
    """``LOPEZ``, ``O'BRIEN``: a family name as the lists write it (not an initial)."""
    return word.isupper() and sum(ch.isalpha() for ch in word) > 1


def _split_words(words: list[str]) -> tuple[str, str]:
    """(family, given) from a name typed without a comma."""
    if not words:
        return "", ""
    capitals = [_in_capitals(w) for w in words]
    if any(capitals) and not all(capitals):
        # A run of capitals at either end is the family name; capitals elsewhere (a
        # middle name in capitals?) say nothing sure, so the first word is taken.
        lead = next(i for i, c in enumerate(capitals) if not c)
        trail = next(i for i, c in enumerate(reversed(capitals)) if not c)
        if lead and not any(capitals[lead:]):
            return " ".join(words[:lead]), " ".join(words[lead:])
        if trail and not any(capitals[: len(words) - trail]):
            return " ".join(words[-trail:]), " ".join(words[:-trail])
    return words[0], " ".join(words[1:])


def read_search(text: str) -> TypedPatient:
    """The family name, given name and date of birth in ``text`` (see the module)."""
    birth_date = ""
    name_words: list[str] = []
    for word in text.split():
        bare = word.strip(",")
        if any(ch.isdigit() for ch in bare):
            if not birth_date and _is_date(bare):
                birth_date = bare
            continue
        name_words.append(word)
    name = " ".join(name_words)
    if "," in name:
        family, _, given = name.partition(",")
        # Commas at the ends (a trailing one, a second separator) are separators too.
        return TypedPatient(family.strip(" ,"), given.strip(" ,"), birth_date)
    family, given = _split_words(name_words)
    return TypedPatient(family, given, birth_date)

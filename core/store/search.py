"""Turning what a person types into a safe FTS5 query, and names into comparable forms."""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from typing import Any

# Letters and digits: what the index's tokenizer (unicode61) keeps as word characters. Not
# the underscore (\w has it, unicode61 splits on it): a quoted term the tokenizer splits in
# two is a phrase, which the index (detail=column since migration V14) cannot answer.
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
MAX_TERMS = 8

# Marks a name may be written with or without (O'Brien, OBrien, O Brien; Jean-Luc, Jeanluc):
# the index's ``names`` column holds each name without them (migration V2 drops exactly
# these; a test checks the two agree).
NAME_JOINERS = "'\u2019\u2018\u02bc`\u00b4-\u2010\u2011\u2013\u2014. "
_JOINERS = str.maketrans("", "", NAME_JOINERS)

# Letters that are a plain letter with a stroke, or two letters joined, rather than a letter
# with an accent: Unicode gives them no decomposition, so neither the index's tokenizer
# (unicode61 remove_diacritics) nor NFKD strips them, and "odegard" did not find Ødegård.
# Search (both the index, migration V21, and the words typed) and registration's duplicate
# check read each as the letters people type on a keyboard without it. Migration V21's SQL
# replaces exactly these (a test checks the two agree); a change here needs a migration
# that rebuilds the index.
FOLDED_LETTERS = {
    "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
    "ß": "ss", "ẞ": "SS", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH",
    "ħ": "h", "Ħ": "H", "ı": "i", "ŧ": "t", "Ŧ": "T",
}  # fmt: skip
_LETTERS = str.maketrans(FOLDED_LETTERS)

# The usual way of writing these letters on a keyboard without them (Scandinavian and German
# names): Åse is written Aase, Müller Mueller. Dropping the accent (the tokenizer's way) gives
# Ase and Muller, so the search index also holds a name written with them spelled out this
# way (``search_names``, migration V22), and registration's duplicate check compares both.
# A change here needs a migration that rebuilds the index, as V22 does.
SPELLED_LETTERS = {
    "å": "aa", "Å": "Aa", "ä": "ae", "Ä": "Ae", "ö": "oe", "Ö": "Oe", "ü": "ue", "Ü": "Ue",
    "ø": "oe", "Ø": "Oe",
}  # fmt: skip
_SPELLED = str.maketrans(SPELLED_LETTERS)


def fold_letters(text: str) -> str:
    """``text`` with each of ``FOLDED_LETTERS`` written as plain letters: ``"Ødegård
    Łukasz"`` gives ``"Odegård Lukasz"`` (accents are the tokenizer's to drop)."""
    return text.translate(_LETTERS)


def search_letters(text: object) -> object:
    """A search index column's value (SQL ``careline_search_letters``, migration V21): a
    text with ``FOLDED_LETTERS`` written as plain letters; anything else (NULL) as it is."""
    return fold_letters(text) if isinstance(text, str) else text


def spell_out(text: str) -> str:
    """``text`` with each of ``SPELLED_LETTERS`` written out: ``"Ødegård Åse"`` gives
    ``"Oedegaard Aase"`` (composed first, so a decomposed å is spelled out too)."""
    return unicodedata.normalize("NFC", text).translate(_SPELLED)


def _joined(family: str, given: str) -> str:
    return f"{fold_letters(family).translate(_JOINERS)} {fold_letters(given).translate(_JOINERS)}"


def search_names(family: object, given: object) -> object:
    """The search index's ``names`` column (SQL ``careline_search_names``, migrations V21,
    V22): each name folded as :func:`fold_letters` does and without ``NAME_JOINERS``, then
    the two joined by a space (``"O'Brien"``, ``"Ødegård"`` -> ``"OBrien Odegård"``); a
    name with letters of ``SPELLED_LETTERS`` is followed by the two spelled out (``"Müller
    Åse"`` -> ``"Müller Åse Mueller Aase"``), so "mueller" and "aase" find it. NULL if
    either is not a text, as the SQL concatenation V21 replaced gave."""
    if not isinstance(family, str) or not isinstance(given, str):
        return None
    names = _joined(family, given)
    if family.isascii() and given.isascii():  # nearly every name: nothing to spell out
        return names
    spelled = _joined(spell_out(family), spell_out(given))
    return names if spelled == names else f"{names} {spelled}"


def sort_key(family: str, given: str) -> str:
    """The patient list's ordering key: case and accents set aside, and letters of
    ``FOLDED_LETTERS`` read as their plain letters (Ødegård among the O's, Łukasz among the
    L's, where they sorted after Z before schema V22)."""
    if type(family) is str and type(given) is str:  # cacheable (hashable, immutable)
        return _sort_key(family, given)
    return _sort_key.__wrapped__(family, given)


@functools.lru_cache(maxsize=16_384)
def _sort_key(family: str, given: str) -> str:
    # Pure, and the same names are re-derived after every change of a record: cache.
    text = f"{family}\x1f{given}".casefold()
    if text.isascii():  # no ASCII character decomposes or combines: NFKD leaves it as is
        return text
    return "".join(
        ch
        for ch in unicodedata.normalize("NFKD", fold_letters(text))
        if not unicodedata.combining(ch)
    )


def _sort_key_sql(family: object, given: object) -> object:
    """``sort_key`` for SQL (migration V22), as a patients row is derived (a missing given
    name reads as empty); NULL for a family name that is not a text."""
    if not isinstance(family, str):
        return None
    return sort_key(family, given if isinstance(given, str) else "")


def register_sql_functions(conn: Any) -> None:
    """Give ``conn`` the functions the search index's view and triggers call (V21), and
    the sort key (V22). Each is one Python call per column: the same folding as nested SQL
    ``replace`` calls (21 per column) cost about 30 µs per patient written and overflowed
    older SQLite parsers."""
    conn.create_function("careline_search_letters", 1, search_letters, deterministic=True)
    conn.create_function("careline_search_names", 2, search_names, deterministic=True)
    conn.create_function("careline_sort_key", 2, _sort_key_sql, deterministic=True)


def fold_name(name: str) -> str:
    """A name reduced to what identifies it when spoken: no accents, no apostrophes,
    hyphens, dots or spaces, no letters with a stroke (``FOLDED_LETTERS``), case-folded.
    ``"O'Brien"``, ``"o brien"`` and ``"OBRIEN"`` all give ``"obrien"``; ``"José"`` gives
    ``"jose"``, ``"Ødegård"`` ``"odegard"``."""
    decomposed = unicodedata.normalize("NFKD", fold_letters(name))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return bare.translate(_JOINERS).casefold()


# A date as a person types it in a search: year first, whole (1984-03-02, 1984-3-2,
# 1984/3/2, 19840302) or a month (1984-3), or year last (02/03/1984, 2/3/1984). Not part
# of a longer run of digits and separators (an MRN such as 12-1984-3-2-7 stays as typed).
_DATE = re.compile(
    r"(?<![^\W_])(?<![0-9][-/.])"
    r"(?:[0-9]{4}(?:[-/.][0-9]{1,2}){1,2}|[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}|[0-9]{8})"
    r"(?![^\W_])(?![-/.][0-9])"
)
_SEPARATOR = re.compile(r"[-/.]")


def date_words(typed: str) -> list[str] | None:
    """The words of the stored form (``YYYY-MM-DD``: the index holds ``1984``, ``03``,
    ``02``) of a date typed with fewer digits, or None when ``typed`` is no such date.

    ``1984-3-2`` and ``19840302`` give ``["1984", "03", "02"]``, a month ``1984-3`` gives
    ``["1984", "03"]``, a year-last ``2/3/1984`` gives ``["02", "03", "1984"]`` (which
    matches 2 March and 3 February alike, as ``02/03/1984`` always has: the search does
    not guess which was meant). ``1984-03-02`` gives None: its words are already stored
    ones. A month or day that cannot be (month 13, 30 February) gives None too.
    """
    if len(typed) == 8 and typed.isdigit():
        parts = [typed[:4], typed[4:6], typed[6:]]
    else:
        parts = _SEPARATOR.split(typed)
    numbers = [int(p) for p in parts]
    if len(parts[0]) == 4:  # year first
        year, month, day = numbers[0], numbers[1], numbers[2] if len(numbers) == 3 else 1
        try:
            dt.date(year, month, day)
        except ValueError:
            return None
    elif not (all(1 <= n <= 31 for n in numbers[:2]) and min(numbers[:2]) <= 12):
        return None
    padded = [p if len(p) == 4 else p.zfill(2) for p in parts]
    return padded if padded != _TOKEN.findall(typed) else None


def _units(text: str) -> list[tuple[list[str], list[str] | None]]:
    """The words typed, in order, each alone or (a date) with its stored form's words."""
    units: list[tuple[list[str], list[str] | None]] = []
    at = 0
    for found in _DATE.finditer(text):
        units.extend(([t], None) for t in _TOKEN.findall(text[at : found.start()]))
        units.append((_TOKEN.findall(found.group()), date_words(found.group())))
        at = found.end()
    units.extend(([t], None) for t in _TOKEN.findall(text[at:]))
    return units


def _terms(words: list[str]) -> str:
    return " ".join(f'"{word}"*' for word in words)


def fts_prefix_query(text: str) -> str | None:
    """Every word becomes a quoted prefix term, ANDed: ``smi jo`` -> ``"smi"* "jo"*``.

    Words typed with a joining mark or a space between them (``o'brien``, ``o brien``)
    also match the name written as one word: ``(... AND ...) OR names:"obrien"*``.
    A date typed with fewer digits than it is stored with (``1984-3-2``, ``19840302``,
    ``1984-3``) also matches the birth date it names (``date_words``): its words are
    ``(("1984"* "3"* "2"*) OR birth_date : ("1984"* "03"* "02"*))``, so what the typed
    words matched before (an MRN) is still found.
    Quoting makes FTS5 operators in the input (``OR``, ``NEAR``, ``:``, ``*``) plain text,
    so user input can never change the query's structure. Letters the index holds folded
    (``FOLDED_LETTERS``) are folded here too: ``ødegård`` and ``odegard`` ask the same.
    None when nothing searchable.
    """
    units: list[str] = []
    tokens: list[str] = []
    for typed, stored in _units(fold_letters(unicodedata.normalize("NFKC", text))):
        room = MAX_TERMS - len(tokens)
        if room <= 0:
            break
        if len(typed) > room:  # a date cut short is only its first words
            typed, stored = typed[:room], None
        tokens.extend(typed)
        as_typed = _terms(typed)
        if stored is None:
            units.append(as_typed)
        elif len(typed) == 1:
            units.append(f"({as_typed} OR birth_date : ({_terms(stored)}))")
        else:
            units.append(f"(({as_typed}) OR birth_date : ({_terms(stored)}))")
    if not tokens:
        return None
    # FTS5 reads two quoted words side by side as AND, but not a word beside a bracket.
    words = (" AND " if any(u.startswith("(") for u in units) else " ").join(units)
    if len(tokens) == 1:
        return words
    return f'({words}) OR names : "{"".join(tokens)}"*'

"""ICD-10-CM codes to choose a problem from: search by code or by words, offline.

The code list is the one the ``simple-icd-10-cm`` package ships (the CMS ICD-10-CM tabular
list, MIT-licensed package; no network at any time). It is read once per process, on
first use, which takes a second or two: the app does it on its worker, the CLI when asked.
Only categories and subcategories (``E11``, ``E11.9``) are offered, not chapters or blocks.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
import warnings
from dataclasses import dataclass
from typing import NamedTuple

from core.records.errors import ValidationError

_CODE_LIKE = re.compile(r"^[A-Za-z]\d[0-9A-Za-z]?\.?[0-9A-Za-z]{0,4}$")
_NON_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class Icd10Code:
    """One ICD-10-CM code: ``E11.9``, its description, and whether it is billable (a leaf:
    the most specific code, which claims and most reports require)."""

    code: str
    description: str
    billable: bool


def fold(text: str) -> str:
    """Lower case without accents: what words are compared in."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


class _Entry(NamedTuple):
    """A code with its description folded (for a quick substring test) and split into
    words (what a typed word must start, or be)."""

    code: Icd10Code
    folded: str
    words: tuple[str, ...]


def _words(folded: str) -> tuple[str, ...]:
    # Interned: the 98,000 descriptions use a few thousand words, each then stored once.
    return tuple(sys.intern(w) for w in _NON_WORD.split(folded) if w)


@functools.cache
def _catalogue() -> tuple[_Entry, ...]:
    """Every category and subcategory with its folded description, in code order."""
    with warnings.catch_warnings():
        # The package reads its data with an importlib call Python deprecates.
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as cm  # heavy: loaded on first use only

    out = []
    for code in cm.get_all_codes(True):
        if not cm.is_category_or_subcategory(code):
            continue
        description = str(cm.get_description(code))
        folded = fold(description)
        entry = Icd10Code(code, description, bool(cm.is_leaf(code)))
        out.append(_Entry(entry, folded, _words(folded)))
    return tuple(out)


def load() -> int:
    """Read the code list now (e.g. on a worker before the first search); how many codes."""
    return len(_catalogue())


def lookup(code: str) -> Icd10Code:
    """The code as typed (``e119`` or ``E11.9``); ValidationError names an unknown one."""
    wanted = _plain(code)
    for entry in _catalogue():
        if _plain(entry.code.code) == wanted:
            return entry.code
    raise ValidationError("code", f"{code.strip()!r} is not an ICD-10-CM code")


def _plain(code: str) -> str:
    return code.strip().replace(".", "").upper()


def search(text: str, limit: int = 50) -> list[Icd10Code]:
    """Codes matching what was typed: a code or its start (``E11``, ``e11.6``) lists that
    code and those below it; words (``diab typ 2``) list codes whose description has a word
    starting with each of them, in any order (accents and case ignored), the likeliest
    first (``_rank``); at most ``limit``."""
    typed = text.strip()
    if not typed:
        return []
    if _CODE_LIKE.match(typed):
        prefix = _plain(typed)
        by_code = [e.code for e in _catalogue() if _plain(e.code.code).startswith(prefix)]
        if by_code:
            return by_code[:limit]
    words = _words(fold(typed))
    if not words:
        return []
    found = [
        entry
        for entry in _catalogue()
        # The substring test (in C) rules out nearly every code before the word test.
        if all(w in entry.folded for w in words)
        and all(any(d.startswith(w) for d in entry.words) for w in words)
    ]
    found.sort(key=lambda entry: _rank(entry, words))
    return [entry.code for entry in found[:limit]]


# Descriptions worded as the residue of a category ("Other hypertension") rarely are what a
# clinician typing a disease's name means, nor are the chapters for one population
# (O pregnancy, P newborns: "Neonatal urinary tract infection") or for external causes and
# circumstances (V-Y, Z: "Family history of asthma"). They follow the general codes; typed
# words that only they have ("gestational", "family history") still find them first.
_RESIDUAL = "other"
_SET_APART = frozenset("OPVWXYZ")
# Words that leave a description meaning just what was typed: "Obesity, unspecified".
_FILLER = frozenset({"unspecified"})


def _rank(entry: _Entry, typed: tuple[str, ...]) -> tuple[int | bool | str, ...]:
    """Sort key, likeliest first, for a code whose description has every typed word.

    In order: every typed word a whole word of the description (not just a word's start:
    "asthma" before "asthmatic"); the description is exactly what was typed ("Headache",
    "Obesity, unspecified"); a general code before one of the chapters set apart; the less
    specific code (category ``I10`` before ``I10.x``, ``E11.9`` before ``E11.65``); not a
    residual "Other ..." code; a billable code (a complete diagnosis, as ``I10`` is) before
    a heading; then the shorter description and the code. So "hypertension" gives ``I10``
    ("Essential (primary) hypertension") first, not 15th behind "Ocular hypertension".
    """
    code, _, words = entry
    whole = set(words)
    partial = sum(1 for w in typed if w not in whole)
    exact = partial == 0 and whole - _FILLER == set(typed)
    return (
        partial,
        not exact,
        code.code[0] in _SET_APART,
        len(code.code) - (4 if "." in code.code else 3),  # characters past the category
        words[0] == _RESIDUAL,
        not code.billable,
        len(code.description),
        code.code,
    )

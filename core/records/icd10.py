"""ICD-10-CM codes to choose a problem from: search by code or by words, offline.

The code list is the one the ``simple-icd-10-cm`` package ships (the CMS ICD-10-CM tabular
list, MIT-licensed package; no network at any time). It is read once per process, on
first use, which takes a second or two: the app does it on its worker, the CLI when asked.
Only categories and subcategories (``E11``, ``E11.9``) are offered, not chapters or blocks.
"""

from __future__ import annotations

import functools
import re
import unicodedata
import warnings
from dataclasses import dataclass

from core.records.errors import ValidationError

_CODE_LIKE = re.compile(r"^[A-Za-z]\d[0-9A-Za-z]?\.?[0-9A-Za-z]{0,4}$")


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


@functools.cache
def _catalogue() -> tuple[tuple[Icd10Code, str], ...]:
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
        out.append((Icd10Code(code, description, bool(cm.is_leaf(code))), fold(description)))
    return tuple(out)


def load() -> int:
    """Read the code list now (e.g. on a worker before the first search); how many codes."""
    return len(_catalogue())


def lookup(code: str) -> Icd10Code:
    """The code as typed (``e119`` or ``E11.9``); ValidationError names an unknown one."""
    wanted = _plain(code)
    for entry, _ in _catalogue():
        if _plain(entry.code) == wanted:
            return entry
    raise ValidationError("code", f"{code.strip()!r} is not an ICD-10-CM code")


def _plain(code: str) -> str:
    return code.strip().replace(".", "").upper()


def search(text: str, limit: int = 50) -> list[Icd10Code]:
    """Codes matching what was typed: a code or its start (``E11``, ``e11.6``) lists that
    code and those below it; words (``diab typ 2``) list codes whose description has a word
    starting with each of them, in any order (accents and case ignored), shortest
    description first; at most ``limit``."""
    typed = text.strip()
    if not typed:
        return []
    if _CODE_LIKE.match(typed):
        prefix = _plain(typed)
        by_code = [e for e, _ in _catalogue() if _plain(e.code).startswith(prefix)]
        if by_code:
            return by_code[:limit]
    words = [w for w in re.split(r"[^\w]+", fold(typed)) if w]
    if not words:
        return []
    found = []
    for entry, folded in _catalogue():
        description_words = re.split(r"[^\w]+", folded)
        if all(any(d.startswith(w) for d in description_words) for w in words):
            found.append(entry)
    # Shorter descriptions first: "Essential (primary) hypertension" before the many
    # "Hypertensive heart and chronic kidney disease with ..." codes.
    found.sort(key=lambda e: (len(e.description), e.code))
    return found[:limit]

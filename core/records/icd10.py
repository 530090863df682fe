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
    first (``_rank``); at most ``limit``. An abbreviation or lay term typed as whole words
    (``uti``, ``copd``, ``heart attack``: ``SYNONYMS``) is read as its phrase: the phrase's
    codes come first, then any the letters as typed find."""
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
    expanded = _expand(words)
    found = _ranked(expanded, limit) if expanded else []
    if len(found) < limit:
        shown = set(found)
        # Asked for as many more as were shown: the phrase's codes may be among them.
        more = _ranked(words, limit + len(found))
        found += [e for e in more if e not in shown][: limit - len(found)]
    return [entry.code for entry in found]


def _ranked(words: tuple[str, ...], limit: int) -> list[_Entry]:
    """The first ``limit`` codes whose description has a word starting with each of
    ``words``, likeliest first."""
    key = max(words, key=len)
    found = [
        entry
        for entry in _catalogue()
        # The substring test (in C) of the longest word rules out nearly every code before
        # the per-word tests, which build a generator for each code they look at.
        if key in entry.folded
        and all(w in entry.folded for w in words)
        and all(any(d.startswith(w) for d in entry.words) for w in words)
    ]
    found.sort(key=lambda entry: _rank(entry, words))
    return found[:limit]


# What clinicians type for a diagnosis the ICD-10-CM list words otherwise: abbreviations and
# lay terms, each to the words of its descriptions ("Chronic obstructive pulmonary disease,
# unspecified", "Acute embolism and thrombosis of deep veins of lower extremity"). Only
# unambiguous ones: "MS" (multiple sclerosis or mitral stenosis) and "CA" are left out. A
# key matches only as whole typed words, so "uri" is an upper respiratory infection but
# "urin" still finds "urinary". tests/unit/records/test_icd10.py checks the code each finds.
SYNONYMS: dict[str, str] = {
    # Cardiovascular
    "htn": "hypertension",
    "high blood pressure": "hypertension",
    "chf": "heart failure",
    "hf": "heart failure",
    "mi": "myocardial infarction",
    "heart attack": "myocardial infarction",
    "af": "atrial fibrillation",
    "afib": "atrial fibrillation",
    "cad": "coronary artery disease",  # "Atherosclerotic heart disease of native coronary artery"
    "ihd": "ischemic heart disease",
    "dvt": "thrombosis deep veins",
    "pe": "pulmonary embolism",
    "tia": "transient ischemic attack",
    "stroke": "cerebral infarction",
    "pvd": "peripheral vascular disease",
    "pad": "peripheral vascular disease",
    "hld": "hyperlipidemia",
    "high cholesterol": "hypercholesterolemia",
    # Respiratory
    "copd": "chronic obstructive pulmonary disease",
    "uri": "upper respiratory infection",
    "urti": "upper respiratory infection",
    "osa": "obstructive sleep apnea",
    "sob": "shortness of breath",
    "flu": "influenza",
    "covid": "covid-19",  # "COVID-19" before "Post COVID-19 condition"
    # Endocrine and kidney
    "dm": "diabetes mellitus",  # type 1 and type 2 first: "dm 2" is type 2
    "sugar diabetes": "diabetes mellitus",
    "dm1": "type 1 diabetes mellitus",
    "t1dm": "type 1 diabetes mellitus",
    "iddm": "type 1 diabetes mellitus",
    "dm2": "type 2 diabetes mellitus",
    "t2dm": "type 2 diabetes mellitus",
    "niddm": "type 2 diabetes mellitus",
    "ckd": "chronic kidney disease",
    "esrd": "end stage renal disease",
    "aki": "acute kidney failure",
    "uti": "urinary tract infection",
    "bph": "benign prostatic hyperplasia",
    # Digestive
    "gerd": "gastro-esophageal reflux disease",
    "gord": "gastro-esophageal reflux disease",
    "ibs": "irritable bowel syndrome",
    # Musculoskeletal
    "oa": "osteoarthritis",
    "ra": "rheumatoid arthritis",
    "lbp": "low back pain",
    # Mental health
    "adhd": "attention-deficit hyperactivity disorder",
    "ptsd": "post-traumatic stress disorder",
    "gad": "generalized anxiety disorder",
}
_EXPANSIONS = {_words(fold(typed)): _words(fold(phrase)) for typed, phrase in SYNONYMS.items()}
_LONGEST_SYNONYM = max(len(typed) for typed in _EXPANSIONS)


def _expand(words: tuple[str, ...]) -> tuple[str, ...] | None:
    """The typed words with each abbreviation or lay term in them replaced by its phrase
    (the longest that matches first: "high blood pressure" before any "high"), or None when
    there is none."""
    out: list[str] = []
    at = 0
    while at < len(words):
        for n in range(min(_LONGEST_SYNONYM, len(words) - at), 0, -1):
            phrase = _EXPANSIONS.get(words[at : at + n])
            if phrase is not None:
                out += phrase
                at += n
                break
        else:
            out.append(words[at])
            at += 1
    result = tuple(out)
    return None if result == words else result


# Descriptions worded as the residue of a category ("Other hypertension") rarely are what a
# clinician typing a disease's name means, nor are the chapters for one population
# (O pregnancy, P newborns: "Neonatal urinary tract infection") or for external causes and
# circumstances (V-Y, Z: "Family history of asthma"). They follow the general codes; typed
# words that only they have ("gestational", "family history") still find them first.
_RESIDUAL = "other"
_SET_APART = frozenset("OPVWXYZ")
# Words that leave a description meaning just what was typed: "Obesity, unspecified",
# "Unspecified atrial fibrillation"; so does a closing clause saying what is not known
# ("Pneumonia, unspecified organism", "Urinary tract infection, site not specified",
# "..., unspecified type"), unless it goes on to more ("Alcohol use, unspecified with
# intoxication").
_FILLER = frozenset({"unspecified"})
_UNKNOWN_CLAUSE = re.compile(r", (?:unspecified[^,]*|[^,]* not specified)$")


def _rank(entry: _Entry, typed: tuple[str, ...]) -> tuple[int | bool | str, ...]:
    """Sort key, likeliest first, for a code whose description has every typed word.

    In order: every typed word a whole word of the description (not just a word's start:
    "asthma" before "asthmatic"); the description is exactly what was typed ("Headache",
    "Obesity, unspecified", "Pneumonia, unspecified organism": ``_just``); a general code
    before one of the chapters set apart; the less specific code (category ``I10`` before
    ``I10.x``, ``E11.9`` before ``E11.65``); not a residual "Other ..." code; a billable
    code (a complete diagnosis, as ``I10`` is) before a heading; then the shorter
    description and the code. So "hypertension" gives ``I10``
    ("Essential (primary) hypertension") first, not 15th behind "Ocular hypertension".
    """
    code, folded, words = entry
    whole = set(words)
    partial = sum(1 for w in typed if w not in whole)
    exact = partial == 0 and _just(folded, whole, set(typed))
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


def _just(folded: str, whole: set[str], typed: set[str]) -> bool:
    """Whether a description with every typed word as a whole word says nothing more than
    them, apart from saying what is unspecified."""
    if whole - _FILLER == typed:
        return True
    clause = _UNKNOWN_CLAUSE.search(folded)
    if clause is None or " with" in folded[clause.start() :]:
        return False
    return set(_words(folded[: clause.start()])) - _FILLER == typed

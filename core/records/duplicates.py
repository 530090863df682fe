"""Possible duplicate registrations: patients born the same day with the same or a similar name.

A clinic that registers one person twice splits their chart in two, and an allergy recorded on
one half is missing from the other. So a registration first looks for patients born on the
same date (an indexed lookup, never a scan of the clinic) whose names match once accents,
apostrophes, hyphens, spaces and case are set aside, or differ by a typing slip, or were
entered the other way round (given name as family name). Letters with a stroke read as
search reads them (Ødegård as Odegard: ``core.store.search.FOLDED_LETTERS``), and names are
also compared with å, ä, ö, ü and ø spelled out as on a keyboard without them (aa, ae,
oe, ue, oe): Aase is Åse and Mueller is Müller, where dropping the accent alone gives Ase
and Muller.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import combinations

from core.records.errors import RecordError
from core.records.models import PatientSummary
from core.store.database import Database, Transaction
from core.store.search import fold_name, spell_out

_COLUMNS = "id, family, given, birth_date, mrn, sex"


class DuplicatePatientError(RecordError):
    """The patient may already be registered; ``matches`` are the existing records."""

    def __init__(self, matches: list[PatientSummary]) -> None:
        names = "; ".join(describe(m) for m in matches)
        super().__init__(f"this patient may already be registered: {names}")
        self.matches = matches


def describe(patient: PatientSummary) -> str:
    """``OKAFOR, Chinedu, born 1984-02-02, MRN MRN-1003 (id ...)`` for messages."""
    mrn = f", MRN {patient.mrn}" if patient.mrn else ""
    return (
        f"{patient.family.upper()}, {patient.given}, born {patient.birth_date}{mrn} "
        f"(id {patient.id})"
    )


def _edits(a: str, b: str, limit: int) -> int:
    """Levenshtein distance between ``a`` and ``b``, or ``limit + 1`` once it exceeds it."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def similar(a: str, b: str) -> bool:
    """Two folded names that are the same, or one slip apart (two for long names):
    ``okafor``/``okafur``, ``chinedu``/``chinendu``. Very short names must be equal."""
    if a == b:
        return True
    shortest = min(len(a), len(b))
    if shortest < 4:
        return False
    allowed = 1 if shortest < 8 else 2
    return _edits(a, b, allowed) <= allowed


def spelled_name(name: str) -> str:
    """``fold_name`` of ``name`` with å, ä, ö, ü and ø spelled out (``SPELLED_LETTERS``):
    ``"Åse"`` gives ``"aase"``, ``"Müller"`` ``"mueller"`` (``fold_name`` gives ``"ase"``,
    ``"muller"``)."""
    return fold_name(spell_out(name))


# A name as compared: (family, given), each as ``fold_name`` and ``spelled_name`` read it.
_Folded = tuple[tuple[str, str], tuple[str, str]]


def _folded(family: str, given: str) -> _Folded:
    return (fold_name(family), spelled_name(family)), (fold_name(given), spelled_name(given))


def _alike(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Two names similar read either way (each name on its own: Odegard is Ødegård with
    accents dropped, and Aase is Åse spelled out)."""
    return similar(a[0], b[0]) or ((a[1], b[1]) != (a[0], b[0]) and similar(a[1], b[1]))


def _matches(one: _Folded, other: _Folded) -> bool:
    (f, g), (of, og) = one, other
    for way in (0, 1):  # the same letters split differently
        if {f[way] + g[way], g[way] + f[way]} & {of[way] + og[way], og[way] + of[way]}:
            return True
    return (_alike(f, of) and _alike(g, og)) or (_alike(f, og) and _alike(g, of))


def names_match(family: str, given: str, other_family: str, other_given: str) -> bool:
    """True when two names may be one person's, in either order."""
    return _matches(_folded(family, given), _folded(other_family, other_given))


def find_possible_duplicates(
    db: Database | Transaction,
    family: str,
    given: str,
    birth_date: str,
    exclude: str | None = None,
) -> list[PatientSummary]:
    """Patients born on ``birth_date`` (ISO) whose names may be this one, in name order.

    ``exclude`` leaves out one record (the patient being edited).
    """
    rows = db.query(
        f"SELECT {_COLUMNS} FROM patients WHERE birth_date = ? ORDER BY sort_key, id",
        (birth_date,),
    )
    found = [PatientSummary(*row) for row in rows]
    name = _folded(family, given)
    return [p for p in found if p.id != exclude and _matches(name, _folded(p.family, p.given))]


def _deletions(name: str) -> set[str]:
    """``name`` and what deleting up to the slips ``similar`` allows leaves of it: two
    names one or two slips apart leave a string in common (the symmetric-delete rule)."""
    if len(name) < 4:
        return {name}  # very short names must be equal
    found, frontier = {name}, {name}
    for _ in range(1 if len(name) < 8 else 2):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def _keys(name: _Folded) -> set[str]:
    # Either name may be the other's (entered the other way round), and the same letters
    # may be split differently between them; each name read either way (``_folded``): a
    # pair that ``names_match`` accepts shares a key of the way it matched.
    keys: set[str] = set()
    for f, g in set(zip(*name, strict=True)):  # mostly one way: no letter reads two ways
        keys |= {"n:" + k for k in _deletions(f) | _deletions(g)} | {"c:" + f + g, "c:" + g + f}
    return keys


def matching_pairs(
    patients: Sequence[PatientSummary],
) -> Iterator[tuple[PatientSummary, PatientSummary]]:
    """The pairs of ``patients`` (all born the same day) that registration would call
    possible duplicates (``names_match``), in the order given. Only pairs sharing a name key
    are compared, not every pair: a day with many births costs little more than its
    matches (the keys find every pair ``names_match`` accepts; tests/unit/records/
    test_duplicates.py checks that against comparing every pair)."""
    names = [_folded(p.family, p.given) for p in patients]
    by_key: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        for key in _keys(name):
            by_key.setdefault(key, []).append(index)
    candidates: set[tuple[int, int]] = set()
    for indexes in by_key.values():
        candidates.update(combinations(indexes, 2))  # each list is in ascending order
    for i, j in sorted(candidates):
        if _matches(names[i], names[j]):
            yield patients[i], patients[j]

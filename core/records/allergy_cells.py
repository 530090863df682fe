"""An allergies cell of a patient list: ``penicillin (rash, severe); latex``.

Each allergy is a substance, optionally followed by what is known of it in parentheses:
the reaction, and a severity (one of mild, moderate, severe, unknown, in any case) in any
order, separated by commas (a separator inside brackets does not split the cell).
``NKA``, ``NKDA``, ``none`` or ``No known allergies`` alone says the patient was asked and
has none. A cell that cannot be read raises ValidationError (field ``allergies``) saying
which allergy and why, so the dry run lists the row with that reason and nothing of it is
imported.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.records import validation as v
from core.records.clinic import clean_item
from core.records.errors import ValidationError
from core.records.types import ALLERGIES

# An allergies cell saying the patient was asked and has none: "No known allergies".
NO_KNOWN_ALLERGIES = ("nka", "nkda", "none", "no known allergies")


@dataclass(frozen=True)
class AllergyCell:
    """One allergy as the cell gives it."""

    substance: str
    reaction: str | None = None
    severity: str | None = None


def _problem(why: str) -> ValidationError:
    return ValidationError("allergies", why)


def read_allergy(text: str) -> AllergyCell:
    """``penicillin (rash, severe)`` as an allergy; ValidationError says why not."""
    raw = text.strip()
    opened = raw.find("(")
    if opened < 0:
        if ")" in raw:
            raise _problem(f"{raw!r} has a ')' without its '('")
        substance, details = raw, ""
    else:
        closed = raw.rfind(")")
        if closed < opened:
            raise _problem(f"{raw!r} has a '(' without its ')'")
        if raw[closed + 1 :].strip():
            raise _problem(f"{raw!r} has text after its ')'")
        substance, details = raw[:opened].strip(), raw[opened + 1 : closed]
        if "(" in details or ")" in details:
            raise _problem(f"{raw!r} has brackets inside its brackets")
    if not substance:
        raise _problem(f"{raw!r} gives a reaction or severity but no substance")
    severities: list[str] = []
    reactions: list[str] = []
    for part in (p.strip() for p in details.split(",")):
        if part.lower() in v.SEVERITY_VALUES:
            severities.append(part.lower())
        elif part:
            reactions.append(part)
    if len(set(severities)) > 1:
        raise _problem(f"{raw!r} gives two severities ({', '.join(severities)})")
    severity = severities[0] if severities else None
    found = AllergyCell(substance, ", ".join(reactions) or None, severity)
    try:
        clean_item(ALLERGIES, {"substance": found.substance, "reaction": found.reaction,
                               "severity": found.severity})  # fmt: skip
    except ValidationError as exc:
        raise _problem(f"{raw!r}: {exc!s}") from None
    return found


def _split(raw: str, separator: str) -> list[str]:
    """The cell's allergies: split at ``separator`` outside brackets (so a ``,`` separator
    leaves ``penicillin (rash, severe)`` whole)."""
    parts: list[str] = []
    current: list[str] = []
    depth = i = 0
    while i < len(raw):
        if depth == 0 and raw.startswith(separator, i):
            parts.append("".join(current))
            current, i = [], i + len(separator)
            continue
        ch = raw[i]
        depth += (ch == "(") - (ch == ")" and depth > 0)
        current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def read_allergies(raw: str, separator: str) -> tuple[AllergyCell, ...] | None:
    """The cell's allergies (a substance named again with the same details kept once), or
    None for "No known allergies"; ValidationError names the allergy that cannot be read
    and why, or a substance named twice with different details (keeping either would lose
    the other: it may be the severe one)."""
    parts = _split(raw, separator)
    if len(parts) == 1 and parts[0].lower() in NO_KNOWN_ALLERGIES:
        return None
    if any(s.lower() in NO_KNOWN_ALLERGIES for s in parts):
        raise _problem("lists allergies and says there are none")
    found: dict[str, tuple[str, AllergyCell]] = {}  # by substance: as written, and read
    for part in parts:
        allergy = read_allergy(part)
        earlier = found.setdefault(allergy.substance.casefold(), (part, allergy))
        first, kept = earlier
        if _details(kept) != _details(allergy):
            raise _problem(
                f"names {allergy.substance} twice, with different details ({first!r} and "
                f"{part!r}): keep one entry for it in the cell (a second can be added on the "
                "chart after the import)"
            )
    return tuple(allergy for _, allergy in found.values())


def _details(allergy: AllergyCell) -> tuple[str, str | None]:
    """What an allergy says of its substance, compared case-blind: the same reaction and
    severity written twice is one allergy."""
    return ((allergy.reaction or "").casefold(), allergy.severity)

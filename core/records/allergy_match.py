"""Does a medication about to be started match one of the patient's recorded allergies?

A match warns; it never forbids (the prescriber may know the allergy is an intolerance, or
that the drug was tolerated since). What matches, case and accents ignored:

- the same word: allergy "Penicillin" and "Penicillin V potassium"; "amoxicillin" and
  "Amoxicillin 500 mg"; one name inside the other ("codeine" in "codeine phosphate");
  singular or plural either way ("Peanuts" and "Peanut oil", "Peanut" and "Peanuts
  extract", "berries"/"berry", "tomatoes"/"tomato": ``word_forms``);
- a drug of a class the allergy names, from the small table ``CLASSES`` below: penicillins,
  cephalosporins, sulfonamides, NSAIDs (with aspirin), opioids, macrolides, tetracyclines,
  fluoroquinolones. It names the class and its common members; it is not a drug
  database, and a member missing from it is not warned about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from core.records.icd10 import fold
from core.records.models import Allergy

# A class as messages name it -> (its spellings in allergy records, members: the stems
# of drug names).
CLASSES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "penicillins": (("penicillin", "penicillins"), (
        "penicillin", "amoxicillin", "ampicillin", "flucloxacillin", "dicloxacillin",
        "cloxacillin", "oxacillin", "nafcillin", "piperacillin", "ticarcillin", "co-amoxiclav",
        "augmentin",
    )),
    "cephalosporins": (("cephalosporin", "cephalosporins"), (
        "cefalexin", "cephalexin", "cefazolin", "cefuroxime", "ceftriaxone", "cefotaxime",
        "cefixime", "cefdinir", "cefepime", "cefaclor", "cefadroxil", "ceftazidime",
    )),
    "sulfonamides": (("sulfa", "sulfonamide", "sulfonamides", "sulpha", "sulphonamide"), (
        "sulfamethoxazole", "co-trimoxazole", "trimethoprim-sulfamethoxazole", "bactrim",
        "sulfasalazine", "sulfadiazine",
    )),
    "NSAIDs": (("nsaid", "nsaids", "aspirin"), (
        "aspirin", "acetylsalicylic", "ibuprofen", "naproxen", "diclofenac", "ketorolac",
        "indometacin", "indomethacin", "celecoxib", "meloxicam", "piroxicam",
    )),
    "opioids": (("opioid", "opioids", "opiate", "opiates", "morphine", "codeine"), (
        "morphine", "codeine", "oxycodone", "hydrocodone", "hydromorphone", "fentanyl",
        "tramadol", "tapentadol", "methadone", "buprenorphine", "pethidine", "meperidine",
    )),
    "macrolides": (("macrolide", "macrolides"), (
        "erythromycin", "azithromycin", "clarithromycin",
    )),
    "tetracyclines": (("tetracycline", "tetracyclines"), (
        "tetracycline", "doxycycline", "minocycline",
    )),
    "fluoroquinolones": (("fluoroquinolone", "fluoroquinolones", "quinolone", "quinolones"), (
        "ciprofloxacin", "levofloxacin", "moxifloxacin", "ofloxacin", "norfloxacin",
    )),
}  # fmt: skip


@dataclass(frozen=True)
class AllergyMatch:
    """A recorded allergy a medication matches, and why."""

    allergy: Allergy
    reason: str  # "same name" or "amoxicillin is a penicillin"

    def describe(self) -> str:
        """``Penicillin (anaphylaxis, severe): amoxicillin is a penicillin``."""
        details = ", ".join(x for x in (self.allergy.reaction, self.allergy.severity) if x)
        name = self.allergy.substance + (f" ({details})" if details else "")
        return f"{name}: {self.reason}"


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^\w-]+", fold(text)) if w]


# Plurals are only undone on words this long: "gas", "ds" (Bactrim DS) stay as they are.
_SHORTEST_PLURAL = 4


def word_forms(word: str) -> set[str]:
    """A folded word and the singulars it may be the plural of ("peanuts": {"peanuts",
    "peanut"}; "berries": {"berries", "berry", "berrie"}; "tomatoes": {"tomatoes",
    "tomatoe", "tomato"}). Two words are the same when their forms meet, so singular and
    plural match both ways. English plurals only, by their endings: a few extra forms
    that are no word do no harm, as only forms of both names are compared. Words ending
    "ss", "us" or "is" (glass, virus, iris) are not plurals."""
    forms = {word}
    if len(word) < _SHORTEST_PLURAL or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return forms
    forms.add(word[:-1])  # peanuts, eggs, cheeses
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")  # berries, cherries
    elif word.endswith(("oes", "ses", "xes", "zes", "ches", "shes")):
        forms.add(word[:-2])  # tomatoes, glasses, boxes, peaches
    return forms


def _same_word(substance: list[str], drug: list[str]) -> bool:
    """True when a word of the allergy is a word of the drug, singular or plural."""
    drug_forms = set().union(*(word_forms(w) for w in drug))
    return any(word_forms(w) & drug_forms for w in substance)


def _class_reason(substance: list[str], drug: list[str]) -> str | None:
    for label, (names, members) in CLASSES.items():
        if not any(word in names for word in substance):
            continue
        for word in drug:
            member = next((m for m in members if word.startswith(m)), None)
            if member is not None:
                return f"{member} is one of the {label}"
    return None


def match(drug_name: str, allergies: Iterable[Allergy]) -> list[AllergyMatch]:
    """The recorded allergies ``drug_name`` matches (empty: none)."""
    drug = _words(drug_name)
    folded_drug = " ".join(drug)
    found = []
    for allergy in allergies:
        substance = _words(allergy.substance)
        folded = " ".join(substance)
        if not substance or not drug:
            continue
        if _same_word(substance, drug) or folded in folded_drug or folded_drug in folded:
            found.append(AllergyMatch(allergy, "same name"))
            continue
        reason = _class_reason(substance, drug)
        if reason is not None:
            found.append(AllergyMatch(allergy, reason))
    return found

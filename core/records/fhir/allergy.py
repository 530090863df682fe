"""AllergyIntolerance: an allergy on the chart (substance, reaction, severity, who
recorded it when)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.allergyintolerance import (
    AllergyIntolerance,
    AllergyIntoleranceReaction,
)

from core.records.fhir.common import (
    ALLERGY_CLINICAL,
    absent,
    code_in,
    concept,
    ref,
    staff,
    text_of,
    utc_time,
)
from core.records.models import Allergy

_ACTIVE = concept("Active", ALLERGY_CLINICAL, "active")
SNOMED = "http://snomed.info/sct"
NO_KNOWN_ALLERGY = "716186003"  # SNOMED CT "No known allergy", as FHIR's IPS records it


def to_fhir(allergy: Allergy) -> AllergyIntolerance:
    """A recorded allergy as a FHIR AllergyIntolerance."""
    reaction = None
    if allergy.reaction or allergy.severity:
        # A severity with no reaction named: the reaction's manifestation is "unknown".
        shown = concept(allergy.reaction) if allergy.reaction else absent()
        severity = allergy.severity if allergy.severity in ("mild", "moderate", "severe") else None
        reaction = [AllergyIntoleranceReaction(manifestation=[shown], severity=severity)]
    return AllergyIntolerance(
        id=allergy.id,
        patient=ref("Patient", allergy.patient_id),
        clinicalStatus=_ACTIVE,
        code=concept(allergy.substance),
        reaction=reaction,
        recordedDate=utc_time(allergy.recorded_at),
        recorder=staff(allergy.recorded_by),
    )


def no_known_allergies(patient_id: str) -> AllergyIntolerance:
    """The patient was asked and has no known allergies (Careline's ``nka`` status)."""
    return AllergyIntolerance(
        id=f"nka-{patient_id}",
        patient=ref("Patient", patient_id),
        clinicalStatus=_ACTIVE,
        code=concept("No known allergy", SNOMED, NO_KNOWN_ALLERGY),
    )


@dataclass(frozen=True)
class AllergyFields:
    """What an AllergyIntolerance gives ``ClinicRecords.add_allergy`` (or, for ``none_known``,
    the "No known allergies" answer)."""

    substance: str | None
    reaction: str | None
    severity: str | None
    none_known: bool = False


def from_fhir(resource: AllergyIntolerance) -> AllergyFields:
    """The allergy's substance, first reaction and its severity."""
    if code_in(resource.code, SNOMED) == NO_KNOWN_ALLERGY:
        return AllergyFields(None, None, None, none_known=True)
    reaction = severity = None
    if resource.reaction:
        first = resource.reaction[0]
        reaction = text_of(first.manifestation[0]) if first.manifestation else None
        severity = str(first.severity) if first.severity else None
    return AllergyFields(text_of(resource.code), reaction, severity)

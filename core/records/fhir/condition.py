"""Condition: a problem on the problem list, coded with ICD-10-CM (or uncoded text)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.condition import Condition

from core.records import icd10
from core.records.errors import ValidationError
from core.records.fhir.common import (
    CONDITION_CLINICAL,
    ICD10CM,
    FhirError,
    as_text,
    code_in,
    concept,
    partial,
    ref,
    reference_text,
    text_of,
)
from core.records.problems import Problem


def to_fhir(problem: Problem) -> Condition:
    """A problem as a FHIR Condition (ICD-10-CM coding when coded)."""
    status = "resolved" if problem.status == "resolved" else "active"
    return Condition(
        id=problem.id,
        subject=ref("Patient", problem.patient_id),
        code=concept(problem.description, ICD10CM if problem.code else None, problem.code),
        clinicalStatus=concept(status.capitalize(), CONDITION_CLINICAL, status),
        onsetDateTime=partial(problem.onset),
        abatementDateTime=partial(problem.resolved),
        encounter=ref("Encounter", problem.encounter_id) if problem.encounter_id else None,
    )


@dataclass(frozen=True)
class ConditionFields:
    """A problem list item's values, and the visit it points at (as written)."""

    values: dict[str, str | None]
    encounter: str | None


def from_fhir(resource: Condition, where: str) -> ConditionFields:
    """The problem's values; an ICD-10-CM code the code list does not hold is refused."""
    description = text_of(resource.code)
    code = code_in(resource.code, ICD10CM)
    if code is not None:
        try:
            code = icd10.lookup(code).code
        except ValidationError as exc:
            raise FhirError(f"{where}.code", str(exc)) from None
    if not description:
        raise FhirError(f"{where}.code", "a condition needs its text or a coded display")
    status = code_in(resource.clinicalStatus, CONDITION_CLINICAL)
    resolved = status in ("resolved", "inactive", "remission") or (
        status is None and resource.abatementDateTime is not None
    )
    values: dict[str, str | None] = {
        "description": description,
        "code": code,
        "status": "resolved" if resolved else "active",
        "onset": as_text(resource.onsetDateTime),
        "resolved": as_text(resource.abatementDateTime),
    }
    return ConditionFields(values, reference_text(resource.encounter))

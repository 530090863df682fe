"""MedicationStatement: a medication on the chart (active, or stopped: history), with its
strength, dose, route, frequency, dates, reason and prescriber."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.dosage import Dosage
from fhir.resources.R4B.medicationstatement import MedicationStatement
from fhir.resources.R4B.period import Period
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.timing import Timing

from core.records.fhir.common import (
    FhirError,
    as_text,
    concept,
    extension,
    extension_value,
    partial,
    ref,
    reference_text,
    text_of,
)
from core.records.medications import Medication


def to_fhir(med: Medication) -> MedicationStatement:
    """A medication as a FHIR MedicationStatement (the strength as typed is an extension:
    R4 keeps strength on a Medication resource, as a ratio Careline does not parse)."""
    dosage = None
    if med.dose or med.route or med.frequency:
        dosage = [
            Dosage(
                text=med.dose,
                route=concept(med.route) if med.route else None,
                timing=Timing(code=concept(med.frequency)) if med.frequency else None,
            )
        ]
    period = None
    if med.start or med.stop:
        period = Period(start=partial(med.start), end=partial(med.stop))
    return MedicationStatement(
        id=med.id,
        status="stopped" if med.status == "stopped" else "active",
        subject=ref("Patient", med.patient_id),
        medicationCodeableConcept=concept(med.name),
        extension=extension("strength", med.strength),
        dosage=dosage,
        effectivePeriod=period,
        reasonCode=[concept(med.reason)] if med.reason else None,
        informationSource=Reference(display=med.prescriber) if med.prescriber else None,
        context=ref("Encounter", med.encounter_id) if med.encounter_id else None,
    )


@dataclass(frozen=True)
class MedicationFields:
    """A medication list item's values, and the visit it points at (as written)."""

    values: dict[str, str | None]
    encounter: str | None


def from_fhir(resource: MedicationStatement, where: str) -> MedicationFields:
    """The medication's values; one named only by a reference to a Medication resource
    is refused (Careline keeps the name as text)."""
    name = text_of(resource.medicationCodeableConcept)
    if not name and resource.medicationReference is not None:
        name = resource.medicationReference.display
    if not name:
        raise FhirError(f"{where}.medicationCodeableConcept", "the medication has no name")
    first = resource.dosage[0] if resource.dosage else None
    period = resource.effectivePeriod
    stopped = resource.status in ("stopped", "completed")
    values: dict[str, str | None] = {
        "name": str(name),
        "strength": extension_value(resource.extension, "strength"),
        "dose": str(first.text) if first is not None and first.text else None,
        "route": text_of(first.route) if first is not None else None,
        "frequency": text_of(first.timing.code) if first is not None and first.timing else None,
        "start": as_text(period.start) if period else None,
        "stop": as_text(period.end) if period else None,
        "reason": text_of(resource.reasonCode[0]) if resource.reasonCode else None,
        "prescriber": (
            str(resource.informationSource.display)
            if resource.informationSource and resource.informationSource.display
            else None
        ),
        "status": "stopped" if stopped else "active",
    }
    return MedicationFields(values, reference_text(resource.context))

"""Observation: a vital sign, in FHIR's vital-signs profile (LOINC code, UCUM unit, the
vital-signs category), from the vitals catalogue (core/records/vitals.py)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.quantity import Quantity

from core.records import vitals as cat
from core.records.fhir.common import (
    LOINC,
    OBSERVATION_CATEGORY,
    UCUM,
    VITAL_SIGNS_PROFILE,
    FhirError,
    as_local,
    code_in,
    concept,
    decimal_text,
    local_time,
    ref,
    reference_text,
)
from core.records.vital_signs import Reading

_CATEGORY = [concept("Vital Signs", OBSERVATION_CATEGORY, "vital-signs")]
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_FLAGS = {"high": ("H", "High"), "low": ("L", "Low")}


def to_fhir(reading: Reading) -> Observation:
    """A stored vital sign as a vital-signs Observation: the value as it was entered, in
    the UCUM unit it was entered in (``102 [degF]``: the profile allows it, and it is
    exact; the canonical ``38.89 Cel`` is rounded), else the canonical value and unit."""
    vital = reading.vital
    label = vital.label if vital is not None else reading.code
    value, ucum = reading.value, reading.unit
    if reading.entered_value and reading.entered_unit:
        value, ucum = reading.entered_value, reading.entered_unit
    symbols = {u.ucum: u.symbol for u in vital.units} if vital is not None else {}
    unit = symbols.get(ucum or "") or ucum
    flag = _FLAGS.get(reading.flag or "")
    return Observation(
        id=reading.id,
        meta=Meta(profile=[VITAL_SIGNS_PROFILE]),
        status="final",
        category=_CATEGORY,
        code=concept(label, LOINC, reading.code),
        subject=ref("Patient", reading.patient_id),
        encounter=ref("Encounter", reading.encounter_id) if reading.encounter_id else None,
        effectiveDateTime=local_time(reading.observed_at),
        valueQuantity=Quantity(value=Decimal(value), unit=unit, system=UCUM, code=ucum),
        interpretation=[concept(flag[1], _INTERPRETATION, flag[0])] if flag else None,
    )


@dataclass(frozen=True)
class ObservationFields:
    """A vital sign ready for ``VitalSigns.record``: its key, value, UCUM unit, time, visit."""

    key: str
    value: str
    unit: str | None
    observed_at: str
    encounter: str | None


def from_fhir(resource: Observation, where: str) -> ObservationFields:
    """A vital sign; an Observation whose LOINC code is not in the vitals catalogue, or
    that has no quantity, is refused (FhirError names the element)."""
    code = code_in(resource.code if isinstance(resource.code, CodeableConcept) else None, LOINC)
    vital = cat.BY_CODE.get(code or "")
    if vital is None or vital.computed:
        raise FhirError(
            f"{where}.code", f"LOINC {code or '(none)'} is not a vital sign recorded here"
        )
    quantity = resource.valueQuantity
    if quantity is None or quantity.value is None:
        raise FhirError(f"{where}.valueQuantity", "a vital sign needs a value")
    observed = as_local(resource.effectiveDateTime, f"{where}.effectiveDateTime")
    if observed is None:
        raise FhirError(f"{where}.effectiveDateTime", "a vital sign needs the time measured")
    unit = str(quantity.code) if quantity.code and quantity.system == UCUM else None
    return ObservationFields(
        vital.key,
        decimal_text(quantity.value) or "",
        unit,
        observed,
        reference_text(resource.encounter),
    )

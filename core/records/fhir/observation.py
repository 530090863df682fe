"""Observation: a vital sign, in FHIR's vital-signs profile (LOINC code, UCUM unit, the
vital-signs category), from the vitals catalogue (core/records/vitals.py). Systolic and
diastolic pressures taken together are one blood-pressure Observation (LOINC 85354-9) with
two components, as the profile's blood-pressure rule has them.

Each Observation names the set it was recorded in (the Careline extension ``vital-set``:
the readings' set id), so an import rebuilds the sets as they were recorded, two sets
measured in the same minute included; a bundle from elsewhere has none, and its vital signs
of one time and visit are read as one set."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir.resources.R4B.meta import Meta
from fhir.resources.R4B.observation import Observation, ObservationComponent
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
    extension,
    extension_value,
    local_time,
    ref,
    reference_text,
)
from core.records.vital_signs import Reading, recordings

BLOOD_PRESSURE = "85354-9"
BLOOD_PRESSURE_PROFILE = "http://hl7.org/fhir/StructureDefinition/bp"
_CATEGORY = [concept("Vital Signs", OBSERVATION_CATEGORY, "vital-signs")]
_INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
_FLAGS = {"high": ("H", "High"), "low": ("L", "Low")}


class NotAVitalSign(Exception):
    """An Observation that is not a vital sign (a lab result, say): reported, not imported."""


def _quantity(reading: Reading) -> Quantity:
    """The value as it was entered, in the UCUM unit it was entered in (``102 [degF]``:
    the profile allows it, and it is exact; the canonical ``38.89 Cel`` is rounded), else
    the canonical value and unit."""
    vital = reading.vital
    value, ucum = reading.value, reading.unit
    if reading.entered_value and reading.entered_unit:
        value, ucum = reading.entered_value, reading.entered_unit
    symbols = {u.ucum: u.symbol for u in vital.units} if vital is not None else {}
    return Quantity(
        value=Decimal(value), unit=symbols.get(ucum or "") or ucum, system=UCUM, code=ucum
    )


def _interpretation(reading: Reading) -> Any:
    flag = _FLAGS.get(reading.flag or "")
    return [concept(flag[1], _INTERPRETATION, flag[0])] if flag else None


def _label(reading: Reading) -> str:
    return reading.vital.label if reading.vital is not None else reading.code


SET_EXTENSION = "vital-set"


def to_fhir(reading: Reading, set_key: str | None = None) -> Observation:
    """One stored vital sign as a vital-signs Observation (``set_key``: the set it was
    recorded in)."""
    return Observation(
        id=reading.id,
        extension=extension(SET_EXTENSION, set_key),
        meta=Meta(profile=[VITAL_SIGNS_PROFILE]),
        status="final",
        category=_CATEGORY,
        code=concept(_label(reading), LOINC, reading.code),
        subject=ref("Patient", reading.patient_id),
        encounter=ref("Encounter", reading.encounter_id) if reading.encounter_id else None,
        effectiveDateTime=local_time(reading.observed_at),
        valueQuantity=_quantity(reading),
        interpretation=_interpretation(reading),
    )


def blood_pressure_to_fhir(
    systolic: Reading, diastolic: Reading, set_key: str | None = None
) -> Observation:
    """Both pressures of one set as a blood-pressure Observation (the systolic's id)."""
    return Observation(
        id=systolic.id,
        extension=extension(SET_EXTENSION, set_key),
        meta=Meta(profile=[BLOOD_PRESSURE_PROFILE]),
        status="final",
        category=_CATEGORY,
        code=concept("Blood pressure panel with all children optional", LOINC, BLOOD_PRESSURE),
        subject=ref("Patient", systolic.patient_id),
        encounter=ref("Encounter", systolic.encounter_id) if systolic.encounter_id else None,
        effectiveDateTime=local_time(systolic.observed_at),
        component=[
            ObservationComponent(
                code=concept(_label(r), LOINC, r.code),
                valueQuantity=_quantity(r),
                interpretation=_interpretation(r),
            )
            for r in (systolic, diastolic)
        ],
    )


def pair_pressures(
    readings: list[Reading],
) -> list[tuple[Reading | tuple[Reading, Reading], str]]:
    """The readings in order, each with the key of the set it was recorded in (its set id,
    or for a reading recorded before set ids existed its set's first reading's id), each
    systolic paired with the diastolic recorded with it (``vital_signs.recordings``: one
    recording, never two sets of the same minute)."""
    partners: dict[str, Reading] = {}  # systolic id -> its diastolic
    keys: dict[str, str] = {}  # reading id -> its set's key
    for group in recordings(readings):
        for r in group:
            keys[r.id] = group[0].set_id or min(g.id for g in group)
        by_code = {r.code: r for r in group}
        systolic, diastolic = by_code.get(cat.SYSTOLIC.code), by_code.get(cat.DIASTOLIC.code)
        if systolic is not None and diastolic is not None:
            partners[systolic.id] = diastolic
    taken = {p.id for p in partners.values()}
    return [
        ((r, partners[r.id]) if r.id in partners else r, keys[r.id])
        for r in readings
        if r.id not in taken
    ]


@dataclass(frozen=True)
class ObservationFields:
    """A vital sign ready for ``VitalSigns.record``: its key, value, UCUM unit, time, visit."""

    key: str
    value: str
    unit: str | None
    observed_at: str
    encounter: str | None
    set_key: str | None = None  # the set it was recorded in (exported by Careline)


def _vital(code: str | None, quantity: Quantity | None, where: str) -> tuple[str, str, str | None]:
    vital = cat.BY_CODE.get(code or "")
    if vital is None or vital.computed:
        raise NotAVitalSign(f"LOINC {code or '(none)'} is not a vital sign recorded here")
    if quantity is None or quantity.value is None:
        raise FhirError(f"{where}.valueQuantity", "a vital sign needs a value")
    unit = str(quantity.code) if quantity.code and quantity.system == UCUM else None
    return vital.key, decimal_text(quantity.value) or "", unit


def from_fhir(resource: Observation, where: str) -> list[ObservationFields]:
    """The vital signs an Observation holds (a blood-pressure one holds two). NotAVitalSign
    for one that holds none; FhirError names a vital sign without its value or time."""
    code = code_in(resource.code, LOINC)
    found: list[tuple[str, str, str | None]] = []
    if resource.component:
        for i, component in enumerate(resource.component):
            try:
                found.append(
                    _vital(
                        code_in(component.code, LOINC),
                        component.valueQuantity,
                        f"{where}.component[{i}]",
                    )
                )
            except NotAVitalSign:
                continue
        if not found:
            raise NotAVitalSign(f"LOINC {code or '(none)'} holds no vital sign recorded here")
    else:
        found.append(_vital(code, resource.valueQuantity, where))
    observed = as_local(resource.effectiveDateTime, f"{where}.effectiveDateTime")
    if observed is None:
        raise FhirError(f"{where}.effectiveDateTime", "a vital sign needs the time measured")
    encounter = reference_text(resource.encounter)
    set_key = extension_value(resource.extension, SET_EXTENSION)
    return [
        ObservationFields(key, value, unit, observed, encounter, set_key)
        for key, value, unit in found
    ]

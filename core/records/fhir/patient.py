"""Patient: demographics (names, birth date, sex, phone) and the identifiers that find a
patient again (Careline's record id, the clinic's MRN)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.humanname import HumanName
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.patient import Patient as FhirPatient

from core.records.fhir.common import IDENTIFIER_TYPE, MRN, RECORD_ID, FhirError, as_text
from core.records.models import Patient

_MR = CodeableConcept(coding=[Coding(system=IDENTIFIER_TYPE, code="MR")], text="MRN")


def to_fhir(patient: Patient) -> FhirPatient:
    """A Careline patient as a FHIR Patient."""
    identifiers = [Identifier(system=RECORD_ID, value=patient.id)]
    if patient.mrn:
        identifiers.append(Identifier(system=MRN, value=patient.mrn, type=_MR))
    return FhirPatient(
        id=patient.id,
        identifier=identifiers,
        name=[HumanName(family=patient.family, given=[patient.given])],
        gender=patient.sex,
        birthDate=dt.date.fromisoformat(patient.birth_date),
        telecom=[ContactPoint(system="phone", value=patient.phone)] if patient.phone else None,
    )


@dataclass(frozen=True)
class PatientFields:
    """What a FHIR Patient gives a registration, and the identifiers that match it."""

    family: str
    given: str
    birth_date: str
    sex: str | None
    mrn: str | None
    phone: str | None
    record_id: str | None  # a Careline record id it was exported with


def from_fhir(resource: FhirPatient, where: str) -> PatientFields:
    """The registration fields of a FHIR Patient; FhirError names what is missing."""
    names = resource.name or []
    if not names or not names[0].family:
        raise FhirError(f"{where}.name", "a patient needs a family name")
    given = " ".join(str(g) for g in names[0].given or [])
    if not given:
        raise FhirError(f"{where}.name.given", "a patient needs a given name")
    if resource.birthDate is None:
        raise FhirError(f"{where}.birthDate", "a patient needs a date of birth")
    mrn = record_id = None
    for ident in resource.identifier or []:
        mr = any(c.code == "MR" for c in (ident.type.coding or [])) if ident.type else False
        if ident.system == RECORD_ID:
            record_id = str(ident.value)
        elif (ident.system == MRN or mr) and mrn is None and ident.value:
            mrn = str(ident.value)
    phone = next(
        (str(t.value) for t in resource.telecom or [] if t.system == "phone" and t.value), None
    )
    return PatientFields(
        family=str(names[0].family),
        given=given,
        birth_date=as_text(resource.birthDate) or "",
        sex=str(resource.gender) if resource.gender else None,
        mrn=mrn,
        phone=phone,
        record_id=record_id,
    )

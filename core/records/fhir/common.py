"""What every FHIR mapping shares: the code systems, references, times and the check that
turns a model library refusal into an error naming the resource and the field.

The models are ``fhir.resources.R4B`` (FHIR 4.3.0). ``fhir.resources`` 7 and later ship
R5 (default), R4B and STU3 but no 4.0.1 package; its last R4 release (6.x) needs pydantic 1,
which the server's FastAPI (pydantic 2) rules out. R4B changed none of the resources used
here (Patient, AllergyIntolerance, Condition, MedicationStatement, Observation, Encounter,
Appointment, DocumentReference, Provenance, Bundle) in any element we write or read, so a
bundle written here is valid R4 for them, and an R4 bundle of them parses.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, cast

from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.extension import Extension
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError as PydanticError

from core.records.errors import ValidationError

FHIR_VERSION = "4.0.1"  # what the bundle's meta says it is (see the module docstring)

# Careline's own identifier systems: a record's id, a patient's MRN, a staff user name.
RECORD_ID = "urn:careline:record-id"
MRN = "urn:careline:mrn"
USERNAME = "urn:careline:username"
# Extensions for what FHIR has no element for (a medication's strength as typed).
EXTENSION = "urn:careline:fhir:extension:"

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
VITAL_SIGNS_PROFILE = "http://hl7.org/fhir/StructureDefinition/vitalsigns"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
IDENTIFIER_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0203"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


class FhirError(ValidationError):
    """A bundle or resource that cannot be read: ``field`` names the resource and element
    (``Patient/p1.birthDate``)."""


def check(resource: Resource, where: str) -> Resource:
    """Validate a built resource again from its JSON (the library checks types, required
    elements and cardinalities on the way in): what is exported always parses back."""
    return parse(type(resource), resource.model_dump(), where)


def parse(model: type[Resource], data: Any, where: str) -> Resource:
    """``data`` as ``model``; FhirError names ``where`` and the first element refused."""
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first["loc"])
        raise FhirError(f"{where}.{path}" if path else where, str(first["msg"])) from None


def source_key(*parts: str) -> str:
    """A short stable digest naming where an imported record came from."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def ref(resource_type: str, record_id: str) -> Reference:
    """``Patient/abc`` as a reference."""
    return Reference(reference=f"{resource_type}/{record_id}")


def staff(username: str | None) -> Reference | None:
    """A staff member, by user name (no Practitioner resource: the user name is the key)."""
    if not username:
        return None
    return Reference(identifier=Identifier(system=USERNAME, value=username), display=username)


def staff_name(reference: Reference | None) -> str | None:
    """The user name a :func:`staff` reference carries (or its display)."""
    if reference is None:
        return None
    ident = reference.identifier
    if ident is not None and ident.value:
        return str(ident.value)
    return str(reference.display) if reference.display else None


def clinician_in(actors: Iterable[Reference | None]) -> str | None:
    """The first staff member among a visit's or a booking's participants (the actors that
    reference no resource: a patient's is a reference, a staff member's an identifier)."""
    for actor in actors:
        if reference_text(actor) is None:
            name = staff_name(actor)
            if name:
                return name
    return None


def required_local(value: Any, where: str, needed: str) -> str:
    """``as_local`` of a time a record cannot do without (FhirError says ``needed``)."""
    found = as_local(value, where)
    if found is None:
        raise FhirError(where, needed)
    return found


def concept(text: str, system: str | None = None, code: str | None = None) -> CodeableConcept:
    """A codeable concept with its text (and a coding when coded)."""
    codings = [Coding(system=system, code=code, display=text)] if code else None
    return CodeableConcept(coding=codings, text=text)


def absent() -> CodeableConcept:
    """A required concept the record does not have (data-absent-reason ``unknown``)."""
    return CodeableConcept(extension=[Extension(url=DATA_ABSENT, valueCode="unknown")])


def text_of(value: CodeableConcept | None) -> str | None:
    """A concept's text, else its first coding's display (None if neither)."""
    if value is None:
        return None
    if value.text:
        return str(value.text)
    for coding in value.coding or []:
        if coding.display:
            return str(coding.display)
    return None


def code_in(value: CodeableConcept | None, system: str) -> str | None:
    """The concept's code in ``system`` (None if it has none)."""
    for coding in (value.coding or []) if value is not None else []:
        if coding.system == system and coding.code:
            return str(coding.code)
    return None


def extension(name: str, value: str | None) -> list[Extension] | None:
    """A Careline string extension, or nothing for no value."""
    return None if value is None else [Extension(url=EXTENSION + name, valueString=value)]


def extension_value(extensions: list[Extension] | None, name: str) -> str | None:
    """The value of a Careline string extension."""
    for ext in extensions or []:
        if ext.url == EXTENSION + name and ext.valueString is not None:
            return str(ext.valueString)
    return None


def partial(value: str | None) -> Any:
    """A partial date (``2019``, ``2019-05``) for a FHIR dateTime element, or base64 text
    for a base64Binary one: the library takes such strings (its type hints do not say so)."""
    return cast(Any, value)


def local_time(value: str | None) -> dt.datetime | None:
    """A stored local wall-clock time (``2026-12-07T09:30``, no offset) as FHIR needs it:
    with this workstation's offset (FHIR refuses a time without one)."""
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.astimezone()


def utc_time(value: str | None) -> dt.datetime | None:
    """A stored UTC timestamp as a datetime."""
    return dt.datetime.fromisoformat(value) if value else None


def as_local(value: Any, where: str) -> str | None:
    """A FHIR date-time back as a stored local time to the minute (no offset)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise FhirError(where, f"{value!r} is not a date and time") from None
    if not isinstance(value, dt.datetime):
        raise FhirError(where, f"{value!r} is a date, not a date and time")
    if value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return str(value.isoformat(timespec="minutes"))


def as_utc(value: Any) -> str | None:
    """A FHIR instant or date-time back as a stored UTC timestamp (milliseconds)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return str(value.astimezone(dt.UTC).isoformat(timespec="milliseconds"))
    return str(value)


def as_text(value: Any) -> str | None:
    """A FHIR date or partial date back as its text (``2019-05``, ``2019-05-14``)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def decimal_text(value: Decimal | float | int | None) -> str | None:
    """A FHIR decimal as its plain text (``36.8``)."""
    if value is None:
        return None
    return format(Decimal(str(value)), "f")


def reference_text(reference: Reference | None) -> str | None:
    """What a reference points at, as written (``Patient/p1``, ``urn:uuid:...``)."""
    if reference is None or not reference.reference:
        return None
    return str(reference.reference)

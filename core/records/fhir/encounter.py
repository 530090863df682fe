"""Encounter: a visit (started, reason, clinician, the appointment it came from, closed
when and by whom)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.encounter import Encounter, EncounterParticipant
from fhir.resources.R4B.period import Period

from core.records.fhir.common import (
    ACT_CODE,
    as_utc,
    clinician_in,
    concept,
    extension,
    extension_value,
    local_time,
    ref,
    reference_text,
    required_local,
    staff,
    text_of,
    utc_time,
)
from core.records.visits import Visit

_AMBULATORY = Coding(system=ACT_CODE, code="AMB", display="ambulatory")


def to_fhir(visit: Visit) -> Encounter:
    """A visit as a FHIR Encounter (``finished`` once closed, else ``in-progress``)."""
    clinician = staff(visit.clinician)
    return Encounter(
        id=visit.id,
        status="finished" if visit.closed_at else "in-progress",
        class_fhir=_AMBULATORY,  # type: ignore[call-arg]  # FHIR's "class", by its alias
        subject=ref("Patient", visit.patient_id),
        period=Period(start=local_time(visit.started_at), end=utc_time(visit.closed_at)),
        reasonCode=[concept(visit.reason)] if visit.reason else None,
        participant=[EncounterParticipant(individual=clinician)] if clinician else None,
        appointment=[ref("Appointment", visit.appointment_id)] if visit.appointment_id else None,
        extension=extension("closed-by", visit.closed_by),
    )


@dataclass(frozen=True)
class EncounterFields:
    """A visit's values, and the appointment it points at (as written)."""

    values: dict[str, str | None]
    closed_at: str | None
    closed_by: str | None
    appointment: str | None


def from_fhir(resource: Encounter, where: str) -> EncounterFields:
    """The visit's values; an Encounter with no start is refused."""
    period = resource.period
    started = required_local(
        period.start if period else None,
        f"{where}.period.start",
        "a visit needs the time it started",
    )
    clinician = clinician_in(p.individual for p in resource.participant or [])
    closed_at = as_utc(period.end) if period and period.end else None
    if closed_at is None and resource.status == "finished":
        closed_at = as_utc(period.start) if period else None
    values: dict[str, str | None] = {
        "started_at": started,
        "reason": text_of(resource.reasonCode[0]) if resource.reasonCode else None,
        "clinician": clinician,
    }
    appointment = reference_text(resource.appointment[0]) if resource.appointment else None
    closed_by = extension_value(resource.extension, "closed-by") or (
        clinician if closed_at else None
    )
    return EncounterFields(values, closed_at, closed_by, appointment)

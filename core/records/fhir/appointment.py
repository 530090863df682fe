"""Appointment: a booking on the schedule (times in the clinic's local time, status,
clinician, reason, check-in and cancellation)."""

from __future__ import annotations

from dataclasses import dataclass

from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.appointment import AppointmentParticipant

from core.records.fhir.common import (
    FhirError,
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
)
from core.records.schedule import Appointment

# Careline's statuses and FHIR's (in_visit: the patient is with the clinician).
TO_FHIR = {
    "booked": "booked",
    "arrived": "arrived",
    "in_visit": "checked-in",
    "done": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
}
FROM_FHIR = {fhir: ours for ours, fhir in TO_FHIR.items()} | {
    "proposed": "booked",
    "pending": "booked",
    "waitlist": "booked",
}


def to_fhir(appointment: Appointment) -> FhirAppointment:
    """An appointment as a FHIR Appointment (the patient and clinician as participants)."""
    participants = [
        AppointmentParticipant(actor=ref("Patient", appointment.patient_id), status="accepted")
    ]
    clinician = staff(appointment.clinician)
    if clinician is not None:
        participants.append(AppointmentParticipant(actor=clinician, status="accepted"))
    return FhirAppointment(
        id=appointment.id,
        status=TO_FHIR[appointment.status],
        start=local_time(appointment.starts_at),
        end=local_time(appointment.ends_at),
        description=appointment.reason,
        participant=participants,
        cancelationReason=concept(appointment.cancel_reason) if appointment.cancel_reason else None,
        extension=extension("arrived-at", appointment.arrived_at),
    )


_NEEDS_TIMES = "an appointment needs its start and end"


@dataclass(frozen=True)
class AppointmentFields:
    """An appointment's values, its participants and check-in time."""

    values: dict[str, str | None]
    patients: tuple[str, ...]  # participants' references, as written
    arrived_at: str | None


def from_fhir(resource: FhirAppointment, where: str) -> AppointmentFields:
    """The appointment's values; one without a start and end, or an unknown status, is
    refused."""
    status = FROM_FHIR.get(str(resource.status))
    if status is None:
        raise FhirError(f"{where}.status", f"{resource.status!r} is not a status kept here")
    actors = [participant.actor for participant in resource.participant or []]
    # The importer finds which of the references is the bundle's patient.
    patients = [text for text in map(reference_text, actors) if text is not None]
    values: dict[str, str | None] = {
        "starts_at": required_local(resource.start, f"{where}.start", _NEEDS_TIMES),
        "ends_at": required_local(resource.end, f"{where}.end", _NEEDS_TIMES),
        "reason": str(resource.description) if resource.description else None,
        "status": status,
        "clinician": clinician_in(actors),
        "cancel_reason": text_of(resource.cancelationReason),
    }
    return AppointmentFields(
        values, tuple(patients), extension_value(resource.extension, "arrived-at")
    )

"""Record types: which fields each clinical document has, and of which kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecordType:
    """Field layout of one kind of record document.

    Every type also has the registers ``created_at`` (written once) and ``deleted``
    (deletion is a register, so an edit concurrent with a delete is a conflict).
    """

    name: str
    table: str
    registers: tuple[str, ...]
    sets: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()


PATIENT = RecordType(
    "patient",
    "patients",
    ("family", "given", "birth_date", "sex", "mrn", "phone"),
    sets=("allergies", "problems", "medications"),
)
USER = RecordType("user", "users", ("username", "full_name", "role", "verifier", "active"))
NOTE = RecordType(
    "note",
    "notes",
    ("patient_id", "encounter_id", "author", "signed_at", "signed_body"),
    ("addenda",),
    ("body",),
)
# Written with every edit of a note's text (value: who edited), so a note-body conflict can
# say who made the edit and when. Not one of NOTE's registers: concurrent text edits merge,
# so several live values of it are no conflict.
NOTE_EDITED = "edited"
APPOINTMENT = RecordType(
    "appointment", "appointments", ("patient_id", "starts_at", "ends_at", "reason", "status")
)
ENCOUNTER = RecordType(
    "encounter", "encounters", ("patient_id", "started_at", "reason", "clinician")
)
OBSERVATION = RecordType(
    "observation",
    "observations",
    ("patient_id", "encounter_id", "code", "value", "unit", "observed_at"),
)
ATTACHMENT = RecordType(
    "attachment", "attachments", ("patient_id", "filename", "media_type", "size", "sha256")
)

CLINIC = RecordType("clinic", "clinic", ("name",))

RECORD_TYPES: dict[str, RecordType] = {
    t.name: t
    for t in (PATIENT, USER, NOTE, APPOINTMENT, ENCOUNTER, OBSERVATION, ATTACHMENT, CLINIC)
}
SYSTEM_REGISTERS = ("created_at", "deleted")


def record_type(name: str) -> RecordType:
    """Look up a type by name; ValueError names an unknown one."""
    try:
        return RECORD_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown record type {name!r}") from None

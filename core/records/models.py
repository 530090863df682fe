"""Clinical record types, as the UI and CLI see them (immutable snapshots)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SEX_VALUES = ("female", "male", "other", "unknown")
SEVERITY_VALUES = ("mild", "moderate", "severe", "unknown")
ROLES = ("admin", "clinician", "front_desk")
# Fields a person may change with ``patient set`` or the edit dialog.
PATIENT_EDITABLE = ("family", "given", "birth_date", "sex", "mrn", "phone")


@dataclass(frozen=True)
class Patient:
    """Demographics of one patient."""

    id: str
    family: str
    given: str
    birth_date: str
    sex: str | None
    mrn: str | None
    phone: str | None
    created_at: str
    updated_at: str

    @property
    def display_name(self) -> str:
        """``FAMILY, Given`` as clinics file charts."""
        return f"{self.family.upper()}, {self.given}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class PatientSummary:
    """One row of the patient list."""

    id: str
    family: str
    given: str
    birth_date: str
    mrn: str | None
    sex: str | None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Allergy:
    """One recorded allergy or intolerance."""

    id: str
    patient_id: str
    substance: str
    reaction: str | None
    severity: str | None
    recorded_at: str
    recorded_by: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Chart:
    """What opening a chart shows."""

    patient: Patient
    allergies: tuple[Allergy, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**self.patient.to_dict(), "allergies": [a.to_dict() for a in self.allergies]}


@dataclass(frozen=True)
class User:
    """A staff account (the verifier never leaves the store layer)."""

    id: str
    username: str
    full_name: str
    role: str
    active: bool


@dataclass(frozen=True)
class ConflictCandidate:
    """One of the competing values: what, who, on which replica, when."""

    id: str
    field: str
    value: str | bool | None
    author: str
    replica: str
    time: str
    hlc: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Conflict:
    """A field with two or more live values (or an edit concurrent with a deletion)."""

    id: str
    record_id: str
    record_type: str
    field: str
    candidates: tuple[ConflictCandidate, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {**asdict(self), "candidates": [c.to_dict() for c in self.candidates]}

"""Clinical record types, as the UI and CLI see them (immutable snapshots)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.records.permissions import CLINICAL_PATIENT_FIELDS
from core.records.types import PATIENT, list_spec
from core.records.validation import ROLES as ROLES
from core.records.validation import SEVERITY_VALUES as SEVERITY_VALUES
from core.records.validation import SEX_VALUES as SEX_VALUES

# Fields a person may change with ``patient set`` or the edit dialog.
PATIENT_EDITABLE = tuple(f.name for f in PATIENT.writable)


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
    # "nka" (asked: no known allergies), "allergies" (some were recorded), None (not asked).
    allergy_status: str | None = None

    @property
    def display_name(self) -> str:
        """``FAMILY, Given`` as clinics file charts."""
        return f"{self.family.upper()}, {self.given}"

    def to_dict(self, clinical: bool = True) -> dict[str, Any]:
        """Plain dict for JSON output. ``clinical`` False (for someone who may not read the
        chart's clinical data): without the clinical fields, whose value would tell what is
        withheld (``allergy_status`` "allergies": the patient has some)."""
        shown = asdict(self)
        if not clinical:
            for name in CLINICAL_PATIENT_FIELDS:
                shown.pop(name, None)
        return shown


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
    # False for staff who see demographics only (front desk): ``allergies`` is then empty
    # because it was not read, not because the patient has none.
    clinical: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        if not self.clinical:
            return {**self.patient.to_dict(clinical=False), "clinical": CLINICAL_HIDDEN}
        return {**self.patient.to_dict(), "allergies": [a.to_dict() for a in self.allergies]}


CLINICAL_HIDDEN = (
    "Clinical information is visible only to clinical staff, and on a restricted chart only "
    "to its care team."
)


@dataclass(frozen=True)
class User:
    """A staff account (the verifier never leaves the store layer)."""

    id: str
    username: str
    full_name: str
    role: str
    active: bool
    # Someone else set the current password (a first password, an admin's reset): the person
    # must choose their own before doing anything else.
    must_change_password: bool = False
    two_factor: bool = False  # a TOTP secret is enrolled: sign-in asks for a code


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


def item_label(list_field: str, value: dict[str, str | bool | None]) -> str:
    """``Penicillin (hives, severe)``: a list item as a person reads it (its fields in the
    list's order: the first as the name, the rest in brackets). A value equal to its
    field's default (a medication's status "active") says nothing and is left out."""
    spec = list_spec(list_field)
    columns = tuple(f.name for f in spec.items) if spec is not None else tuple(sorted(value))
    defaults = {f.name: f.default for f in spec.items} if spec is not None else {}
    parts = [
        str(value[c])
        for c in columns
        if value.get(c) not in (None, "") and (c not in defaults or value[c] != defaults[c])
    ]
    if not parts:
        return "(empty item)"
    return parts[0] + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


@dataclass(frozen=True)
class ListItem:
    """An item of a list (allergy, problem, medication) that a list conflict is about."""

    id: str
    label: str
    value: dict[str, str | bool | None]
    present: bool  # on the merged list as it is shown now

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class ListEdit:
    """One item a side added or removed: which, who, on which replica, when."""

    item: str  # ListItem id
    label: str
    action: str  # "added" or "removed"
    author: str
    replica: str
    time: str
    hlc: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class ConflictSide:
    """What one workstation's line of changes did to a list, not having seen the other's."""

    id: str
    edits: tuple[ListEdit, ...]
    keep: tuple[str, ...]  # item ids on the list if this side's changes are applied

    @property
    def added(self) -> tuple[ListEdit, ...]:
        """Items this side added."""
        return tuple(e for e in self.edits if e.action == "added")

    @property
    def removed(self) -> tuple[ListEdit, ...]:
        """Items this side removed."""
        return tuple(e for e in self.edits if e.action == "removed")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "id": self.id,
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "keep": list(self.keep),
        }


def withheld_text(count: int) -> str:
    """What the conflict inbox says of the conflicts a person may not open."""
    one = count == 1
    return (
        f"{count} more conflict{'' if one else 's'} {'is' if one else 'are'} on records you "
        "may not open; someone who may read them resolves "
        f"{'it' if one else 'them'}."
    )


@dataclass(frozen=True)
class Conflict:
    """A field with two or more live values (or an edit concurrent with a deletion), or a
    list whose same item was changed on two workstations at once (``kind == "set"``)."""

    id: str
    record_id: str
    record_type: str
    field: str
    candidates: tuple[ConflictCandidate, ...]
    kind: str = "register"  # or "set"
    items: tuple[ListItem, ...] = ()  # set conflicts: every item involved
    sides: tuple[ConflictSide, ...] = ()  # set conflicts: each side's additions and removals

    @property
    def merged(self) -> tuple[str, ...]:
        """Set conflicts: ids of the involved items on the merged list (shown now)."""
        return tuple(i.id for i in self.items if i.present)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        doc: dict[str, Any] = {
            "id": self.id,
            "record_id": self.record_id,
            "record_type": self.record_type,
            "field": self.field,
            "kind": self.kind,
            "candidates": [c.to_dict() for c in self.candidates],
        }
        if self.kind == "set":
            doc["items"] = [i.to_dict() for i in self.items]
            doc["merged"] = list(self.merged)
            doc["sides"] = [s.to_dict() for s in self.sides]
        return doc

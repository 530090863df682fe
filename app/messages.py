"""Turning core exceptions into plain sentences a person at the front desk can act on.

The words come from core's one translator (:mod:`core.errors`); this module adds what only
a screen needs, such as the form labels for field names.
"""

from __future__ import annotations

from core.errors import describe_error as core_describe_error
from core.errors import sentence
from core.records import types
from core.records.errors import ValidationError

__all__ = ["FIELD_LABELS", "describe_error", "sentence", "validation_text"]

# Core names fields as its API does; people see the labels the forms use.
FIELD_LABELS: dict[str, str] = dict(types.FIELD_LABELS)  # from the record-type specs


_PREDICATES = ("is ", "must ", "contains ", "are ", "has ")


def validation_text(exc: ValidationError, type_name: str | None = None) -> str:
    """``birth_date: is in the future`` -> ``Date of birth is in the future.`` (naming the
    field as ``type_name``'s spec labels it, where two types label a name differently)."""
    raw = str(exc)
    prefix = f"{exc.field}: "
    detail = raw[len(prefix) :] if raw.startswith(prefix) else raw
    label = (
        types.field_label(exc.field, type_name)
        if type_name
        else FIELD_LABELS.get(exc.field, exc.field.replace("_", " ").capitalize())
    )
    # "is required" reads well glued to the label; "'x' is not a date" or "use 2-32
    # letters" read better after a colon.
    joiner = " " if detail.startswith(_PREDICATES) else ": "
    return sentence(f"{label}{joiner}{detail}")


def describe_error(exc: BaseException) -> str:
    """One or two plain sentences for any error raised by core (or by a bug, which is
    logged and not shown raw)."""
    if isinstance(exc, ValidationError):
        return validation_text(exc)
    return core_describe_error(exc)

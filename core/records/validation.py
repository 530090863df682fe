"""Field validation shared by every way of writing a record."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from core.records.errors import ValidationError

SEX_VALUES = ("female", "male", "other", "unknown")
SEVERITY_VALUES = ("mild", "moderate", "severe", "unknown")
ROLES = ("admin", "clinician", "front_desk")

_MRN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/.]{0,31}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MAX_TEXT = 200


def text(field: str, value: str | None, required: bool = True) -> str | None:
    """Trimmed text of sane length; required fields must not be blank."""
    cleaned = (value or "").strip()
    if not cleaned:
        if required:
            raise ValidationError(field, "is required")
        return None
    if len(cleaned) > MAX_TEXT:
        raise ValidationError(field, f"is longer than {MAX_TEXT} characters")
    if any(ord(ch) < 32 for ch in cleaned):
        raise ValidationError(field, "contains control characters")
    return cleaned


def birth_date(value: str | None) -> str:
    """ISO date, not in the future, not before 1900."""
    raw = (value or "").strip()
    try:
        parsed = dt.date.fromisoformat(raw)
    except ValueError:
        raise ValidationError("birth_date", f"{raw!r} is not a date in YYYY-MM-DD form") from None
    if parsed > dt.date.today():
        raise ValidationError("birth_date", "is in the future")
    if parsed.year < 1900:
        raise ValidationError("birth_date", "is before 1900")
    return parsed.isoformat()


def choice(field: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    """One of ``allowed`` (case-insensitive), or None when blank."""
    cleaned = (value or "").strip().lower()
    if not cleaned:
        return None
    if cleaned not in allowed:
        raise ValidationError(field, f"{value!r} is not one of {', '.join(allowed)}")
    return cleaned


def sex(value: str | None) -> str | None:
    """Administrative sex."""
    return choice("sex", value, SEX_VALUES)


def severity(value: str | None) -> str | None:
    """Allergy severity."""
    return choice("severity", value, SEVERITY_VALUES)


def role(value: str) -> str:
    """Staff role."""
    result = choice("role", value, ROLES)
    if result is None:
        raise ValidationError("role", "is required")
    return result


def mrn(value: str | None) -> str | None:
    """Medical record number: letters, digits, dashes, slashes, dots (kept as a string)."""
    cleaned = (value or "").strip()
    if not cleaned:
        return None
    if not _MRN.match(cleaned):
        raise ValidationError("mrn", f"{value!r} is not a valid medical record number")
    return cleaned


def username(value: str) -> str:
    """Lower-case login name, 2-32 characters."""
    cleaned = (value or "").strip().lower()
    if not _USERNAME.match(cleaned):
        raise ValidationError(
            "username", "use 2-32 lower-case letters, digits, dots, dashes or underscores"
        )
    return cleaned


def password(value: str) -> str:
    """A password long enough to resist guessing against a stolen key file."""
    if len(value) < 10:
        raise ValidationError("password", "must be at least 10 characters")
    return value


# ----- field checks: ``check(field, value) -> stored value``, named in record-type specs --

Check = Callable[[str, str | None], str | None]


def required_text(field: str, value: str | None) -> str | None:
    """Trimmed text that must not be blank."""
    return text(field, value)


def optional_text(field: str, value: str | None) -> str | None:
    """Trimmed text, or None when blank."""
    return text(field, value, required=False)


def date_of_birth(field: str, value: str | None) -> str | None:
    """``birth_date`` as a field check."""
    return birth_date(value)


def timestamp(field: str, value: str | None) -> str | None:
    """A date and time, stored to the minute (``2026-11-28T09:30``)."""
    raw = (value or "").strip()
    try:
        parsed = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(
            field, f"{raw!r} is not a date and time like 2026-11-28T09:30"
        ) from None
    return parsed.isoformat(timespec="minutes")


def whole_number(field: str, value: str | None) -> str | None:
    """Digits only, kept as a string: pycrdt would hand numbers back as floats."""
    if not (value or "").isdigit():
        raise ValidationError(field, f"{value!r} is not a whole number")
    return value


def sha256_hex(field: str, value: str | None) -> str | None:
    """A lower-case SHA-256 hex digest."""
    if not re.fullmatch(r"[0-9a-f]{64}", value or ""):
        raise ValidationError(field, "is not a SHA-256 hex digest")
    return value


def medical_record_number(field: str, value: str | None) -> str | None:
    """``mrn`` as a field check."""
    return mrn(value)


def one_of(*allowed: str) -> Check:
    """A check accepting one of ``allowed`` (case-insensitive), or blank."""

    def check(field: str, value: str | None) -> str | None:
        return choice(field, value, allowed)

    return check

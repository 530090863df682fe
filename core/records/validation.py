"""Field validation shared by every way of writing a record."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Callable, Sequence

from core.records.errors import ValidationError

SEX_VALUES = ("female", "male", "other", "unknown")
SEVERITY_VALUES = ("mild", "moderate", "severe", "unknown")
# ``nurse`` since schema V9 (migration widens the users table's CHECK).
ROLES = ("admin", "clinician", "nurse", "front_desk")

_MRN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-/.]{0,31}$")
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
MAX_TEXT = 200
MIN_PASSWORD_LENGTH = 10


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


_YEAR_FIRST = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YEAR_LAST = re.compile(r"^\d{1,2}[-/.]\d{1,2}[-/.]\d{4}$")
_PARTIAL = re.compile(r"^\d{4}([-/.]\d{1,2})?[-/.]?$")
DATE_FORMAT_HINT = "type year, month and day, e.g. 1984-03-02"


def calendar_date(field: str, value: str | None) -> dt.date:
    """The date a person typed, exactly, or ValidationError saying what is wrong with it.

    Year first: ``1984-03-02``, ``1984-3-2``, ``1984/3/2``, ``1984.03.02``, ``19840302``.
    Nothing is completed or corrected: ``1984`` or ``1984-03`` is refused (not taken as
    1 January), ``1984-02-30`` is refused (not moved to 1 or 3 March), and ``02/03/1984``
    is refused because it reads as 2 March in one country and 3 February in another.
    """
    raw = (value or "").strip()
    if not raw:
        raise ValidationError(field, "is required")
    found = _YEAR_FIRST.match(raw) or _COMPACT.match(raw)
    if found is None:
        if _YEAR_LAST.match(raw):
            raise ValidationError(
                field,
                f"{raw!r} has the year last, where day and month are read either way round: "
                "type the year first, e.g. 1984-03-02",
            )
        if _PARTIAL.match(raw):
            raise ValidationError(field, f"{raw!r} is not a whole date: {DATE_FORMAT_HINT}")
        raise ValidationError(field, f"{raw!r} is not a date: {DATE_FORMAT_HINT}")
    year, month, day = (int(part) for part in found.groups())
    if not 1 <= month <= 12:
        raise ValidationError(field, f"{raw!r} is not a date: there is no month {month}")
    if day < 1:
        raise ValidationError(field, f"{raw!r} is not a date: there is no day {day}")
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise ValidationError(field, f"{raw!r} is not a date: there is no year {year}")
    last = calendar.monthrange(year, month)[1]
    if day > last:
        month_name = dt.date(2000, month, 1).strftime("%B")
        raise ValidationError(field, f"{raw!r} is not a date: {month_name} {year} has {last} days")
    return dt.date(year, month, day)


def birth_date(value: str | None) -> str:
    """A date of birth as typed (see ``calendar_date``), not in the future, not before 1900;
    returned as ``YYYY-MM-DD``."""
    parsed = calendar_date("birth_date", value)
    if parsed > dt.date.today():
        raise ValidationError("birth_date", f"{parsed.isoformat()} is in the future")
    if parsed.year < 1900:
        raise ValidationError("birth_date", f"{parsed.isoformat()} is before 1900")
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


# Roles earlier releases store (their users table refuses others): what a record's
# ``role`` field holds for them, the real role going in ``staff_role`` (types.USER). A nurse
# shows there as front desk, the role with the least rights (earlier releases check a role
# only for key management, which needs an administrator).
LEGACY_ROLES = ("admin", "clinician", "front_desk")


def legacy_role(value: str) -> str:
    """The role an earlier release is given for ``value``."""
    return value if value in LEGACY_ROLES else "front_desk"


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


def password(value: str, user_inputs: Sequence[str] = ()) -> str:
    """A password hard enough to guess against a stolen key file: at least 10 characters,
    and rated strong enough by zxcvbn (core/records/password_strength.py), whose warning,
    suggestions and estimated cracking time make up the refusal. ``user_inputs`` (the user
    name, full name, clinic name) count as easy guesses."""
    from core.records.password_strength import assess

    if len(value) < MIN_PASSWORD_LENGTH:
        raise ValidationError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    verdict = assess(value, user_inputs)
    if not verdict.acceptable:
        raise ValidationError("password", verdict.explanation())
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


_SECONDS = re.compile(r"^(.*[T ]\d{1,2}:\d{2}):\d{2}(?:\.\d+)?$")
_TIME_ZONE = re.compile(r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.I)


def timestamp(field: str, value: str | None) -> str | None:
    """When something happened, in the clinic's local time to the minute: read as
    ``local_datetime`` reads a time (``2026-11-28 09:30`` or ``2026-11-28T09:30``, stored
    as ``2026-11-28T09:30``); seconds, if given, are dropped (a vital's or a visit's time is
    kept to the minute).

    Nothing is made up: a date alone (``2026-11-28``, ``20261128``) is refused rather than
    stored as a midnight nobody typed, and a time zone or offset (``...T10:00+05:00``) is
    refused rather than kept in a field every reader takes as local time.
    """
    raw = (value or "").strip()
    if not raw:
        raise ValidationError(field, "is required")
    if _TIME_ZONE.search(raw):
        raise ValidationError(
            field, f"{raw!r} names a time zone: give the clinic's local time, e.g. "
            "2026-11-28 09:30"
        )  # fmt: skip
    if " " not in raw and "T" not in raw.upper():
        try:
            day = calendar_date(field, raw)
        except ValidationError:
            pass  # not a date either: said below
        else:
            raise ValidationError(
                field, f"{raw!r} has no time: type the date and the time, e.g. "
                f"{day.isoformat()} 09:30"
            )  # fmt: skip
    minutes = _SECONDS.match(raw)
    return local_datetime(field, minutes.group(1) if minutes else raw)


_LOCAL_TIME = re.compile(r"^(\S+?)[T ](\d{1,2}):(\d{2})$")
# "2:30 pm", "2:30PM", "2:30 p.m.": the 12-hour clock, which no time field reads.
_TWELVE_HOUR = re.compile(r"^(\S+?)[T ](\d{1,2}):(\d{2})\s*([ap])\.?\s*m\.?$", re.I)
TIME_FORMAT_HINT = "type the date, then the clinic's local time, e.g. 2026-12-07 09:30"


def local_datetime(field: str, value: str | None) -> str | None:
    """A clinic's local wall-clock time typed to the minute: ``2026-12-07T09:30`` or
    ``2026-12-07 09:30``, stored as ``2026-12-07T09:30``.

    Appointments are kept in the clinic's own local time with no offset: a clinic is in one
    place, its workstations share its time zone, and a 09:30 appointment stays at 09:30 on
    the day the clocks change. So a time zone or offset is refused rather than converted,
    and so is anything that is not a real date and time (no 25:00, no 30 February); the
    date is read as ``calendar_date`` reads one (year first, nothing guessed).
    """
    raw = (value or "").strip()
    if not raw:
        raise ValidationError(field, "is required")
    found = _LOCAL_TIME.match(raw)
    if found is None:
        _refuse_twelve_hour(field, raw)
        if re.search(r"(Z|[+-]\d{2}:?\d{2})$", raw) and "T" in raw.upper():
            raise ValidationError(
                field, f"{raw!r} names a time zone: give the clinic's local time, e.g. "
                "2026-12-07 09:30"
            )  # fmt: skip
        raise ValidationError(field, f"{raw!r} is not a date and time: {TIME_FORMAT_HINT}")
    date_text, hour_text, minute_text = found.groups()
    day = calendar_date(field, date_text)
    hour, minute = int(hour_text), int(minute_text)
    if hour > 23:
        raise ValidationError(field, f"{raw!r} is not a time: there is no hour {hour}")
    if minute > 59:
        raise ValidationError(field, f"{raw!r} is not a time: there is no minute {minute}")
    return dt.datetime(day.year, day.month, day.day, hour, minute).isoformat(timespec="minutes")


def _refuse_twelve_hour(field: str, raw: str) -> None:
    """ValidationError naming am/pm, with the 24-hour time it stands for, when ``raw`` is a
    date and a 12-hour time (``2026-12-11 2:30 pm``). Times are typed on the 24-hour clock
    only: the 24-hour time is shown for the person to type, not stored for them (12:30 am
    and 12:30 pm are the times most often read the wrong way round)."""
    found = _TWELVE_HOUR.match(raw)
    if found is None:
        return
    date_text, hour_text, minute_text, half = found.groups()
    hour, minute = int(hour_text), int(minute_text)
    if not 1 <= hour <= 12 or minute > 59:
        return  # no 12-hour time either ("13:30 pm"): the general message says what to type
    hour = hour % 12 + (12 if half.lower() == "p" else 0)
    raise ValidationError(
        field, f"{raw!r} has am/pm: times are on the 24-hour clock, so type "
        f"{date_text} {hour:02d}:{minute:02d}"
    )  # fmt: skip


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


# Digits with the separators people write between them; an extension after x or ext.
_PHONE = re.compile(r"^\+?[0-9 ()./-]+?(?:\s*(?:x|ext\.?|extension)\s*[0-9]+)?$", re.I)
_PHONE_EXTRA = re.compile(r"[^0-9 ()./+-]+")
MIN_PHONE_DIGITS = 3


def phone_number(field: str, value: str | None) -> str | None:
    """A phone number as typed (trimmed; None when blank): digits, spaces and ``+ ( ) - . /``,
    an extension after ``x`` or ``ext``. Letters are refused, not dropped: ``07700 9OO 123``
    holds the letter O where a zero was meant, and only the person knows which number they
    meant. Older releases stored any text: such a value stays until the field is edited."""
    cleaned = text(field, value, required=False)
    if cleaned is None:
        return None
    digits = sum(ch.isdigit() for ch in cleaned)
    if _PHONE.match(cleaned) and digits >= MIN_PHONE_DIGITS:
        return cleaned
    if digits < MIN_PHONE_DIGITS and not _PHONE_EXTRA.search(cleaned):
        raise ValidationError(field, f"{cleaned!r} is too short for a phone number")
    extra = _PHONE_EXTRA.findall(cleaned)
    if not extra:  # only the usual characters, in an unusual order
        raise ValidationError(field, f"{cleaned!r} is not a phone number: + goes only first")
    looks_like_digit = {"O": "0", "o": "0", "l": "1", "I": "1"}
    mistaken = [ch for part in extra for ch in part if ch in looks_like_digit]
    if mistaken and all(len(part) == 1 or set(part) <= set(looks_like_digit) for part in extra):
        ch = mistaken[0]
        raise ValidationError(
            field,
            f"{cleaned!r} holds the letter {ch} where a digit goes "
            f"(type {looks_like_digit[ch]} for a {'zero' if ch in 'Oo' else 'one'})",
        )
    raise ValidationError(
        field,
        f"{cleaned!r} is not a phone number: it holds {extra[0]!r}; use digits, spaces and "
        "+ ( ) - . /, and x or ext before an extension",
    )


def medical_record_number(field: str, value: str | None) -> str | None:
    """``mrn`` as a field check."""
    return mrn(value)


def one_of(*allowed: str) -> Check:
    """A check accepting one of ``allowed`` (case-insensitive), or blank."""

    def check(field: str, value: str | None) -> str | None:
        return choice(field, value, allowed)

    return check


_YEAR_MONTH = re.compile(r"^(\d{4})[-/.](\d{1,2})$")


def past_date(field: str, value: str | None) -> str | None:
    """A whole date (see ``calendar_date``) not in the future, as ``YYYY-MM-DD``; None
    when blank. For dates something happened: a medication started or stopped."""
    if not (value or "").strip():
        return None
    parsed = calendar_date(field, value)
    if parsed > dt.date.today():
        raise ValidationError(field, f"{parsed.isoformat()} is in the future")
    if parsed.year < 1900:
        raise ValidationError(field, f"{parsed.isoformat()} is before 1900")
    return parsed.isoformat()


def partial_date(field: str, value: str | None) -> str | None:
    """When a problem began, as precisely as it is known: ``2019``, ``2019-05`` or a whole
    date; None when blank. A patient often knows only the year their hypertension was
    found, and storing ``2019-01-01`` would claim a precision nobody had, so the partial
    forms are kept as typed (never completed). Not in the future, not before 1900."""
    raw = (value or "").strip()
    if not raw:
        return None
    today = dt.date.today()
    if re.fullmatch(r"\d{4}", raw):
        year, month = int(raw), None
    elif found := _YEAR_MONTH.match(raw):
        year, month = int(found.group(1)), int(found.group(2))
        if not 1 <= month <= 12:
            raise ValidationError(field, f"{raw!r} is not a date: there is no month {month}")
    else:
        try:
            return past_date(field, raw)
        except ValidationError as exc:
            if DATE_FORMAT_HINT not in str(exc):
                raise
            raise ValidationError(
                field,
                f"{raw!r} is not a date: type a year (2019), a month (2019-05) "
                "or a whole date (2019-05-14)",
            ) from None
    if year < 1900:
        raise ValidationError(field, f"{raw} is before 1900")
    if (year, month or 0) > (today.year, today.month if month else 0):
        raise ValidationError(field, f"{raw} is in the future")
    return f"{year:04d}" if month is None else f"{year:04d}-{month:02d}"

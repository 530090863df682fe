"""The vital-sign catalogue: one place for each vital's LOINC code, label, units and their
conversions, the physiologically possible range (outside it a value is refused as a typo)
and the normal ranges by age (outside them a value is stored and flagged).

The entry form, the CLI, the chart's table and trend plot and any later export (FHIR)
read this module; nothing else spells a code, a unit or a range. Pure: no database.

Numbers are parsed and converted with ``Decimal`` and ``Fraction`` (never floats): the
conversions are exact (1 lb = 0.45359237 kg, 1 in = 2.54 cm, degF = degC * 9/5 + 32), and
the canonical value is stored rounded to a precision fine enough that converting it back
gives what was typed (``test_vitals_catalogue`` checks every value a person can type).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from core.records.errors import ValidationError

# FHIR's vital-signs panel groups a set taken together.
VITAL_SIGNS_PANEL = "85353-1"


@dataclass(frozen=True)
class Unit:
    """A unit staff may type, with its exact conversion to the vital's canonical unit:
    ``canonical = value * factor + offset``."""

    ucum: str  # UCUM code, as stored: "[lb_av]"
    symbol: str  # as shown: "lb"
    aliases: tuple[str, ...]  # as typed (lower case): "lb", "lbs"
    factor: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    def to_canonical(self, value: Fraction) -> Fraction:
        """The value in the vital's canonical unit, exactly."""
        return value * self.factor + self.offset

    def from_canonical(self, value: Fraction) -> Fraction:
        """A canonical value in this unit, exactly."""
        return (value - self.offset) / self.factor


@dataclass(frozen=True)
class AgeBand:
    """Ages from ``min_years`` (inclusive) up to ``max_years`` (exclusive; None: no limit)."""

    name: str
    min_years: int
    max_years: int | None

    def holds(self, years: int) -> bool:
        """True if a patient of ``years`` completed years is in this band."""
        return years >= self.min_years and (self.max_years is None or years < self.max_years)


INFANT = AgeBand("infant (under 1 year)", 0, 1)
TODDLER = AgeBand("toddler (1-2 years)", 1, 3)
PRESCHOOL = AgeBand("preschool child (3-5 years)", 3, 6)
SCHOOL_AGE = AgeBand("school-age child (6-12 years)", 6, 13)
ADOLESCENT = AgeBand("adolescent (13-17 years)", 13, 18)
ADULT = AgeBand("adult (18 years and over)", 18, None)
AGE_BANDS = (INFANT, TODDLER, PRESCHOOL, SCHOOL_AGE, ADOLESCENT, ADULT)

NormalRanges = tuple[tuple[AgeBand, Decimal, Decimal], ...]


def _ranges(*rows: tuple[AgeBand, str, str]) -> NormalRanges:
    return tuple((band, Decimal(low), Decimal(high)) for band, low, high in rows)


@dataclass(frozen=True)
class Vital:
    """One vital sign."""

    key: str  # short name: "pulse" (CLI options, form fields)
    code: str  # LOINC
    label: str
    units: tuple[Unit, ...]  # the first is canonical (stored)
    decimals: int  # canonical value's stored precision
    typed_decimals: int  # at most this many decimals may be typed
    possible: tuple[Decimal, Decimal]  # canonical; outside it: refused as a typo
    normal: NormalRanges = ()  # canonical, by age band; outside: flagged
    computed: bool = False  # worked out from other vitals, never typed

    @property
    def canonical(self) -> Unit:
        """The stored unit."""
        return self.units[0]

    def unit(self, typed: str) -> Unit:
        """The unit named by a UCUM code, symbol or alias; ValidationError otherwise."""
        wanted = typed.strip().lower().replace("°", "").replace(" ", "")
        for unit in self.units:
            names = {unit.ucum.lower(), unit.symbol.lower().replace("°", ""), *unit.aliases}
            if wanted in names:
                return unit
        raise ValidationError(
            self.key, f"{typed!r} is not a unit of {self.label.lower()}: use {self.unit_list}"
        )

    @property
    def unit_list(self) -> str:
        """``kg or lb``."""
        symbols = [u.symbol for u in self.units]
        return " or ".join(symbols) if len(symbols) < 3 else f"{', '.join(symbols)}"

    def range_text(self, unit: Unit | None = None) -> str:
        """The possible range in ``unit`` (and in the canonical unit if different)."""
        low, high = self.possible
        text = f"{self.show(low)} to {self.show(high)} {self.canonical.symbol}".rstrip()
        if unit is not None and unit is not self.canonical:
            lo = _decimal(unit.from_canonical(Fraction(low)), 1)
            hi = _decimal(unit.from_canonical(Fraction(high)), 1)
            text = f"{_plain(lo)} to {_plain(hi)} {unit.symbol} ({text})"
        return text

    def show(self, value: Decimal) -> str:
        """A canonical value as shown (no trailing zeros)."""
        return _plain(value)

    def normal_range(self, years: int) -> tuple[Decimal, Decimal] | None:
        """The normal range (canonical) for a patient of ``years`` completed years."""
        for band, low, high in self.normal:
            if band.holds(years):
                return low, high
        return None


@dataclass(frozen=True)
class Measurement:
    """A value as typed and as stored."""

    vital: Vital
    value: Decimal  # canonical, rounded to ``vital.decimals``
    entered_value: str  # as typed (normalised: "102", "37.2")
    entered_unit: Unit

    @property
    def text(self) -> str:
        """As entered: ``102 °F``."""
        return f"{self.entered_value} {self.entered_unit.symbol}".rstrip()


_MMHG = Unit("mm[Hg]", "mmHg", ("mmhg", "mm[hg]"))
_PER_MIN = Unit("/min", "/min", ("/min", "bpm", "min"))
_CELSIUS = Unit("Cel", "°C", ("c", "cel", "celsius"))
_FAHRENHEIT = Unit(
    "[degF]", "°F", ("f", "[degf]", "degf", "fahrenheit"), Fraction(5, 9), Fraction(-160, 9)
)
_KG = Unit("kg", "kg", ("kg", "kgs"))
_LB = Unit("[lb_av]", "lb", ("lb", "lbs", "[lb_av]"), Fraction("0.45359237"))
_CM = Unit("cm", "cm", ("cm",))
_IN = Unit("[in_i]", "in", ("in", "inch", "inches", "[in_i]"), Fraction("2.54"))
_PERCENT = Unit("%", "%", ("%",))
_BMI = Unit("kg/m2", "kg/m²", ("kg/m2",))
_SCORE = Unit("{score}", "", ("{score}", "/10"))

# Normal ranges: AHA PALS 2020 (children, awake) and adult clinical thresholds.
SYSTOLIC = Vital(
    "systolic", "8480-6", "Systolic blood pressure", (_MMHG,), 0, 0,
    (Decimal(30), Decimal(300)),
    _ranges((INFANT, "72", "104"), (TODDLER, "86", "106"), (PRESCHOOL, "89", "112"),
            (SCHOOL_AGE, "97", "115"), (ADOLESCENT, "110", "131"), (ADULT, "90", "139")),
)  # fmt: skip
DIASTOLIC = Vital(
    "diastolic", "8462-4", "Diastolic blood pressure", (_MMHG,), 0, 0,
    (Decimal(10), Decimal(200)),
    _ranges((INFANT, "37", "56"), (TODDLER, "42", "63"), (PRESCHOOL, "46", "72"),
            (SCHOOL_AGE, "57", "76"), (ADOLESCENT, "64", "83"), (ADULT, "60", "89")),
)  # fmt: skip
PULSE = Vital(
    "pulse", "8867-4", "Pulse", (_PER_MIN,), 0, 0, (Decimal(20), Decimal(300)),
    _ranges((INFANT, "100", "180"), (TODDLER, "98", "140"), (PRESCHOOL, "80", "120"),
            (SCHOOL_AGE, "75", "118"), (ADOLESCENT, "60", "100"), (ADULT, "60", "100")),
)  # fmt: skip
TEMPERATURE = Vital(
    "temperature", "8310-5", "Temperature", (_CELSIUS, _FAHRENHEIT), 2, 1,
    (Decimal(25), Decimal(45)),
    _ranges(*((band, "36.0", "37.9") for band in AGE_BANDS)),
)  # fmt: skip
RESPIRATORY_RATE = Vital(
    "respiratory_rate", "9279-1", "Respiratory rate", (_PER_MIN,), 0, 0,
    (Decimal(2), Decimal(100)),
    _ranges((INFANT, "30", "53"), (TODDLER, "22", "37"), (PRESCHOOL, "20", "28"),
            (SCHOOL_AGE, "18", "25"), (ADOLESCENT, "12", "20"), (ADULT, "12", "20")),
)  # fmt: skip
# 59408-5 (pulse oximetry) is what FHIR's vital-signs profile names; 2708-6 is its parent.
SPO2 = Vital(
    "spo2", "59408-5", "Oxygen saturation", (_PERCENT,), 0, 0, (Decimal(40), Decimal(100)),
    _ranges(*((band, "95", "100") for band in AGE_BANDS)),
)  # fmt: skip
WEIGHT = Vital("weight", "29463-7", "Weight", (_KG, _LB), 3, 2, (Decimal("0.2"), Decimal(500)))
HEIGHT = Vital("height", "8302-2", "Height", (_CM, _IN), 2, 1, (Decimal(20), Decimal(260)))
BMI = Vital(
    "bmi", "39156-5", "BMI", (_BMI,), 1, 1, (Decimal(5), Decimal(200)),
    _ranges((ADULT, "18.5", "24.9")), computed=True,
)  # fmt: skip
PAIN = Vital("pain", "72514-3", "Pain score", (_SCORE,), 0, 0, (Decimal(0), Decimal(10)))

VITALS: tuple[Vital, ...] = (
    SYSTOLIC, DIASTOLIC, PULSE, TEMPERATURE, RESPIRATORY_RATE, SPO2, WEIGHT, HEIGHT, BMI, PAIN
)  # fmt: skip
BY_KEY = {v.key: v for v in VITALS}
BY_CODE = {v.code: v for v in VITALS}
TYPED = tuple(v for v in VITALS if not v.computed)
# How the entry form and its messages name each vital and the blood-pressure pair (shorter
# than ``label``, the full name reports print): one table, so a message names a field as
# the form does ("SpO2", never "Spo2").
FIELD_LABELS = {
    "bp": "Blood pressure",
    "systolic": "Systolic",
    "diastolic": "Diastolic",
    "pulse": "Pulse",
    "temperature": "Temperature",
    "respiratory_rate": "Respiratory rate",
    "spo2": "SpO2",
    "weight": "Weight",
    "height": "Height",
    "bmi": "BMI",
    "pain": "Pain",
}


def vital(key_or_code: str) -> Vital:
    """A vital by its short name or LOINC code; ValidationError names an unknown one."""
    found = BY_KEY.get(key_or_code) or BY_CODE.get(key_or_code)
    if found is None:
        names = ", ".join(v.key for v in VITALS)
        raise ValidationError("code", f"{key_or_code!r} is not a vital sign (one of {names})")
    return found


def as_entered(code: str, row: Mapping[str, Any]) -> str:
    """A stored observation row as staff entered it (``100.4 °F``), the unit by its symbol
    (``mmHg``, not the UCUM ``mm[Hg]``); rows without an entered value show the stored one."""
    unit = str(row.get("entered_unit") or row.get("unit") or "")
    known = BY_CODE.get(code)
    if known is not None:
        unit = {u.ucum: u.symbol for u in known.units}.get(unit, unit)
    return f"{row.get('entered_value') or row.get('value') or ''} {unit}".strip()


def _plain(value: Decimal) -> str:
    """``Decimal('37.20')`` -> ``37.2``, ``Decimal('80')`` -> ``80``."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _decimal(value: Fraction, places: int) -> Decimal:
    """An exact fraction rounded (half to even) to ``places`` decimals."""
    scaled = Decimal(value.numerator) / Decimal(value.denominator)
    return scaled.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


# A minus sign is read (a negative number is a number): the range check then names the
# values possible, rather than "'-5' is not a number".
_NUMBER = re.compile(r"^([-\u2212]?)(\d{1,4})(?:\.(\d+))?$")
_WITH_UNIT = re.compile(r"^(.*?\d)\s*([A-Za-z°%\[/{].*)?$")


# Letters a finger types for digits: a capital or small O for a zero, a small L or a
# capital I for a one.
_DIGIT_LOOKALIKES = frozenset("OoIl")


def _mistyped_digits(vital: Vital, suffix: str) -> bool:
    """True when what follows the digits is more of the number mistyped, not a unit: it
    holds a digit ("1O2"), or its first word is made of letters that look like digits
    ("7O", "1l0"). A unit of the vital is never taken for one; a real other unit
    ("70 kg" for a pulse, "170 ft") is a unit, to be named as one."""
    try:
        vital.unit(suffix)
        return False
    except ValidationError:
        pass
    words = suffix.split()
    first = words[0] if words else ""
    return any(c.isdigit() for c in suffix) or (
        bool(first) and set(first) <= _DIGIT_LOOKALIKES | set("0123456789.")
    )


def parse_number(vital: Vital, typed: str) -> tuple[str, Fraction]:
    """The number typed (normalised text, exact value); ValidationError says what is wrong."""
    raw = typed.strip()
    found = _NUMBER.match(raw)
    if found is None:
        hint = "a whole number" if vital.typed_decimals == 0 else "digits with a point, e.g. 37.2"
        raise ValidationError(vital.key, f"{raw!r} is not a number: type {hint}")
    decimals = found.group(3) or ""
    if len(decimals) > vital.typed_decimals:
        allowed = (
            "a whole number"
            if vital.typed_decimals == 0
            else f"at most {vital.typed_decimals} decimal{'s' if vital.typed_decimals > 1 else ''}"
        )
        raise ValidationError(vital.key, f"{raw!r} has too many decimals: type {allowed}")
    whole = str(int(found.group(2)))
    text = f"{whole}.{decimals}" if decimals else whole
    value = Fraction(text)
    if found.group(1) and value:  # "-0" is 0
        return f"-{text}", -value
    return text, value


def measure(vital: Vital, typed: str, unit: str | None = None) -> Measurement:
    """Read a typed value (``"102"`` with ``unit="F"``, or ``"102F"``, ``"70 kg"``) into a
    measurement: refused (ValidationError naming the possible range) when outside what a
    body can have; a unit is required where the vital has several."""
    if vital.computed:
        raise ValidationError(vital.key, "is worked out from other measurements, not typed")
    raw = typed.strip()
    if not raw:
        raise ValidationError(vital.key, "is required")
    found = _WITH_UNIT.match(raw)
    number, suffix = (found.group(1), found.group(2)) if found else (raw, None)
    if suffix and _mistyped_digits(vital, suffix):
        parse_number(vital, raw)  # "7O" (a letter O for a zero): refused as not a number
    if suffix and unit:
        chosen = vital.unit(unit)
        if vital.unit(suffix) is not chosen:
            raise ValidationError(vital.key, f"{raw!r} names a unit other than {chosen.symbol}")
    elif suffix or unit:
        chosen = vital.unit(suffix or unit or "")
    elif len(vital.units) == 1:
        chosen = vital.canonical
    else:
        raise ValidationError(vital.key, f"{raw!r} needs its unit: {vital.unit_list}")
    text, exact = parse_number(vital, number)
    canonical = chosen.to_canonical(exact)
    low, high = vital.possible
    if not Fraction(low) <= canonical <= Fraction(high):
        shown = f"{text} {chosen.symbol}".rstrip()
        raise ValidationError(
            vital.key, f"{shown} is not possible: must be {vital.range_text(chosen)}"
        )
    return Measurement(vital, _decimal(canonical, vital.decimals), text, chosen)


def in_unit(vital: Vital, canonical: Decimal, unit: Unit, places: int) -> Decimal:
    """A stored canonical value shown in another of the vital's units."""
    return _decimal(unit.from_canonical(Fraction(canonical)), places)


def age_in_years(birth_date: dt.date, on: dt.date) -> int:
    """Completed years on ``on``."""
    years = on.year - birth_date.year
    return years - ((on.month, on.day) < (birth_date.month, birth_date.day))


def flag(vital: Vital, value: Decimal, years: int) -> str | None:
    """``"high"``, ``"low"`` or None (normal, or no normal range for this age)."""
    normal = vital.normal_range(years)
    if normal is None:
        return None
    low, high = normal
    return "low" if value < low else "high" if value > high else None


def bmi(weight_kg: Decimal, height_cm: Decimal) -> Decimal:
    """Body mass index (kg/m2) from a weight and a height, to one decimal."""
    metres = Fraction(height_cm) / 100
    return _decimal(Fraction(weight_kg) / (metres * metres), BMI.decimals)


def check_pressure(systolic: Decimal | None, diastolic: Decimal | None) -> None:
    """A blood pressure is both numbers, diastolic below systolic (else a typo)."""
    if (systolic is None) != (diastolic is None):
        missing = DIASTOLIC if systolic is not None else SYSTOLIC
        raise ValidationError(missing.key, "is required with the other blood pressure number")
    if systolic is not None and diastolic is not None and diastolic >= systolic:
        raise ValidationError(
            DIASTOLIC.key,
            f"{_plain(diastolic)} is not below the systolic {_plain(systolic)}: "
            "type the higher number first",
        )


def split_pressure(typed: str) -> tuple[str, str]:
    """``"120/80"`` -> ``("120", "80")``; ValidationError for anything else."""
    parts = typed.strip().split("/")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ValidationError("bp", f"{typed!r} is not a blood pressure: type e.g. 120/80")
    return parts[0].strip(), parts[1].strip()

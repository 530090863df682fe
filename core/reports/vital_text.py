"""Vital signs worded for people: the label, the value as it was typed with the unit
symbol people read (``102 °F``, ``154 lb``, ``120/80 mmHg``) and the high/low mark.

The visit view, the visit PDF and the summary PDF read this one module, so a value never
reaches the screen or paper as its stored code (``Cel``, ``mm[Hg]``) or converted number.
Pure: it words readings the caller has read (``core.records.vital_signs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from core.records import vitals as cat
from core.records.errors import ValidationError
from core.records.vital_signs import Reading, VitalSet

FLAG_MARKS = {"high": "▲", "low": "▼"}


@dataclass(frozen=True)
class VitalText:
    """One vital as shown: ``Temperature``, ``102 °F ▲``."""

    label: str
    value: str  # as entered, with its unit symbol and the flag's mark
    flag: str | None  # "high", "low" or None
    observed_at: str  # as stored (local wall-clock time)
    recorded_by: str = ""  # who recorded it (user name; "" unknown): see ``Reading``


def with_unit(value: str, symbol: str, vital: cat.Vital | None = None) -> str:
    """``102 °F``, ``72/min``, ``98%``, ``4/10`` (a pain score has no unit)."""
    if vital is cat.PAIN:
        return f"{value}/10"
    if not symbol:
        return value
    if symbol == "%" or symbol.startswith("/"):
        return f"{value}{symbol}"
    return f"{value} {symbol}"


def marked(text: str, flag: str | None) -> str:
    """The value with the flag's mark: ``102 °F ▲``."""
    return f"{text} {FLAG_MARKS[flag]}" if flag in FLAG_MARKS else text


def _symbol(vital: cat.Vital | None, unit: str | None) -> str:
    """The symbol people read for a stored or typed unit (a UCUM code, or the symbol an
    older record stored); an unknown unit as stored."""
    if not unit:
        return ""
    if vital is None:
        return unit
    try:
        return vital.unit(unit).symbol
    except ValidationError:
        return unit


def bmi_value(bmi: Decimal) -> str:
    """A BMI as the chart shows it, to its one decimal: ``34.0 kg/m²`` (with the zero
    dropped, the paper read ``34`` where the chart read ``34.0``)."""
    return with_unit(f"{bmi:.{cat.BMI.decimals}f}", cat.BMI.canonical.symbol)


def reading_value(reading: Reading) -> str:
    """One reading as entered, without its flag: ``102 °F`` (a record with no entered
    value, made before they were kept: the stored value and unit)."""
    vital = reading.vital
    if reading.entered_value:
        value, unit = reading.entered_value, reading.entered_unit or reading.unit
    else:
        value, unit = reading.value, reading.unit
    return with_unit(value, _symbol(vital, unit), vital)


def set_texts(
    readings: dict[str, Reading], bmi: Decimal | None = None, bmi_flag: str | None = None
) -> list[VitalText]:
    """A set's vitals (by vital key) in the catalogue's order; the blood pressure as one
    line (``120/80 mmHg``, marked if either number is flagged) and the BMI worked out."""
    out: list[VitalText] = []
    for vital in cat.VITALS:
        if vital is cat.SYSTOLIC:
            sys_r, dia_r = readings.get("systolic"), readings.get("diastolic")
            if sys_r is not None and dia_r is not None:
                flags = [r.flag for r in (sys_r, dia_r) if r.flag]
                number = f"{_number(sys_r)}/{_number(dia_r)}"
                text = with_unit(number, cat.SYSTOLIC.canonical.symbol)
                flag = flags[0] if flags else None
                out.append(
                    VitalText(
                        "Blood pressure",
                        marked(text, flag),
                        flag,
                        sys_r.observed_at,
                        sys_r.recorded_by,
                    )
                )
                continue
        if vital is cat.DIASTOLIC and "systolic" in readings:
            continue  # shown with the systolic
        if vital is cat.BMI:
            weight = readings.get("weight")
            if bmi is not None and weight is not None:
                text = bmi_value(bmi)
                line = VitalText(
                    "BMI", marked(text, bmi_flag), bmi_flag, weight.observed_at, weight.recorded_by
                )
                out.append(line)
            continue
        reading = readings.get(vital.key)
        if reading is not None:
            out.append(_text(reading, vital.label))
    return out


def _number(reading: Reading) -> str:
    return reading.entered_value or reading.value


def _text(reading: Reading, label: str) -> VitalText:
    return VitalText(
        label,
        marked(reading_value(reading), reading.flag),
        reading.flag,
        reading.observed_at,
        reading.recorded_by,
    )


@dataclass(frozen=True)
class VitalGroup:
    """One recording as shown: when it was measured and its vitals in the catalogue's
    order (``observed_at`` empty: the visit's observations that are not vital signs)."""

    observed_at: str
    texts: tuple[VitalText, ...]
    recorded_by: str = ""  # who recorded it (user name; "" unknown or not one recording)


def visit_groups(sets: Iterable[VitalSet], others: Iterable[Reading] = ()) -> list[VitalGroup]:
    """The vitals of a visit, one group per recording (oldest first; of two measured in
    the same minute, the one recorded first), then observations that are not vital signs of
    the catalogue, under their own code, as one group of their own."""
    out = [
        VitalGroup(s.observed_at, tuple(set_texts(s.readings, s.bmi, s.bmi_flag)), s.recorded_by)
        for s in sorted(sets, key=lambda s: (s.observed_at, s.recorded_at))
    ]
    extra = tuple(_text(r, r.code) for r in others if r.vital is None)
    return out + ([VitalGroup("", extra)] if extra else [])


def visit_texts(sets: Iterable[VitalSet], others: Iterable[Reading] = ()) -> list[VitalText]:
    """The vitals of a visit as one list (``visit_groups``, each text with its time)."""
    return [t for group in visit_groups(sets, others) for t in group.texts]


def latest_texts(sets_newest_first: list[VitalSet]) -> list[VitalText]:
    """The newest value of each vital across the sets (a summary's "latest vital signs"):
    the blood pressure's two numbers from the same set, the BMI from the newest set that
    has one."""
    found: dict[str, Reading] = {}
    bmi: tuple[Decimal | None, str | None, Reading | None] = (None, None, None)
    for s in sets_newest_first:
        pressure = "systolic" in s.readings and "diastolic" in s.readings
        if pressure and "systolic" not in found:
            found["systolic"], found["diastolic"] = s.readings["systolic"], s.readings["diastolic"]
        for key, reading in s.readings.items():
            if key not in ("systolic", "diastolic"):
                found.setdefault(key, reading)
        if bmi[0] is None and s.bmi is not None:
            bmi = (s.bmi, s.bmi_flag, s.readings.get("weight"))
    texts = set_texts(found)
    value, flag, weight = bmi
    if value is not None and weight is not None:
        text = marked(bmi_value(value), flag)
        line = VitalText("BMI", text, flag, weight.observed_at, weight.recorded_by)
        texts.insert(_bmi_position(texts), line)
    return texts


def _bmi_position(texts: list[VitalText]) -> int:
    """Where the BMI goes: after the height or weight, before the pain score."""
    labels = [t.label for t in texts]
    for label in (cat.HEIGHT.label, cat.WEIGHT.label):
        if label in labels:
            return labels.index(label) + 1
    return len(texts) - (1 if cat.PAIN.label in labels else 0)

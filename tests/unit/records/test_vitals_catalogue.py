"""The vital-sign catalogue: codes, exact conversions both ways, impossible values refused,
normal ranges by age band, BMI."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from core.records import vitals as cat
from core.records.errors import ValidationError


def test_each_vital_has_its_loinc_code_and_ucum_unit() -> None:
    codes = {v.key: (v.code, v.canonical.ucum) for v in cat.VITALS}
    assert codes == {
        "systolic": ("8480-6", "mm[Hg]"),
        "diastolic": ("8462-4", "mm[Hg]"),
        "pulse": ("8867-4", "/min"),
        "temperature": ("8310-5", "Cel"),
        "respiratory_rate": ("9279-1", "/min"),
        "spo2": ("59408-5", "%"),
        "weight": ("29463-7", "kg"),
        "height": ("8302-2", "cm"),
        "bmi": ("39156-5", "kg/m2"),
        "pain": ("72514-3", "{score}"),
    }
    assert cat.vital("8310-5") is cat.TEMPERATURE is cat.vital("temperature")
    with pytest.raises(ValidationError, match="'glucose' is not a vital sign"):
        cat.vital("glucose")


@pytest.mark.parametrize(
    ("key", "typed", "unit", "stored", "shown"),
    [
        ("temperature", "102", "F", "38.89", "102 °F"),
        ("temperature", "98.6F", None, "37.00", "98.6 °F"),
        ("temperature", "37.2 °C", None, "37.20", "37.2 °C"),
        ("temperature", "104", "[degF]", "40.00", "104 °F"),
        ("weight", "154lb", None, "69.853", "154 lb"),
        ("weight", "1", "lb", "0.454", "1 lb"),
        ("weight", "70.25", "kg", "70.250", "70.25 kg"),
        ("height", "67 in", None, "170.18", "67 in"),
        ("height", "170.5cm", None, "170.50", "170.5 cm"),
        ("systolic", "120", None, "120", "120 mmHg"),
        ("pain", "0", None, "0", "0"),
        ("spo2", "97%", None, "97", "97 %"),
    ],
)
def test_typed_values_are_converted_to_the_canonical_unit(
    key: str, typed: str, unit: str | None, stored: str, shown: str
) -> None:
    m = cat.measure(cat.vital(key), typed, unit)
    assert str(m.value) == stored
    assert m.text == shown


def test_the_conversion_factors_are_the_exact_definitions() -> None:
    lb = cat.WEIGHT.units[1]
    inch = cat.HEIGHT.units[1]
    fahrenheit = cat.TEMPERATURE.units[1]
    assert lb.to_canonical(Fraction(1)) == Fraction("0.45359237")
    assert inch.to_canonical(Fraction(1)) == Fraction("2.54")
    assert fahrenheit.to_canonical(Fraction(212)) == 100
    assert fahrenheit.to_canonical(Fraction("98.6")) == 37
    assert fahrenheit.to_canonical(Fraction(-40)) == -40
    for unit in (lb, inch, fahrenheit):
        for x in (Fraction(0), Fraction("0.1"), Fraction(1234, 7)):
            assert unit.from_canonical(unit.to_canonical(x)) == x
            assert unit.to_canonical(unit.from_canonical(x)) == x


@pytest.mark.parametrize("vital", cat.TYPED, ids=lambda v: v.key)
def test_every_typeable_value_comes_back_as_typed_from_the_stored_value(vital: cat.Vital) -> None:
    """The stored canonical value loses nothing of what was typed: shown in the unit typed,
    at the precision typed, it is exactly that number (every value in the possible range)."""
    step = Decimal(1).scaleb(-vital.typed_decimals)
    for unit in vital.units:
        low, high = (cat.in_unit(vital, b, unit, vital.typed_decimals) for b in vital.possible)
        value, checked = low, 0
        while value <= high:
            try:
                m = cat.measure(vital, str(value), unit.ucum)
            except ValidationError:
                value += step  # rounded bounds may sit just outside the range
                continue
            back = cat.in_unit(vital, m.value, unit, vital.typed_decimals)
            assert back == value, (vital.key, unit.symbol, value, m.value)
            checked += 1
            value += step
        assert checked > 10


@pytest.mark.parametrize(
    ("key", "typed", "unit", "message"),
    [
        ("systolic", "1200", None, "1200 mmHg is not possible: must be 30 to 300 mmHg"),
        ("temperature", "65", "C", "65 °C is not possible: must be 25 to 45 °C"),
        (
            "temperature",
            "150",
            "F",
            "150 °F is not possible: must be 77 to 113 °F (25 to 45 °C)",
        ),
        ("weight", "900", "kg", "900 kg is not possible: must be 0.2 to 500 kg"),
        ("pain", "11", None, "11 is not possible: must be 0 to 10"),
        ("spo2", "101", None, "101 % is not possible: must be 40 to 100 %"),
        ("weight", "70", None, "'70' needs its unit: kg or lb"),
        ("temperature", "37,2", "C", "'37,2' is not a number: type digits with a point"),
        ("pulse", "72.5", None, "'72.5' has too many decimals: type a whole number"),
        # A negative number is a number: out of range, the range named in the unit chosen.
        ("pulse", "-5", None, "-5 /min is not possible: must be 20 to 300 /min"),
        ("weight", "-5", "kg", "-5 kg is not possible: must be 0.2 to 500 kg"),
        ("weight", "-5", "lb", "-5 lb is not possible: must be 0.4 to 1102.3 lb (0.2 to 500 kg)"),
        ("temperature", "−3.5 °C", None, "-3.5 °C is not possible: must be 25 to 45 °C"),
        ("weight", "5-", "kg", "'5-' is not a number"),
        ("height", "170", "ft", "'ft' is not a unit of height: use cm or in"),
        ("pulse", "70 kg", None, "'kg' is not a unit of pulse: use /min"),
        # A letter typed for a digit is a mistyped number, not a unit.
        ("pulse", "7O", None, "'7O' is not a number: type a whole number"),
        ("pulse", "1O2", None, "'1O2' is not a number: type a whole number"),
        ("systolic", "12O mmHg", None, "'12O mmHg' is not a number"),
        ("weight", "7O", "kg", "'7O' is not a number: type digits with a point"),
        ("temperature", "3l.5", "C", "'3l.5' is not a number"),
        ("temperature", "37C", "F", "'37C' names a unit other than °F"),
        ("bmi", "22", None, "is worked out from other measurements, not typed"),
    ],
)
def test_impossible_and_malformed_values_are_refused_naming_the_problem(
    key: str, typed: str, unit: str | None, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        cat.measure(cat.vital(key), typed, unit)
    assert caught.value.field == key
    assert message in str(caught.value)


def test_boundaries_of_the_possible_range_are_accepted() -> None:
    assert cat.measure(cat.SYSTOLIC, "300").value == 300
    assert cat.measure(cat.TEMPERATURE, "25", "C").value == 25
    assert cat.measure(cat.PAIN, "10").value == 10


def test_blood_pressure_needs_both_numbers_the_higher_first() -> None:
    cat.check_pressure(Decimal(120), Decimal(80))
    cat.check_pressure(None, None)
    with pytest.raises(ValidationError, match="80 is not below the systolic 80"):
        cat.check_pressure(Decimal(80), Decimal(80))
    with pytest.raises(ValidationError) as caught:
        cat.check_pressure(Decimal(120), None)
    assert caught.value.field == "diastolic"
    assert cat.split_pressure(" 120 / 80 ") == ("120", "80")
    with pytest.raises(ValidationError, match="is not a blood pressure"):
        cat.split_pressure("120-80")


def test_age_bands_cover_every_age_once() -> None:
    for years in range(0, 120):
        assert sum(band.holds(years) for band in cat.AGE_BANDS) == 1, years
    assert cat.age_in_years(dt.date(2020, 6, 15), dt.date(2021, 6, 14)) == 0
    assert cat.age_in_years(dt.date(2020, 6, 15), dt.date(2021, 6, 15)) == 1


@pytest.mark.parametrize(
    ("vital", "value", "years", "expected"),
    [
        (cat.PULSE, "150", 0, None),  # normal for an infant
        (cat.PULSE, "150", 30, "high"),  # tachycardia in an adult
        (cat.PULSE, "90", 0, "low"),  # bradycardia in an infant
        (cat.PULSE, "90", 8, None),
        (cat.RESPIRATORY_RATE, "40", 0, None),
        (cat.RESPIRATORY_RATE, "40", 4, "high"),
        (cat.RESPIRATORY_RATE, "16", 40, None),
        (cat.RESPIRATORY_RATE, "10", 40, "low"),
        (cat.SYSTOLIC, "145", 50, "high"),
        (cat.SYSTOLIC, "120", 50, None),
        (cat.SYSTOLIC, "120", 7, "high"),
        (cat.TEMPERATURE, "38.89", 30, "high"),
        (cat.TEMPERATURE, "37.9", 30, None),
        (cat.SPO2, "91", 60, "low"),
        (cat.WEIGHT, "150", 40, None),  # no normal range: never flagged
        (cat.BMI, "31.2", 40, "high"),
        (cat.BMI, "31.2", 10, None),  # children need percentiles: not flagged
    ],
)
def test_values_outside_the_normal_range_for_the_age_are_flagged(
    vital: cat.Vital, value: str, years: int, expected: str | None
) -> None:
    assert cat.flag(vital, Decimal(value), years) == expected


def test_bmi_is_weight_over_height_squared() -> None:
    assert cat.bmi(Decimal(70), Decimal(175)) == Decimal("22.9")
    assert cat.bmi(Decimal("69.853"), Decimal("170.18")) == Decimal("24.1")


def test_a_stored_observation_shows_as_entered_with_the_unit_symbol() -> None:
    typed_in_f = {"value": "38", "unit": "Cel", "entered_value": "100.4", "entered_unit": "[degF]"}
    assert cat.as_entered("8310-5", typed_in_f) == "100.4 °F"
    assert cat.as_entered("8480-6", {"value": "128", "unit": "mm[Hg]"}) == "128 mmHg"
    # Not a catalogued vital: the stored value and unit as they are.
    assert cat.as_entered("1234-5", {"value": "7", "unit": "mg/dL"}) == "7 mg/dL"

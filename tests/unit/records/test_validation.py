"""A typed date of birth is taken exactly as typed, or refused with the reason."""

from __future__ import annotations

import datetime as dt

import pytest

from core.records import validation as v
from core.records.errors import ValidationError


@pytest.mark.parametrize(
    "typed", ["1984-03-02", "1984-3-2", "19840302", "1984/3/2", "1984.03.02", " 1984-03-02 "]
)
def test_year_first_dates_are_read_exactly(typed: str) -> None:
    assert v.birth_date(typed) == "1984-03-02"


def test_a_leap_day_and_today_are_accepted() -> None:
    assert v.birth_date("1984-02-29") == "1984-02-29"
    today = dt.date.today()
    assert v.birth_date(today.isoformat()) == today.isoformat()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "is required"),
        ("1984", "'1984' is not a whole date: type year, month and day, e.g. 1984-03-02"),
        ("1984-03", "'1984-03' is not a whole date: type year, month and day, e.g. 1984-03-02"),
        ("1984-02-30", "'1984-02-30' is not a date: February 1984 has 29 days"),
        ("2023-02-29", "'2023-02-29' is not a date: February 2023 has 28 days"),
        ("1984-04-31", "'1984-04-31' is not a date: April 1984 has 30 days"),
        ("1984-13-01", "'1984-13-01' is not a date: there is no month 13"),
        ("1984-01-00", "'1984-01-00' is not a date: there is no day 0"),
        (
            "02/03/1984",
            "'02/03/1984' has the year last, where day and month are read either way round: "
            "type the year first, e.g. 1984-03-02",
        ),
        ("2 March 1984", "'2 March 1984' is not a date: type year, month and day, e.g. 1984-03-02"),
        ("1899-12-31", "1899-12-31 is before 1900"),
        # Past the calendar's ends: refused by name, never a crash on Save.
        ("0000-01-01", "'0000-01-01' is not a date: there is no year 0"),
        ("9999-12-32", "'9999-12-32' is not a date: December 9999 has 31 days"),
    ],
)
def test_what_was_not_typed_is_never_made_up(typed: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        v.birth_date(typed)
    assert caught.value.field == "birth_date"
    assert str(caught.value) == f"birth_date: {message}"


def test_a_date_after_today_is_in_the_future() -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    with pytest.raises(ValidationError) as caught:
        v.birth_date(tomorrow)
    assert str(caught.value) == f"birth_date: {tomorrow} is in the future"


# ----- a time something happened (a vital's "measured at", a visit's start) --------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("2026-12-05 10:00", "2026-12-05T10:00"),
        ("2026-12-05T10:00", "2026-12-05T10:00"),
        (" 2026-12-05 9:05 ", "2026-12-05T09:05"),
        ("2026/12/05 10:00", "2026-12-05T10:00"),  # the date as calendar_date reads one
        ("2026-12-05T10:00:59", "2026-12-05T10:00"),  # kept to the minute, as before
        ("2026-12-05T10:00:59.250", "2026-12-05T10:00"),
    ],
)
def test_a_local_date_and_time_is_kept_to_the_minute(typed: str, stored: str) -> None:
    assert v.timestamp("observed_at", typed) == stored


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        # A date alone was stored as 00:00, a midnight nobody typed.
        ("2026-12-05", "'2026-12-05' has no time: type the date and the time, e.g. 2026-12-05 "
         "09:30"),
        ("20261204", "'20261204' has no time: type the date and the time, e.g. 2026-12-04 09:30"),
        # An offset was kept in a field every reader takes as the clinic's local time.
        ("2026-12-05T10:00+05:00", "'2026-12-05T10:00+05:00' names a time zone: give the "
         "clinic's local time, e.g. 2026-11-28 09:30"),
        ("2026-12-05 10:00Z", "'2026-12-05 10:00Z' names a time zone: give the clinic's local "
         "time, e.g. 2026-11-28 09:30"),
        ("2026-12-05T10:00:00-0300", "'2026-12-05T10:00:00-0300' names a time zone: give the "
         "clinic's local time, e.g. 2026-11-28 09:30"),
        ("2026-12-05 24:00", "'2026-12-05 24:00' is not a time: there is no hour 24"),
        ("2026-02-29 10:00", "'2026-02-29' is not a date: February 2026 has 28 days"),
        ("20261204T1000", "'20261204T1000' is not a date and time: type the date, then the "
         "clinic's local time, e.g. 2026-12-07 09:30"),
        # The 12-hour clock is named, with the 24-hour time to type (never stored for them).
        ("2026-12-11 2:30 pm", "'2026-12-11 2:30 pm' has am/pm: times are on the 24-hour "
         "clock, so type 2026-12-11 14:30"),
        ("2026-12-11 12:05 a.m.", "'2026-12-11 12:05 a.m.' has am/pm: times are on the "
         "24-hour clock, so type 2026-12-11 00:05"),
        ("2026-12-11 12:30PM", "'2026-12-11 12:30PM' has am/pm: times are on the 24-hour "
         "clock, so type 2026-12-11 12:30"),
        ("2026-12-11 13:30 pm", "'2026-12-11 13:30 pm' is not a date and time: type the date, "
         "then the clinic's local time, e.g. 2026-12-07 09:30"),
        ("", "is required"),
    ],
)  # fmt: skip
def test_a_time_is_refused_rather_than_made_up(typed: str, message: str) -> None:
    for field in ("observed_at", "started_at"):
        with pytest.raises(ValidationError) as caught:
            v.timestamp(field, typed)
        assert str(caught.value) == f"{field}: {message}"


@pytest.mark.parametrize(
    "typed",
    ["+1 (555) 010-2030", "07700 900123", "555.0101/02", "555-0101 ext. 4", "555 0101 x12"],
)
def test_a_phone_number_is_kept_as_typed(typed: str) -> None:
    assert v.phone_number("phone", f"  {typed} ") == typed


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("055-ABC-12!!", "it holds 'ABC'; use digits, spaces and + ( ) - . /"),
        ("07700 9OO 123", "holds the letter O where a digit goes (type 0 for a zero)"),
        ("0l234 567", "holds the letter l where a digit goes (type 1 for a one)"),
        ("07700 900 123 (mother)", "it holds 'mother'"),
        ("555+0101", "+ goes only first"),
        ("12", "is too short for a phone number"),
    ],
)
def test_a_phone_number_with_letters_is_refused_not_tidied(typed: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        v.phone_number("phone", typed)
    assert message in str(refused.value)
    assert str(refused.value).startswith(f"phone: {typed!r}")


def test_a_blank_phone_is_no_phone() -> None:
    assert v.phone_number("phone", "   ") is None

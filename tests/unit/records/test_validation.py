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

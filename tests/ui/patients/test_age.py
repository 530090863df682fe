"""Ages as clinics say them: an infant is "7 months" or "3 weeks", never "0 years"."""

from __future__ import annotations

import datetime as dt

import pytest
from pytestqt.qtbot import QtBot

from app.patients.list_page import age_on
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in

D = dt.date


@pytest.mark.parametrize(
    ("born", "today", "age"),
    [
        (D(2026, 12, 4), D(2026, 12, 4), "0 days"),  # born today
        (D(2026, 12, 3), D(2026, 12, 4), "1 day"),
        (D(2026, 11, 21), D(2026, 12, 4), "13 days"),
        (D(2026, 11, 20), D(2026, 12, 4), "2 weeks"),
        (D(2026, 11, 5), D(2026, 12, 4), "4 weeks"),  # a day short of a month
        (D(2026, 11, 4), D(2026, 12, 4), "1 month"),
        (D(2026, 1, 31), D(2026, 2, 28), "4 weeks"),  # no 31 February: not a month yet
        (D(2026, 1, 31), D(2026, 3, 1), "1 month"),
        (D(2026, 5, 2), D(2026, 12, 4), "7 months"),
        (D(2025, 12, 4), D(2026, 12, 4), "12 months"),  # first birthday
        (D(2024, 12, 5), D(2026, 12, 4), "23 months"),  # the day before turning two
        (D(2024, 12, 4), D(2026, 12, 4), "2 years"),  # second birthday
        (D(1984, 12, 4), D(2026, 12, 4), "42 years"),  # birthday today
        (D(1984, 12, 5), D(2026, 12, 4), "41 years"),  # birthday tomorrow
        # Born on 29 February: a year older on 1 March when February has 28 days.
        (D(2024, 2, 29), D(2025, 2, 28), "11 months"),
        (D(2024, 2, 29), D(2025, 3, 1), "12 months"),
        (D(2000, 2, 29), D(2026, 2, 28), "25 years"),
        (D(2000, 2, 29), D(2026, 3, 1), "26 years"),
        (D(2000, 2, 29), D(2028, 2, 29), "28 years"),
    ],
)
def test_age_on(born: dt.date, today: dt.date, age: str) -> None:
    assert age_on(born.isoformat(), today) == age


def test_an_unreadable_or_later_date_shows_no_age() -> None:
    assert age_on("not a date", D(2026, 12, 4)) == ""
    assert age_on("2026-12-05", D(2026, 12, 4)) == ""


def test_the_list_and_the_chart_show_an_infant_in_months(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    today = dt.date.today()
    month = today.month - 7  # the first of the month seven months ago
    born = D(today.year - (month < 1), month + 12 * (month < 1), 1)
    expected = "7 months"
    clinic.sign_in(ADMIN, PASSWORD)
    baby = clinic.records.add_patient("Mensah", "Ama", born.isoformat())
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    model = window.workspace.patient_list.model
    [row] = [r for r in range(model.rowCount()) if model.patient_id(r) == baby.id]
    assert model.index(row, 2).data() == expected

    window.workspace.open_chart(baby.id)
    chart = window.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert chart.birth.text() == f"{born.isoformat()} ({expected})"

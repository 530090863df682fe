"""Registering someone already registered: the matches are shown before anything is saved,
and the person opens the existing chart or registers a new patient knowingly."""

from __future__ import annotations

from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.patients.dialog import PatientDialog
from core.records.workstation import Workstation
from tests.ui.patients.conftest import click, open_new_dialog, save

EXISTING = "OKAFOR, Chinedu    born 1990-06-15    MRN MRN-1003"


def register_okafor_again(qtbot: QtBot, window: MainWindow) -> PatientDialog:
    """Type the sample clinic's Chinedu Okafor in again, spelt a little differently."""
    dialog = open_new_dialog(qtbot, window)
    QTest.keyClicks(dialog.family, "OKAFOR")
    QTest.keyClicks(dialog.given, "chinedu")
    QTest.keyClicks(dialog.birth_date, "1990-6-15")
    save(qtbot, dialog)
    # The check runs on the worker: the dialog stays responsive, Save waits for the answer.
    assert dialog.save_button.text() == "Saving…" and not dialog.save_button.isEnabled()
    qtbot.waitUntil(dialog.duplicates.isVisible, timeout=5_000)
    assert dialog.save_button.isEnabled()
    return dialog


def match_texts(dialog: PatientDialog) -> list[str]:
    matches = dialog.duplicates.matches
    return [matches.item(i).text() for i in range(matches.count())]


def existing_id(clinic: Workstation) -> str:
    [okafor] = [p for p in clinic.records.list_patients() if p.family == "Okafor"]
    return okafor.id


def test_the_match_is_shown_and_its_chart_opened_instead(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    dialog = register_okafor_again(qtbot, signed_in)
    assert match_texts(dialog) == [EXISTING]
    assert dialog.duplicates.text.text().startswith(
        "A patient with the same date of birth and the same or a similar name is already "
        "registered."
    )
    assert clinic.records.count_patients() == 5  # nothing was saved

    click(dialog.duplicates.open_button)
    workspace = signed_in.workspace
    qtbot.waitUntil(lambda: workspace.patient_dialog is None, timeout=5_000)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    assert workspace.pages.currentWidget() is workspace.chart
    assert workspace.chart.patient is not None
    assert workspace.chart.patient.id == existing_id(clinic)
    assert clinic.records.count_patients() == 5


def test_a_different_person_is_registered_when_the_person_says_so(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    dialog = register_okafor_again(qtbot, signed_in)
    click(dialog.duplicates.register_button)
    chart = signed_in.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert chart.patient is not None
    assert chart.patient.id != existing_id(clinic)
    assert (chart.patient.family, chart.patient.birth_date) == ("OKAFOR", "1990-06-15")
    assert clinic.records.count_patients() == 6


def test_changing_the_name_takes_the_matches_away(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    dialog = register_okafor_again(qtbot, signed_in)
    dialog.given.selectAll()
    QTest.keyClicks(dialog.given, "Chidi")  # the twin, not the same person
    assert not dialog.duplicates.isVisible()
    save(qtbot, dialog)
    chart = signed_in.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert chart.patient is not None and chart.patient.given == "Chidi"
    assert clinic.records.count_patients() == 6

    # The same person typed once more is caught again: "register anyway" was for one save.
    again = register_okafor_again(qtbot, signed_in)
    assert match_texts(again) == [EXISTING]

"""The allergy banner in the chart header, "No known allergies", and editing an allergy."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.page import AllergyDialog
from app.main_window import MainWindow
from core.records.allergy_status import AllergyRecords, AllergyState
from core.records.clinic import ClinicRecords
from core.records.workstation import Workstation
from core.reports.data import summary_report
from tests.ui.chart.test_page import open_first_chart


def test_the_banner_goes_from_not_recorded_to_nka_to_the_allergy(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    banner = chart.allergy_banner
    assert banner.isVisible() and banner.state is AllergyState.NOT_RECORDED
    assert banner.caption.text() == "⚠ Allergies not recorded yet"
    assert chart.no_known_button.isVisible()
    QTest.mouseClick(chart.no_known_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: banner.state is AllergyState.NONE_KNOWN, timeout=5_000)
    assert banner.caption.text() == "No known allergies"
    assert not chart.no_known_button.isVisible()  # answered
    assert clinic.records.get_patient(patient.id).allergy_status == "nka"

    QTest.mouseClick(chart.add_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert dialog is not None
    QTest.keyClicks(dialog.substance, "Peanuts")
    QTest.keyClick(dialog.substance, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.reaction, "Swelling")
    QTest.keyClick(dialog.reaction, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: banner.state is AllergyState.ALLERGIES, timeout=5_000)
    assert banner.caption.text() == "⚠ Allergies:" and banner.text.text() == "Peanuts"
    assert "#d9534f" in banner.styleSheet()  # red
    # Leaving the chart empties the banner with it.
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    assert banner.state is None and not banner.isVisible()


def test_edit_changes_reaction_and_severity_and_the_banner_follows(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    clinic.records.add_allergy(patient.id, "Penicillin", "Rash", "mild")
    signed_in.operations.catch_up()
    qtbot.waitUntil(lambda: chart.allergy_table.rowCount() == 1, timeout=5_000)
    assert chart.allergy_banner.text.text() == "Penicillin (Mild)"
    assert not chart.edit_allergy_button.isEnabled()
    chart.allergy_table.selectRow(0)
    QTest.mouseClick(chart.edit_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert isinstance(dialog, AllergyDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    assert dialog.windowTitle() == "Edit allergy"
    assert dialog.substance.isReadOnly() and dialog.substance.text() == "Penicillin"
    assert dialog.reaction.hasFocus() and dialog.reaction.text() == "Rash"
    dialog.reaction.selectAll()
    QTest.keyClicks(dialog.reaction, "Anaphylaxis")
    QTest.keyClick(dialog.reaction, Qt.Key.Key_Tab)
    assert dialog.severity.hasFocus()
    QTest.keyClick(dialog.severity, Qt.Key.Key_End)  # the last choice: Unknown
    QTest.keyClick(dialog.severity, Qt.Key.Key_Up)  # Severe
    assert dialog.severity.currentData() == "severe"
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: chart.allergy_banner.text.text() == "Penicillin (Severe)", timeout=5_000
    )
    [stored] = clinic.records.allergies(patient.id)
    assert (stored.substance, stored.reaction, stored.severity) == (
        "Penicillin", "Anaphylaxis", "severe",
    )  # fmt: skip


def test_an_allergy_changed_since_its_edit_form_opened_is_never_overwritten(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The F12 check for list items: an item is replaced, never edited in place, so one
    changed meanwhile (here by a colleague through core) is gone and the stale edit writes
    nothing; the form says so in words, not as a missing id."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    old = clinic.records.add_allergy(patient.id, "Penicillin", "Rash", "mild")
    signed_in.operations.catch_up()
    qtbot.waitUntil(lambda: chart.allergy_table.rowCount() == 1, timeout=5_000)
    chart.allergy_table.selectRow(0)
    QTest.mouseClick(chart.edit_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert isinstance(dialog, AllergyDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    dialog.reaction.selectAll()
    QTest.keyClicks(dialog.reaction, "Hives")

    AllergyRecords(ClinicRecords(clinic.database, "nurse.jo")).edit(old.id, "Anaphylaxis", "severe")
    QTest.keyClick(dialog.reaction, Qt.Key.Key_Return)
    qtbot.waitUntil(dialog.general_error.isVisible, timeout=5_000)
    assert dialog.general_error.text() == (
        "This allergy was changed or removed since you opened this form (by someone else, or "
        "on another workstation): nothing was saved. Close the form to see the list as it is "
        "now."
    )
    [stored] = clinic.records.allergies(patient.id)
    assert (stored.reaction, stored.severity) == ("Anaphylaxis", "severe")
    assert dialog.isVisible() and dialog.reaction.text() == "Hives"  # what was typed stays


def test_the_banner_words_severity_as_the_table_and_the_printed_summary_do(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    QTest.mouseClick(chart.add_allergy_button, Qt.MouseButton.LeftButton)
    dialog = chart.allergy_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isActiveWindow)
    QTest.keyClicks(dialog.substance, "Latex")
    QTest.keyClick(dialog.substance, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.reaction, "Hives")
    QTest.keyClick(dialog.reaction, Qt.Key.Key_Tab)
    assert dialog.severity.hasFocus()
    QTest.keyClick(dialog.severity, Qt.Key.Key_Down)  # past "Not recorded": Mild
    QTest.keyClick(dialog.severity, Qt.Key.Key_Down)  # Moderate
    assert dialog.severity.currentText() == "Moderate"
    QTest.keyClick(dialog.severity, Qt.Key.Key_Return)
    banner = chart.allergy_banner
    qtbot.waitUntil(lambda: banner.state is AllergyState.ALLERGIES, timeout=5_000)
    # The person reads the label, never the stored code ("moderate").
    assert banner.text.text() == "Latex (Moderate)"
    table_cell = chart.allergy_table.item(0, 2)
    assert table_cell is not None and table_cell.text() == "Moderate"
    [printed] = summary_report(clinic.records, patient.id).allergies
    assert printed.severity == "Moderate"

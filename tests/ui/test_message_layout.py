"""A validation message is read whole where it appears: every line of it shows (the advice
after "either way round:" included), inside its dialog or form, and it is never drawn over
the field above or below it. The app's stylesheet is on and the window at its first size,
as a person sees them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget
from pytestqt.qtbot import QtBot

from app.chart.list_dialogs import DateDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.vitals import VitalsSection
from app.main_window import MainWindow
from core.records.medications import Medications
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_vitals import open_vitals, type_into
from tests.ui.conftest import DEFAULT_SIZE
from tests.ui.layout import assert_whole, shot
from tests.ui.patients.conftest import click, open_new_dialog, save

pytestmark = pytest.mark.usefixtures("styled")

YEAR_LAST = "either way round: type the year first, e.g."


@pytest.fixture
def window(signed_in: MainWindow) -> MainWindow:
    """The signed-in window at the size it first opens with."""
    signed_in.resize(*DEFAULT_SIZE)
    QApplication.processEvents()
    return signed_in


def leave(widget: QWidget) -> None:
    """Tab out of a field, as a person moves on (the field checks what was typed)."""
    QTest.keyClick(widget, Qt.Key.Key_Tab)
    QApplication.processEvents()


def test_a_birth_date_with_the_year_last_is_explained_in_full(
    qtbot: QtBot, window: MainWindow
) -> None:
    dialog = open_new_dialog(qtbot, window)
    QTest.keyClicks(dialog.family, "Garcia")
    QTest.keyClicks(dialog.given, "Maria")
    click(dialog.birth_date)
    QTest.keyClicks(dialog.birth_date, "12/03/1975")
    leave(dialog.birth_date)
    message = dialog.errors["birth_date"]
    assert YEAR_LAST in message.text()
    assert_whole(message)
    save(qtbot, dialog)  # refused again on Save: still all of it
    QApplication.processEvents()
    shot(dialog, "birth-date-year-last")
    assert_whole(message)
    assert dialog.save_button.geometry().bottom() <= dialog.rect().bottom()


def test_a_medication_start_date_with_the_year_last_is_explained_in_full(
    qtbot: QtBot, window: MainWindow
) -> None:
    chart = open_first_chart(qtbot, window)
    card = card_of(chart, MedicationsCard)
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isVisible)
    QTest.keyClicks(dialog.fields["name"], "Amlodipine")
    dialog.fields["start"].setText("05/12/2026")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    message = dialog.errors["start"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    assert YEAR_LAST in message.text()
    shot(dialog, "medication-start-year-last")
    assert_whole(message)


def test_a_stop_date_before_the_start_is_said_below_the_date_not_over_it(
    qtbot: QtBot, window: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, window)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, MedicationsCard)
    Medications(clinic.records).start(
        patient.id,
        {"name": "Amlodipine", "strength": "5 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "once daily", "start": "2024-01-05"},
    )  # fmt: skip
    window.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.medications) == 1, timeout=5_000)
    card.table.selectRow(0)
    QTest.mouseClick(card.stop_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, DateDialog)
    qtbot.waitUntil(dialog.isVisible)
    dialog.date.setText("2024-01-01")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    message = dialog.errors["stop"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    assert "before" in message.text()
    shot(dialog, "stop-before-start")
    assert_whole(message)
    assert message.geometry().top() > dialog.date.geometry().bottom()


def test_vitals_messages_at_the_first_window_size_show_whole_and_apart(
    qtbot: QtBot, window: MainWindow, clinic: Workstation
) -> None:
    """Three refusals at once in the fixed-width form: each shows every line, none runs
    into the next row (the form scrolls when they need more than the window's height), and
    a visit with a long reason in the Visit list does not widen the form past its side."""
    patient_id = window.workspace.patient_list.model.patient_id(0)
    Visits(clinic.records).start(patient_id, "Review of the blood pressure readings taken at home")
    chart = open_first_chart(qtbot, window)
    section = card_of(chart, VitalsSection)
    # The visits are read before the tab is first shown, as when a person looks at the
    # Overview first: the Visit list then sized itself to its longest entry.
    qtbot.waitUntil(lambda: section.visit.count() == 2, timeout=5_000)
    _chart, section = open_vitals(qtbot, window)
    fields = section.fields
    for key, typed in (("systolic", "12O"), ("temperature", "37,5"), ("weight", "68,4")):
        type_into(qtbot, fields[key].edit, typed)
        leave(fields[key].edit)
    messages: list[QLabel] = [fields[k].message for k in ("systolic", "temperature", "weight")]
    shot(window, "vitals-three-messages")
    for message in messages:
        assert message.text()
        assert_whole(message)
    form = section.record_button.parentWidget()  # the form's card: its captions too
    assert form is not None
    for label in form.findChildren(QLabel):
        if label.isVisible() and label.text():
            assert_whole(label)


def test_a_vital_is_named_in_its_message_as_the_form_names_it(
    qtbot: QtBot, window: MainWindow
) -> None:
    _chart, section = open_vitals(qtbot, window)
    spo2 = section.fields["spo2"]
    type_into(qtbot, spo2.edit, "101")
    leave(spo2.edit)
    assert spo2.message.text().startswith("SpO2: 101 % is not possible")
    captions = [label.text() for label in section.widget().findChildren(QLabel)]
    assert "SpO2" in captions  # the form's own label for the field

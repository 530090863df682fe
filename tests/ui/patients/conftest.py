"""Opening the patient dialog as a person does: from the toolbar, or from a chart; two charts
of one person, and Possible duplicates… opened on them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from app.main_window import MainWindow
from app.patients.dialog import PatientDialog
from app.patients.duplicates import DuplicatesDialog
from core.records.clinic import ClinicRecords
from core.records.models import Patient


def open_new_dialog(qtbot: QtBot, window: MainWindow) -> PatientDialog:
    """New patient, from the toolbar action."""
    window.workspace.new_patient_action.trigger()
    dialog = window.workspace.patient_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isVisible)
    activate(qtbot, dialog)
    return dialog


def activate(qtbot: QtBot, dialog: PatientDialog) -> None:
    """Make the dialog the active window, as it is on screen: only then does focus leave a
    field the way a person sees it (focus-out events, ``editingFinished``)."""
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)


def click(widget: QWidget) -> None:
    """A left click on a button (or any widget)."""
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def save(qtbot: QtBot, dialog: PatientDialog) -> None:
    """Click Save."""
    click(dialog.save_button)


def add_namesakes(
    records: ClinicRecords, family: str = "Banda", born: str = "1985-03-02"
) -> tuple[Patient, Patient]:
    """Two charts of one woman, Grace ``family`` born ``born``, registered twice with two
    phones (as two registrations of one person come to be): a possible duplicate."""
    one = records.add_patient(family, "Grace", born, "female", None, "0977 111")
    two = records.add_patient(family, "Grace", born, "female", None, "0966 222")
    return one, two


def open_duplicates(qtbot: QtBot, window: MainWindow) -> DuplicatesDialog:
    """Click Possible duplicates… on the patient list once it shows (signed in)."""
    page = window.workspace.patient_list
    qtbot.waitUntil(page.duplicates_button.isVisible, timeout=5_000)
    click(page.duplicates_button)
    dialog = window.workspace.admin_tools.dialog
    assert isinstance(dialog, DuplicatesDialog)
    return dialog


EditDialog = Callable[[str], PatientDialog]


@pytest.fixture
def open_edit_dialog(qtbot: QtBot, signed_in: MainWindow) -> EditDialog:
    """Open a listed patient's chart (by the name shown) and click Edit details."""

    def open_for(shown_name: str) -> PatientDialog:
        workspace = signed_in.workspace
        model = workspace.patient_list.model
        rows = range(model.rowCount())
        row = next(r for r in rows if model.index(r, 0).data() == shown_name)
        workspace.open_chart(model.patient_id(row))
        chart = workspace.chart
        qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
        click(chart.edit_button)
        dialog = chart.patient_dialog
        assert dialog is not None
        qtbot.waitUntil(dialog.isVisible)
        activate(qtbot, dialog)
        return dialog

    return open_for

"""The chart as each role sees it (permissions enforced, as in a clinic): a nurse writes a
note but its Sign button is disabled, saying only a clinician signs, and cannot start a
medication; the front desk sees demographics, edits them, and in place of every clinical
part reads that clinical information is visible to clinical staff; a clinician signs."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from app.chart.medications import MedicationsCard
from app.chart.page import ChartPage
from app.chart.permits import restrict
from app.main_window import MainWindow
from core.records.allergy_status import AllergyState
from core.records.models import CLINICAL_HIDDEN
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_visits import open_editor, sign_note, start_walk_in, visits_tab
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, new_clinic, sign_in
from tests.ui.session.test_shared_workstation import click_sign_out, signs_in

pytestmark = pytest.mark.strict_authz

STAFF = {"nina": "nurse", "desk": "front_desk", "doc": "clinician"}


@pytest.fixture
def staffed(tmp_path: Path) -> Workstation:
    """The sample clinic with a nurse, a front-desk account and a clinician, each of whom
    has signed in here once (so the workstation opens with their password)."""
    ws = new_clinic(tmp_path / "clinic")
    ws.sign_in(ADMIN, PASSWORD)
    for name, role in STAFF.items():
        ws.records.add_user(name, name.title(), role, PASSWORD)
    for name in STAFF:
        ws.sign_in(name, PASSWORD)
    ws.lock()
    return ws


def test_a_nurse_writes_a_note_but_only_a_clinician_signs_it(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window, "nina")
    chart = open_first_chart(qtbot, window)
    meds = next(s for s in chart.sections if isinstance(s, MedicationsCard))
    qtbot.waitUntil(lambda: meds.start_button.toolTip() != "", timeout=5_000)
    assert not meds.start_button.isEnabled()
    assert meds.start_button.toolTip() == "Only a clinician can start a medication"
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough", clinician="Nina")  # she sees the patient
    editor = open_editor(qtbot, section)
    QTest.keyClicks(editor.body, "Dry cough for a week.")
    assert not editor.sign_button.isEnabled()
    assert editor.sign_button.toolTip() == "Only a clinician can sign a note"
    qtbot.waitUntil(lambda: not editor.unsaved, timeout=5_000)  # the nurse's text is saved
    editor.reject()


def test_the_front_desk_sees_no_clinical_part_of_the_chart(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window, "desk")
    chart = open_first_chart(qtbot, window)
    assert chart.clinical_hidden.isVisible()
    said = chart.clinical_hidden.text()
    assert said == CLINICAL_HIDDEN
    assert said.endswith(", and on a restricted chart only to its care team.")  # full stop
    assert not chart.allergy_card.isVisible()
    assert not chart.allergy_banner.isVisible()
    assert [chart.tabs.isTabVisible(i) for i in range(chart.tabs.count())] == [
        True,
        *([False] * (chart.tabs.count() - 1)),
    ]
    assert chart.edit_button.isEnabled()  # the front desk edits demographics
    assert chart.edit_button.toolTip() == ""


def test_a_clinician_signs(qtbot: QtBot, staffed: Workstation, make_window: WindowFactory) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window, "doc")
    chart = open_first_chart(qtbot, window)
    assert not chart.clinical_hidden.isVisible()
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough")
    editor = open_editor(qtbot, section)
    QTest.keyClicks(editor.body, "Dry cough.")
    assert editor.sign_button.isEnabled()
    sign_note(qtbot, editor)
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)


def open_chart_by_typing(qtbot: QtBot, window: MainWindow, name: str) -> ChartPage:
    """Ctrl+F, the name, Enter to the list and Enter to open the chart, as a person does."""
    workspace = window.workspace
    page = workspace.patient_list
    QTest.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(page.search, name)
    QTest.keyClick(page.search, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.model.query == name and page.model.rowCount() == 1)
    QTest.keyClick(page.table, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    return workspace.chart


def test_a_clinician_after_the_front_desk_records_no_known_allergies(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    """A button the front desk may not use is disabled for them; the clinician who signs in
    next at the same window (no restart) finds it working again."""
    window = make_window(staffed)
    signs_in(qtbot, window, "desk", PASSWORD)
    chart = open_chart_by_typing(qtbot, window, "lindqvist")
    assert not chart.no_known_button.isEnabled()  # on a card the front desk does not see
    assert not chart.edit_allergy_button.isEnabled() and not chart.add_allergy_button.isEnabled()
    click_sign_out(window)
    qtbot.waitUntil(lambda: window.session is None)

    signs_in(qtbot, window, "doc", PASSWORD)
    chart = open_chart_by_typing(qtbot, window, "lindqvist")
    patient = chart.patient
    assert patient is not None
    qtbot.waitUntil(chart.no_known_button.isVisible, timeout=5_000)
    assert chart.no_known_button.isEnabled()
    assert chart.no_known_button.toolTip() == "The patient was asked and has no known allergies"
    assert chart.add_allergy_button.isEnabled()
    QTest.mouseClick(chart.no_known_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: chart.allergy_banner.state is AllergyState.NONE_KNOWN, timeout=5_000)
    assert staffed.records.get_patient(patient.id).allergy_status == "nka"


def test_a_gated_button_follows_each_person_and_keeps_its_own_tooltip(qtbot: QtBot) -> None:
    button = QPushButton("No known allergies")
    qtbot.addWidget(button)
    button.setToolTip("The patient was asked and has no known allergies")
    desk, nurse = frozenset({"view_demographics"}), frozenset({"record_allergy"})
    restrict(button, desk, "allergy.none_known", enabled=True)
    assert not button.isEnabled()
    assert button.toolTip() == (
        "Only a nurse or a clinician (on the care team, for a restricted chart) can record no "
        "known allergies"
    )
    restrict(button, nurse, "allergy.none_known", enabled=True)
    assert button.isEnabled()
    assert button.toolTip() == "The patient was asked and has no known allergies"
    restrict(button, nurse, "allergy.none_known", enabled=False)  # e.g. no chart shown
    assert not button.isEnabled()

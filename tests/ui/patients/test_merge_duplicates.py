"""Possible duplicates…, from the patient list, as a person uses it: the pair found after two
registrations of one person, merged by an administrator; the button is shown to clinicians
and administrators only."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.visit_view import local_time
from app.chart.visits import VisitsSection
from app.main import stylesheet
from app.patients.duplicates import DuplicatesDialog
from core.records import chart_access
from core.records.merges import Merges
from core.records.models import Patient
from core.records.staff import Staff
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, sign_in
from tests.ui.patients.conftest import add_namesakes, open_duplicates

NURSE, NURSE_PASSWORD = "nurse.jo", "jo's own long password"


def _second_registration(ws: Workstation) -> tuple[str, str]:
    """Okafor registered again (as another workstation did offline), with an allergy there;
    returns (the sample chart's id, the second one's)."""
    ws.sign_in(ADMIN, PASSWORD)
    first = next(p.id for p in ws.records.list_patients() if p.family == "Okafor")
    second = ws.records.add_patient("Okafur", "Chinedu", "1990-06-15").id
    ws.records.add_allergy(second, "Penicillin")
    Visits(ws.records).start(second, "Cough on the other workstation")
    ws.records.add_user(NURSE, "Jo Mensah", "nurse", NURSE_PASSWORD)
    ws.sign_in(NURSE, NURSE_PASSWORD)  # her first sign-in here adds her password slot
    ws.lock()
    return first, second


def test_an_admin_merges_the_duplicate_found_after_sync(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    first, second = _second_registration(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    page = window.workspace.patient_list
    qtbot.waitUntil(lambda: page.model.rowCount() == 6, timeout=5_000)
    assert page.duplicates_button.isVisible()
    dialog = open_duplicates(qtbot, window)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5_000)
    assert dialog.status.text() == "1 possible duplicate. No merged charts."
    assert not dialog.merge_button.isEnabled()  # no reason given yet
    # The sample chart sorts first (OKAFOR before OKAFUR): keep it.
    assert dialog.keep_first.text().startswith("Keep OKAFOR, Chinedu, MRN MRN-1003")
    QTest.keyClicks(dialog.reason, "same person, registered twice")
    assert dialog.merge_button.isEnabled()
    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 0, timeout=5_000)
    qtbot.waitUntil(lambda: page.model.rowCount() == 5, timeout=5_000)
    # What was done stays on screen after the lists refresh (it was replaced at once by
    # "No likely duplicates."), naming the charts, not their ids.
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == 1, timeout=5_000)
    assert dialog.status.text() == (
        "Merged: the records of OKAFUR, Chinedu now show on OKAFOR, Chinedu, MRN MRN-1003. "
        "No likely duplicates."
    )
    assert clinic.database.query("SELECT merged_into FROM patients WHERE id = ?", (second,)) == [
        (first,)
    ]
    # The kept chart shows the allergy recorded on the other one.
    window.workspace.open_chart(first)
    chart = window.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None and chart.patient.id == first)
    qtbot.waitUntil(lambda: chart.allergy_banner.text.text() == "Penicillin", timeout=5_000)
    visits = next(s for s in chart.sections if isinstance(s, VisitsSection))
    qtbot.waitUntil(lambda: visits.timeline.count() > 0, timeout=5_000)  # the other's visit
    qtbot.waitUntil(chart.merged_note.isVisible, timeout=5_000)
    assert chart.merged_note.text().startswith(
        "Holds the records of OKAFUR, Chinedu, born 1990-06-15 (merged by admin on "
    )
    assert chart.merged_note.text().endswith(": same person, registered twice)")

    # Merged charts lists it (newest first); Undo merge gives the chart back.
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == 1, timeout=5_000)
    cells = [dialog.merged_table.item(0, c).text() for c in range(3)]  # type: ignore[union-attr]
    assert cells == ["OKAFUR, Chinedu", "OKAFOR, Chinedu, MRN MRN-1003", ADMIN]
    # The reason is read whole (it was cut off at the dialog's edge), in local time.
    table = dialog.merged_table
    why = table.item(0, 4)
    assert why is not None and why.text() == "same person, registered twice"
    assert why.toolTip() == why.text()
    right = table.columnViewportPosition(4) + table.columnWidth(4)
    assert table.columnWidth(4) >= table.fontMetrics().horizontalAdvance(why.text())
    assert right <= table.viewport().width()
    assert "UTC" not in table.item(0, 3).text()  # type: ignore[union-attr]
    assert not dialog.undo_button.isEnabled()  # nothing selected
    dialog.merged_table.selectRow(0)
    QTest.mouseClick(dialog.undo_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == 0, timeout=5_000)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5_000)  # a pair again
    assert dialog.status.text() == (
        "Merge undone: OKAFUR, Chinedu is a chart of its own again. 1 possible duplicate. "
        "No merged charts."
    )
    qtbot.waitUntil(lambda: page.model.rowCount() == 6, timeout=5_000)
    qtbot.waitUntil(lambda: chart.allergy_banner.text.text() != "Penicillin", timeout=5_000)
    qtbot.waitUntil(lambda: visits.timeline.count() == 0, timeout=5_000)
    assert not chart.merged_note.isVisible()


@pytest.mark.strict_authz  # the button follows the permission check
def test_a_nurse_has_no_duplicates_button(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    _second_registration(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    assert not window.workspace.patient_list.duplicates_button.isVisible()


@pytest.mark.strict_authz
def test_the_button_follows_the_permission_not_the_primary_role(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """A nurse given the clinician role beside her own holds merge_patients: she sees it."""
    _second_registration(clinic)
    clinic.sign_in(ADMIN, PASSWORD)
    Staff(clinic.records).add_role(NURSE, "clinician")
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    assert window.workspace.patient_list.duplicates_button.isVisible()


def test_not_a_duplicate_takes_the_pair_off_the_list(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    first, second = _second_registration(clinic)
    window = make_window(clinic)
    sign_in(qtbot, window)
    page = window.workspace.patient_list
    qtbot.waitUntil(lambda: page.model.rowCount() == 6, timeout=5_000)
    dialog = open_duplicates(qtbot, window)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5_000)
    assert dialog.dismiss_button.isEnabled()  # no reason needed: nothing moves
    QTest.mouseClick(dialog.dismiss_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 0, timeout=5_000)
    qtbot.waitUntil(
        lambda: dialog.status.text().endswith("No likely duplicates. No merged charts."),
        timeout=5_000,
    )
    assert dialog.status.text().startswith("Marked as two people: ")  # kept over the refresh
    assert Merges(clinic.records).candidates() == []
    assert page.model.rowCount() == 6  # both charts stay
    assert {first, second} == {
        str(p)[len("patient:") :]
        for row in clinic.database.query(
            "SELECT object, subject FROM relations WHERE relation = 'not_duplicate'"
        )
        for p in row
    }


def _namesakes_listed(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> tuple[DuplicatesDialog, Patient, Patient]:
    """Two charts of Grace Banda, one birth date, two phones; Possible duplicates open on
    the pair as an admin; returns the dialog and both charts."""
    clinic.sign_in(ADMIN, PASSWORD)
    one, two = add_namesakes(clinic.records)
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = open_duplicates(qtbot, window)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5_000)
    return dialog, one, two


def test_the_pair_shows_what_tells_two_namesakes_apart(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """Two charts of one name: the list and the Keep choices show sex, phone and when each
    was registered (local time, as the rest of the app), not ids; with no pair selected
    there are no empty Keep choices."""
    dialog, one, two = _namesakes_listed(qtbot, clinic, make_window)
    cells = {dialog.table.item(0, c).text() for c in (1, 2)}  # type: ignore[union-attr]
    registered = local_time(one.created_at)
    assert cells == {
        f"BANDA, Grace · female · 0977 111 · registered {registered}",
        f"BANDA, Grace · female · 0966 222 · registered {local_time(two.created_at)}",
    }
    assert dialog.keep_first.isVisible() and "registered" in dialog.keep_first.text()
    # Both lists show a few rows, not one squashed row (under the app's stylesheet too).
    dialog.setStyleSheet(stylesheet())
    qtbot.waitUntil(dialog.isVisible)
    for table in (dialog.table, dialog.merged_table):
        rows = table.verticalHeader().defaultSectionSize()
        assert table.height() >= table.horizontalHeader().height() + 3 * rows
    assert one.id not in dialog.keep_first.text() + dialog.keep_second.text()
    assert not dialog.select_hint.isVisible()
    dialog.table.clearSelection()
    assert not dialog.keep_first.isVisible() and not dialog.keep_second.isVisible()
    assert dialog.select_hint.isVisible()
    assert not dialog.merge_button.isEnabled()


def test_merged_namesakes_are_told_apart_in_merged_charts(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """A merge of two charts of one name lists each chart with its details (which one went
    into which), not the same name twice; a merge of two different names stays short."""
    dialog, one, two = _namesakes_listed(qtbot, clinic, make_window)
    pair = dialog.selected()
    assert pair is not None
    kept = one if pair.first.id == one.id else two
    gone = two if kept is one else one
    QTest.keyClicks(dialog.reason, "same woman, new phone")
    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == 1, timeout=5_000)
    cells = [dialog.merged_table.item(0, c).text() for c in (0, 1)]  # type: ignore[union-attr]
    assert cells == [
        f"BANDA, Grace · female · {gone.phone} · registered {local_time(gone.created_at)}",
        f"BANDA, Grace · female · {kept.phone} · registered {local_time(kept.created_at)}",
    ]
    # The outcome line names them so too ("the records of BANDA, Grace now show on
    # BANDA, Grace" told nobody anything).
    assert dialog.status.text().startswith(
        f"Merged: the records of {cells[0]} now show on {cells[1]}."
    )


def test_the_dialog_says_when_a_chart_of_the_pair_is_restricted(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """Tester report E1: the restricted registration merged into the open one. The dialog
    says so before the merge, and the kept chart shows the Restricted chart marker."""
    first, second = _second_registration(clinic)
    clinic.sign_in(ADMIN, PASSWORD)
    chart_access.set_restricted(clinic.records, second, True)
    clinic.lock()
    window = make_window(clinic)
    sign_in(qtbot, window)
    dialog = open_duplicates(qtbot, window)
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1, timeout=5_000)
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Restricted:"), timeout=5_000)
    assert dialog.status.text().startswith(
        f"Restricted: chart OKAFUR, Chinedu ({second}) is restricted. The merged chart will "
        "be restricted too"
    )
    assert dialog.keep_first.text().startswith("Keep OKAFOR, Chinedu, MRN MRN-1003")
    assert "restricted" not in dialog.keep_first.text()
    assert dialog.keep_second.text().endswith(" (restricted chart)")
    QTest.keyClicks(dialog.reason, "same person, registered twice")
    QTest.mouseClick(dialog.merge_button, Qt.MouseButton.LeftButton)  # keeps the open one
    qtbot.waitUntil(lambda: dialog.merged_table.rowCount() == 1, timeout=5_000)
    assert "It is a restricted chart now." in dialog.status.text()
    window.workspace.open_chart(first)
    chart = window.workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None and chart.patient.id == first)
    qtbot.waitUntil(chart.restricted_marker.isVisible, timeout=5_000)

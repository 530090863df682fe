"""Chart access…, driven as a person does (permissions enforced, as in a clinic): a
clinician restricts a chart with the checkbox, the header says "Restricted chart", and she
puts a nurse on the care team and takes her off again; a nurse (no manage_access) is not
offered the button, and on a restricted chart she is not on reads demographics only."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QCheckBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from app.chart.access_dialog import ChartAccessDialog
from app.chart.page import ChartPage
from core.records import chart_access
from core.records.models import CLINICAL_HIDDEN
from core.records.workstation import Workstation
from tests.ui.chart.test_break_glass import restrict_every_chart
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import (
    ADMIN,
    ADMIN_NAME,
    PASSWORD,
    WindowFactory,
    answer_discard_by_keyboard,
    asks_nothing,
    new_clinic,
    sign_in,
)

pytestmark = pytest.mark.strict_authz

STAFF = {"nina": "nurse", "doc": "clinician"}


@pytest.fixture
def staffed(tmp_path: Path) -> Workstation:
    """The sample clinic with a nurse and a clinician who have each signed in here once."""
    ws = new_clinic(tmp_path / "clinic")
    ws.sign_in(ADMIN, PASSWORD)
    ws.records.add_user("nina", "Nina Okafor", "nurse", PASSWORD)
    ws.records.add_user("doc", "Dana Chen", "clinician", PASSWORD)
    for name in STAFF:
        ws.sign_in(name, PASSWORD)
    ws.lock()
    return ws


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def tick(box: QCheckBox) -> None:
    """Click a checkbox on its box (its widget may be wider than box and label)."""
    QTest.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))


def open_access(qtbot: QtBot, chart: ChartPage) -> ChartAccessDialog:
    qtbot.waitUntil(chart.access_button.isVisible, timeout=5_000)
    click(chart.access_button)
    dialog = chart.access_dialog
    assert dialog is not None
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(lambda: dialog.view is not None, timeout=5_000)
    return dialog


def team(dialog: ChartAccessDialog) -> list[str]:
    return [dialog.team.item(i).text() for i in range(dialog.team.count())]


def test_a_clinician_restricts_a_chart_and_manages_its_care_team(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window, "doc")
    chart = open_first_chart(qtbot, window)
    patient = chart.patient
    assert patient is not None
    assert not chart.restricted_marker.isVisible()
    dialog = open_access(qtbot, chart)
    assert not dialog.restricted.isChecked()
    assert team(dialog) == []
    assert dialog.team_hint.text() == "Nobody is on the care team."

    tick(dialog.restricted)
    qtbot.waitUntil(
        lambda: dialog.view is not None and dialog.view.access.restricted, timeout=10_000
    )
    assert dialog.restricted.isChecked()
    # The clinician who restricted it is on its care team: she keeps reading it.
    qtbot.waitUntil(lambda: team(dialog) == ["Dana Chen (doc) — clinician"], timeout=5_000)
    qtbot.waitUntil(chart.restricted_marker.isVisible, timeout=5_000)
    assert chart.restricted_marker.text() == "Restricted chart"
    assert not chart.clinical_hidden.isVisible()

    # Add the nurse: type part of her name into the combo, then Add.
    dialog.person.setFocus()
    QTest.keyClicks(dialog.person, "Nina")
    assert dialog.chosen_username() == "nina"
    click(dialog.add_button)
    qtbot.waitUntil(lambda: len(team(dialog)) == 2, timeout=10_000)
    assert "Nina Okafor (nina) — nurse" in team(dialog)
    assert dialog.person.findData("nina") == -1  # no longer offered
    db = staffed.database
    assert chart_access.is_restricted(db, patient.id)

    # Remove her: select her row, then Remove.
    row = team(dialog).index("Nina Okafor (nina) — nurse")
    rect = dialog.team.visualItemRect(dialog.team.item(row))
    QTest.mouseClick(dialog.team.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert dialog.remove_button.isEnabled()
    click(dialog.remove_button)
    qtbot.waitUntil(lambda: team(dialog) == ["Dana Chen (doc) — clinician"], timeout=10_000)
    actions = db.query("SELECT action FROM audit_log WHERE action LIKE 'access.%' ORDER BY seq")
    assert [str(a) for (a,) in actions] == [
        "access.grant", "access.grant", "access.grant", "access.revoke"
    ]  # fmt: skip

    # Lifting the restriction: the marker goes.
    tick(dialog.restricted)
    qtbot.waitUntil(lambda: not chart.restricted_marker.isVisible(), timeout=10_000)
    assert not chart_access.is_restricted(db, patient.id)
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: chart.access_dialog is None, timeout=5_000)


def test_a_nurse_is_not_offered_chart_access_and_a_restricted_chart_hides_from_her(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    staffed.sign_in(ADMIN, PASSWORD)
    first = staffed.records.list_patients(1)[0].id
    chart_access.set_restricted(staffed.records, first, True)
    staffed.lock()
    window = make_window(staffed)
    sign_in(qtbot, window, "nina")
    workspace = window.workspace
    workspace.open_chart(first)
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    chart = workspace.chart
    qtbot.waitUntil(chart.restricted_marker.isVisible, timeout=5_000)
    assert chart.clinical_hidden.isVisible() and chart.clinical_hidden.text() == CLINICAL_HIDDEN
    qtbot.wait(300)
    assert not chart.access_button.isVisible()  # a nurse holds no manage_access


def test_the_admin_is_offered_chart_access_with_every_active_staff_member(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window)
    chart = open_first_chart(qtbot, window)
    dialog = open_access(qtbot, chart)
    staff = [dialog.person.itemText(i) for i in range(dialog.person.count())]
    assert staff == [
        f"{ADMIN_NAME} ({ADMIN}) — admin",
        "Dana Chen (doc) — clinician",
        "Nina Okafor (nina) — nurse",
    ]


def test_an_admin_adds_herself_to_a_restricted_chart_and_it_opens_to_her(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    window = make_window(staffed)
    sign_in(qtbot, window)
    restrict_every_chart(staffed)  # nobody on the care team
    chart = open_first_chart(qtbot, window)
    qtbot.waitUntil(chart.restricted_marker.isVisible, timeout=5_000)
    assert chart.clinical_hidden.isVisible() and not chart.allergy_card.isVisible()
    qtbot.waitUntil(chart.break_glass.button.isVisible, timeout=5_000)
    dialog = open_access(qtbot, chart)  # an admin manages access without reading the chart
    dialog.person.setFocus()
    QTest.keyClicks(dialog.person, ADMIN_NAME)
    click(dialog.add_button)
    qtbot.waitUntil(lambda: team(dialog) == [f"{ADMIN_NAME} ({ADMIN}) — admin, clinician"],
                    timeout=10_000)  # fmt: skip
    # The chart behind the dialog re-reads who may see it: its clinical parts appear.
    qtbot.waitUntil(chart.allergy_card.isVisible, timeout=10_000)
    assert not chart.clinical_hidden.isVisible()
    assert all(chart.tabs.isTabVisible(i) for i in range(chart.tabs.count()))
    qtbot.waitUntil(lambda: not chart.break_glass.button.isVisible(), timeout=5_000)


def test_a_staff_member_typed_and_not_yet_added_is_not_dropped_unasked(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    """The checkbox, Add and Remove apply at once; a name typed into Add and not added yet
    is the one thing Escape or Close could lose: they ask first."""
    window = make_window(staffed)
    sign_in(qtbot, window, "doc")
    chart = open_first_chart(qtbot, window)
    dialog = open_access(qtbot, chart)
    dialog.person.setFocus()
    QTest.keyClicks(dialog.person, "Nina")
    QTest.keyClick(dialog.person, Qt.Key.Key_Escape)
    answer_discard_by_keyboard(qtbot, dialog, discard=False)
    assert dialog.isVisible() and dialog.chosen_username() == "nina"
    close = next(b for b in dialog.findChildren(QPushButton) if b.text() == "Close")
    click(close)
    answer_discard_by_keyboard(qtbot, dialog)
    qtbot.waitUntil(lambda: chart.access_dialog is None, timeout=5_000)
    granted = staffed.database.query("SELECT 1 FROM audit_log WHERE action = 'access.grant'")
    assert list(granted) == []  # nobody was added

    # Opened again, nothing typed: Escape closes it at once (the list the dialog read and
    # filled in is not something the person typed).
    dialog = open_access(qtbot, chart)
    dialog.person.setFocus()
    QTest.keyClick(dialog.person, Qt.Key.Key_Escape)
    assert asks_nothing(dialog)
    qtbot.waitUntil(lambda: chart.access_dialog is None, timeout=5_000)


def test_chart_access_opens_on_the_checkbox_and_an_empty_care_team_is_no_tab_stop(
    qtbot: QtBot, staffed: Workstation, make_window: WindowFactory
) -> None:
    """The tester's E7: the dialog opened with the keyboard on the empty care-team list,
    which showed no focus and did nothing with Space; two Shift+Tab reached the checkbox.
    It opens on Restricted chart, Space ticks it, and Tab passes the empty list by; with
    someone on the team, Tab reaches the list."""
    window = make_window(staffed)
    sign_in(qtbot, window, "doc")
    chart = open_first_chart(qtbot, window)
    dialog = open_access(qtbot, chart)
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow, timeout=2_000)
    qtbot.waitUntil(dialog.restricted.hasFocus, timeout=2_000)
    QTest.keyClick(dialog.restricted, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is not dialog.team  # empty: nothing to choose there
    dialog.restricted.setFocus()
    QTest.keyClick(dialog.restricted, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: team(dialog) == ["Dana Chen (doc) — clinician"], timeout=10_000)
    dialog.restricted.setFocus()
    QTest.keyClick(dialog.restricted, Qt.Key.Key_Tab)
    assert dialog.focusWidget() is dialog.team

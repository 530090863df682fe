"""Break-glass and the chart's history, driven as a person does: the button, the reason,
the banner across the chart until expiry, and "Who has seen this chart"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.chart.page import ChartPage
from app.main_window import MainWindow
from core.authz.tuples import RelationTuple
from core.records import break_glass_audit
from core.records.relations import Access
from core.records.workstation import Workstation
from tests.ui.chart.test_page import chart_openings, open_first_chart
from tests.ui.conftest import ADMIN, ADMIN_NAME, answer_discard


def restrict_every_chart(clinic: Workstation) -> None:
    """Every sample patient's chart restricted (a staff member's own, say): only its care
    team, which nobody is on, reads it without breaking the glass."""
    access = Access(clinic.records)
    for patient in clinic.records.list_patients(100):
        access.grant(RelationTuple(f"patient:{patient.id}", "restricted", "user:*"))


def offered(qtbot: QtBot, chart: ChartPage) -> bool:
    """Whether the chart ends up offering break-glass (its read runs on the worker)."""
    qtbot.wait(300)
    return chart.break_glass.button.isVisible()


class Clock:
    """A clock the test moves (core's break-glass clock and the banner's)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_break_the_glass_asks_a_reason_shows_the_banner_and_hides_it_at_expiry(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    clock = Clock()
    break_glass_audit.install(clinic.database, clock)
    restrict_every_chart(clinic)
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    section = chart.break_glass
    section.banner.clock = clock
    qtbot.waitUntil(section.button.isVisible, timeout=5_000)
    assert not section.banner.isVisible()

    QTest.mouseClick(section.button, Qt.MouseButton.LeftButton)
    dialog = section.dialog
    assert dialog is not None and dialog.isVisible()
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)  # no reason yet
    qtbot.waitUntil(lambda: dialog.errors["reason"].isVisible(), timeout=5_000)
    assert dialog.errors["reason"].text() == "Reason is required."
    QTest.keyClicks(dialog.reason, "Collapsed in the waiting room; own GP unreachable")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)

    banner = section.banner
    qtbot.waitUntil(banner.isVisible, timeout=5_000)
    assert section.dialog is None
    qtbot.waitUntil(lambda: not section.button.isVisible(), timeout=5_000)  # not needed now
    until = (clock.now + timedelta(minutes=60)).astimezone().strftime("%H:%M")
    assert banner.text.text() == (
        f"Emergency access by {ADMIN_NAME} until {until} — every view and change is recorded"
    )
    # The chart was opened again under the grant: that view is audited as break-glass.
    qtbot.waitUntil(lambda: chart_openings(clinic, patient.id) == 2, timeout=5_000)
    grant_id = clinic.database.query("SELECT id FROM break_glass")[0][0]
    opened = clinic.database.query(
        "SELECT details FROM audit_log WHERE action = 'chart.open' ORDER BY seq DESC LIMIT 1"
    )
    assert json.loads(opened[0][0]) == {"break_glass": grant_id}
    stored = clinic.database.query("SELECT username, reason FROM break_glass")
    assert [tuple(r) for r in stored] == [
        (ADMIN, "Collapsed in the waiting room; own GP unreachable")
    ]

    # Going back and opening the chart again keeps the banner while the grant counts.
    chart.load(patient.id)
    qtbot.waitUntil(lambda: chart.patient is not None and banner.isVisible(), timeout=5_000)

    clock.now += timedelta(minutes=60)  # the grant ends: the banner goes by itself
    qtbot.waitUntil(lambda: not banner.isVisible(), timeout=5_000)
    chart.load(patient.id)
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    qtbot.wait(300)
    assert not banner.isVisible()
    last = clinic.database.query(
        "SELECT details FROM audit_log WHERE action = 'chart.open' ORDER BY seq DESC LIMIT 1"
    )
    assert json.loads(last[0][0]) == {}  # after expiry: an ordinary view


def test_cancelling_the_dialog_opens_nothing(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    restrict_every_chart(clinic)
    chart = open_first_chart(qtbot, signed_in)
    qtbot.waitUntil(chart.break_glass.button.isVisible, timeout=5_000)
    QTest.mouseClick(chart.break_glass.button, Qt.MouseButton.LeftButton)
    dialog = chart.break_glass.dialog
    assert dialog is not None
    QTest.keyClicks(dialog.reason, "changed my mind")
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    answer_discard(qtbot, dialog)  # what was typed is thrown away only when the person says
    qtbot.waitUntil(lambda: chart.break_glass.dialog is None, timeout=5_000)
    assert clinic.database.query("SELECT count(*) FROM break_glass")[0][0] == 0
    assert not chart.break_glass.banner.isVisible()


def test_who_has_seen_this_chart_lists_views_and_changes(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    clinic.records.add_allergy(patient.id, "Latex", None, "mild")
    QTest.mouseClick(chart.history_button, Qt.MouseButton.LeftButton)
    dialog = chart.history_dialog
    assert dialog is not None
    table = dialog.table
    qtbot.waitUntil(lambda: table.rowCount() == 3, timeout=5_000)

    def row(r: int) -> list[str]:
        return [table.item(r, c).text() for c in range(table.columnCount())]  # type: ignore[union-attr]

    whats = [row(r)[3] for r in range(3)]
    assert whats == ["Recorded an allergy", "Opened the chart", "Registered the patient"]
    assert {row(r)[1] for r in range(3)} == {f"{ADMIN_NAME} ({ADMIN})"}
    assert {row(r)[2] for r in range(3)} == {"This workstation"}
    replica = clinic.database.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0]
    assert table.item(0, 2).toolTip() == f"this workstation ({replica})"  # type: ignore[union-attr]
    assert dialog.status.text() == "3 entries on this workstation: 1 chart opening by 1 person."
    QTest.keyClick(dialog, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: chart.history_dialog is None, timeout=5_000)


def test_break_glass_is_offered_only_on_a_chart_the_person_cannot_otherwise_read(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """An ordinary chart needs no emergency access; a restricted one does, until the person
    joins its care team."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    assert not offered(qtbot, chart)
    restrict_every_chart(clinic)
    chart.load(patient.id)
    qtbot.waitUntil(chart.break_glass.button.isVisible, timeout=5_000)
    Access(clinic.records).grant(
        RelationTuple(f"patient:{patient.id}", "care_team", f"user:{ADMIN}")
    )
    chart.load(patient.id)
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    assert not offered(qtbot, chart)


def test_the_reason_message_goes_as_soon_as_a_reason_is_typed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Break the glass with the reason empty, from the keyboard: "Reason is required." is
    said under the box, and goes at the first letter typed into it (it stayed under the
    filled box until the next save)."""
    restrict_every_chart(clinic)
    chart = open_first_chart(qtbot, signed_in)
    qtbot.waitUntil(chart.break_glass.button.isVisible, timeout=5_000)
    QTest.mouseClick(chart.break_glass.button, Qt.MouseButton.LeftButton)
    dialog = chart.break_glass.dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.reason.hasFocus, timeout=5_000)
    QTest.keyClick(dialog.reason, Qt.Key.Key_Tab)
    qtbot.waitUntil(dialog.save_button.hasFocus, timeout=5_000)
    QTest.keyClick(dialog.save_button, Qt.Key.Key_Space)
    message = dialog.errors["reason"]
    qtbot.waitUntil(message.isVisible, timeout=5_000)
    assert message.text() == "Reason is required."
    QTest.mouseClick(dialog.reason, Qt.MouseButton.LeftButton)
    QTest.keyClicks(dialog.reason, "Unconscious")
    assert not message.isVisible()
    assert clinic.database.query("SELECT count(*) FROM break_glass")[0][0] == 0

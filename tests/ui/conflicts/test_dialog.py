"""The conflicts inbox for lists: the same allergy changed on two workstations at once.

Real core: two workstation databases of one clinic, synced through core's responder, then
the inbox of the first one is driven with mouse clicks (offscreen Qt).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QLabel
from pytestqt.qtbot import QtBot

from app.conflicts.dialog import ConflictsDialog, ListConflictCard
from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
from core.records import authorize
from core.records.chart_access import set_restricted
from core.records.clinic import ClinicRecords
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.records.workstation_names import keep_workstation_names
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.ui.conftest import ADMIN, ADMIN_NAME, PASSWORD, WindowFactory, click_at, sign_in


def other_desk(a: Workstation, tmp_path: Path) -> tuple[Workstation, LocalTransport]:
    """A second workstation of ``a``'s clinic (``a`` signed in), holding what ``a`` holds,
    signed in; and the transport it syncs with ``a`` through."""
    b = Workstation(tmp_path / "other-desk", FAST_PARAMS)
    b.prepare_join(ADMIN, PASSWORD)
    join_test_clinic(a.database)
    join_test_clinic(b.database)
    peer = LocalTransport(Responder(a.database))
    sync(b.database, peer, ADMIN)
    b.lock()
    b.sign_in(ADMIN, PASSWORD)
    return b, peer


def race_on_penicillin(a: Workstation, tmp_path: Path) -> tuple[Workstation, str]:
    """Maria's "Penicillin (rash)" is removed on the other desk while this desk records
    "Penicillin (anaphylaxis, severe)"; both desks then sync. Returns the other desk."""
    a.sign_in(ADMIN, PASSWORD)
    [maria] = [p for p in a.records.search_patients("Garcia Maria") if p.given == "Maria"]
    old = a.records.add_allergy(maria.id, "Penicillin", reaction="rash")
    b, peer = other_desk(a, tmp_path)
    b.records.remove_allergy(old.id)
    a.records.add_allergy(maria.id, "Penicillin", reaction="anaphylaxis", severity="severe")
    sync(b.database, peer, ADMIN)
    assert [c.kind for c in a.records.conflicts()] == ["set"]
    a.lock()
    b.lock()
    return b, maria.id


def open_inbox(qtbot: QtBot, window: MainWindow, maria: str) -> ListConflictCard:
    """Sign in, check the badge and the chart banner, open the inbox from the chart."""
    sign_in(qtbot, window)
    workspace = window.workspace
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts (1)")
    workspace.open_chart(maria)
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None)
    assert chart.conflict_banner.isVisible()
    assert "unresolved conflict (Allergies)" in chart.conflict_text.text()
    QTest.mouseClick(chart.conflict_button, Qt.MouseButton.LeftButton)
    dialog = workspace.conflicts_dialog
    assert isinstance(dialog, ConflictsDialog)
    qtbot.waitUntil(lambda: len(dialog.cards) == 1)
    [card] = dialog.cards
    assert isinstance(card, ListConflictCard)
    return card


def inbox_from_the_toolbar(qtbot: QtBot, window: MainWindow, count: int) -> ConflictsDialog:
    """Sign in, wait for the toolbar's "Conflicts (count)" and open the inbox with it;
    the inbox once its ``count`` cards are shown."""
    sign_in(qtbot, window)
    workspace = window.workspace
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == f"Conflicts ({count})")
    workspace.conflicts_action.trigger()
    dialog = workspace.conflicts_dialog
    assert isinstance(dialog, ConflictsDialog)
    qtbot.waitUntil(lambda: len(dialog.cards) == count, timeout=5_000)
    return dialog


def click(button: QAbstractButton) -> None:
    """Click a radio button or check box on its indicator (their text area ends early)."""
    QTest.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(6, button.height() // 2))


def resolve(qtbot: QtBot, window: MainWindow, card: ListConflictCard) -> ConflictsDialog:
    """Click Resolve and wait until the inbox has reloaded without the card."""
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    dialog = window.workspace.conflicts_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)
    return dialog


def ticked(card: ListConflictCard) -> set[str]:
    return {box.text() for box in card.items.values() if box.isChecked()}


def test_each_side_is_named_by_the_workstation_it_came_from(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    """Once the clinic server has named the clinic's workstations (the names they enrolled
    with, kept at sync: core/records/workstation_names.py), a side says "On Exam room 2"
    with the start of the device id IT knows it by, not a replica id no one knows."""
    other, maria = race_on_penicillin(clinic, tmp_path)
    other.sign_in(ADMIN, PASSWORD)  # left locked by the race
    other_id = replica_id(other.database)
    other.lock()
    clinic.sign_in(ADMIN, PASSWORD)
    keep_workstation_names(clinic.database, {other_id: ("Exam room 2", "af1459dc6eaa20c0")}, "sync")
    clinic.lock()
    card = open_inbox(qtbot, make_window(clinic), maria)
    headings = [w.text() for w in card.findChildren(QLabel)]
    assert "On Exam room 2 (device af1459dc):" in headings
    assert "On this workstation:" in headings
    choices = [b.text() for b in card.choices.values()]
    assert "Applying the changes made on Exam room 2 (device af1459dc)" in choices


def test_list_conflict_shows_each_side_and_keeping_the_merged_list_clears_every_inbox(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    other, maria = race_on_penicillin(clinic, tmp_path)
    window = make_window(clinic)
    card = open_inbox(qtbot, window, maria)
    shots = Path(os.environ.get("CARELINE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    card.window().grab().save(str(shots / "list-conflict-dialog.png"))

    # Each side, labelled: what it added and what it removed, and where.
    # By what each side did (same-millisecond edits on two desks order by random replica id).
    [theirs] = [side for side in card.conflict.sides if side.removed]
    [ours] = [side for side in card.conflict.sides if side.added]
    assert [line.text() for line in card.side_edits[theirs.id]] == ["Removed: Penicillin (rash)"]
    assert [line.text() for line in card.side_edits[ours.id]] == [
        "Added: Penicillin (anaphylaxis, severe)"
    ]
    assert card.side_edits[theirs.id][0].objectName() == "removedItem"
    assert card.side_edits[ours.id][0].objectName() == "addedItem"
    headings = [w.text() for w in card.findChildren(type(card.side_edits[ours.id][0]))]
    assert "On this workstation:" in headings
    assert f"On workstation {theirs.id[:8]}:" in headings
    # Who made each change, by the full name staff know each other by.
    assert sum(text.startswith(f"by {ADMIN_NAME} on ") for text in headings) == 2
    assert not any(text.startswith(f"by {ADMIN} on ") for text in headings)

    # The merged list is preselected, and each choice ticks the items it keeps.
    assert card.choices["merged"].isChecked()
    assert ticked(card) == {"Penicillin (anaphylaxis, severe)"}
    click(card.choices[ours.id])
    assert ticked(card) == {"Penicillin (anaphylaxis, severe)", "Penicillin (rash)"}
    click(card.choices[theirs.id])
    assert ticked(card) == set()

    # Keep the merged list: one op, the inbox empties, the chart keeps what it showed.
    click(card.choices["merged"])
    dialog = resolve(qtbot, window, card)
    assert dialog.status.text().startswith("No conflicts")
    qtbot.waitUntil(lambda: window.workspace.conflicts_action.text() == "Conflicts")
    qtbot.waitUntil(lambda: not window.workspace.chart.conflict_banner.isVisible())
    records = clinic.records
    assert records.conflicts() == []
    assert [(a.substance, a.reaction) for a in records.allergies(maria)] == [
        ("Penicillin", "anaphylaxis")
    ]
    audit = clinic.database.query(
        "SELECT action FROM audit_log WHERE action = 'conflict.resolve' AND entity_id = ?",
        (maria,),
    )
    assert audit == [("conflict.resolve",)]

    # The other desk's inbox clears once it syncs.
    other.sign_in(ADMIN, PASSWORD)
    try:
        assert other.records.conflicts() != []
        sync(other.database, LocalTransport(Responder(clinic.database)), ADMIN)
        assert other.records.conflicts() == []
    finally:
        other.lock()


def test_list_conflict_settled_by_ticking_the_items_to_keep(
    qtbot: QtBot, clinic: Workstation, tmp_path: Path, make_window: WindowFactory
) -> None:
    _, maria = race_on_penicillin(clinic, tmp_path)
    window = make_window(clinic)
    card = open_inbox(qtbot, window, maria)
    rash = next(box for box in card.items.values() if box.text() == "Penicillin (rash)")
    click(rash)  # the person's own choice
    assert card.choices["items"].isChecked()
    assert ticked(card) == {"Penicillin (anaphylaxis, severe)", "Penicillin (rash)"}
    resolve(qtbot, window, card)
    reactions = sorted(str(a.reaction) for a in clinic.records.allergies(maria))
    assert reactions == ["anaphylaxis", "rash"]  # the removed entry is back


def test_closing_the_inbox_while_a_resolution_is_written_still_updates_every_screen(
    qtbot: QtBot,
    clinic: Workstation,
    tmp_path: Path,
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other, maria = race_on_penicillin(clinic, tmp_path)
    window = make_window(clinic)
    card = open_inbox(qtbot, window, maria)
    workspace = window.workspace
    assert workspace.conflicts_action.text() == "Conflicts (1)"
    written = threading.Event()
    resolve = ClinicRecords.resolve_conflict

    def resolve_then_linger(self: ClinicRecords, *args: Any, **kwargs: Any) -> None:
        resolve(self, *args, **kwargs)
        written.set()
        time.sleep(0.5)  # the person closes the inbox meanwhile

    monkeypatch.setattr(ClinicRecords, "resolve_conflict", resolve_then_linger)
    click(card.choices["merged"])
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(written.is_set, timeout=5_000)
    dialog = workspace.conflicts_dialog
    assert dialog is not None
    dialog.reject()
    # The badge and the chart's banner follow what was written, not the closed dialog.
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts", timeout=5_000)
    qtbot.waitUntil(lambda: not workspace.chart.conflict_banner.isVisible(), timeout=5_000)
    assert clinic.records.conflicts() == []
    other.lock()


@pytest.mark.parametrize("who", ["desk", "nia"])
def test_a_restricted_charts_conflict_is_only_counted_for_those_off_its_care_team(
    qtbot: QtBot,
    clinic: Workstation,
    tmp_path: Path,
    make_window: WindowFactory,
    monkeypatch: pytest.MonkeyPatch,
    who: str,
) -> None:
    """Maria's chart is restricted (care team: the admin, a clinician too): the front desk
    and a nurse off the team see no badge, no card, no name, only that one conflict waits
    for someone who may open it (security review S6)."""
    other, maria = race_on_penicillin(clinic, tmp_path)
    other.lock()
    clinic.sign_in(ADMIN, PASSWORD)
    for name, role in (("desk", "front_desk"), ("nia", "nurse")):
        clinic.records.add_user(name, name.title(), role, PASSWORD)
        clinic.sign_in(name, PASSWORD)  # a key slot on this workstation
    clinic.sign_in(ADMIN, PASSWORD)
    set_restricted(clinic.records, maria, True)
    clinic.lock()
    monkeypatch.setattr(authorize, "ENFORCING", True)  # as the app runs
    window = make_window(clinic)
    sign_in(qtbot, window, who)
    workspace = window.workspace
    button = workspace.toolbar.widgetForAction(workspace.conflicts_action)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    dialog = workspace.conflicts_dialog
    assert isinstance(dialog, ConflictsDialog)
    qtbot.waitUntil(lambda: "may not open" in dialog.status.text(), timeout=5_000)
    assert dialog.status.text() == (
        "No conflicts to resolve on this workstation. 1 more conflict is on records you may "
        "not open; someone who may read them resolves it."
    )
    assert dialog.cards == []
    shown = " ".join(w.text() for w in dialog.findChildren(QLabel))
    assert "GARCIA" not in shown and "Garcia" not in shown and "Penicillin" not in shown
    assert workspace.conflicts_action.text() == "Conflicts"  # no badge count
    assert maria not in workspace.conflicted
    # The care team's view of the same inbox, for contrast.
    assert [c.kind for c in ClinicRecords(clinic.database, ADMIN).conflicts()] == ["set"]


def race_on_phone(a: Workstation, tmp_path: Path) -> Workstation:
    """Maria's phone is changed on this desk and on the other before either sees the
    other's change; then they sync. Returns the other desk (locked)."""
    a.sign_in(ADMIN, PASSWORD)
    [maria] = [p for p in a.records.search_patients("Garcia Maria") if p.given == "Maria"]
    b, peer = other_desk(a, tmp_path)
    b.records.update_patient(maria.id, {"phone": "555-0002"})
    a.records.update_patient(maria.id, {"phone": "555-0001"})
    sync(b.database, peer, ADMIN)
    assert [c.field for c in a.records.conflicts()] == ["phone"]
    a.lock()
    b.lock()
    return b


def test_resolve_with_nothing_chosen_says_so_without_moving_resolve(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory, tmp_path: Path
) -> None:
    """The tester's report: Resolve with no value chosen showed "Choose one of the
    values, or type another." above it and pushed it 23 pixels down, so the next click
    where it was missed it. The message is said beside the button, which stays put."""
    race_on_phone(clinic, tmp_path)
    window = make_window(clinic)
    dialog = inbox_from_the_toolbar(qtbot, window, 1)
    [card] = dialog.cards
    button = card.resolve_button
    qtbot.waitExposed(dialog)
    qtbot.waitUntil(button.isVisible)
    QApplication.processEvents()  # the cards laid out
    before = button.mapTo(dialog, QPoint())
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(card.error.isVisible)
    QApplication.processEvents()
    assert card.error.text() == "Choose one of the values, or type another."
    assert button.mapTo(dialog, QPoint()) == before
    # The next click, where Resolve was and is, settles the conflict once a value is chosen.
    click(next(iter(card.choices.values())))
    assert click_at(dialog, before + QPoint(5, 5)) is button
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)

"""A draft discarded on one desk while it was edited on another: the inbox asks in words a
clinician reads (discard it, or keep it with the edit), and either answer settles it on
both desks. Real core: two workstation databases synced through core's responder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from app.conflicts.dialog import DISCARD_HINT, ConflictCard
from core.records.notes import Notes
from core.records.visits import Visits
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.ui.conflicts.test_dialog import click, inbox_from_the_toolbar, other_desk
from tests.ui.conftest import ADMIN, ADMIN_NAME, PASSWORD, WindowFactory

DRAFT = "Chest pain since noon."
EDITED = "Chest pain since noon. Troponin sent."


def discard_against_an_edit(a: Workstation, tmp_path: Path) -> tuple[Workstation, str, str]:
    """A draft in a visit of Maria's, discarded on this desk while the other desk edits it;
    both then sync. Returns the other desk, the note and the visit."""
    a.sign_in(ADMIN, PASSWORD)
    [maria] = [p for p in a.records.search_patients("Garcia Maria") if p.given == "Maria"]
    visit = Visits(a.records).start(maria.id, "Cough")
    note = Visits(a.records).add_note(visit.id, DRAFT)
    b, peer = other_desk(a, tmp_path)
    Notes(b.records).edit(note.id, EDITED)
    Notes(a.records).discard(note.id)
    sync(b.database, peer, ADMIN)
    assert [c.field for c in a.records.conflicts()] == ["discarded_at"]
    a.lock()
    b.lock()
    return b, note.id, visit.id


@pytest.mark.parametrize(("choice", "stays"), [("discard", False), ("keep", True)])
def test_a_discard_against_an_edit_is_settled_from_the_inbox(
    qtbot: QtBot,
    clinic: Workstation,
    tmp_path: Path,
    make_window: WindowFactory,
    choice: str,
    stays: bool,
) -> None:
    other, note_id, visit_id = discard_against_an_edit(clinic, tmp_path)
    window = make_window(clinic)
    dialog = inbox_from_the_toolbar(qtbot, window, 1)
    workspace = window.workspace
    [card] = dialog.cards
    assert isinstance(card, ConflictCard)
    shots = Path(os.environ.get("CARELINE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    card.window().grab().save(str(shots / f"discard-conflict-{choice}.png"))

    # Named by the chart it is on, in words: what happened and the two choices.
    texts = [label.text() for label in card.findChildren(QLabel)]
    assert "Note on GARCIA, Maria's chart — Discarded draft" in texts
    assert DISCARD_HINT in texts
    assert card.choices["discard"].text() == "Discard the draft: it leaves the chart"
    assert card.choices["keep"].text() == (
        "Keep the draft on the chart, with the edit made meanwhile"
    )
    # Who discarded (here) and who edited (on the other desk), by name.
    keep = next(c for c in card.conflict.candidates if c.id == "keep")
    assert f"by {ADMIN_NAME} on this workstation, " in "\n".join(texts)
    assert f"by {ADMIN_NAME} on workstation {keep.replica[:8]}, " in "\n".join(texts)
    assert not card.other_value.isVisibleTo(card)  # nothing to type

    click(card.choices[choice])
    QTest.mouseClick(card.resolve_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not dialog.cards, timeout=5_000)
    qtbot.waitUntil(lambda: workspace.conflicts_action.text() == "Conflicts", timeout=5_000)
    listed = [n.id for n in Visits(clinic.records).visit_notes(visit_id)]
    assert listed == ([note_id] if stays else [])
    assert Notes(clinic.records).get(note_id).body == EDITED

    # The other desk learns the answer at its next sync.
    other.sign_in(ADMIN, PASSWORD)
    try:
        sync(other.database, LocalTransport(Responder(clinic.database)), ADMIN)
        assert other.records.conflicts() == []
        theirs = [n.id for n in Visits(other.records).visit_notes(visit_id)]
        assert theirs == listed
    finally:
        other.lock()

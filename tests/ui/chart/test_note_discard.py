"""Discard draft: a note started on the wrong patient or visit leaves the chart and the visit
view, from the visit's note list or from the note editor, after a question whose default
is Cancel (a stray Return or Escape stores nothing). A signed note offers no discard."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from app.chart.note_editor import DISCARD_DETAIL, DISCARD_QUESTION, NoteEditor
from app.chart.visits import VisitsSection
from app.main_window import MainWindow
from core.records.notes import Note, Notes
from core.records.visits import Visits
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_visits import (
    focused,
    open_editor,
    shown_visit_id,
    start_walk_in,
    stored_note,
    visits_tab,
)

WRONG_CHART = "Chest pain since noon (meant for the next patient)."


def discards(ws: Workstation) -> int:
    """How many discards the audit log holds."""
    rows = ws.database.query("SELECT count(*) FROM audit_log WHERE action = 'note.discard'")
    return int(rows[0][0])


def question(qtbot: QtBot, owner: QWidget) -> QMessageBox:
    """The Discard draft question ``owner`` shows (waits for it), worded as it must be."""
    qtbot.waitUntil(lambda: _open_question(owner) is not None, timeout=5_000)
    box = _open_question(owner)
    assert box is not None
    assert (box.text(), box.informativeText()) == (DISCARD_QUESTION, DISCARD_DETAIL)
    go = box.findChild(QPushButton, "confirmDiscardNoteButton")
    assert go is not None and box.defaultButton() is not go  # Cancel is the default
    return box


def _open_question(owner: QWidget) -> QMessageBox | None:
    box = owner.findChild(QMessageBox, "confirmDiscardNote")
    return box if box is not None and box.isVisible() else None


def go_ahead(box: QMessageBox) -> None:
    """Click the question's Discard draft button."""
    go = box.findChild(QPushButton, "confirmDiscardNoteButton")
    assert go is not None
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)


def new_note_in_a_new_visit(
    qtbot: QtBot, window: MainWindow
) -> tuple[VisitsSection, str, NoteEditor]:
    """Open the first chart's Visits tab, start a walk-in and click New note."""
    section = visits_tab(qtbot, open_first_chart(qtbot, window))
    start_walk_in(qtbot, section, "Cough")
    visit_id = shown_visit_id(qtbot, section)
    return section, visit_id, open_editor(qtbot, section)


def a_draft_in_a_new_visit(qtbot: QtBot, window: MainWindow) -> tuple[VisitsSection, str, Note]:
    """Start a walk-in, type a note in it and close the editor: the note is listed."""
    section, visit_id, editor = new_note_in_a_new_visit(qtbot, window)
    QTest.keyClicks(editor.body, WRONG_CHART)
    note = stored_note(qtbot, editor)
    editor.reject()
    qtbot.waitUntil(lambda: section.editor is None and section.notes.count() == 1, timeout=5_000)
    return section, visit_id, note


def test_discard_draft_from_the_visit_asks_and_the_note_leaves_the_visit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    section, visit_id, note = a_draft_in_a_new_visit(qtbot, signed_in)
    section.notes.setCurrentRow(0)
    qtbot.waitUntil(section.discard_button.isEnabled, timeout=5_000)
    assert WRONG_CHART in section.view.toPlainText()
    # In Add addendum's place (a draft takes none).
    assert section.discard_button.isVisible() and not section.addendum_button.isVisible()
    shots = Path(os.environ.get("CARELINE_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    signed_in.grab().save(str(shots / "visit-discard-draft.png"))

    # A stray Return on the question: Cancel, nothing stored.
    QTest.mouseClick(section.discard_button, Qt.MouseButton.LeftButton)
    box = question(qtbot, section.page)
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.discard_box is None, timeout=5_000)
    assert discards(clinic) == 0
    assert [n.id for n in Visits(clinic.records).visit_notes(visit_id)] == [note.id]

    # Asked again, the person discards: the note leaves the list and the visit's text.
    QTest.mouseClick(section.discard_button, Qt.MouseButton.LeftButton)
    go_ahead(question(qtbot, section.page))
    qtbot.waitUntil(lambda: section.notes.count() == 0, timeout=5_000)
    qtbot.waitUntil(lambda: WRONG_CHART not in section.view.toPlainText(), timeout=5_000)
    assert section.message.text() == ("The draft note was discarded: it is no longer on the chart.")
    assert Visits(clinic.records).visit_notes(visit_id) == []
    assert Notes(clinic.records).get(note.id).discarded_at is not None
    assert discards(clinic) == 1
    assert not section.discard_button.isVisible()  # nothing selected to discard


def test_discard_draft_in_the_editor_asks_and_closes_it(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    section, visit_id, editor = new_note_in_a_new_visit(qtbot, signed_in)
    QTest.keyClicks(editor.body, WRONG_CHART)
    note = stored_note(qtbot, editor)

    # Escape on the question: nothing discarded, writing goes on in the text.
    QTest.mouseClick(editor.discard_button, Qt.MouseButton.LeftButton)
    box = question(qtbot, editor)
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    QTest.keyClick(focused(), Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: editor.discard_box is None, timeout=5_000)
    assert section.editor is editor and discards(clinic) == 0
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow)
    qtbot.waitUntil(editor.body.hasFocus, timeout=5_000)

    # Typed on, then discarded before the pause's save: the typing is not stored either.
    QTest.keyClicks(editor.body, " More.")
    QTest.mouseClick(editor.discard_button, Qt.MouseButton.LeftButton)
    go_ahead(question(qtbot, editor))
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    assert editor.discarded
    discarded = Notes(clinic.records).get(note.id)
    assert discarded.discarded_at is not None and "More." not in discarded.body
    assert Visits(clinic.records).visit_notes(visit_id) == []
    qtbot.waitUntil(lambda: section.contents is not None and not section.contents.notes)
    assert section.notes.count() == 0


def test_a_new_note_discarded_before_it_was_stored_stores_nothing(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    section, visit_id, editor = new_note_in_a_new_visit(qtbot, signed_in)
    QTest.mouseClick(editor.discard_button, Qt.MouseButton.LeftButton)
    go_ahead(question(qtbot, editor))
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    assert Visits(clinic.records).visit_notes(visit_id) == []
    assert discards(clinic) == 0


def test_a_signed_note_offers_no_discard(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    section, _visit_id, note = a_draft_in_a_new_visit(qtbot, signed_in)
    section.notes.setCurrentRow(0)
    qtbot.waitUntil(section.discard_button.isEnabled, timeout=5_000)
    Notes(clinic.records).sign(note.id)  # as on another screen: the broadcast re-reads
    section.reload()
    qtbot.waitUntil(lambda: section.addendum_button.isEnabled(), timeout=5_000)
    assert section.addendum_button.isVisible() and not section.discard_button.isVisible()

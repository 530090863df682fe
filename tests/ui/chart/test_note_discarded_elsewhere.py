"""A draft discarded elsewhere while it is open in the editor here: the text typed stays.

The editor hears of the discard as soon as it is applied here (a sync bringing another
workstation's discard, or another window of this app), or when an autosave is refused. It
then stores nothing more, says who discarded the draft, where and when, and keeps the text
for typing on. "Keep as a new draft" stores exactly the text shown as a new note of the same
visit (an ordinary, audited new note); Close asks first (Cancel the default), since the
text would be lost; a sign-out keeps it as a draft for its author. Real core, real sync.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.chart.note_editor import CLOSE_DETAIL, CLOSE_QUESTION, WITHDRAWN, NoteEditor
from app.main_window import MainWindow
from core.records.clinic import ClinicRecords
from core.records.notes import Note, Notes
from core.records.signed_notes import DISCARDED
from core.records.visits import Visits
from core.records.workstation import Workstation
from core.store.oplog import identity
from tests.ui.chart.test_note_discard import new_note_in_a_new_visit
from tests.ui.chart.test_visits import (
    focused,
    open_editor,
    sign_note,
    start_walk_in,
    stored_note,
    visits_tab,
)
from tests.ui.conftest import sign_in
from tests.ui.test_operations import WAIT_MS, open_chart_of, other_desk, sync_now, synced_window

__all__ = ["other_desk", "synced_window"]  # fixtures used here

BEFORE = "Dry cough for a week."
AFTER = " Worse at night, no fever."


def creates(ws: Workstation) -> list[str]:
    """The ids of the notes created on this workstation, as the audit log names them."""
    rows = ws.database.query("SELECT entity_id FROM audit_log WHERE action = 'note.create'")
    return [str(r[0]) for r in rows]


def typed_and_saved(qtbot: QtBot, editor: NoteEditor, text: str) -> Note:
    """Type ``text`` and wait for the autosave that stores it."""
    QTest.keyClicks(editor.body, text)
    note = stored_note(qtbot, editor)
    qtbot.waitUntil(lambda: editor.status.text() == "Saved", timeout=WAIT_MS)
    return note


def banner_shown(qtbot: QtBot, editor: NoteEditor) -> str:
    """The banner's sentence, once it shows."""
    qtbot.waitUntil(editor.banner.isVisible, timeout=WAIT_MS)
    return editor.banner_text.text()


def close_question(qtbot: QtBot, editor: NoteEditor) -> QMessageBox:
    """Close's question (waits for it), worded as it must be, Cancel the default."""

    def shown() -> QMessageBox | None:
        box = editor.findChild(QMessageBox, "confirmCloseDiscarded")
        return box if box is not None and box.isVisible() else None

    qtbot.waitUntil(lambda: shown() is not None, timeout=WAIT_MS)
    box = shown()
    assert box is not None
    assert (box.text(), box.informativeText()) == (CLOSE_QUESTION, CLOSE_DETAIL)
    go = box.findChild(QPushButton, "confirmCloseDiscardedButton")
    assert go is not None and box.defaultButton() is not go
    return box


def click_close(editor: NoteEditor) -> None:
    close = editor.buttons.button(editor.buttons.StandardButton.Close)
    QTest.mouseClick(close, Qt.MouseButton.LeftButton)


def test_a_discard_synced_in_keeps_the_text_and_keep_as_a_new_draft_stores_it(
    qtbot: QtBot, synced_window: MainWindow, other_desk: Workstation, clinic: Workstation
) -> None:
    chart = open_chart_of(qtbot, synced_window, "GARCIA, Maria")
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough")
    editor = open_editor(qtbot, section)
    note = typed_and_saved(qtbot, editor, BEFORE)
    visit_id = note.encounter_id
    assert visit_id is not None
    sync_now(qtbot, synced_window)  # the other desk holds the draft now

    # Discarded at the other desk; the next sync brings it in while the editor is open.
    Notes(other_desk.records).discard(note.id)
    sync_now(qtbot, synced_window)
    said = banner_shown(qtbot, editor)
    other = identity(other_desk.database).replica_id[:8]
    discarded_at = Notes(clinic.records).get(note.id).discarded_at
    assert discarded_at is not None
    assert said.startswith("This draft was discarded by ")
    assert f" on workstation {other} at " in said and said.endswith("Your text is still here.")
    assert not editor.sign_button.isEnabled() and not editor.discard_button.isEnabled()

    # Typing goes on; nothing is saved into the discarded note, nor anywhere else.
    QTest.keyClicks(editor.body, AFTER)
    qtbot.wait(3 * editor.timer.interval())
    assert not editor.error.isVisible()
    assert Notes(clinic.records).get(note.id).body.startswith("Subjective:\n" + BEFORE + "\n")
    assert AFTER not in Notes(clinic.records).get(note.id).body
    assert creates(clinic) == [note.id]

    # Keep as a new draft: a new note of the same visit, holding exactly the text shown.
    text = editor.body.toPlainText()
    assert BEFORE + AFTER in text
    QTest.mouseClick(editor.keep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.note is not None and editor.note.id != note.id, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: editor.status.text() == "Saved", timeout=WAIT_MS)
    assert not editor.banner.isVisible() and editor.sign_button.isEnabled()
    kept = editor.note
    assert kept is not None
    [listed] = Visits(clinic.records).visit_notes(visit_id)
    assert (listed.id, listed.body, listed.discarded_at) == (kept.id, text, None)
    assert creates(clinic) == [note.id, kept.id]  # audited as an ordinary new note
    assert Notes(clinic.records).get(note.id).discarded_at == discarded_at  # still discarded

    # The editor goes on with the new draft.
    QTest.keyClicks(editor.body, " Sleeps propped up.")
    qtbot.waitUntil(
        lambda: "Sleeps propped up." in Notes(clinic.records).get(kept.id).body, timeout=WAIT_MS
    )
    assert AFTER not in Notes(clinic.records).get(note.id).body


def test_a_refused_autosave_shows_the_discard_and_close_asks_first(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Discarded by a colleague without this screen hearing of it: the autosave is refused,
    and the editor says why instead of an error, keeping the text. Close asks first."""
    section, visit_id, editor = new_note_in_a_new_visit(qtbot, signed_in)
    note = typed_and_saved(qtbot, editor, BEFORE)
    Notes(ClinicRecords(clinic.database, "nurse.ola")).discard(note.id)
    QTest.keyClicks(editor.body, AFTER)  # its autosave is refused
    said = banner_shown(qtbot, editor)
    assert " on this workstation at " in said
    assert not editor.error.isVisible()
    text = editor.body.toPlainText()

    # Close asks; a stray Return (Cancel) keeps the editor and its text.
    click_close(editor)
    box = close_question(qtbot, editor)
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.close_box is None, timeout=WAIT_MS)
    assert section.editor is editor and editor.isVisible()
    assert editor.body.toPlainText() == text
    # Escape asks too; the question's own button closes, storing nothing.
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow)
    QTest.keyClick(editor.body, Qt.Key.Key_Escape)
    box = close_question(qtbot, editor)
    go = box.findChild(QPushButton, "confirmCloseDiscardedButton")
    assert go is not None
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.editor is None, timeout=WAIT_MS)
    QApplication.processEvents()
    assert Visits(clinic.records).visit_notes(visit_id) == []
    assert creates(clinic) == [note.id]
    assert AFTER not in Notes(clinic.records).get(note.id).body


def test_a_discard_in_another_window_shows_at_once_and_a_sign_out_keeps_the_text(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The same process's other window discards (its write broadcast here): the banner shows
    without waiting for a save. Signed out then, the text is kept for its author only in
    memory, never stored, and comes back at the next sign-in, where Keep stores it."""
    section, visit_id, editor = new_note_in_a_new_visit(qtbot, signed_in)
    note = typed_and_saved(qtbot, editor, BEFORE)
    Notes(ClinicRecords(clinic.database, "nurse.ola")).discard(note.id)
    signed_in.operations.catch_up()  # as another window's write is broadcast
    banner_shown(qtbot, editor)
    editor.timer.setInterval(60_000)  # no save would come anyway: prove none is needed
    QTest.keyClicks(editor.body, AFTER)
    text = editor.body.toPlainText()
    records = clinic.records  # the clinic stays open after the sign-out: read it here

    signed_in.sign_out()
    QApplication.processEvents()
    assert section.editor is None and not editor.isVisible()
    assert Visits(records).visit_notes(visit_id) == [] and creates(clinic) == [note.id]

    sign_in(qtbot, signed_in)
    qtbot.waitUntil(lambda: section.editor is not None, timeout=WAIT_MS)
    restored = section.editor
    assert restored is not None and restored.isVisible()
    assert restored.body.toPlainText() == text and restored.banner.isVisible()
    QTest.mouseClick(restored.keep_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(Visits(records).visit_notes(visit_id)), timeout=WAIT_MS)
    [kept] = Visits(records).visit_notes(visit_id)
    assert kept.body == text and kept.id != note.id
    assert Notes(records).get(note.id).discarded_at is not None


def test_signing_a_draft_discarded_unnoticed_shows_the_discard_and_keeps_the_text(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Sign note pressed before the editor heard of the discard: refused, and said as the
    discard (the banner), the text still there to keep."""
    section, _visit_id, editor = new_note_in_a_new_visit(qtbot, signed_in)
    note = typed_and_saved(qtbot, editor, BEFORE)
    Notes(ClinicRecords(clinic.database, "nurse.ola")).discard(note.id)
    text = editor.body.toPlainText()
    sign_note(qtbot, editor)
    banner_shown(qtbot, editor)
    assert section.editor is editor and editor.body.toPlainText() == text
    assert not editor.body.isReadOnly() and not editor.error.isVisible()
    assert Notes(clinic.records).get(note.id).signed_at is None


def test_a_discard_withdrawn_while_the_banner_shows_puts_the_editor_back_on_the_draft(
    qtbot: QtBot, synced_window: MainWindow, other_desk: Workstation, clinic: Workstation
) -> None:
    """Discarded here (another window) while the other desk edited the draft unseen: the
    banner shows; once the other desk's edit arrives, the discard crossed an edit, so the
    draft is back on the chart with a discard-or-keep conflict. The banner goes and the
    text typed meanwhile is saved into that draft (Keep as a new draft would have left two
    notes of it on the chart)."""
    chart = open_chart_of(qtbot, synced_window, "GARCIA, Maria")
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough")
    editor = open_editor(qtbot, section)
    note = typed_and_saved(qtbot, editor, BEFORE)
    sync_now(qtbot, synced_window)
    theirs = Notes(other_desk.records)
    theirs.edit(note.id, theirs.get(note.id).body + "\nPlan: chest X-ray.")  # unseen here
    Notes(ClinicRecords(clinic.database, "nurse.ola")).discard(note.id)
    synced_window.operations.catch_up()  # as another window's write is broadcast
    banner_shown(qtbot, editor)
    QTest.keyClicks(editor.body, AFTER)  # typed under the banner: stored nowhere yet

    sync_now(qtbot, synced_window)  # the other desk's edit: the discard is withdrawn
    qtbot.waitUntil(lambda: not editor.banner.isVisible(), timeout=WAIT_MS)
    assert editor.sign_button.isEnabled() and editor.discard_button.isEnabled()
    assert editor.status.text() in (WITHDRAWN, "Saving…", "Saved")
    qtbot.waitUntil(lambda: AFTER in Notes(clinic.records).get(note.id).body, timeout=WAIT_MS)
    body = Notes(clinic.records).get(note.id).body
    assert "Plan: chest X-ray." in body  # both desks' text
    [listed] = Visits(clinic.records).visit_notes(note.encounter_id or "")
    assert listed.id == note.id and listed.discarded_at is None  # one note, on the chart
    assert creates(clinic) == [note.id]
    assert [c.field for c in clinic.records.review_conflicts()] == [DISCARDED]

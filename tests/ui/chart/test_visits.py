"""The Visits tab: a walk-in visit started from the keyboard, a SOAP note typed and saved as
it is typed, signed, an addendum, the visit closed; the timeline newest first; typing is
not lost when the person signs out mid-sentence."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QApplication, QMessageBox, QPushButton, QWidget
from pytestqt.qtbot import QtBot

from app.chart.note_editor import NoteEditor
from app.chart.page import ChartPage
from app.chart.visits import StartVisitDialog, VisitsSection
from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.notes import Note, Notes
from core.records.schedule import Schedule, now_local
from core.records.visits import SOAP_TEMPLATE, Visits
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_printing import pdf_text, save_through_dialog
from tests.ui.conftest import (
    ADMIN,
    ADMIN_NAME,
    POPUP_NOISE,
    WindowFactory,
    press,
    sign_in,
    type_at_the_keyboard,
)


def visits_tab(qtbot: QtBot, chart: ChartPage) -> VisitsSection:
    """Click the chart's Visits tab; its section once it has read the visits."""
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == "Visits")
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())
    section = next(s for s in chart.sections if isinstance(s, VisitsSection))
    assert chart.tabs.currentWidget() is section.widget()
    qtbot.waitUntil(lambda: section.start_button.isEnabled(), timeout=5_000)
    return section


def start_walk_in(
    qtbot: QtBot, section: VisitsSection, reason: str, clinician: str | None = None
) -> None:
    """Space on "Start visit…", type the reason, Tab to the clinician (``clinician``: pick
    them with Down, as a nurse must: none is chosen for her), Enter."""
    section.start_button.setFocus()
    QTest.keyClick(section.start_button, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: section.start_dialog is not None, timeout=5_000)
    dialog = section.start_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.reason.hasFocus(), timeout=5_000)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=5_000)  # the clinicians are read
    QTest.keyClicks(dialog.reason, reason)
    QTest.keyClick(dialog.reason, Qt.Key.Key_Tab)
    assert dialog.clinician.hasFocus()
    for _ in range(dialog.clinician.count()):
        if clinician is None or dialog.clinician.currentText() == clinician:
            break
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert clinician is None or dialog.clinician.currentText() == clinician
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)


def open_editor(qtbot: QtBot, section: VisitsSection) -> NoteEditor:
    qtbot.waitUntil(lambda: section.new_note_button.isEnabled(), timeout=5_000)
    QTest.mouseClick(section.new_note_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.editor is not None, timeout=5_000)
    editor = section.editor
    assert editor is not None
    return editor


def sign_note(qtbot: QtBot, editor: NoteEditor) -> None:
    """Click Sign note, then the question's Sign note (Cancel is its default)."""
    box = sign_question(qtbot, editor)
    go = box.findChild(QPushButton, "confirmSignNoteButton")
    assert go is not None and box.defaultButton() is not go
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)


def sign_question(qtbot: QtBot, editor: NoteEditor) -> QMessageBox:
    """Click Sign note; the question, once it is asked (after reading who wrote the note)."""
    QTest.mouseClick(editor.sign_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.sign_box is not None, timeout=5_000)
    box = editor.sign_box
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    return box


def stored_note(qtbot: QtBot, editor: NoteEditor) -> Note:
    """The note the editor's first save created (a new note is stored once typed in)."""
    qtbot.waitUntil(lambda: editor.note is not None, timeout=5_000)
    assert editor.note is not None
    return editor.note


def confirm_button(box: QMessageBox) -> QAbstractButton:
    """The Close visit question's button that closes the visit."""
    return next(b for b in box.buttons() if b.text() == "Close visit")


def close_on_purpose(
    qtbot: QtBot, section: VisitsSection, records: ClinicRecords, visit_id: str
) -> None:
    """Close visit clicked, and its question answered yes with a click: the visit closes."""
    QTest.mouseClick(section.close_button, Qt.MouseButton.LeftButton)
    box = section.confirm_box
    assert box is not None
    QTest.mouseClick(confirm_button(box), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(section.reopen_button.isVisible, timeout=5_000)
    assert not Visits(records).get(visit_id).is_open


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None
    return widget


def test_a_walk_in_visit_from_start_to_close(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    # An earlier visit, so the timeline has something to be newer than.
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    earlier = Visits(clinic.records).start(patient_id, "Flu jab")
    ClinicalEntries(clinic.records).update(
        "encounter", earlier.id, {"started_at": "2025-10-01T10:00"}
    )
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: len(section.visits) == 1, timeout=5_000)

    start_walk_in(qtbot, section, "Cough")
    qtbot.waitUntil(lambda: len(section.visits) == 2, timeout=5_000)
    # Newest first, and the new visit is the one opened.
    assert section.timeline.item(0).text().endswith(" · Open\nCough")
    assert section.timeline.item(1).text() == "2025-10-01 10:00 · Open\nFlu jab"
    # The view follows: the visit just started is the one opened.
    qtbot.waitUntil(
        lambda: section.contents is not None and section.contents.visit.reason == "Cough",
        timeout=5_000,
    )
    contents = section.contents
    assert contents is not None
    assert section.timeline.currentRow() == 0
    visit = contents.visit
    assert visit.clinician == "admin"

    # A new note starts from the SOAP headings, and what is typed is saved without a click.
    editor = open_editor(qtbot, section)
    assert editor.body.toPlainText() == SOAP_TEMPLATE
    QTest.keyClicks(editor.body, "Dry cough for three days.")
    assert editor.status.text() == "Not saved yet…"
    note_id = stored_note(qtbot, editor).id
    records = clinic.records
    qtbot.waitUntil(lambda: "Dry cough for three days." in Notes(records).get(note_id).body)
    qtbot.waitUntil(lambda: editor.status.text() == "Saved", timeout=5_000)
    assert Notes(records).get(note_id).body.startswith("Subjective:\nDry cough for three days.")

    # Sign: the editor closes, the visit shows the signed note.
    sign_note(qtbot, editor)
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)

    def signed() -> bool:
        note = section.selected_note()
        return note is not None and note.signed_at is not None

    qtbot.waitUntil(signed, timeout=5_000)
    assert not section.open_note_button.isEnabled() and section.addendum_button.isEnabled()
    assert "Dry cough for three days." in section.view.toPlainText()

    # An addendum to the signed note.
    QTest.mouseClick(section.addendum_button, Qt.MouseButton.LeftButton)
    dialog = section.addendum_dialog
    assert dialog is not None
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=5_000)
    assert dialog.error.text() == "Addendum is required."
    QTest.keyClicks(dialog.body, "Chest clear on review.")
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Chest clear on review." in section.view.toPlainText(), timeout=5_000)
    note = Notes(records).get(note_id)
    assert [a.body for a in note.addenda] == ["Chest clear on review."]
    assert note.body.startswith("Subjective:\nDry cough")  # the signed text is unchanged

    # Close the visit, once asked: no more new notes in it.
    QTest.mouseClick(section.close_button, Qt.MouseButton.LeftButton)
    box = section.confirm_box
    assert box is not None
    assert "has no note" not in box.informativeText()  # it has one
    QTest.mouseClick(confirm_button(box), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: section.timeline.item(0).text().endswith(" · Closed\nCough"), timeout=5_000
    )
    qtbot.waitUntil(lambda: not section.new_note_button.isEnabled(), timeout=5_000)
    assert not section.close_button.isVisible() and section.reopen_button.isVisible()
    assert Visits(records).get(visit.id).closed_by == "admin"
    assert "Closed" in section.view.toPlainText()

    # Print the visit: the signed note and its addendum are on the page.
    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None and printing.isVisible()
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    text = pdf_text(target)
    assert "Dry cough for three days." in text and "Chest clear on review." in text


def test_typing_is_saved_when_the_person_signs_out_mid_sentence(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Headache")
    editor = open_editor(qtbot, section)
    editor.timer.setInterval(60_000)  # the pause that would save never comes
    QTest.keyClicks(editor.body, "Throbbing, left side")
    visit_id = shown_visit_id(qtbot, section)
    records = clinic.records  # the clinic stays open after the sign-out: read it here
    signed_in.sign_out()
    QApplication.processEvents()
    assert section.editor is None and section.timeline.count() == 0
    qtbot.waitUntil(lambda: "Throbbing, left side" in note_text(records, visit_id), timeout=5_000)
    # Saved as the person who typed it.
    sign_in(qtbot, signed_in)
    [note] = Visits(records).visit_notes(visit_id)
    author = records.db.query(
        "SELECT actor FROM audit_log WHERE action = 'note.create' AND entity_id = ?", (note.id,)
    )
    assert author == [("admin",)]


def test_ctrl_l_in_the_note_editor_signs_out_and_keeps_what_was_typed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Ctrl+L signs out from the note editor as from anywhere else (it did nothing while
    the editor was open); the text typed and not saved yet is saved, as at auto-lock."""
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Back pain")
    editor = open_editor(qtbot, section)
    editor.activateWindow()
    qtbot.waitUntil(editor.isActiveWindow)
    editor.timer.setInterval(60_000)  # the pause that would save never comes
    QTest.keyClicks(editor.body, "Lower back, since Monday")
    visit_id = shown_visit_id(qtbot, section)
    records = clinic.records  # the clinic stays open after the sign-out: read it here
    with qtbot.waitSignal(signed_in.locked, timeout=5_000):
        QTest.keyClick(editor.body, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert signed_in.session is None
    assert signed_in.stack.currentWidget() is signed_in.sign_in_page
    assert section.editor is None and not editor.isVisible()
    qtbot.waitUntil(
        lambda: "Lower back, since Monday" in note_text(records, visit_id), timeout=5_000
    )


def shown_visit_id(qtbot: QtBot, section: VisitsSection) -> str:
    """The id of the visit the Visits tab shows (once it has read it)."""
    qtbot.waitUntil(lambda: section.contents is not None, timeout=5_000)
    assert section.contents is not None
    return section.contents.visit.id


def note_text(records: ClinicRecords, visit_id: str) -> str:
    """The text of the visit's notes, as stored ("" while it has none)."""
    return "\n".join(n.body for n in Visits(records).visit_notes(visit_id))


def test_new_note_closed_untouched_leaves_no_note_and_close_visit_still_warns(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's stray New note: the editor said "Saved" before a key was pressed and the
    visit kept an empty draft of the four headings for good, so Close visit no longer
    warned that it had no note. Nothing is stored until the person types."""
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Wheeze")
    visit_id = shown_visit_id(qtbot, section)
    editor = open_editor(qtbot, section)
    assert editor.body.toPlainText() == SOAP_TEMPLATE
    assert editor.status.text() == "Nothing is stored until you type."
    QTest.mouseClick(
        editor.buttons.button(editor.buttons.StandardButton.Close), Qt.MouseButton.LeftButton
    )
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    QTest.mouseClick(section.close_button, Qt.MouseButton.LeftButton)  # Close visit…
    box = section.confirm_box
    assert box is not None
    assert box.informativeText().startswith("This visit has no note.")
    box.reject()
    qtbot.waitUntil(lambda: section.confirm_box is None, timeout=5_000)
    assert Visits(clinic.records).visit_notes(visit_id) == []
    assert section.notes.count() == 0

    # Typing stores the note, once, with what was typed; the list shows it.
    editor = open_editor(qtbot, section)
    QTest.keyClicks(editor.body, "Wheezy since Sunday.")
    qtbot.waitUntil(lambda: editor.status.text() == "Saved", timeout=5_000)
    QTest.keyClicks(editor.body, " Worse at night.")
    editor.reject()  # closed before the pause's save: sent on closing, to the same note
    qtbot.waitUntil(lambda: "Worse at night." in note_text(clinic.records, visit_id))
    [note] = Visits(clinic.records).visit_notes(visit_id)
    assert note.body.startswith("Subjective:\nWheezy since Sunday. Worse at night.\n")
    qtbot.waitUntil(lambda: section.notes.count() == 1, timeout=5_000)


def test_an_empty_note_is_refused_and_the_last_text_kept(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Review")
    editor = open_editor(qtbot, section)
    editor.body.selectAll()
    QTest.keyClick(editor.body, Qt.Key.Key_Delete)
    qtbot.waitUntil(lambda: editor.error.isVisible(), timeout=5_000)
    assert editor.error.text() == "Note text is required."
    assert editor.status.text() == "Not saved"
    assert editor.note is None and note_text(clinic.records, shown_visit_id(qtbot, section)) == ""


def test_the_visit_started_from_an_appointment_opens_on_the_chart(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    section = visits_tab(qtbot, chart)
    records = clinic.records
    schedule = Schedule(records)
    booked = schedule.book(
        patient.id, f"{dt.date.today()} 00:00", ADMIN, minutes=20, reason="Diabetes review"
    )
    schedule.set_status(booked.id, "arrived")
    # The schedule's Start visit wrote it; a walk-in after it is the newest in the timeline.
    started = Visits(records).start(patient.id, appointment_id=booked.id)
    # A minute later by its clock: two visits started in the same millisecond were ordered
    # by their random ids, and the walk-in was not always the newest.
    later = now_local() + dt.timedelta(minutes=1)
    Visits(records, lambda: later).start(patient.id, "Walk-in")
    section.show_from_appointment(booked.id)
    qtbot.waitUntil(lambda: len(section.visits) == 2 and section.contents is not None)
    contents = section.contents
    assert contents is not None
    assert contents.visit.id == started.id and contents.visit.reason == "Diabetes review"
    assert section.timeline.currentRow() == 1
    assert "From appointment" in section.view.toPlainText()


def test_an_unsaved_addendum_comes_back_to_its_author_after_sign_out(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    records = clinic.records
    visit = Visits(records).start(patient_id, "Rash")
    note = Visits(records).add_note(visit.id, "Itchy rash on both forearms.")
    Notes(records).sign(note.id)
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: section.addendum_button.isEnabled(), timeout=5_000)
    QTest.mouseClick(section.addendum_button, Qt.MouseButton.LeftButton)
    dialog = section.addendum_dialog
    assert dialog is not None
    QTest.keyClicks(dialog.body, "Patch test booked")
    signed_in.sign_out()
    assert section.addendum_dialog is None
    assert Notes(records).get(note.id).addenda == ()  # half an addendum is never stored

    sign_in(qtbot, signed_in)
    qtbot.waitUntil(lambda: section.addendum_dialog is not None, timeout=5_000)
    restored = section.addendum_dialog
    assert restored is not None and restored.isVisible()
    assert restored.body.toPlainText() == "Patch test booked"
    QTest.keyClicks(restored.body, " for Monday.")
    QTest.mouseClick(restored.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(Notes(records).get(note.id).addenda), timeout=5_000)
    assert [a.body for a in Notes(records).get(note.id).addenda] == [
        "Patch test booked for Monday."
    ]


def test_words_typed_after_an_empty_addendum_is_refused_all_land_in_it(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's data loss: Add addendum clicked with the box empty greyed itself out
    while core refused it, so Qt gave the keyboard to Cancel. The sentence typed next went
    to Cancel, whose Space closed the form, and on into the chart behind: the box held
    "o patient by phone 17:00, afebrile.", which Add addendum would have stored. After the
    refusal the keyboard is back in the text: every word lands there."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    records = clinic.records
    visit = Visits(records).start(patient_id, "Fever")
    note = Visits(records).add_note(visit.id, "Febrile 38.6, advised fluids.")
    Notes(records).sign(note.id)
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: section.addendum_button.isEnabled(), timeout=5_000)
    QTest.mouseClick(section.addendum_button, Qt.MouseButton.LeftButton)
    dialog = section.addendum_dialog
    assert dialog is not None
    qtbot.waitUntil(dialog.isActiveWindow, timeout=5_000)
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.error.isVisible(), timeout=5_000)
    assert dialog.error.text() == "Addendum is required."
    assert dialog.save_button.isEnabled()
    assert focused() is dialog.body
    sentence = "Addendum: spoke to patient by phone 17:00, afebrile."
    type_at_the_keyboard(sentence)
    assert section.addendum_dialog is dialog and dialog.isVisible()
    assert dialog.body.toPlainText() == sentence
    assert not dialog.error.isVisible()  # answered
    QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: bool(Notes(records).get(note.id).addenda), timeout=5_000)
    assert [a.body for a in Notes(records).get(note.id).addenda] == [sentence]


def editor_with_a_colleagues_edit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> NoteEditor:
    """A new SOAP note's editor, open, and a colleague's edit of its Plan made meanwhile,
    as a sync would bring it in (written as another user to the same note, so the merged
    text is what the core holds next)."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Asthma")
    Visits(clinic.records).add_note(visit.id)  # a draft of the SOAP headings
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(section.open_note_button.isEnabled, timeout=5_000)
    QTest.mouseClick(section.open_note_button, Qt.MouseButton.LeftButton)  # Edit note…
    qtbot.waitUntil(lambda: section.editor is not None, timeout=5_000)
    editor = section.editor
    assert editor is not None and editor.note is not None
    colleague = ClinicRecords(clinic.database, "nurse.ola")
    Notes(colleague).edit(editor.note.id, SOAP_TEMPLATE + "Spacer technique reviewed.\n")
    return editor


def test_the_editor_keeps_an_edit_that_arrived_while_it_was_open(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    editor = editor_with_a_colleagues_edit(qtbot, signed_in, clinic)
    assert editor.note is not None
    note_id = editor.note.id
    QTest.keyClicks(editor.body, "Wheeze at night.")
    expected = (
        "Subjective:\nWheeze at night.\n\nObjective:\n\n\nAssessment:\n\n\n"
        "Plan:\nSpacer technique reviewed.\n"
    )
    qtbot.waitUntil(lambda: editor.body.toPlainText() == expected, timeout=5_000)
    assert Notes(clinic.records).get(note_id).body == expected
    assert editor.status.text() == "Saved"
    # Typing goes on where the cursor was.
    QTest.keyClicks(editor.body, " Worse with cold air.")
    assert "Wheeze at night. Worse with cold air.\n" in editor.body.toPlainText()


def test_signing_an_untouched_soap_note_is_refused_next_to_its_text(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Headache")
    editor = open_editor(qtbot, section)
    assert editor.body.toPlainText() == SOAP_TEMPLATE
    # Said at the click, with no "Sign this note?" first (the tester's D15: the question
    # was asked, then Sign note refused).
    QTest.mouseClick(editor.sign_button, Qt.MouseButton.LeftButton)
    assert editor.sign_box is None
    assert editor.error.isVisible() and editor.error.text() == (
        "Note text: the note holds only its headings; write the note before signing it."
    )
    # Nothing is frozen: the editor stays open for writing, and Sign works once it says
    # something.
    assert section.editor is editor and editor.isVisible()
    assert note_text(clinic.records, shown_visit_id(qtbot, section)) == ""  # nor stored
    assert editor.sign_button.isEnabled() and not editor.body.isReadOnly()
    QTest.keyClicks(editor.body, "Tension headache, two days.")
    sign_note(qtbot, editor)
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    [note] = Visits(clinic.records).visit_notes(shown_visit_id(qtbot, section))
    assert note.signed_at is not None
    assert note.body.startswith("Subjective:\nTension headache, two days.\n")


def test_typing_on_while_a_merging_save_is_in_flight_keeps_the_other_edit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The save that merges a colleague's edit in returns while the person has typed on:
    the screen cannot show the merge then, and the next save must not undo it."""
    editor = editor_with_a_colleagues_edit(qtbot, signed_in, clinic)
    assert editor.note is not None
    note_id = editor.note.id
    QTest.keyClicks(editor.body, "Wheeze at night.")
    editor.save()  # the pause's autosave, as its timer fires
    QTest.keyClicks(editor.body, " Worse with cold air.")  # before the save comes back
    records = clinic.records
    expected = (
        "Subjective:\nWheeze at night. Worse with cold air.\n\nObjective:\n\n\n"
        "Assessment:\n\n\nPlan:\nSpacer technique reviewed.\n"
    )
    qtbot.waitUntil(lambda: Notes(records).get(note_id).body == expected, timeout=5_000)
    qtbot.waitUntil(lambda: editor.body.toPlainText() == expected, timeout=5_000)
    assert editor.status.text() == "Saved"


def test_closing_a_visit_asks_first_and_a_visit_closed_by_mistake_is_reopened(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's slip: a stray Space on "Close visit…" closed a visit before its note was
    written, for good. Now it asks, naming the patient and the visit, warns that there is no
    note, and a stray Space or Return answers Cancel; a visit closed after all is reopened
    and its note written."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Sore throat")
    qtbot.waitUntil(lambda: section.new_note_button.isEnabled(), timeout=5_000)
    contents = section.contents
    assert contents is not None
    visit = contents.visit
    when = visit.started_at.replace("T", " ")

    for stray in (Qt.Key.Key_Space, Qt.Key.Key_Return):
        section.close_button.setFocus()
        QTest.keyClick(section.close_button, Qt.Key.Key_Space)
        box = section.confirm_box
        assert box is not None
        qtbot.waitUntil(box.isVisible)
        box.activateWindow()
        qtbot.waitUntil(box.isActiveWindow)
        assert box.text() == f"Close {patient.display_name}’s visit of {when} (Sore throat)?"
        assert "This visit has no note." in box.informativeText()
        assert focused() is box.defaultButton()
        assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
        QTest.keyClick(focused(), stray)  # the stray key answers Cancel
        qtbot.waitUntil(lambda: section.confirm_box is None)
        qtbot.wait(100)
        assert Visits(clinic.records).get(visit.id).is_open
        assert section.new_note_button.isEnabled()

    # Closed on purpose (a click on Close visit), then reopened: the note can be written.
    close_on_purpose(qtbot, section, clinic.records, visit.id)
    assert not section.new_note_button.isEnabled() and not section.close_button.isVisible()
    assert section.reopen_button.isEnabled()
    QTest.mouseClick(section.reopen_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.new_note_button.isEnabled(), timeout=5_000)
    assert section.timeline.item(0).text().endswith(" · Open\nSore throat")
    assert section.close_button.isVisible() and not section.reopen_button.isVisible()
    editor = open_editor(qtbot, section)
    QTest.keyClicks(editor.body, "Red throat, no fever.")
    qtbot.waitUntil(lambda: not editor.unsaved, timeout=5_000)
    editor.reject()
    [note] = Visits(clinic.records).visit_notes(visit.id)
    assert "Red throat, no fever." in note.body


def test_focus_stays_in_the_visit_view_when_it_is_closed_and_reopened_by_keyboard(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Space on Close visit… (and Close visit in the question), then Space on Reopen visit:
    each time the button pressed gives way to the other, and focus stays in the visit view,
    on Reopen visit, then on New note, instead of jumping to the toolbar's New patient (a
    further Space registered a patient)."""
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Sprained ankle")
    qtbot.waitUntil(lambda: section.new_note_button.isEnabled(), timeout=5_000)
    contents = section.contents
    assert contents is not None
    visit_id = contents.visit.id
    new_patient = signed_in.workspace.toolbar.widgetForAction(
        signed_in.workspace.new_patient_action
    )

    section.close_button.setFocus()
    QTest.keyClick(section.close_button, Qt.Key.Key_Space)
    box = section.confirm_box
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    QTest.keyClick(focused(), Qt.Key.Key_Tab, Qt.KeyboardModifier.ShiftModifier)
    assert focused() is confirm_button(box)
    QTest.keyClick(focused(), Qt.Key.Key_Space)
    qtbot.waitUntil(section.reopen_button.isVisible, timeout=5_000)
    signed_in.activateWindow()  # the window system's part, once the question has gone
    qtbot.waitUntil(signed_in.isActiveWindow)
    qtbot.waitUntil(lambda: focused() is section.reopen_button, timeout=5_000)
    assert not Visits(clinic.records).get(visit_id).is_open

    QTest.keyClick(focused(), Qt.Key.Key_Space)  # Reopen visit
    qtbot.waitUntil(lambda: section.new_note_button.isEnabled(), timeout=5_000)
    qtbot.waitUntil(lambda: focused() is section.new_note_button, timeout=5_000)
    assert Visits(clinic.records).get(visit_id).is_open
    assert focused() is not new_patient
    QTest.keyClick(focused(), Qt.Key.Key_Space)  # and Space writes the note
    qtbot.waitUntil(lambda: section.editor is not None, timeout=5_000)
    assert signed_in.workspace.patient_dialog is None


def test_a_walk_in_is_with_a_clinician_picked_by_name(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The booking dialog's list of full names, the signed-in person first chosen; a user
    name is never typed (a full name typed there was refused as "not a user")."""
    clinic.records.add_user("lee", "Dr Sam Lee", "clinician", "lee's own long password")
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    section = visits_tab(qtbot, chart)
    QTest.mouseClick(section.start_button, Qt.MouseButton.LeftButton)
    dialog = section.start_dialog
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.clinician.count() == 2, timeout=5_000)
    names = [dialog.clinician.itemText(i) for i in range(dialog.clinician.count())]
    assert names == ["Ada Adeyemi", "Dr Sam Lee"]
    assert dialog.clinician.currentText() == "Ada Adeyemi"  # the person signed in
    QTest.keyClicks(dialog.reason, "Rash")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Tab)
    assert dialog.clinician.hasFocus()
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert dialog.clinician.currentText() == "Dr Sam Lee"
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)
    [visit] = Visits(clinic.records).list_visits(patient.id)
    assert (visit.reason, visit.clinician) == ("Rash", "lee")
    qtbot.waitUntil(lambda: "Dr Sam Lee" in section.view.toPlainText(), timeout=5_000)


def test_a_note_of_only_its_headings_is_listed_without_a_dangling_separator(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    # (New note stores nothing until typed in; such a draft comes from the command line,
    # another workstation or an earlier release.)
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(signed_in.workstation.records).start(patient_id, "Review")
    Visits(signed_in.workstation.records).add_note(visit.id)  # nothing under the headings
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: section.notes.count() == 1, timeout=5_000)
    assert section.notes.item(0).text() == "Draft by Ada Adeyemi"


def test_a_note_a_nurse_wrote_and_a_clinician_signed_names_the_signer(
    qtbot: QtBot, signed_in: MainWindow
) -> None:
    workspace = signed_in.workspace
    patient_id = workspace.patient_list.model.patient_id(0)
    db = signed_in.workstation.database
    visit = Visits(signed_in.workstation.records).start(patient_id, reason="Cough")
    nurse, doctor = (ClinicRecords(db, name, FAST_PARAMS) for name in ("nora", "doug"))
    note = Visits(nurse).add_note(visit.id, "Cough for a week.")
    Notes(doctor).sign(note.id)
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: section.notes.count() == 1, timeout=5_000)
    listed = section.notes.item(0).text()
    assert " by doug · written by nora · Cough for a week." in listed, listed
    assert listed.startswith("Signed ")
    qtbot.waitUntil(lambda: "Note by nora" in section.view.toPlainText(), timeout=5_000)
    assert "by doug)" in section.view.toPlainText()


NURSE, NURSE_NAME, NURSE_PASSWORD = "nora", "Nora Nurse", "nora's own long password"
DOCTOR, DOCTOR_NAME = "doug", "Dr Doug Lee"


def _booked_today(clinic: Workstation) -> tuple[str, str]:
    """A nurse and a doctor on the staff; the first patient booked with the doctor today at
    14:30 (still booked: the front desk has not marked them arrived). Returns the patient's
    and the appointment's ids."""
    clinic.sign_in(ADMIN, "correct horse battery")
    records = clinic.records
    records.add_user(DOCTOR, DOCTOR_NAME, "clinician", "doug's own long password")
    records.add_user(NURSE, NURSE_NAME, "nurse", NURSE_PASSWORD)
    patient = records.list_patients()[0].id
    booked = Schedule(records).book(
        patient, f"{dt.date.today()} 14:30", DOCTOR, minutes=20, reason="BP check"
    )
    clinic.sign_in(NURSE, NURSE_PASSWORD)  # her first sign-in here adds her password slot
    clinic.lock()
    return patient, booked.id


def _start_dialog_as_nurse(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> tuple[MainWindow, VisitsSection, StartVisitDialog]:
    window = make_window(clinic)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    chart = open_first_chart(qtbot, window)
    section = visits_tab(qtbot, chart)
    section.start_button.setFocus()
    QTest.keyClick(section.start_button, Qt.Key.Key_Space)
    dialog = section.start_dialog
    assert isinstance(dialog, StartVisitDialog)
    qtbot.waitUntil(dialog.start_button.isEnabled, timeout=5_000)
    return window, section, dialog


def test_a_patient_booked_today_starts_the_visit_of_their_appointment(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """A nurse's Start visit for a patient booked with the doctor at 14:30 offered only a
    walk-in, the nurse chosen as its clinician: the booking stayed Booked and the visit was
    the nurse's. Today's booking is offered, nothing is chosen for her, and the visit
    started from it is the doctor's, linked to the appointment, which is now in visit."""
    patient, appointment = _booked_today(clinic)
    _window, section, dialog = _start_dialog_as_nurse(qtbot, clinic, make_window)
    offered = [dialog.source.itemText(i) for i in range(dialog.source.count())]
    assert offered == [f"14:30 with {DOCTOR_NAME}: BP check (booked)", "Walk-in (no appointment)"]
    assert dialog.source.isVisible() and dialog.source.hasFocus()  # the first step
    assert dialog.source.width() >= dialog.source.sizeHint().width()  # read whole
    assert dialog.source.currentIndex() == -1  # nothing chosen for her
    assert dialog.clinician.currentIndex() == -1  # nor a clinician: she is not one

    QTest.keyClick(dialog.source, Qt.Key.Key_Return)  # Start visit, nothing chosen
    error = dialog.errors["appointment_id"]
    assert error.isVisible() and error.text() == "Choose today's appointment, or Walk-in."
    assert dialog.isVisible() and Visits(clinic.records).list_visits(patient) == []

    QTest.keyClick(dialog.source, Qt.Key.Key_Down)  # the 14:30 appointment
    assert dialog.source.currentData() == appointment and not error.isVisible()
    assert dialog.clinician.currentText() == DOCTOR_NAME  # the appointment's
    assert dialog.reason.placeholderText() == "BP check (the appointment's)"
    QTest.keyClick(dialog.source, Qt.Key.Key_Tab)
    assert dialog.reason.hasFocus()
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)
    [visit] = Visits(clinic.records).list_visits(patient)
    assert (visit.appointment_id, visit.clinician, visit.reason) == (
        appointment, DOCTOR, "BP check",
    )  # fmt: skip
    booked = Schedule(clinic.records).get(appointment)
    assert booked.status == "in_visit" and booked.arrived_at is not None
    qtbot.waitUntil(lambda: DOCTOR_NAME in section.view.toPlainText(), timeout=5_000)


@pytest.mark.qt_log_ignore(POPUP_NOISE)  # the list opens
def test_a_digit_an_appointment_starts_with_opens_the_visit_box_there(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    """The Visit box lists appointments by their time: a digit one of them starts with is
    the person choosing it (the list opens at the 14:30 appointment, for Return to take),
    not a number typed one Tab short. One no appointment starts with is: it goes on to
    Reason, as if Tab came first, the appointment chosen staying."""
    _patient, appointment = _booked_today(clinic)
    _window, _section, dialog = _start_dialog_as_nurse(qtbot, clinic, make_window)
    source = dialog.source
    assert source.hasFocus() and source.currentIndex() == -1
    type_at_the_keyboard("1")
    assert source.view().isVisible()
    assert source.view().currentIndex().data() == f"14:30 with {DOCTOR_NAME}: BP check (booked)"
    assert source.currentIndex() == -1  # not chosen until Return
    press(Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not source.view().isVisible())
    assert source.currentData() == appointment
    type_at_the_keyboard("2nd dose")
    assert not source.view().isVisible() and source.currentData() == appointment
    assert dialog.reason.hasFocus() and dialog.reason.text() == "2nd dose"


def test_a_nurse_s_walk_in_is_with_the_clinician_she_chooses(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    patient, appointment = _booked_today(clinic)
    _window, section, dialog = _start_dialog_as_nurse(qtbot, clinic, make_window)
    QTest.keyClick(dialog.source, Qt.Key.Key_Down)
    QTest.keyClick(dialog.source, Qt.Key.Key_Down)  # Walk-in
    assert dialog.source.currentText() == "Walk-in (no appointment)"
    assert dialog.clinician.currentIndex() == -1
    QTest.keyClick(dialog.source, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.reason, "Dressing change")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    error = dialog.errors["clinician"]
    assert error.isVisible() and error.text() == "Choose the clinician the visit is with."
    assert dialog.clinician.hasFocus()
    assert Visits(clinic.records).list_visits(patient) == []
    names = [dialog.clinician.itemText(i) for i in range(dialog.clinician.count())]
    assert names == [NURSE_NAME, ADMIN_NAME, DOCTOR_NAME]  # she may see it herself
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert dialog.clinician.currentText() == NURSE_NAME and not error.isVisible()
    QTest.keyClick(dialog.clinician, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)
    [visit] = Visits(clinic.records).list_visits(patient)
    assert (visit.appointment_id, visit.clinician, visit.reason) == (
        None, NURSE, "Dressing change",
    )  # fmt: skip
    assert Schedule(clinic.records).get(appointment).status == "booked"  # not this visit's


def test_a_start_visit_left_at_a_sign_out_comes_back_with_the_appointment_chosen(
    qtbot: QtBot, clinic: Workstation, make_window: WindowFactory
) -> None:
    patient, appointment = _booked_today(clinic)
    window, section, dialog = _start_dialog_as_nurse(qtbot, clinic, make_window)
    QTest.keyClick(dialog.source, Qt.Key.Key_Down)
    QTest.keyClick(dialog.source, Qt.Key.Key_Tab)
    QTest.keyClicks(dialog.reason, "BP check and bloods")
    window.sign_out()
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)
    sign_in(qtbot, window, NURSE, NURSE_PASSWORD)
    qtbot.waitUntil(lambda: section.start_dialog is not None, timeout=5_000)
    again = section.start_dialog
    assert isinstance(again, StartVisitDialog)
    qtbot.waitUntil(lambda: again.source.currentData() == appointment, timeout=5_000)
    assert again.reason.text() == "BP check and bloods"
    assert again.clinician.currentText() == DOCTOR_NAME
    QTest.mouseClick(again.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.start_dialog is None, timeout=5_000)
    [visit] = Visits(clinic.records).list_visits(patient)
    assert (visit.appointment_id, visit.clinician) == (appointment, DOCTOR)


def test_sign_note_asks_first_and_cancel_is_the_default(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Signing cannot be undone: Sign note asks, and Return (or Escape) on the question
    signs nothing and leaves the keyboard in the text."""
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    start_walk_in(qtbot, section, "Cough")
    editor = open_editor(qtbot, section)
    QTest.keyClicks(editor.body, "Dry cough.")
    note = stored_note(qtbot, editor)
    box = sign_question(qtbot, editor)
    assert box.text() == "Sign this note?"
    assert box.informativeText() == (
        "A signed note cannot be changed; later corrections are addenda."
    )
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    QTest.keyClick(focused(), Qt.Key.Key_Return)  # a stray Return: Cancel
    qtbot.waitUntil(lambda: editor.sign_box is None, timeout=5_000)
    assert Notes(clinic.records).get(note.id).signed_at is None
    assert section.editor is editor
    editor.activateWindow()  # the window system's part, once the question has gone
    qtbot.waitUntil(editor.isActiveWindow)
    qtbot.waitUntil(editor.body.hasFocus, timeout=5_000)  # writing goes on
    sign_note(qtbot, editor)
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    assert Notes(clinic.records).get(note.id).signed_at is not None


def test_the_visit_view_shows_each_set_of_vitals_under_its_time(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's visit: a full set at 08:16 and a recheck of blood pressure and pulse at
    08:17 read as one list with two blood pressures and no times."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Wheeze")
    day = visit.started_at[:10]
    signs = VitalSigns(clinic.records)
    # Measured at 08:16 and 08:17 whatever the hour the test runs (before 08:11 the clock
    # check refused them as in the future).
    clock = dt.datetime.fromisoformat(f"{day}T08:20")
    signs.record(
        patient_id,
        {"systolic": "128", "diastolic": "82", "pulse": "88", "temperature": "100.4"},
        {"temperature": "[degF]"},
        f"{day}T08:16",
        visit.id,
        now=clock,
    )
    signs.record(patient_id, {"systolic": "130", "diastolic": "85", "pulse": "92"}, None,
                 f"{day}T08:17", visit.id, now=clock)  # fmt: skip
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Measured" in section.view.toPlainText(), timeout=5_000)
    lines = [line.strip() for line in section.view.toPlainText().splitlines() if line.strip()]
    first = lines.index(f"Measured {day} 08:16, recorded by {ADMIN_NAME} (set 1 of 2)")
    second = lines.index(f"Measured {day} 08:17, recorded by {ADMIN_NAME} (set 2 of 2)")
    assert lines[first + 1 : second] == [
        "Blood pressure: 128/82 mmHg",
        "Pulse: 88/min",
        "Temperature: 100.4 °F ▲",
    ]
    assert lines[second + 1 : second + 3] == ["Blood pressure: 130/85 mmHg", "Pulse: 92/min"]

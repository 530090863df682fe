"""Unsaved forms survive a sign-out for the person who typed them, and only for them."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QMessageBox
from pytestqt.qtbot import QtBot

from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.note_editor import NoteEditor
from app.chart.page import AllergyDialog, ChartPage
from app.main_window import MainWindow
from app.patients.dialog import PatientDialog
from app.session.drafts import Draft, DraftKeeper
from core.records.notes import Notes
from core.records.workstation import Workstation
from tests.ui.chart.test_note_discard import new_note_in_a_new_visit
from tests.ui.chart.test_visits import stored_note
from tests.ui.conftest import ADMIN, PASSWORD, WindowFactory, answer_discard, discard_question
from tests.ui.layout import rect_in
from tests.ui.session.test_shared_workstation import (
    NURSE,
    NURSE_PASSWORD,
    click_sign_out,
    shared,
    signs_in,
    type_sign_in,
)

__all__ = ["shared"]  # the fixture, used by ``desk``


@pytest.fixture
def desk(qtbot: QtBot, shared: Workstation, make_window: WindowFactory) -> MainWindow:
    """The shared clinic's window, the admin signed in."""
    window = make_window(shared, auto_lock_ms=1_500)
    signs_in(qtbot, window, ADMIN, PASSWORD)
    return window


def type_new_patient(qtbot: QtBot, window: MainWindow) -> PatientDialog:
    QTest.keyClick(
        window.workspace.patient_list.table, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier
    )
    dialog = window.workspace.patient_dialog
    assert dialog is not None and dialog.isVisible()
    QTest.keyClicks(dialog.family, "Haddad")
    QTest.keyClicks(dialog.given, "Yusuf")
    QTest.keyClicks(dialog.phone, "555 0188")
    return dialog


def test_a_new_patient_form_comes_back_to_its_author_only(qtbot: QtBot, desk: MainWindow) -> None:
    type_new_patient(qtbot, desk)
    with qtbot.waitSignal(desk.locked, timeout=5_000):
        pass  # the admin was called away: auto-logoff
    assert desk.workspace.patient_dialog is None
    assert not any(d.isVisible() for d in desk.findChildren(PatientDialog))

    signs_in(qtbot, desk, NURSE, NURSE_PASSWORD)  # a colleague never sees it
    assert desk.workspace.patient_dialog is None
    assert not desk.workspace.notice.isVisible()
    click_sign_out(desk)

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    dialog = desk.workspace.patient_dialog
    assert dialog is not None and dialog.isVisible()
    assert (dialog.family.text(), dialog.given.text(), dialog.phone.text()) == (
        "Haddad",
        "Yusuf",
        "555 0188",
    )
    assert desk.workspace.notice.isVisible()
    assert desk.workspace.notice.text() == "Your unsaved New patient form was restored."
    # Nothing was stored meanwhile (signs_in saw the list of exactly the sample patients).
    qtbot.keyClicks(dialog.birth_date, "1988-05-14")
    with qtbot.waitSignal(dialog.saved, timeout=10_000) as saved:
        QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    patient = saved.args[0]
    assert (patient.family, patient.given, patient.phone) == ("Haddad", "Yusuf", "555 0188")
    click_sign_out(desk)
    type_sign_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: desk.session is not None, timeout=10_000)
    assert desk.workspace.patient_dialog is None  # restored once, not again


def test_the_restored_notice_going_does_not_move_the_list_under_the_pointer(
    qtbot: QtBot, styled: None, desk: MainWindow
) -> None:
    """The tester's picture: the restored form discarded, "Your unsaved … form was
    restored." went and the patient list moved up under the pointer: a click aimed at
    MENSAH opened NKRUMAH. The notice's room stays until the person moves on: all of it
    (the retest's list still moved up 9 pixels, the room of the notice's emptied line),
    with the app's stylesheet on, as it looks."""
    type_new_patient(qtbot, desk)
    click_sign_out(desk)
    signs_in(qtbot, desk, ADMIN, PASSWORD)
    workspace = desk.workspace
    dialog = workspace.patient_dialog
    assert dialog is not None and workspace.notice.isVisible()
    table = workspace.patient_list.table
    seen = rect_in(table, desk)
    dialog.cancel()
    answer_discard(qtbot, dialog)
    qtbot.waitUntil(lambda: workspace.patient_dialog is None)
    assert not workspace.notice.isVisible()
    QApplication.processEvents()  # the layout the notice's going asked for
    assert rect_in(table, desk) == seen  # the rows are where the person saw them
    workspace.open_chart(workspace.patient_list.model.patient_id(0))  # moving on
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    workspace.show_list()
    QApplication.processEvents()
    assert rect_in(table, desk).top() < seen.top()  # the room is given back then


def add_allergy_on_first_chart(qtbot: QtBot, window: MainWindow) -> tuple[ChartPage, AllergyDialog]:
    """The first patient's chart opened, and its Add allergy form (clicked open)."""
    workspace = window.workspace
    workspace.open_chart(workspace.patient_list.model.patient_id(0))
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    QTest.mouseClick(chart.add_allergy_button, Qt.MouseButton.LeftButton)
    allergy = chart.allergy_dialog
    assert allergy is not None
    return chart, allergy


def test_an_allergy_form_in_a_chart_comes_back_in_that_chart(
    qtbot: QtBot, desk: MainWindow
) -> None:
    workspace = desk.workspace
    patient_id = workspace.patient_list.model.patient_id(0)
    chart, allergy = add_allergy_on_first_chart(qtbot, desk)
    QTest.keyClicks(allergy.substance, "Latex")
    QTest.keyClicks(allergy.reaction, "Hives")
    click_sign_out(desk)
    assert chart.patient is None and chart.allergy_dialog is None

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: chart.allergy_dialog is not None, timeout=5_000)
    assert chart.patient is not None and chart.patient.id == patient_id
    restored = chart.allergy_dialog
    assert restored is not None and restored.isVisible()
    assert (restored.substance.text(), restored.reaction.text()) == ("Latex", "Hives")
    assert workspace.notice.text() == "Your unsaved Add allergy form was restored."
    # Said about this chart only: back on the list (or any other page), it has gone, and
    # the page is where it was before the notice pushed it down.
    restored.reject()
    QTest.mouseClick(chart.back_button, Qt.MouseButton.LeftButton)
    assert workspace.pages.currentWidget() is workspace.patient_list
    assert not workspace.notice.isVisible() and not workspace.notice_bar.isVisible()
    workspace.open_chart(patient_id)
    assert not workspace.notice.isVisible()  # not back with the chart either


def test_a_restored_form_has_the_keyboard_where_the_person_was_typing(
    qtbot: QtBot, desk: MainWindow
) -> None:
    """A form back after the auto-lock had the keyboard in its first field: the next words
    typed went there. Any form (here Add allergy) comes back with the keyboard in the field
    that had it, the cursor where it was in the text."""
    chart, allergy = add_allergy_on_first_chart(qtbot, desk)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is allergy.substance)
    QTest.keyClicks(allergy.substance, "Latex")
    QTest.keyClick(allergy.substance, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is allergy.reaction
    QTest.keyClicks(allergy.reaction, "Hives")
    QTest.keyClick(allergy.reaction, Qt.Key.Key_Home)
    QTest.keyClicks(allergy.reaction, "Mild ")
    with qtbot.waitSignal(desk.locked, timeout=5_000):
        pass  # auto-logoff

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: chart.allergy_dialog is not None, timeout=5_000)
    restored = chart.allergy_dialog
    assert restored is not None
    qtbot.waitUntil(lambda: QApplication.focusWidget() is restored.reaction)
    QTest.keyClicks(restored.reaction, "itchy ")  # where the keyboard is, as waited for
    assert (restored.substance.text(), restored.reaction.text()) == ("Latex", "Mild itchy Hives")


@pytest.mark.parametrize("how", ["cancelled", "saved"])
def test_the_restored_notice_goes_when_the_restored_form_is_closed(
    qtbot: QtBot, desk: MainWindow, how: str
) -> None:
    """The tester's picture: the restored Add allergy form was cancelled, and "Your unsaved
    Add allergy form was restored." stayed over the chart, over the next form opened
    there. It goes with the form, saved or cancelled."""
    workspace = desk.workspace
    chart, allergy = add_allergy_on_first_chart(qtbot, desk)
    QTest.keyClicks(allergy.substance, "Latex")
    QTest.keyClicks(allergy.reaction, "Hives")
    click_sign_out(desk)
    signs_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: chart.allergy_dialog is not None, timeout=5_000)
    restored = chart.allergy_dialog
    assert restored is not None
    restored.activateWindow()
    qtbot.waitUntil(restored.isActiveWindow)
    assert workspace.notice.text() == "Your unsaved Add allergy form was restored."
    cancel = restored.buttons.button(QDialogButtonBox.StandardButton.Cancel)
    button = cancel if how == "cancelled" else restored.save_button
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    if how == "cancelled":  # what was typed is thrown away only when the person says so
        answer_discard(qtbot, restored)
    qtbot.waitUntil(lambda: chart.allergy_dialog is None, timeout=10_000)
    assert not workspace.notice_bar.isVisible()
    assert workspace.pages.currentWidget() is chart  # still on the chart: the form went


def test_the_restored_notice_can_be_dismissed(qtbot: QtBot, desk: MainWindow) -> None:
    type_new_patient(qtbot, desk)
    click_sign_out(desk)
    signs_in(qtbot, desk, ADMIN, PASSWORD)
    workspace = desk.workspace
    assert workspace.notice.isVisible()
    QTest.mouseClick(workspace.dismiss_notice, Qt.MouseButton.LeftButton)
    assert not workspace.notice_bar.isVisible()
    dialog = workspace.patient_dialog
    assert dialog is not None and dialog.isVisible()  # the form itself stays


def test_an_edit_left_unchanged_or_a_closed_clinic_keeps_no_draft(
    qtbot: QtBot, desk: MainWindow
) -> None:
    workspace = desk.workspace
    workspace.open_chart(workspace.patient_list.model.patient_id(0))
    qtbot.waitUntil(lambda: workspace.chart.patient is not None, timeout=5_000)
    workspace.chart.edit_patient()  # opened, nothing changed
    assert workspace.chart.patient_dialog is not None
    click_sign_out(desk)
    assert not desk.drafts.has_drafts(ADMIN)

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    type_new_patient(qtbot, desk)
    click_sign_out(desk)
    assert desk.drafts.has_drafts(ADMIN)
    QTest.mouseClick(desk.sign_in_page.close_button, Qt.MouseButton.LeftButton)
    assert not desk.drafts.has_drafts(ADMIN)  # closing the clinic drops them
    signs_in(qtbot, desk, ADMIN, PASSWORD)
    assert workspace.patient_dialog is None
    assert not workspace.notice.isVisible()


def edit_chart_field(
    qtbot: QtBot, window: MainWindow, patient_id: str, field: str, text: str
) -> PatientDialog:
    """Open the patient's chart, then Edit details, and type ``text`` over ``field``."""
    workspace = window.workspace
    workspace.open_chart(patient_id)
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    dialog = chart.patient_dialog
    assert dialog is not None
    line = {"mrn": dialog.mrn, "phone": dialog.phone}[field]
    line.selectAll()
    QTest.keyClicks(line, text)
    return dialog


def test_an_edit_draft_never_undoes_a_colleagues_change_made_meanwhile(
    qtbot: QtBot, desk: MainWindow
) -> None:
    patient_id = desk.workspace.patient_list.model.patient_id(0)
    edit_chart_field(qtbot, desk, patient_id, "mrn", "MRN-9001")
    click_sign_out(desk)

    signs_in(qtbot, desk, NURSE, NURSE_PASSWORD)  # she corrects the phone number meanwhile
    theirs = edit_chart_field(qtbot, desk, patient_id, "phone", "555 0111")
    with qtbot.waitSignal(theirs.saved, timeout=10_000):
        QTest.mouseClick(theirs.save_button, Qt.MouseButton.LeftButton)
    click_sign_out(desk)

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    chart = desk.workspace.chart
    qtbot.waitUntil(lambda: chart.patient_dialog is not None, timeout=5_000)
    mine = chart.patient_dialog
    assert mine is not None
    assert desk.workspace.notice.text() == "Your unsaved Edit patient form was restored."
    assert (mine.mrn.text(), mine.phone.text()) == ("MRN-9001", "555 0111")
    with qtbot.waitSignal(mine.saved, timeout=10_000) as saved:
        QTest.mouseClick(mine.save_button, Qt.MouseButton.LeftButton)
    assert (saved.args[0].mrn, saved.args[0].phone) == ("MRN-9001", "555 0111")


def test_a_half_typed_prescription_and_problem_search_come_back_in_that_chart(
    qtbot: QtBot, desk: MainWindow
) -> None:
    workspace = desk.workspace
    patient_id = workspace.patient_list.model.patient_id(0)
    workspace.open_chart(patient_id)
    chart = workspace.chart
    qtbot.waitUntil(lambda: chart.patient is not None, timeout=5_000)
    meds = next(s for s in chart.sections if isinstance(s, MedicationsCard))
    QTest.mouseClick(meds.start_button, Qt.MouseButton.LeftButton)
    form = meds.dialog
    assert isinstance(form, MedicationDialog)
    QTest.keyClicks(form.fields["name"], "Metformin")
    QTest.keyClicks(form.fields["strength"], "500 mg")
    click_sign_out(desk)
    assert chart.patient is None and meds.dialog is None

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: meds.dialog is not None, timeout=5_000)
    restored = meds.dialog
    assert isinstance(restored, MedicationDialog) and restored.isVisible()
    assert chart.patient is not None and chart.patient.id == patient_id
    assert (restored.fields["name"].text(), restored.fields["strength"].text()) == (
        "Metformin", "500 mg",
    )  # fmt: skip
    assert workspace.notice.text() == "Your unsaved Start medication form was restored."


def test_a_form_put_aside_is_given_back_once_to_its_author_only() -> None:
    """DraftKeeper's forms left on a chart: per user and per patient, in memory."""
    keeper = DraftKeeper()
    form = Draft("vitalsForm", "Vitals", {"patient_id": "p1", "values": {"pulse": "88"}})
    keeper.put_aside("ann", "p1", form)
    assert keeper.take_back("bob", "vitalsForm", "p1") is None  # another person's: never
    assert keeper.take_back("ann", "vitalsForm", "p2") is None  # another patient's form
    assert keeper.take_back("ann", "vitalsForm", "p1") == form
    assert keeper.take_back("ann", "vitalsForm", "p1") is None  # given back once
    newer = Draft("vitalsForm", "Vitals", {"patient_id": "p1", "values": {"pulse": "90"}})
    keeper.put_aside("ann", "p1", form)
    keeper.put_aside("ann", "p1", newer)  # left again: the latest form is what is kept
    assert keeper.take_back("ann", "vitalsForm", "p1") == newer
    keeper.put_aside("ann", "p1", form)
    keeper.drop_all()  # the clinic closed here
    assert keeper.take_back("ann", "vitalsForm", "p1") is None
    assert not keeper.has_drafts("ann")


def test_the_auto_lock_keeps_a_form_whose_discard_question_was_open(
    qtbot: QtBot, desk: MainWindow
) -> None:
    """The person pressed Escape on a typed form and walked away from the question: the
    auto-lock never asks, keeps the form as a draft, and the question does not wait for the
    next person. Back, the form is as typed, and Escape on it asks again."""
    dialog = type_new_patient(qtbot, desk)
    QTest.keyClick(dialog.phone, Qt.Key.Key_Escape)
    box = discard_question(qtbot, dialog)
    with qtbot.waitSignal(desk.locked, timeout=5_000):
        pass  # auto-logoff
    assert not box.isVisible() and not dialog.isVisible()
    assert not any(b.isVisible() for b in desk.findChildren(QMessageBox))

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    restored = desk.workspace.patient_dialog
    assert restored is not None and restored.isVisible()
    assert (restored.family.text(), restored.phone.text()) == ("Haddad", "555 0188")
    restored.phone.setFocus()
    QTest.keyClick(restored.phone, Qt.Key.Key_Escape)  # restored, not saved: still asks
    answer_discard(qtbot, restored)
    qtbot.waitUntil(lambda: desk.workspace.patient_dialog is None)


def test_a_note_being_written_opens_again_for_its_author_where_the_cursor_was(
    qtbot: QtBot, desk: MainWindow
) -> None:
    """The tester's clinician came back from the auto-logoff to the patient list: the note
    editor they had open was gone (its text saved, but the place lost). It opens again for
    them, on the note as saved at the sign-out, the cursor where it was; never for a
    colleague, and the notice does not call the saved note unsaved."""
    section, _visit_id, editor = new_note_in_a_new_visit(qtbot, desk)
    QTest.keyClicks(editor.body, "Cough for a week.")
    note = stored_note(qtbot, editor)
    QTest.keyClicks(editor.body, " No fever.")  # not autosaved yet: the sign-out saves it
    cursor = editor.body.textCursor().position()
    with qtbot.waitSignal(desk.locked, timeout=5_000):
        pass  # called away: auto-logoff
    assert section.editor is None

    signs_in(qtbot, desk, NURSE, NURSE_PASSWORD)  # a colleague never gets it
    QApplication.processEvents()
    assert not any(e.isVisible() for e in desk.findChildren(NoteEditor))
    click_sign_out(desk)

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    qtbot.waitUntil(lambda: section.editor is not None, timeout=10_000)
    reopened = section.editor
    assert reopened is not None and reopened.isVisible() and reopened.note is not None
    assert reopened.note.id == note.id
    assert "Cough for a week. No fever." in reopened.body.toPlainText()
    assert reopened.body.textCursor().position() == cursor
    assert desk.workspace.notice.text() == (
        "The Note you had open is open again, as saved when you signed out."
    )
    QTest.keyClicks(reopened.body, " Sleeps well.")  # typing goes on where it stopped
    qtbot.waitUntil(
        lambda: "No fever. Sleeps well." in Notes(desk.workstation.records).get(note.id).body,
        timeout=10_000,
    )

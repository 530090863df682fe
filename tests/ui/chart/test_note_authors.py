"""Who wrote a note, and a draft left in a visit being closed (the tester's shot-71 and
visit1.pdf): a draft a nurse and a colleague edited was listed, shown and printed as wholly
its starter's, and signing it said nothing of the others; closing the visit with the draft
unsigned said only "A closed visit takes no new notes"."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox
from pytestqt.qtbot import QtBot

from app.chart.visits import VisitsSection
from app.main_window import MainWindow
from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.records.notes import Notes
from core.records.visits import SOAP_TEMPLATE, Visit, Visits
from core.records.workstation import Workstation
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_printing import pdf_text, save_through_dialog
from tests.ui.chart.test_visits import (
    close_on_purpose,
    focused,
    sign_question,
    visits_tab,
)
from tests.ui.conftest import ADMIN_NAME

STARTER, STARTER_NAME = "aokafor", "Dr. Amara Okafor"
NURSE, NURSE_NAME = "nrossi", "Nina Rossi"


def _colleagues(clinic: Workstation) -> tuple[ClinicRecords, ClinicRecords]:
    """A clinician and a nurse with accounts (so their full names are shown), each working
    as themselves on this clinic's records."""
    clinic.records.add_user(STARTER, STARTER_NAME, "clinician", "amara's own long password")
    clinic.records.add_user(NURSE, NURSE_NAME, "nurse", "nina's own long password")
    db = clinic.database
    return ClinicRecords(db, STARTER, FAST_PARAMS), ClinicRecords(db, NURSE, FAST_PARAMS)


def _visit_with_a_shared_draft(signed_in: MainWindow, clinic: Workstation) -> tuple[Visit, str]:
    """A visit with a signed note of the person signed in, and a draft Dr. Okafor started
    and the nurse added a line to (Edit note…, as on her workstation); the draft's id."""
    starter, nurse = _colleagues(clinic)
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Follow-up: blood pressure")
    signed = Visits(clinic.records).add_note(visit.id, "Headaches 2x/week.")
    Notes(clinic.records).sign(signed.id)
    draft = Visits(starter).add_note(visit.id, SOAP_TEMPLATE + "Consider amitriptyline.\n")
    Notes(nurse).edit(draft.id, "NURSE: BP recheck 118/76.\n" + draft.body)
    return visit, draft.id


def _shown(qtbot: QtBot, signed_in: MainWindow) -> VisitsSection:
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: section.notes.count() == 2, timeout=5_000)
    return section


def test_closing_a_visit_with_a_draft_names_it_and_keeps_the_visit_open_by_default(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    visit, _draft = _visit_with_a_shared_draft(signed_in, clinic)
    section = _shown(qtbot, signed_in)
    QTest.mouseClick(section.close_button, Qt.MouseButton.LeftButton)
    box = section.confirm_box
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    said = box.informativeText()
    assert said.startswith(
        "This visit has a draft note that is not signed: by Dr. Amara Okafor, edited by "
        "Nina Rossi, started "
    ), said
    assert "the draft stays unsigned" in said and "Sign or discard it first" in said
    assert box.icon() == QMessageBox.Icon.Warning
    # The safe answer has the keyboard: a stray Return keeps the visit open.
    keep = box.defaultButton()
    assert keep is not None and keep.text() == "Keep visit open"
    box.activateWindow()
    qtbot.waitUntil(box.isActiveWindow)
    assert focused() is keep
    QTest.keyClick(focused(), Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: section.confirm_box is None)
    qtbot.wait(100)
    assert Visits(clinic.records).get(visit.id).is_open
    # Closed on purpose, with the draft left unsigned.
    close_on_purpose(qtbot, section, clinic.records, visit.id)


def test_a_draft_others_edited_names_them_on_screen_on_paper_and_when_signed(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    _visit, draft_id = _visit_with_a_shared_draft(signed_in, clinic)
    section = _shown(qtbot, signed_in)
    listed = section.notes.item(1).text()
    assert listed.startswith("Draft by Dr. Amara Okafor, edited by Nina Rossi · "), listed
    view = section.view.toPlainText()
    assert "Note by Dr. Amara Okafor, edited by Nina Rossi (draft)" in view, view

    # Printed: the draft's line names both.
    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    assert "Draft by Dr. Amara Okafor, edited by Nina Rossi, not signed" in pdf_text(target)

    # The person signed in adds a line (Edit note…) and signs: the question says who else
    # wrote it.
    section.notes.setCurrentRow(1)
    QTest.mouseClick(section.open_note_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.editor is not None, timeout=5_000)
    editor = section.editor
    assert editor is not None
    editor.body.moveCursor(QTextCursor.MoveOperation.End)
    QTest.keyClicks(editor.body, "Check sleep.")
    qtbot.waitUntil(lambda: not editor.unsaved and editor.status.text() == "Saved", timeout=5_000)
    qtbot.waitUntil(
        lambda: (
            section.notes.count() == 2
            and section.notes.item(1)
            .text()
            .startswith(f"Draft by Dr. Amara Okafor, edited by Nina Rossi, {ADMIN_NAME} · ")
        ),
        timeout=5_000,
    )
    box = sign_question(qtbot, editor)
    assert box.informativeText() == (
        "Dr. Amara Okafor and Nina Rossi also wrote part of this note: signing it, you sign "
        "their text too. A signed note cannot be changed; later corrections are addenda."
    )
    assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
    go = next(b for b in box.buttons() if b.text() == "Sign note")
    QTest.mouseClick(go, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.editor is None, timeout=5_000)
    signed = Notes(clinic.records).get(draft_id)
    assert signed.signed_at is not None and signed.editors == (NURSE, "admin")
    qtbot.waitUntil(
        lambda: (
            section.notes.item(1).text().startswith("Signed ")
            and f"by {ADMIN_NAME} · written by Dr. Amara Okafor, edited by Nina Rossi, "
            f"{ADMIN_NAME} · "
            in section.notes.item(1).text()
        ),
        timeout=5_000,
    )


def test_signing_ones_own_note_asks_as_before(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Nobody else wrote it: the question says nothing of others."""
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(clinic.records).start(patient_id, "Cough")
    Visits(clinic.records).add_note(visit.id, "Dry cough.")
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(section.open_note_button.isEnabled, timeout=5_000)
    assert section.notes.item(0).text() == f"Draft by {ADMIN_NAME} · Dry cough."
    QTest.mouseClick(section.open_note_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: section.editor is not None, timeout=5_000)
    assert section.editor is not None
    box = sign_question(qtbot, section.editor)
    assert box.informativeText() == (
        "A signed note cannot be changed; later corrections are addenda."
    )
    box.reject()

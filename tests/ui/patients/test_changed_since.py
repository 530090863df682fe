"""An edit form never silently replaces a value someone else saved after it was opened.

The tester's F12: front desk typed a new phone into Edit details…, signed out (the form
kept as a draft), a colleague saved another phone (`careline patient set`), and the draft,
saved on return, replaced it without a word. The same happened without a draft, when a
sync brought another workstation's change while the form was open. The form now remembers
what each field held when it opened; the person is told and chooses, Keep mine or Keep
theirs, and nothing is saved until they have (Back to the form, the default, saves
nothing). Real core, real sync; the window driven from the keyboard.
"""

from __future__ import annotations

import json
import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.edit_base import QUESTION
from app.main_window import MainWindow
from app.patients.dialog import PatientDialog
from core.records.clinic import ClinicRecords
from core.records.workstation import Workstation
from tests.ui.conftest import ADMIN, ADMIN_NAME, PASSWORD
from tests.ui.session.test_drafts import desk, edit_chart_field
from tests.ui.session.test_shared_workstation import (
    NURSE,
    NURSE_NAME,
    click_sign_out,
    shared,
    signs_in,
)
from tests.ui.test_operations import WAIT_MS, open_chart_of, other_desk, synced_window

__all__ = ["desk", "other_desk", "shared", "synced_window"]  # fixtures used here

MINE, THEIRS = "+48 111 111 111", "+48 999 999 999"


def question(qtbot: QtBot, form: PatientDialog) -> QMessageBox:
    """The "changed since you opened this form" question the form asks (once it shows)."""

    def shown() -> QMessageBox | None:
        boxes = [b for b in form.findChildren(QMessageBox, QUESTION) if b.isVisible()]
        return boxes[0] if boxes else None

    qtbot.waitUntil(lambda: shown() is not None, timeout=WAIT_MS)
    box = shown()
    assert box is not None
    return box


def answer(qtbot: QtBot, form: PatientDialog, button: str) -> None:
    """Answer from the keyboard: Return takes the focused button (Back to the form, which
    has the keyboard); the others are reached with Tab, then Space."""
    box = question(qtbot, form)
    assert box.focusWidget() is box.findChild(QPushButton, "backToForm")
    if button == "backToForm":
        QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Return)
    else:
        target = box.findChild(QPushButton, button)
        for _ in box.buttons():
            if box.focusWidget() is target:
                break
            QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Tab)
        assert box.focusWidget() is target, f"Tab never reached {button}"
        QTest.keyClick(target, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not box.isVisible())


def press_save(form: PatientDialog) -> None:
    """Return in the phone field: Save."""
    form.phone.setFocus()
    QTest.keyClick(form.phone, Qt.Key.Key_Return)


def own_updates(ws: Workstation, patient_id: str, actor: str) -> list[object]:
    rows = ws.database.query(
        "SELECT details FROM audit_log WHERE action = 'patient.update' AND entity_id = ? "
        "AND actor = ?",
        (patient_id, actor),
    )
    return [json.loads(r[0]) for r in rows]


def kept_draft_met_by_a_colleagues_phone(
    qtbot: QtBot, desk: MainWindow
) -> tuple[str, PatientDialog]:
    """The tester's steps: the admin types a new phone into Edit details… and signs out
    (the form is kept); the nurse saves another phone and a given name through core, as
    `careline patient set` does; the admin signs in again. Returns the patient and the
    restored form."""
    patient_id = desk.workspace.patient_list.model.patient_id(0)
    edit_chart_field(qtbot, desk, patient_id, "phone", MINE)
    click_sign_out(desk)
    nurse = ClinicRecords(desk.workstation.database, NURSE)
    nurse.update_patient(patient_id, {"phone": THEIRS, "given": "Marysia"})

    signs_in(qtbot, desk, ADMIN, PASSWORD)
    chart = desk.workspace.chart
    qtbot.waitUntil(lambda: chart.patient_dialog is not None, timeout=WAIT_MS)
    form = chart.patient_dialog
    assert form is not None and form.phone.text() == MINE
    assert form.given.text() == "Marysia"  # not a field of the draft: as stored now
    return patient_id, form


def test_a_restored_edit_says_who_changed_the_field_and_saves_nothing_until_asked(
    qtbot: QtBot, desk: MainWindow
) -> None:
    ws = desk.workstation
    patient_id, form = kept_draft_met_by_a_colleagues_phone(qtbot, desk)
    # Told as the form comes back, not only at Save.
    box = question(qtbot, form)
    assert re.fullmatch(
        rf"Phone was changed to “{re.escape(THEIRS)}” by {NURSE_NAME} on this workstation, "
        r"\d{4}-\d\d-\d\d \d\d:\d\d since you opened this form\.",
        box.text(),
    ), box.text()
    assert f"You typed “{MINE}”." in box.informativeText()
    answer(qtbot, form, "backToForm")  # Return: the default saves nothing
    assert form.isVisible() and form.phone.text() == MINE
    assert ws.database.query("SELECT phone FROM patients WHERE id = ?", (patient_id,)) == [
        (THEIRS,)
    ]

    press_save(form)  # Save still asks: nothing was decided
    answer(qtbot, form, "backToForm")
    assert form.isVisible()
    assert own_updates(ws, patient_id, ADMIN) == []  # nothing written by this form

    press_save(form)
    answer(qtbot, form, "keepTheirs")
    # Theirs stays; the draft's only change is dropped, so the form closes with nothing
    # to save. The colleague's other change was never touched either.
    qtbot.waitUntil(lambda: desk.workspace.chart.patient_dialog is None, timeout=WAIT_MS)
    stored = ClinicRecords(ws.database, ADMIN).get_patient(patient_id)
    assert (stored.phone, stored.given) == (THEIRS, "Marysia")
    assert own_updates(ws, patient_id, ADMIN) == []


def test_keep_mine_replaces_the_colleagues_value_and_only_that_field(
    qtbot: QtBot, desk: MainWindow
) -> None:
    ws = desk.workstation
    patient_id, form = kept_draft_met_by_a_colleagues_phone(qtbot, desk)
    answer(qtbot, form, "keepMine")  # asked as it came back: mine, knowingly
    assert form.phone.text() == MINE
    with qtbot.waitSignal(form.saved, timeout=WAIT_MS) as saved:
        press_save(form)  # decided: saves without asking again
    assert (saved.args[0].phone, saved.args[0].given) == (MINE, "Marysia")
    assert own_updates(ws, patient_id, ADMIN) == [{"fields": ["phone"]}]


def test_a_draft_kept_without_its_base_still_comes_back_and_asks(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """A draft from before forms remembered their base (no ``base`` in it): restored as
    ever, and since nobody can tell whether the field changed meanwhile, the person is
    asked before it replaces what is stored."""
    chart = open_chart_of(qtbot, signed_in, "GARCIA, Maria")
    patient = chart.patient
    assert patient is not None
    ClinicRecords(clinic.database, NURSE).update_patient(patient.id, {"phone": THEIRS})
    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    form = chart.patient_dialog
    assert form is not None
    form.restore({"phone": MINE, "patient_id": patient.id})  # as the sign-in reopens it
    box = question(qtbot, form)
    assert box.text().startswith(f"Phone is “{THEIRS}” now (saved by {NURSE} on this workstation, ")
    assert "cannot tell whether that changed since you began" in box.text()
    answer(qtbot, form, "keepMine")
    with qtbot.waitSignal(form.saved, timeout=WAIT_MS) as saved:
        press_save(form)
    assert saved.args[0].phone == MINE


@pytest.mark.parametrize("choice", ["keepTheirs", "keepMine"])
def test_a_change_synced_in_while_the_form_is_open_is_asked_about_at_save(
    qtbot: QtBot,
    synced_window: MainWindow,
    other_desk: Workstation,
    clinic: Workstation,
    choice: str,
) -> None:
    """No draft: the form is open here when a sync brings the other desk's phone. This
    save comes after that change (it is not concurrent: no conflict), so only the form's
    base tells that the person never saw it."""
    chart = open_chart_of(qtbot, synced_window, "GARCIA, Maria")
    patient = chart.patient
    assert patient is not None
    QTest.mouseClick(chart.edit_button, Qt.MouseButton.LeftButton)
    form = chart.patient_dialog
    assert form is not None
    qtbot.waitUntil(form.isVisible)
    form.phone.setFocus()
    QTest.keyClicks(form.phone, MINE)

    other_desk.records.update_patient(patient.id, {"phone": THEIRS})
    with qtbot.waitSignal(synced_window.sync.synced, timeout=WAIT_MS):
        synced_window.sync.sync_now()  # what the sync timer does
    qtbot.waitUntil(lambda: chart.phone.text() == THEIRS, timeout=WAIT_MS)

    press_save(form)
    box = question(qtbot, form)
    assert box.text().startswith(f"Phone was changed to “{THEIRS}” by {ADMIN_NAME} on workstation ")
    assert "this workstation" not in box.text()
    answer(qtbot, form, "backToForm")
    assert clinic.database.query("SELECT phone FROM patients WHERE id = ?", (patient.id,)) == [
        (THEIRS,)
    ]

    press_save(form)
    answer(qtbot, form, choice)
    qtbot.waitUntil(lambda: chart.patient_dialog is None, timeout=WAIT_MS)
    expected = MINE if choice == "keepMine" else THEIRS
    qtbot.waitUntil(lambda: chart.phone.text() == expected, timeout=WAIT_MS)
    assert len(own_updates(clinic, patient.id, ADMIN)) == (choice == "keepMine")
    # Either way one value, on both desks, and nothing left for the conflicts screen.
    with qtbot.waitSignal(synced_window.sync.synced, timeout=WAIT_MS):
        synced_window.sync.sync_now()
    assert other_desk.records.get_patient(patient.id).phone == expected
    assert other_desk.records.conflicts() == []

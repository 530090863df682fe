"""The medications card: start (with the allergy warning), change dose (stop + new, shown
as history), stop with a date."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel, QMessageBox, QPushButton
from pytestqt.qtbot import QtBot

from app.chart.list_dialogs import DateDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.main_window import MainWindow
from core.records.medications import Medications
from core.records.models import Patient
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of, rows
from tests.ui.chart.test_page import open_first_chart
from tests.ui.conftest import ADMIN, ADMIN_NAME


def _button(box: QMessageBox, text: str) -> QMessageBox:
    found = next(b for b in box.buttons() if b.text() == text)
    QTest.mouseClick(found, Qt.MouseButton.LeftButton)
    return box


def test_a_medication_matching_an_allergy_is_saved_only_after_the_warning(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    clinic.records.add_allergy(patient.id, "Penicillin", "Anaphylaxis", "severe")
    card = card_of(chart, MedicationsCard)
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    # Field to field with Tab, as a person types the prescription.
    QTest.keyClicks(dialog.fields["name"], "Amoxicillin")
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Tab)
    assert dialog.fields["strength"].hasFocus()
    QTest.keyClicks(dialog.fields["strength"], "500 mg")
    for field in ("dose", "route", "frequency"):
        QTest.keyClick(dialog.focusWidget(), Qt.Key.Key_Tab)
        assert dialog.fields[field].hasFocus()
    QTest.keyClicks(dialog.fields["frequency"], "three times daily")
    QTest.keyClick(dialog.fields["frequency"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    box = dialog.warning_box
    assert box is not None
    assert "Penicillin (Anaphylaxis, severe): amoxicillin is one of the penicillins" in (
        box.informativeText()
    )
    _button(box, "Don’t start")
    qtbot.waitUntil(lambda: dialog.warning_box is None)
    assert Medications(clinic.records).list(patient.id) == []  # nothing saved
    assert dialog.isVisible()  # the form is still there, as typed
    QTest.keyClick(dialog.fields["frequency"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    assert dialog.warning_box is not None
    _button(dialog.warning_box, "Start anyway")
    qtbot.waitUntil(lambda: card.dialog is None and len(card.medications) == 1, timeout=5_000)
    assert rows(card.table)[0][:2] == ["Amoxicillin", "500 mg, three times daily"]
    [stored] = Medications(clinic.records).list(patient.id)
    assert (stored.name, stored.strength, stored.frequency) == (
        "Amoxicillin", "500 mg", "three times daily",
    )  # fmt: skip


def _audited(clinic: Workstation, action: str, patient_id: str) -> list[tuple[str, dict[str, str]]]:
    rows = clinic.database.query(
        "SELECT actor, details FROM audit_log WHERE action = ? AND entity_id = ? ORDER BY seq",
        (action, patient_id),
    )
    return [(str(actor), json.loads(details)) for actor, details in rows]


def test_either_answer_to_the_allergy_warning_is_in_the_audit_log_as_it_says(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's F7: the warning says "Your decision … is recorded in the audit log";
    Don't start (Escape on the warning) was not. Both answers are recorded now."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    clinic.records.add_allergy(patient.id, "Penicillin", "Anaphylaxis", "severe")
    card = card_of(chart, MedicationsCard)
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    QTest.keyClicks(dialog.fields["name"], "Amoxicillin")
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    box = dialog.warning_box
    assert box is not None
    assert "Your decision, either way, is recorded in the audit log." in box.informativeText()
    QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Escape)  # Don't start
    qtbot.waitUntil(lambda: bool(_audited(clinic, "medication.not_started", patient.id)))
    assert _audited(clinic, "medication.not_started", patient.id) == [
        (ADMIN, {"patient_id": patient.id, "allergy_warning": "heeded"})
    ]
    assert Medications(clinic.records).list(patient.id) == []  # nothing started
    assert _audited(clinic, "medication.start", patient.id) == []

    # Asked again, the other answer: Tab from Don't start (which has the keyboard) to
    # Start anyway, Space.
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    box = dialog.warning_box
    assert box is not None
    go = box.findChild(QPushButton, "allergyWarningButton")
    while box.focusWidget() is not go:
        QTest.keyClick(box.focusWidget(), Qt.Key.Key_Tab)
    QTest.keyClick(go, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.medications) == 1, timeout=5_000)
    assert [d for _, d in _audited(clinic, "medication.start", patient.id)] == [
        {"patient_id": patient.id, "confirmed_allergy": "yes"}
    ]
    assert len(_audited(clinic, "medication.not_started", patient.id)) == 1  # not again


def test_a_singular_drug_name_is_warned_about_for_a_plural_allergy(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """Allergy "Peanuts": "Peanut oil ear drops" is warned about too (the same word)."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    clinic.records.add_allergy(patient.id, "Peanuts", None, "severe")
    card = card_of(chart, MedicationsCard)
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    QTest.keyClicks(dialog.fields["name"], "Peanut oil ear drops")
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    box = dialog.warning_box
    assert box is not None
    assert "Peanuts (severe): same name" in box.informativeText()
    _button(box, "Don’t start")
    qtbot.waitUntil(lambda: dialog.warning_box is None)
    assert Medications(clinic.records).list(patient.id) == []  # nothing saved


def test_changing_a_dose_stops_the_old_one_and_past_shows_both(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, MedicationsCard)
    Medications(clinic.records).start(
        patient.id,
        {"name": "Metformin", "strength": "500 mg", "start": "2024-01-05",
         "reason": "Type 2 diabetes", "prescriber": "Dr Ann"},
    )  # fmt: skip
    signed_in.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.medications) == 1, timeout=5_000)
    assert not card.change_button.isEnabled() and not card.stop_button.isEnabled()
    card.table.selectRow(0)
    QTest.mouseClick(card.change_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    # The reason is said to be kept; the prescriber is whoever is typed, not Dr Ann.
    heading = dialog.findChild(QLabel, "dialogHeading")
    assert heading is not None and "Reason kept: Type 2 diabetes" in heading.text()
    assert dialog.fields["prescriber"].text() == ""
    strength = dialog.fields["strength"]
    assert strength.text() == "500 mg" and strength.hasFocus()
    strength.selectAll()
    QTest.keyClicks(strength, "1000 mg")
    dialog.fields["start"].selectAll()
    QTest.keyClicks(dialog.fields["start"], "2023-12-31")  # before it started: refused
    QTest.keyClick(dialog.fields["start"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.errors["start"].isVisible(), timeout=5_000)
    assert "before the medication started (2024-01-05)" in dialog.errors["start"].text()
    QTest.mouseClick(dialog.fields["start"], Qt.MouseButton.LeftButton)  # into the date
    dialog.fields["start"].selectAll()
    QTest.keyClicks(dialog.fields["start"], "2024-06-01")
    QTest.keyClick(dialog.fields["start"], Qt.Key.Key_Tab)
    assert dialog.prescribing.hasFocus() and dialog.prescribing.isChecked()
    QTest.keyClick(dialog.prescribing, Qt.Key.Key_Tab)
    assert dialog.fields["prescriber"].hasFocus()
    # Naming who prescribed the new dose says someone else did, not the person signed in.
    QTest.keyClicks(dialog.fields["prescriber"], "Dr Bo")
    assert dialog.elsewhere.isChecked()
    QTest.keyClick(dialog.fields["prescriber"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None, timeout=5_000)
    [new] = Medications(clinic.records).list(patient.id)
    assert (new.prescriber, new.prescribed_by, new.reason) == ("Dr Bo", None, "Type 2 diabetes")
    qtbot.waitUntil(lambda: rows(card.table)[0][1] == "1000 mg", timeout=5_000)
    assert [r[:4] for r in rows(card.table)] == [["Metformin", "1000 mg", "2024-06-01", ""]]
    assert rows(card.table)[0][5] == "Dr Bo"  # prescribed by
    QTest.mouseClick(card.show_past, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(card.medications) == 2, timeout=5_000)
    # The old dose was changed, not stopped: the past says so, and to what, when, by whom.
    assert [r[:4] for r in rows(card.table)] == [
        ["Metformin", "1000 mg", "2024-06-01", ""],
        ["Metformin", "500 mg", "2024-01-05", "Dose changed 2024-06-01"],
    ]
    old = card.table.item(1, 3)
    assert old is not None
    assert f"Dose changed to 1000 mg on 2024-06-01 by {ADMIN_NAME}" in old.toolTip()
    assert "Stopped" not in old.toolTip()
    card.table.selectRow(1)  # history: nothing to stop or change
    assert not card.stop_button.isEnabled() and not card.change_button.isEnabled()


def card_with_lisinopril(
    qtbot: QtBot, window: MainWindow, clinic: Workstation
) -> tuple[MedicationsCard, Patient]:
    """The first chart's medications card once it lists Lisinopril, started 2024-01-05."""
    chart = open_first_chart(qtbot, window)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, MedicationsCard)
    Medications(clinic.records).start(patient.id, {"name": "Lisinopril", "start": "2024-01-05"})
    window.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.medications) == 1, timeout=5_000)
    return card, patient


def test_stopping_asks_the_date_and_moves_it_to_the_past(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    card, patient = card_with_lisinopril(qtbot, signed_in, clinic)
    card.table.selectRow(0)
    QTest.mouseClick(card.stop_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, DateDialog)
    QTest.keyClicks(dialog.date, "2024-02-30")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.errors["stop"].isVisible(), timeout=5_000)
    assert "February 2024 has 29 days" in dialog.errors["stop"].text()
    dialog.date.selectAll()
    QTest.keyClicks(dialog.date, "2024-02-29")
    QTest.keyClick(dialog.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.medications == [], timeout=5_000)
    assert card.empty.isVisible()
    [past] = Medications(clinic.records).list(patient.id, include_past=True)
    assert (past.status, past.stop) == ("stopped", "2024-02-29")


def test_a_stop_or_change_date_the_person_emptied_is_refused_never_taken_as_today(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """An emptied date was stored as today, a day nobody typed: Stop's date and a dose
    change's From, emptied, are refused under the field (the keyboard there), nothing
    changed; Return after typing the date saves."""
    card, patient = card_with_lisinopril(qtbot, signed_in, clinic)
    card.table.selectRow(0)
    QTest.mouseClick(card.change_button, Qt.MouseButton.LeftButton)
    change = card.dialog
    assert isinstance(change, MedicationDialog)
    qtbot.waitUntil(change.isActiveWindow)
    QTest.keyClicks(change.fields["strength"], "20 mg")
    QTest.mouseClick(change.fields["start"], Qt.MouseButton.LeftButton)
    change.fields["start"].selectAll()
    QTest.keyClick(change.fields["start"], Qt.Key.Key_Backspace)
    QTest.keyClick(change.fields["start"], Qt.Key.Key_Return)
    assert change.errors["start"].isVisible()
    assert change.errors["start"].text() == "Start is required."
    assert change.fields["start"].hasFocus()
    QTest.keyClicks(change.fields["start"], "2024-03-01")
    QTest.keyClick(change.fields["start"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None, timeout=5_000)
    [changed] = Medications(clinic.records).list(patient.id)
    assert (changed.strength, changed.start) == ("20 mg", "2024-03-01")
    qtbot.waitUntil(lambda: rows(card.table)[0][1] == "20 mg", timeout=5_000)
    card.table.selectRow(0)
    QTest.mouseClick(card.stop_button, Qt.MouseButton.LeftButton)
    stop = card.dialog
    assert isinstance(stop, DateDialog)
    QTest.keyClick(stop.date, Qt.Key.Key_Backspace)  # today's date, selected, erased
    assert stop.date.text() == ""
    QTest.keyClick(stop.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: stop.errors["stop"].isVisible(), timeout=5_000)
    assert stop.errors["stop"].text() == "Stop is required."
    assert stop.date.hasFocus()
    assert Medications(clinic.records).list(patient.id)[0].status == "active"
    QTest.keyClicks(stop.date, "2024-04-01")
    QTest.keyClick(stop.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.medications == [], timeout=5_000)


def _start_form(qtbot: QtBot, card: MedicationsCard) -> MedicationDialog:
    QTest.mouseClick(card.start_button, Qt.MouseButton.LeftButton)
    dialog = card.dialog
    assert isinstance(dialog, MedicationDialog)
    qtbot.waitUntil(dialog.isActiveWindow)
    return dialog


def test_the_clinician_starting_a_medication_is_its_prescriber_unless_someone_else_is(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The tester's medication did not record who prescribed it. "I prescribe it" (the
    form's choice as it opens) records the signed-in clinician; a medication prescribed
    elsewhere is recorded with the name typed, or with none, and says who recorded it."""
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    card = card_of(chart, MedicationsCard)
    dialog = _start_form(qtbot, card)
    assert dialog.prescribing.isChecked() and dialog.fields["prescriber"].text() == ""
    QTest.keyClicks(dialog.fields["name"], "Ramipril")
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.medications) == 1, timeout=5_000)
    [row] = rows(card.table)
    assert row[0] == "Ramipril" and row[5] == ADMIN_NAME  # prescribed by
    assert row[6].endswith(f" by {ADMIN_NAME}")  # recorded
    # Recorded from a hospital letter: someone else, not named.
    dialog = _start_form(qtbot, card)
    QTest.keyClicks(dialog.fields["name"], "Atorvastatin")
    QTest.mouseClick(dialog.elsewhere, Qt.MouseButton.LeftButton)
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and len(card.medications) == 2, timeout=5_000)
    stored = {m.name: m for m in Medications(clinic.records).list(patient.id)}
    assert (stored["Ramipril"].prescribed_by, stored["Ramipril"].prescriber) == (ADMIN, None)
    assert (stored["Atorvastatin"].prescribed_by, stored["Atorvastatin"].prescriber) == (
        None, None,
    )  # fmt: skip
    statin = next(r for r in rows(card.table) if r[0] == "Atorvastatin")
    assert statin[5] == "" and statin[6].endswith(f" by {ADMIN_NAME}")
    row_of = [m.name for m in card.medications].index("Atorvastatin")
    item = card.table.item(row_of, 0)
    assert item is not None and "Prescriber not recorded" in item.toolTip()


def test_a_medication_the_patient_takes_already_is_started_again_only_after_the_warning(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    chart = open_first_chart(qtbot, signed_in)
    patient = chart.patient
    assert patient is not None
    Medications(clinic.records).start(
        patient.id, {"name": "Metformin", "strength": "500 mg"}, prescribing=True
    )
    card = card_of(chart, MedicationsCard)
    signed_in.operations.catch_up()
    qtbot.waitUntil(lambda: len(card.medications) == 1, timeout=5_000)
    dialog = _start_form(qtbot, card)
    QTest.keyClicks(dialog.fields["name"], "metformin")
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    box = dialog.warning_box
    assert box is not None and box.objectName() == "duplicateMedication"
    assert "metformin is already an active medication of this patient" in box.text()
    assert "Metformin 500 mg: Recorded 20" in box.informativeText()
    assert f"by {ADMIN_NAME}; Prescribed by {ADMIN_NAME}" in box.informativeText()
    QTest.keyClick(box.focusWidget() or box, Qt.Key.Key_Escape)  # Don't start
    qtbot.waitUntil(lambda: dialog.warning_box is None)
    assert len(Medications(clinic.records).list(patient.id)) == 1  # nothing started
    assert dialog.isVisible() and dialog.fields["name"].text() == "metformin"
    QTest.keyClick(dialog.fields["name"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: dialog.warning_box is not None, timeout=5_000)
    assert dialog.warning_box is not None
    _button(dialog.warning_box, "Start anyway")
    qtbot.waitUntil(lambda: card.dialog is None and len(card.medications) == 2, timeout=5_000)
    assert sorted(m.name for m in Medications(clinic.records).list(patient.id)) == [
        "Metformin", "metformin",
    ]  # fmt: skip

"""What the visit view shows of a visit: vitals as they were typed (102 °F, 154 lb) with
their high/low mark, medications with their strength, and the diagnoses and medications
recorded on the chart while the visit is open, which the printed visit note lists too."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QPushButton
from pytestqt.qtbot import QtBot

from app.chart.cards import ListCard
from app.chart.list_dialogs import DateDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.problems import IcdSearchDialog, ProblemsCard
from app.main_window import MainWindow
from core.records.clinic import ClinicRecords
from core.records.medications import Medications
from core.records.merges import Merges
from core.records.problems import Problems
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from tests.ui.chart.cards import card_of
from tests.ui.chart.test_page import open_first_chart
from tests.ui.chart.test_printing import pdf_text, save_through_dialog
from tests.ui.chart.test_problems import ICD_LOAD
from tests.ui.chart.test_visits import visits_tab
from tests.ui.conftest import ADMIN_NAME

STORED = ("8310-5", "29463-7", "Cel", "[degF]", "[lb_av]", "mm[Hg]", "38.89", "69.853")


def test_vitals_show_as_typed_with_their_flag_and_medications_with_their_strength(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(records).start(patient_id, "Fever")
    VitalSigns(records).record(
        patient_id,
        {"temperature": "102", "weight": "154", "height": "70", "systolic": "150",
         "diastolic": "95", "pulse": "88", "spo2": "97"},
        {"temperature": "[degF]", "weight": "[lb_av]", "height": "[in_i]"},
        encounter_id=visit.id,
    )  # fmt: skip
    Medications(records).start(
        patient_id,
        {"name": "Metformin", "strength": "500 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "twice daily", "encounter_id": visit.id},
    )  # fmt: skip
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Metformin" in section.view.toPlainText(), timeout=5_000)
    shown = section.view.toPlainText()
    for expected in (
        "Temperature: 102 °F ▲",  # typed in °F, high for an adult
        "Weight: 154 lb",
        "Height: 70 in",
        "Blood pressure: 150/95 mmHg ▲",
        "Pulse: 88/min",
        "Oxygen saturation: 97%",
        "BMI: 22.1 kg/m²",  # worked out from 154 lb and 70 in
        "Metformin 500 mg, 1 tablet by mouth twice daily",
    ):
        assert expected in shown, expected
    for stored in STORED:
        assert stored not in shown, stored


def test_the_visit_view_and_its_printed_note_name_who_recorded_each_set_of_vitals(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    """Who recorded a set showed only in the Readings table's tooltip: the visit view and
    the printed visit note, which name each note's author by full name, did not say that
    the nurse took the first set and the clinician the recheck."""
    records = clinic.records
    records.add_user("lucie", "Nurse Lucie Moreau", "nurse", "lucie's own long password")
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    visit = Visits(records).start(patient_id, "Headache")
    now = dt.datetime.now().replace(second=0, microsecond=0)
    first, recheck = (now - dt.timedelta(minutes=m) for m in (20, 5))
    VitalSigns(ClinicRecords(records.db, "lucie")).record(
        patient_id,
        {"systolic": "162", "diastolic": "98", "pulse": "80"},
        observed_at=first.isoformat(timespec="minutes"),
        encounter_id=visit.id,
    )
    VitalSigns(records).record(
        patient_id,
        {"systolic": "148", "diastolic": "92"},
        observed_at=recheck.isoformat(timespec="minutes"),
        encounter_id=visit.id,
    )
    chart = open_first_chart(qtbot, signed_in)
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Measured" in section.view.toPlainText(), timeout=5_000)
    lines = [line.strip() for line in section.view.toPlainText().splitlines()]
    nurse = f"Measured {first:%Y-%m-%d %H:%M}, recorded by Nurse Lucie Moreau (set 1 of 2)"
    own = f"Measured {recheck:%Y-%m-%d %H:%M}, recorded by {ADMIN_NAME} (set 2 of 2)"
    assert lines[lines.index(nurse) + 1] == "Blood pressure: 162/98 mmHg ▲"
    assert lines[lines.index(own) + 1] == "Blood pressure: 148/92 mmHg ▲"

    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    rows = [" ".join(line.split()) for line in pdf_text(target).splitlines()]
    assert "Measurement Value Measured Recorded by" in rows
    for row in (
        f"Blood pressure 162/98 mmHg ▲ {first:%Y-%m-%d %H:%M} Nurse Lucie Moreau",
        f"Pulse 80/min {first:%Y-%m-%d %H:%M} Nurse Lucie Moreau",
        f"Blood pressure 148/92 mmHg ▲ {recheck:%Y-%m-%d %H:%M} {ADMIN_NAME}",
    ):
        assert row in rows, row
    printing.reject()


def test_problems_and_medications_added_during_an_open_visit_are_the_visits(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    # Before the visit: a medication that is none of its changes.
    Medications(records).start(patient_id, {"name": "Aspirin", "strength": "75 mg"})
    visit = Visits(records).start(patient_id, "Cough")
    chart = open_first_chart(qtbot, signed_in)

    # A diagnosis, picked from ICD-10-CM with the keyboard; the form names the visit.
    problems = card_of(chart, ProblemsCard)
    QTest.mouseClick(problems.add_button, Qt.MouseButton.LeftButton)
    search = problems.dialog
    assert isinstance(search, IcdSearchDialog)
    qtbot.waitUntil(lambda: search._ready and search.visit_link.label.isVisible(), timeout=ICD_LOAD)
    assert search.visit_link.label.text() == "Recorded in today's visit (Cough)"
    QTest.keyClicks(search.search, "acute bronchitis, unspec")
    qtbot.waitUntil(lambda: search.results.rowCount() > 0, timeout=10_000)
    QTest.keyClick(search.search, Qt.Key.Key_Down)
    assert search.chosen_code() == "J20.9"
    QTest.keyClick(search.results, Qt.Key.Key_Return)
    QTest.keyClick(search.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: problems.dialog is None and len(problems.problems) == 1, timeout=5_000)
    [problem] = Problems(records).list(patient_id)
    assert problem.encounter_id == visit.id

    # A medication started, typed field to field.
    meds = card_of(chart, MedicationsCard)
    QTest.mouseClick(meds.start_button, Qt.MouseButton.LeftButton)
    form = meds.dialog
    assert isinstance(form, MedicationDialog) and form.visit_link is not None
    qtbot.waitUntil(lambda: form.visit_link is not None and form.visit_link.label.isVisible())
    assert form.visit_link.label.text() == "Recorded in today's visit (Cough)"
    for name, typed in (
        ("name", "Salbutamol"),
        ("strength", "100 micrograms"),
        ("dose", "2 puffs"),
        ("route", "inhaled"),
        ("frequency", "as needed"),
    ):
        QTest.keyClicks(form.fields[name], typed)  # fmt: skip
    QTest.keyClick(form.fields["frequency"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: meds.dialog is None and len(meds.medications) == 2, timeout=5_000)
    started = next(m for m in Medications(records).list(patient_id) if m.name == "Salbutamol")
    assert started.encounter_id == visit.id

    # The visit view lists them; the medication taken before the visit is not its change.
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Salbutamol" in section.view.toPlainText(), timeout=5_000)
    shown = section.view.toPlainText()
    assert "Diagnoses" in shown and "J20.9 Acute bronchitis, unspecified" in shown
    assert "Medication changes" in shown
    assert "Salbutamol 100 micrograms, 2 puffs inhaled as needed" in shown
    assert "Aspirin" not in shown

    # And so does the printed visit note.
    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    text = " ".join(pdf_text(target).split())  # the text layer may space words wider
    assert "Diagnoses" in text and "Acute bronchitis, unspecified" in text and "J20.9" in text
    assert "Medication changes" in text
    assert "Salbutamol 100 micrograms, 2 puffs, inhaled, as needed" in text
    assert "Aspirin" not in text
    printing.reject()


def test_without_an_open_visit_a_problem_belongs_to_no_visit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Visits(records).close(Visits(records).start(patient_id, "Yesterday's review").id)
    chart = open_first_chart(qtbot, signed_in)
    problems = card_of(chart, ProblemsCard)
    QTest.mouseClick(problems.add_button, Qt.MouseButton.LeftButton)
    search = problems.dialog
    assert isinstance(search, IcdSearchDialog)
    qtbot.waitUntil(lambda: search._ready and search.visit_link.known, timeout=ICD_LOAD)
    assert not search.visit_link.label.isVisible()  # a closed visit takes nothing new
    QTest.keyClicks(search.search, "I10")
    qtbot.waitUntil(lambda: search.results.rowCount() > 0, timeout=10_000)
    QTest.keyClick(search.search, Qt.Key.Key_Down)
    QTest.keyClick(search.results, Qt.Key.Key_Return)
    QTest.keyClick(search.onset, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: problems.dialog is None and len(problems.problems) == 1, timeout=5_000)
    [problem] = Problems(records).list(patient_id)
    assert problem.encounter_id is None


def test_a_dose_changed_during_an_open_visit_is_the_visits_on_screen_and_on_paper(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    """The tester's D1: the new dose was stored in no visit, so the visit and its printed
    note (a pharmacy's copy) listed only the old dose, stopped."""
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Medications(records).start(
        patient_id,
        {"name": "Ibuprofen", "strength": "400 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "three times daily with food", "start": "2024-01-05"},
    )  # fmt: skip
    visit = Visits(records).start(patient_id, "Knee pain")
    chart = open_first_chart(qtbot, signed_in)
    meds = card_of(chart, MedicationsCard)
    qtbot.waitUntil(lambda: len(meds.medications) == 1, timeout=5_000)
    meds.table.selectRow(0)
    QTest.mouseClick(meds.change_button, Qt.MouseButton.LeftButton)
    form = meds.dialog
    assert isinstance(form, MedicationDialog)
    qtbot.waitUntil(form.visit_link.label.isVisible, timeout=5_000)
    assert form.visit_link.label.text() == "Recorded in today's visit (Knee pain)"
    strength = form.fields["strength"]
    qtbot.waitUntil(strength.hasFocus)
    QTest.keyClick(strength, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(strength, "200 mg")
    for _ in ("dose", "route", "frequency"):
        QTest.keyClick(form.focusWidget(), Qt.Key.Key_Tab)
    frequency = form.fields["frequency"]
    assert frequency.hasFocus()
    QTest.keyClick(frequency, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClicks(frequency, "twice daily")
    QTest.keyClick(frequency, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: meds.dialog is None, timeout=5_000)
    [new] = Medications(records).list(patient_id)
    assert (new.strength, new.frequency, new.encounter_id) == ("200 mg", "twice daily", visit.id)
    today = new.start
    assert today == dt.date.today().isoformat()

    # The visit view lists the old dose, stopped by the change, and the new dose.
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Ibuprofen 200 mg" in section.view.toPlainText(), timeout=5_000)
    shown = section.view.toPlainText()
    assert (
        "Ibuprofen 400 mg, 1 tablet by mouth three times daily with food "
        f"(from 2024-01-05, stopped {today}: dose changed)"
    ) in shown
    assert f"Ibuprofen 200 mg, 1 tablet by mouth twice daily (from {today})" in shown
    assert shown.index("Ibuprofen 400 mg") < shown.index("Ibuprofen 200 mg")

    # And so does the printed visit note.
    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    text = " ".join(pdf_text(target).split())
    assert "200 mg, 1 tablet, by mouth, twice daily" in text
    assert "400 mg, 1 tablet, by mouth, three times daily with food" in text
    assert "dose changed" in text
    assert text.index("400 mg") < text.index("200 mg")
    printing.reject()


def test_a_medication_stopped_and_a_problem_resolved_during_an_open_visit_are_the_visits(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation, tmp_path: Path
) -> None:
    """Stopped during today's visit, the drug was in neither the visit view nor its printed
    note: the visit read as if nothing had changed. Both were recorded before the visit."""
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Medications(records).start(
        patient_id,
        {"name": "Aspirin", "strength": "75 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "once daily", "start": "2024-01-05"},
    )  # fmt: skip
    Problems(records).add(patient_id, uncoded="Dry cough", onset="2024")
    Visits(records).start(patient_id, "Bleeding gums")
    chart = open_first_chart(qtbot, signed_in)
    today = dt.date.today().isoformat()

    # Stop, then resolve, each form naming the visit; the date is today's, as offered.
    meds, problems = card_of(chart, MedicationsCard), card_of(chart, ProblemsCard)
    _end_the_one_item(qtbot, meds, meds.stop_button, "today's visit (Bleeding gums)")
    _end_the_one_item(qtbot, problems, problems.resolve_button, "today's visit (Bleeding gums)")

    # The visit view lists the medication stopped and the problem resolved in it.
    section = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: "Dry cough" in section.view.toPlainText(), timeout=5_000)
    shown = section.view.toPlainText()
    assert (
        f"Aspirin 75 mg, 1 tablet by mouth once daily (from 2024-01-05, stopped {today})"
    ) in shown
    assert f"Dry cough (resolved {today})" in shown

    # And so does the printed visit note.
    QTest.mouseClick(section.print_button, Qt.MouseButton.LeftButton)
    printing = section.print_dialog
    assert printing is not None
    target = tmp_path / "visit.pdf"
    save_through_dialog(qtbot, printing, target)
    text = " ".join(pdf_text(target).split())
    assert f"Aspirin 75 mg, 1 tablet, by mouth, once daily 2024-01-05 {today}" in text
    assert f"Dry cough uncoded Resolved {today}" in text
    printing.reject()


def _end_the_one_item(
    qtbot: QtBot, card: ListCard[Any], button: QPushButton, recorded_in: str | None
) -> None:
    """Stop (resolve) the card's one item on today's date with Return, the form naming the
    visit it is ``recorded_in`` ("today's visit (reason)"), or with None saying nothing of
    a visit (none open, or none of the item's own patient)."""
    qtbot.waitUntil(lambda: len(card.items) == 1, timeout=5_000)
    card.table.selectRow(0)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    form = card.dialog
    assert isinstance(form, DateDialog) and form.visit_link is not None
    link = form.visit_link
    if recorded_in is None:
        qtbot.waitUntil(lambda: link.known, timeout=5_000)
        assert not link.label.isVisible()  # no visit of the item's patient is open
    else:
        qtbot.waitUntil(link.label.isVisible, timeout=5_000)
        assert link.label.text() == f"Recorded in {recorded_in}"
    qtbot.waitUntil(form.date.hasFocus)
    QTest.keyClick(form.date, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: card.dialog is None and card.items == [], timeout=5_000)


def test_without_an_open_visit_a_stop_and_a_resolution_belong_to_no_visit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """The forms say nothing of a visit, and the closed visit lists neither."""
    records = clinic.records
    patient_id = signed_in.workspace.patient_list.model.patient_id(0)
    Medications(records).start(patient_id, {"name": "Aspirin", "strength": "75 mg"})
    Problems(records).add(patient_id, uncoded="Dry cough")
    closed = Visits(records).start(patient_id, "Yesterday's review")
    Visits(records).close(closed.id)
    chart = open_first_chart(qtbot, signed_in)
    meds, problems = card_of(chart, MedicationsCard), card_of(chart, ProblemsCard)
    _end_the_one_item(qtbot, meds, meds.stop_button, None)
    _end_the_one_item(qtbot, problems, problems.resolve_button, None)
    contents = Visits(records).contents(closed.id)
    assert (contents.medications, contents.problems) == ((), ())
    [stopped] = Medications(records).list(patient_id, include_past=True)
    [resolved] = Problems(records).list(patient_id, include_resolved=True)
    assert (stopped.status, resolved.status) == ("stopped", "resolved")


def test_on_a_merged_chart_a_merged_in_registrations_items_end_outside_the_kept_ones_visit(
    qtbot: QtBot, signed_in: MainWindow, clinic: Workstation
) -> None:
    """A medication and a problem from a registration merged into this chart, stopped and
    resolved while the kept registration has a visit open: a list item is recorded only in
    a visit of its own patient, and the forms offered this one, which core then refused
    ("is not a visit of this patient"): neither could be ended until the visit closed.
    They end in no visit, the forms saying nothing of one."""
    records = clinic.records
    kept = signed_in.workspace.patient_list.model.patient_id(0)
    duplicate = records.add_patient("Zzmerged", "Registration", "1970-01-01", "female").id
    Medications(records).start(duplicate, {"name": "Aspirin", "strength": "75 mg"})
    Problems(records).add(duplicate, uncoded="Dry cough")
    Merges(records).merge(duplicate, kept, "registered twice")
    visit = Visits(records).start(kept, "Bleeding gums")
    chart = open_first_chart(qtbot, signed_in)
    meds, problems = card_of(chart, MedicationsCard), card_of(chart, ProblemsCard)
    _end_the_one_item(qtbot, meds, meds.stop_button, None)
    _end_the_one_item(qtbot, problems, problems.resolve_button, None)
    [stopped] = Medications(records).list(kept, include_past=True)
    [resolved] = Problems(records).list(kept, include_resolved=True)
    assert (stopped.status, resolved.status) == ("stopped", "resolved")
    contents = Visits(records).contents(visit.id)
    assert (contents.medications, contents.problems) == ((), ())

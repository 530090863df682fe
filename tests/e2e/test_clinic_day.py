"""A clinic's day on one workstation, offline, then seen on a second one after sync.

The workstation was joined to the clinic server the evening before (accounts and the
patient arrived with that sync); the server is then stopped, so the whole day happens with
no server reachable. On the real MainWindow, driven by keys and clicks: the receptionist
(front desk) books Akua Mensah and checks her in; a nurse who has never signed in on this
computer starts the visit from the schedule and records BP, pulse and a temperature in °F;
the doctor writes and signs a note, adds asthma (J45…) from the ICD-10-CM search, starts
Salbutamol and saves the visit note as a PDF through the print dialog. The server comes
back, the workstation's "Sync now" sends the day, and a second workstation shows it: the
appointment in its day view, the visit with the signed note, the vitals, the problem and
the medication in the chart.

``CARELINE_E2E_SHOTS`` names a folder to keep screenshots of the steps in.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget
from pytestqt.qtbot import QtBot

from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.page import ChartPage
from app.chart.problems import IcdSearchDialog, ProblemsCard
from app.chart.visits import VisitsSection
from app.chart.vitals import TABLE_COLUMNS, VitalsSection
from app.main_window import MainWindow
from app.sync.controller import SYNCED
from core.records.medications import Medications
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.schedule import Schedule
from core.records.visits import Visits
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import add_clinic, join_clinic, live_server, sync_at
from tests.ui.chart.cards import card_of, rows
from tests.ui.chart.test_printing import pdf_text, save_through_dialog
from tests.ui.chart.test_visits import open_editor, sign_note, visits_tab
from tests.ui.conftest import OFFSCREEN_NOISE, WindowFactory
from tests.ui.conftest import make_window as make_window  # the UI tests' fixture
from tests.ui.schedule.conftest import day_rows, open_schedule, select_row, wait_loaded
from tests.ui.schedule.test_schedule_page import booking_dialog, find_patient
from tests.ui.session.test_shared_workstation import click_sign_out, type_sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.qt_log_ignore(OFFSCREEN_NOISE),
    pytest.mark.usefixtures("no_keyring"),
]

DESK, NURSE, DOCTOR = "desk.amy", "nurse.jo", "dr.lee"
STAFF = (
    (DESK, "Amy Boateng", "front_desk", "amy's desk password"),
    (NURSE, "Jo Nurse", "clinician", "jo's own password"),
    (DOCTOR, "Dr Sam Lee", "clinician", "sam lee's password"),
)
PASSWORDS = {user: password for user, _n, _r, password in STAFF}
NOTE = "Wheezy since Sunday, worse at night. Salbutamol as needed."
# The app syncs soon after a write and retries quickly: the test need not wait long.
SYNC_OPTIONS = {"debounce_ms": 300, "interval_ms": 600_000, "backoff_base_ms": 500}
ICD_LOAD = 60_000  # the code list is read on first use


def shot(widget: QWidget, name: str) -> None:
    """Keep a picture of ``widget`` in CARELINE_E2E_SHOTS, when it names a folder."""
    folder = os.environ.get("CARELINE_E2E_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        assert widget.grab().save(str(Path(folder) / f"{name}.png"))


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def signs_in(qtbot: QtBot, window: MainWindow, username: str, password: str) -> None:
    """Type the name and password, Enter; wait for the patient list."""
    type_sign_in(qtbot, window, username, password)
    qtbot.waitUntil(lambda: window.session is not None, timeout=10_000)
    assert window.session is not None and window.session.user.username == username
    model = window.workspace.patient_list.model
    qtbot.waitUntil(lambda: not model.loading and model.rowCount() > 0, timeout=10_000)


def signs_out(qtbot: QtBot, window: MainWindow) -> None:
    click_sign_out(window)
    qtbot.waitUntil(lambda: window.session is None, timeout=10_000)
    qtbot.waitUntil(lambda: window.stack.currentWidget() is window.sign_in_page)


def click_tab(chart: ChartPage, title: str) -> None:
    bar = chart.tabs.tabBar()
    index = next(i for i in range(chart.tabs.count()) if chart.tabs.tabText(i) == title)
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(index).center())


def type_into(widget: QWidget, text: str) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)
    QTest.keyClicks(widget, text)


def test_a_clinic_day_offline_then_seen_on_a_second_workstation(
    qtbot: QtBot, tmp_path: Path, make_window: WindowFactory
) -> None:
    server_dir = tmp_path / "server"
    today = dt.date.today()
    # ----- the evening before: join both workstations, then the server goes away -------
    with live_server(server_dir) as live:
        port = int(live.url.rsplit(":", 1)[1])
        clinic = add_clinic(live.server, "Harbour Clinic")
        desk, cred_desk = join_clinic(live.server, live.url, live.ca_pem, clinic, tmp_path / "a")
        for username, name, role, password in STAFF:
            desk.records.add_user(username, name, role, password)
        patient = desk.records.add_patient("Mensah", "Akua", "1982-06-14", mrn="MRN-77")
        desk.records.add_patient("Okafor", "Chinedu", "1990-06-15")
        sync_at(desk, cred_desk)
        back, cred_back = join_clinic(
            live.server, live.url, live.ca_pem, clinic, tmp_path / "b", "back office"
        )
        # The receptionist has worked at this desk before (her password opens it when it
        # is closed); the nurse and the doctor never have.
        desk.sign_out()
        desk.sign_in(DESK, PASSWORDS[DESK])
        desk.lock()
        back.lock()
    assert sorted(desk.password_users()) == ["admin", DESK]

    window = make_window(desk, sync_options=SYNC_OPTIONS)

    # ----- 08:50 the receptionist books Akua Mensah and checks her in ---------------------
    signs_in(qtbot, window, DESK, PASSWORDS[DESK])
    page = open_schedule(qtbot, window)
    # The clinic's clock at 08:50 while she books (09:00 is still to come, whenever the
    # test runs: a time gone by is asked about first); the real clock again after.
    real_clock = page.clock
    page.clock = lambda: dt.datetime.combine(today, dt.time(8, 50))
    dialog = booking_dialog(qtbot, window)
    find_patient(qtbot, dialog, "mensah")
    assert dialog.chosen.text() == "Booking for MENSAH, Akua"
    dialog.start.selectAll()
    QTest.keyClicks(dialog.start, f"{today.isoformat()} 09:00")
    # The doctor, chosen in the list with the arrow keys as a person does.
    dialog.clinician.setFocus()
    for _ in range(dialog.clinician.count()):
        if dialog.clinician.currentData() == DOCTOR:
            break
        QTest.keyClick(dialog.clinician, Qt.Key.Key_Down)
    assert dialog.clinician.currentText() == "Dr Sam Lee"
    type_into(dialog.reason, "Wheeze")
    shot(dialog, "01-booking")
    QTest.keyClick(dialog.reason, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: page.dialog is None, timeout=10_000)
    page.clock = real_clock
    wait_loaded(qtbot, page)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 1, timeout=10_000)
    assert day_rows(page)[0] == ("09:00–09:15", "MENSAH, Akua", "Dr Sam Lee", "Wheeze", "Booked")
    select_row(page, 0)
    click(page.arrived_button)
    qtbot.waitUntil(lambda: day_rows(page)[0][4] == "Arrived", timeout=10_000)
    qtbot.waitUntil(lambda: [n for n, _w in page.waiting_texts()] == ["MENSAH, Akua"])
    shot(window, "02-checked-in")
    signs_out(qtbot, window)

    # ----- the nurse, first time on this computer: Start visit, then vitals --------------
    signs_in(qtbot, window, NURSE, PASSWORDS[NURSE])
    page = open_schedule(qtbot, window)
    qtbot.waitUntil(lambda: page.waiting_texts() != [], timeout=10_000)
    select_row(page, 0)
    qtbot.waitUntil(page.start_visit_button.isEnabled)
    click(page.start_visit_button)
    chart = window.workspace.chart
    visits = card_of(chart, VisitsSection)
    qtbot.waitUntil(
        lambda: chart.patient is not None and chart.patient.id == patient.id, timeout=10_000
    )
    qtbot.waitUntil(lambda: len(visits.visits) == 1, timeout=10_000)
    click_tab(chart, "Vitals")
    vitals = card_of(chart, VitalsSection)
    qtbot.waitUntil(vitals.record_button.isEnabled, timeout=10_000)
    f = vitals.fields
    type_into(f["systolic"].edit, "128")
    QTest.keyClick(f["systolic"].edit, Qt.Key.Key_Tab)
    QTest.keyClicks(f["diastolic"].edit, "82")
    type_into(f["pulse"].edit, "88")
    type_into(f["temperature"].edit, "100.4")
    QTest.keyClick(f["temperature"].edit, Qt.Key.Key_Tab)
    unit = QApplication.focusWidget()
    assert unit is f["temperature"].unit and unit is not None
    QTest.keyClick(unit, Qt.Key.Key_Down)  # °C -> °F
    # The form files the set under the visit just started, without being told.
    [started] = Visits(desk.records).list_visits(patient.id)
    assert vitals.visit.currentData() == started.id
    assert vitals.visit.currentText() == f"{started.started_at[11:16]} Wheeze"  # today's
    assert f["temperature"].unit_code == "[degF]"
    shot(window, "03-vitals-typed")
    click(vitals.record_button)
    qtbot.waitUntil(lambda: vitals.table.rowCount() == 1, timeout=10_000)
    column = {key: i for i, (key, _) in enumerate(TABLE_COLUMNS, start=1)}
    shown = rows(vitals.table)[0]
    assert [shown[column[k]] for k in ("bp", "pulse")] == ["128/82", "88"]
    assert shown[column["temperature"]].startswith("100.4 °F")
    signs_out(qtbot, window)
    assert NURSE in desk.password_users()  # her first sign-in here added her slot

    # ----- the doctor: note, sign, diagnosis, medication, print --------------------------
    signs_in(qtbot, window, DOCTOR, PASSWORDS[DOCTOR])
    page = open_schedule(qtbot, window)
    qtbot.waitUntil(lambda: len(day_rows(page)) == 1, timeout=10_000)
    assert day_rows(page)[0][4] == "In visit"
    select_row(page, 0)
    click(page.open_chart_button)
    qtbot.waitUntil(
        lambda: (
            window.workspace.pages.currentWidget() is chart
            and chart.patient is not None
            and chart.patient.id == patient.id
        ),
        timeout=10_000,
    )
    visits = visits_tab(qtbot, chart)
    qtbot.waitUntil(lambda: len(visits.visits) == 1, timeout=10_000)
    item = visits.timeline.item(0)
    QTest.mouseClick(
        visits.timeline.viewport(),
        Qt.MouseButton.LeftButton,
        pos=visits.timeline.visualItemRect(item).center(),
    )
    qtbot.waitUntil(lambda: visits.contents is not None, timeout=10_000)
    editor = open_editor(qtbot, visits)
    QTest.keyClicks(editor.body, NOTE)
    qtbot.waitUntil(lambda: editor.status.text() == "Saved", timeout=10_000)
    shot(window, "04-note")
    sign_note(qtbot, editor)  # and Sign note on the question it asks
    qtbot.waitUntil(lambda: visits.editor is None, timeout=10_000)
    qtbot.waitUntil(
        lambda: (n := visits.selected_note()) is not None and n.signed_at is not None,
        timeout=10_000,
    )
    assert NOTE in visits.view.toPlainText()

    problems = card_of(chart, ProblemsCard)
    click(problems.add_button)
    search = problems.dialog
    assert isinstance(search, IcdSearchDialog)
    qtbot.waitUntil(lambda: search._ready, timeout=ICD_LOAD)
    QTest.keyClicks(search.search, "mild intermittent asthma")
    qtbot.waitUntil(lambda: search.results.rowCount() > 0, timeout=10_000)
    found = [r[0] for r in rows(search.results)]
    assert found and all(code.startswith("J45") for code in found[:3]), found
    QTest.keyClick(search.search, Qt.Key.Key_Down)  # into the list, the best match chosen
    assert search.chosen_code() == "J45.2" and search.chosen_is_category()  # grey
    QTest.keyClick(search.results, Qt.Key.Key_Down)  # the complete code under it
    code = search.chosen_code()
    assert code == "J45.20" and not search.chosen_is_category()
    shot(search, "05-icd-search")
    QTest.keyClick(search.results, Qt.Key.Key_Return)  # picked: on to the onset
    QTest.keyClick(search.onset, Qt.Key.Key_Return)  # no onset typed: none stored
    qtbot.waitUntil(lambda: problems.dialog is None and len(problems.problems) == 1)
    assert rows(problems.table)[0][0] == code

    meds = card_of(chart, MedicationsCard)
    click(meds.start_button)
    med = meds.dialog
    assert isinstance(med, MedicationDialog)
    qtbot.waitUntil(med.isActiveWindow)
    QTest.keyClicks(med.fields["name"], "Salbutamol")
    QTest.keyClick(med.fields["name"], Qt.Key.Key_Tab)
    QTest.keyClicks(med.fields["strength"], "100 mcg")
    type_into(med.fields["frequency"], "as needed")
    QTest.keyClick(med.fields["frequency"], Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: meds.dialog is None and len(meds.medications) == 1, timeout=10_000)
    assert rows(meds.table)[0][:2] == ["Salbutamol", "100 mcg, as needed"]
    shot(window, "06-chart")

    visits = visits_tab(qtbot, chart)
    qtbot.waitUntil(visits.print_button.isEnabled)
    click(visits.print_button)
    printing = visits.print_dialog
    assert printing is not None
    qtbot.waitUntil(printing.isVisible)
    pdf = tmp_path / "visit-note.pdf"
    save_through_dialog(qtbot, printing, pdf)
    shot(printing, "07-print")
    text = pdf_text(pdf)
    for expected in (
        "MENSAH, Akua",
        "Blood pressure 128/82 mmHg",
        "Pulse 88/min",
        "Temperature 100.4 °F ▲",  # as the nurse typed it, flagged high
        "Mild intermittent asthma, uncomplicated J45.20",  # the diagnosis and medication made here
        "Salbutamol 100 mcg, as needed",
        NOTE,
        "Signed by Dr Sam Lee",
        "Clinician Dr Sam Lee",  # the appointment's clinician, though the nurse started it
    ):
        assert expected in text, f"{expected!r} not in the printed visit note:\n{text}"
    printing.reject()

    # Nothing has left this workstation yet: the server was away all day.
    assert window.sync.status.state != SYNCED

    # ----- the server comes back; Sync now sends the day --------------------------------
    with live_server(server_dir, port=port):
        click(window.sync_status.sync_button)
        qtbot.waitUntil(lambda: window.sync.status.state == SYNCED, timeout=30_000)
        shot(window, "08-synced")

        # ----- the back office workstation syncs and shows the same day -----------------
        other = make_window(back, sync_options=SYNC_OPTIONS)
        signs_in(qtbot, other, "admin", PASSWORD)
        qtbot.waitUntil(lambda: other.sync.status.state == SYNCED, timeout=30_000)
        page2 = open_schedule(qtbot, other)
        qtbot.waitUntil(lambda: len(day_rows(page2)) == 1, timeout=10_000)
        assert day_rows(page2)[0][:4] == ("09:00–09:15", "MENSAH, Akua", "Dr Sam Lee", "Wheeze")
        assert day_rows(page2)[0][4] in ("In visit", "Done")
        shot(other, "09-second-schedule")
        select_row(page2, 0)
        click(page2.open_chart_button)
        chart2 = other.workspace.chart
        qtbot.waitUntil(
            lambda: chart2.patient is not None and chart2.patient.id == patient.id,
            timeout=10_000,
        )
        problems2 = card_of(chart2, ProblemsCard)
        meds2 = card_of(chart2, MedicationsCard)
        qtbot.waitUntil(lambda: len(problems2.problems) == 1 and len(meds2.medications) == 1)
        assert rows(problems2.table)[0][0] == code
        assert rows(meds2.table)[0][0] == "Salbutamol"
        visits2 = visits_tab(qtbot, chart2)
        qtbot.waitUntil(lambda: len(visits2.visits) == 1, timeout=10_000)
        item2 = visits2.timeline.item(0)
        QTest.mouseClick(
            visits2.timeline.viewport(),
            Qt.MouseButton.LeftButton,
            pos=visits2.timeline.visualItemRect(item2).center(),
        )
        qtbot.waitUntil(lambda: NOTE in visits2.view.toPlainText(), timeout=10_000)
        # The visit names its vitals and shows them as the nurse typed them.
        shown_visit = visits2.view.toPlainText()
        for line in ("Pulse: 88/min", "Temperature: 100.4 °F ▲", "Blood pressure: 128/82 mmHg"):
            assert line in shown_visit, shown_visit
        shot(other, "10-second-visit")
        click_tab(chart2, "Vitals")
        vitals2 = card_of(chart2, VitalsSection)
        qtbot.waitUntil(lambda: vitals2.table.rowCount() == 1, timeout=10_000)
        assert rows(vitals2.table)[0][column["bp"]] == "128/82"
        shot(other, "11-second-vitals")

        # And underneath, in the second workstation's records: the same day, signed.
        records = back.records
        [visit] = Visits(records).list_visits(patient.id)
        [appointment] = Schedule(records).day(today)
        assert visit.appointment_id == appointment.id
        assert appointment.status in ("in_visit", "done")
        [note] = Notes(records).for_patient(patient.id)
        assert NOTE in note.body and note.signed_at is not None
        [problem] = Problems(records).list(patient.id)
        assert (problem.code, problem.status) == (code, "active")
        [medication] = Medications(records).list(patient.id)
        assert medication.name == "Salbutamol"
        assert window.workstation is desk and cred_back.server_url.endswith(f":{port}")

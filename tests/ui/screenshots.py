"""Screenshots of every screen, to look at the app as a person would.

Builds throwaway clinics in a temporary folder with realistic sample patients, drives the
real window through first run, sign-in, search and a chart, and saves PNGs::

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python -m tests.ui.screenshots screenshots

Not a test (pytest collects only ``test_*.py``); it never touches an OS keyring.
"""

from __future__ import annotations

import contextlib
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import keyring
import keyring.backends.fail
from PySide6.QtWidgets import QApplication, QScrollArea, QWidget, QWizard

from app.admin.staff import AddStaffDialog, StaffDialog
from app.admin.two_factor import TwoFactorDialog
from app.chart.medications import MedicationDialog, MedicationsCard
from app.chart.problems import IcdSearchDialog, ProblemsCard
from app.chart.visits import VisitsSection
from app.main import set_up_application
from app.main_window import MainWindow
from app.session.key_dialogs import ChangePasswordDialog, NewRecoveryKeyDialog, RekeyDialog
from core.crypto.kdf import FAST_PARAMS
from core.records import two_factor
from core.records.allergy_status import AllergyRecords
from core.records.entries import ClinicalEntries
from core.records.errors import AuthenticationError
from core.records.medications import Medications
from core.records.notes import Notes
from core.records.problems import Problems
from core.records.visits import Visits
from core.records.vital_signs import VitalSigns
from core.records.workstation import Workstation
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic

PASSWORD = "correct horse battery"
FAMILIES = [
    "Garcia",
    "Okafor",
    "Lindqvist",
    "Nguyen",
    "Haddad",
    "Kowalski",
    "Mensah",
    "O'Brien",
    "Tanaka",
    "Rossi",
    "Dubois",
    "Fernandes",
    "Schmidt",
    "Ivanova",
    "Patel",
    "Nakamura",
    "Adeyemi",
    "Murphy",
    "Novak",
    "Jensen",
    "Silva",
    "Cohen",
    "Ahmed",
    "Brennan",
    "Moreau",
    "Yilmaz",
    "Kim",
    "Andersson",
    "Popescu",
    "Garcia-Lopez",
]
GIVENS = [
    "Maria",
    "Luis",
    "Chinedu",
    "Astrid",
    "Bao",
    "Yusuf",
    "Agnieszka",
    "Kwame",
    "Siobhan",
    "Haruto",
    "Giulia",
    "Camille",
    "Joana",
    "Lena",
    "Olga",
    "Priya",
    "Ren",
    "Tunde",
    "Aoife",
    "Petra",
    "Mads",
    "Thiago",
    "Noa",
    "Fatima",
    "Declan",
    "Elise",
    "Emre",
    "Min-jun",
    "Ingrid",
    "Andrei",
]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Process events until ``condition`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("screen did not reach the expected state")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.3) -> None:
    """Let layouts and paints finish."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)


def save(widget: QWidget, out: Path, name: str) -> None:
    """Grab ``widget`` (with its children) as ``out/name.png``."""
    settle()
    path = out / f"{name}.png"
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(path)


def sample_clinic(data_dir: Path, count: int = 48) -> Workstation:
    """A locked clinic with ``count`` realistic patients, some with allergies."""
    ws = Workstation(data_dir, kdf_params=FAST_PARAMS)
    ws.init("Riverside Family Practice", "mgarcia", "Maria Garcia", PASSWORD)
    records = ws.records
    rng = random.Random(7)
    for i in range(count):
        family, given = FAMILIES[i % len(FAMILIES)], GIVENS[(i * 7 + i // 30) % len(GIVENS)]
        born = f"{rng.randint(1938, 2022)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        p = records.add_patient(
            family,
            given,
            born,
            sex=rng.choice(("female", "male", None)),
            mrn=f"RFP-{10234 + i * 17}" if i % 5 else None,
            phone=f"555 01{i:02d}" if i % 3 else None,
        )
        if family == "Okafor":
            records.add_allergy(p.id, "Penicillin", "Anaphylaxis", "severe")
            records.add_allergy(p.id, "Latex", "Contact dermatitis", "mild")
            records.add_allergy(p.id, "Ibuprofen", None, "moderate")
    ws.lock()
    return ws


def signed_in_window(
    ws: Workstation, size: tuple[int, int] | None = None, username: str = "mgarcia"
) -> MainWindow:
    """A main window on ``ws``, signed in as ``username``, the patient list loaded."""
    window = MainWindow(ws, auto_lock_ms=600_000)
    if size is not None:
        window.resize(*size)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText(username)
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    wait_for(lambda: window.workspace.patient_list.model.rowCount() > 0)
    return window


def first_run(out: Path, tmp: Path) -> None:
    """Wizard pages, the recovery key page included."""
    window = MainWindow(Workstation(tmp / "new", kdf_params=FAST_PARAMS))
    window.show()
    window.start()
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.clinic_name.setText("Riverside Family Practice")
    save(window, out, "01-first-run-clinic")
    wizard.next()
    admin = wizard.admin_page
    admin.username.setText("mgarcia")
    admin.full_name.setText("Maria Garcia")
    admin.password.setText("short")
    admin.confirm.setText("short")
    wizard.button(QWizard.WizardButton.CommitButton).click()
    wait_for(admin.strength.refused)
    save(window, out, "02-first-run-admin-error")
    admin.password.setText(PASSWORD)
    admin.confirm.setText(PASSWORD)
    wizard.button(QWizard.WizardButton.CommitButton).click()
    wait_for(lambda: wizard.currentPage() is wizard.recovery_page)
    save(window, out, "03-recovery-key")
    wizard.recovery_page.stored.setChecked(True)
    wizard.button(QWizard.WizardButton.FinishButton).click()
    save(window, out, "04-sign-in-after-setup")
    window.shutdown()
    window.close()


def daily_use(out: Path, tmp: Path) -> None:
    """Sign-in, the list, search, a chart, the dialogs, and the locked screen."""
    ws = sample_clinic(tmp / "clinic")
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText("mgarcia")
    page.password.setText("not my password")
    page.button.click()
    wait_for(lambda: page.error.isVisible() and not page.busy)
    save(window, out, "05-sign-in-error")
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    patients = window.workspace.patient_list
    wait_for(lambda: patients.model.rowCount() > 0 and "clinic" in patients.status.text())
    save(window, out, "06-patient-list")
    patients.search.setText("oka")
    wait_for(lambda: patients.model.query == "oka" and not patients.model.loading)
    save(window, out, "07-search")
    chart = window.workspace.chart
    window.workspace.open_chart(patients.model.patient_id(0))
    wait_for(lambda: chart.patient is not None)
    chart.allergy_table.selectRow(1)
    save(window, out, "08-chart")
    chart.edit_patient()
    dialog = chart.patient_dialog
    assert dialog is not None
    save(dialog, out, "09-edit-patient")
    dialog.reject()
    chart.add_allergy()
    allergy = chart.allergy_dialog
    assert allergy is not None
    allergy.save()
    wait_for(lambda: allergy.errors["substance"].isVisible())
    save(allergy, out, "10-add-allergy-error")
    allergy.reject()
    chart.confirm_remove_allergy()
    assert chart.confirm_box is not None
    save(chart.confirm_box, out, "11-remove-allergy")
    chart.confirm_box.reject()
    window.workspace.new_patient()
    new = window.workspace.patient_dialog
    assert new is not None
    new.family.setText("Haddad")
    new.birth_date.setText("1988-05-14")
    new.save()
    wait_for(lambda: new.errors["given"].isVisible())
    save(new, out, "12-new-patient-error")
    new.reject()
    window.sign_out_after_idle()
    wait_for(lambda: not ws.is_signed_in and window.sign_in_page.state.isVisible())
    save(window, out, "13-signed-out-after-idle")
    window.shutdown()
    window.close()


def registration(out: Path, tmp: Path) -> None:
    """New patient: a date that does not exist refused, then a possible duplicate found."""
    ws = sample_clinic(tmp / "registration", count=12)
    window = signed_in_window(ws)
    patients = window.workspace.patient_list
    patients.search.setText("obrien")
    wait_for(lambda: patients.model.query == "obrien" and not patients.model.loading)
    save(window, out, "14-search-obrien")
    existing = ws.records.search_patients("obrien")[0]
    window.workspace.new_patient()
    new = window.workspace.patient_dialog
    assert new is not None
    new.family.setText("OBrien")
    new.given.setText(existing.given.lower())
    new.birth_date.setText(existing.birth_date[:5] + "02-30")  # no 30 February
    new.save()
    wait_for(lambda: new.errors["birth_date"].isVisible())
    save(new, out, "15-new-patient-refused-date")
    new.birth_date.setText(existing.birth_date)
    new.save()
    wait_for(new.duplicates.isVisible)
    save(new, out, "16-new-patient-possible-duplicate")
    new.reject()
    window.shutdown()
    window.close()


def conflicts(out: Path, tmp: Path) -> None:
    """The conflicts inbox: a phone number and an allergy list changed on two desks."""
    ws = sample_clinic(tmp / "desk-a", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    [okafor] = [p for p in ws.records.list_patients(100) if p.family == "Okafor"][:1]
    other = Workstation(tmp / "desk-b", kdf_params=FAST_PARAMS)
    other.prepare_join("mgarcia", PASSWORD)
    join_test_clinic(ws.database)
    join_test_clinic(other.database)
    peer = LocalTransport(Responder(ws.database))
    sync(other.database, peer, "mgarcia")
    other.lock()
    other.sign_in("mgarcia", PASSWORD)
    penicillin = next(a for a in ws.records.allergies(okafor.id) if a.substance == "Penicillin")
    other.records.remove_allergy(penicillin.id)
    other.records.update_patient(okafor.id, {"phone": "555 0199"})
    ws.records.add_allergy(okafor.id, "Penicillin", "Hives", "moderate")
    ws.records.update_patient(okafor.id, {"phone": "555 0142"})
    sync(other.database, peer, "mgarcia")
    other.lock()
    ws.lock()
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText("mgarcia")
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    workspace = window.workspace
    wait_for(lambda: workspace.conflicts_action.text() == "Conflicts (2)")
    workspace.open_chart(okafor.id)
    wait_for(lambda: workspace.chart.patient is not None)
    save(window, out, "14-chart-with-conflicts")
    workspace.conflicts_action.trigger()
    dialog = workspace.conflicts_dialog
    assert dialog is not None
    wait_for(lambda: len(dialog.cards) == 2)
    dialog.resize(900, 820)
    save(dialog, out, "15-conflicts-inbox")
    window.shutdown()
    window.close()


def passwords_and_keys(out: Path, tmp: Path) -> None:
    """Change password, the forgotten-password path, a new recovery key, re-encryption."""
    ws = sample_clinic(tmp / "keys", count=12)
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText("mgarcia")
    save(window, out, "16-sign-in-forgot-link")
    page.show_recovery()
    recover = page.recover_dialog
    assert recover is not None
    recover.recovery_key.setText("ABCD-EFGH-IJKL-MNOP-QRST-UVWX-YZ23-4567")
    recover.new.setText("a new password for maria")
    recover.confirm.setText("a new password for maria")
    recover.save()
    wait_for(lambda: recover.errors["recovery_key"].isVisible() and not recover.working)
    save(recover, out, "17-recover-wrong-key")
    recover.reject()
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    workspace = window.workspace
    menu = workspace.settings_menu
    menu.popup(workspace.settings_button.mapToGlobal(workspace.settings_button.rect().bottomLeft()))
    save(menu, out, "18-settings-menu")
    menu.hide()
    window.show_change_password()
    change = window.key_dialog
    assert isinstance(change, ChangePasswordDialog)
    change.current.setText("not my password")
    change.new.setText("a new password for maria")
    change.confirm.setText("a new password for maria")
    change.save()
    wait_for(lambda: change.errors["current"].isVisible() and not change.working)
    save(change, out, "19-change-password-error")
    change.current.setText(PASSWORD)
    change.new.setText("a new password for maria")
    change.confirm.setText("a new password for maria")
    change.save()
    wait_for(lambda: window.notice_box is not None)
    box = window.notice_box
    assert box is not None
    save(box, out, "21-password-changed")
    box.accept()
    wait_for(lambda: window.key_dialog is None)
    window.show_new_recovery_key()
    fresh = window.key_dialog
    assert isinstance(fresh, NewRecoveryKeyDialog)
    save(fresh, out, "22-new-recovery-key-explain")
    fresh.make_key()
    wait_for(lambda: fresh.key is not None)
    save(fresh, out, "23-new-recovery-key-shown")
    fresh.recovery_page.stored.setChecked(True)
    fresh.finish()
    wait_for(lambda: window.key_dialog is None)
    window.show_rekey()
    rekey = window.key_dialog
    assert isinstance(rekey, RekeyDialog)
    save(rekey, out, "24-rekey-explain")
    rekey.start()
    wait_for(lambda: rekey.steps.currentWidget() is rekey.done_page)
    save(rekey, out, "25-rekey-done")
    rekey.accept()
    window.close_clinic()
    wait_for(lambda: not ws.is_unlocked)
    window.sign_in_page.show_recovery()
    empty = window.sign_in_page.recover_dialog
    assert empty is not None
    save(empty, out, "26-recover-empty")
    empty.reject()
    window.shutdown()
    window.close()


def shared_workstation(out: Path, tmp: Path) -> None:
    """A cold start without a keyring, a nurse with no slot here, signing out, a draft."""
    ws = sample_clinic(tmp / "shared", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    ws.records.add_user("nurse.jo", "Jo Mensah", "clinician", "jo's own password")
    ws.lock()
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.show()
    window.start()
    page = window.sign_in_page
    wait_for(lambda: page.state.isVisible())
    save(window, out, "27-cold-start-closed")

    def sign_in(username: str, password: str) -> None:
        page.username.setText(username)
        page.password.setText(password)
        page.button.click()
        wait_for(lambda: not page.busy)

    sign_in("nurse.jo", "jo's own password")
    wait_for(lambda: page.error.isVisible())
    save(window, out, "28-cold-start-no-slot")
    sign_in("mgarcia", PASSWORD)
    wait_for(lambda: window.session is not None)
    window.workspace.new_patient()
    dialog = window.workspace.patient_dialog
    assert dialog is not None
    dialog.family.setText("Haddad")
    dialog.given.setText("Yusuf")
    window.workspace.lock_action.trigger()
    wait_for(lambda: "Anyone" in page.state.text())
    save(window, out, "29-signed-out")
    sign_in("nurse.jo", "jo's own password")
    wait_for(lambda: window.session is not None)
    wait_for(lambda: window.workspace.patient_list.model.rowCount() > 0)
    save(window, out, "30-nurse-first-sign-in")
    window.workspace.lock_action.trigger()
    sign_in("mgarcia", PASSWORD)
    wait_for(lambda: window.workspace.patient_dialog is not None)
    save(window, out, "31-draft-restored")
    restored = window.workspace.patient_dialog
    assert restored is not None
    save(restored, out, "32-draft-restored-dialog")
    window.shutdown()
    window.close()


def schedule(out: Path, tmp: Path) -> None:
    """The schedule: a busy day, the week, the waiting room, and a booking that overlaps."""
    import datetime as dt

    from app.schedule.booking import BookingDialog
    from core.records.schedule import Schedule

    ws = sample_clinic(tmp / "schedule", count=30)
    ws.unlock_with_password("mgarcia", PASSWORD)
    ws.sign_in("mgarcia", PASSWORD)
    records = ws.records
    records.add_user("slee", "Dr Sam Lee", "clinician", PASSWORD)
    records.add_user("akim", "Dr Ana Kim", "clinician", PASSWORD)
    patients = records.list_patients(limit=30)
    now = dt.datetime.now().replace(second=0, microsecond=0)
    today = now.date()
    reasons = ("Cough", "Follow-up", "Blood pressure check", None, "Vaccination", "Back pain")
    slots = ("08:30", "08:45", "09:00", "09:30", "10:00", "10:15", "11:00", "11:30", "14:00")
    booked = []
    for i, hhmm in enumerate(slots):
        clinician = ("slee", "akim")[i % 2]
        p = patients[i]
        booked.append(
            Schedule(records).book(
                p.id,
                f"{today} {hhmm}",
                clinician,
                minutes=(15, 20, 30)[i % 3],
                reason=reasons[i % len(reasons)],
                allow_overlap=True,
            )
        )
    monday = today - dt.timedelta(days=today.weekday())
    for d in range(7):
        day = monday + dt.timedelta(days=d)
        if day == today or d > 4:
            continue
        for j, hhmm in enumerate(("09:00", "09:30", "11:00")[: 1 + d % 3]):
            p = patients[10 + d * 3 + j]
            Schedule(records).book(p.id, f"{day} {hhmm}", ("slee", "akim")[j % 2], minutes=20)
    # Three checked in a while ago, one in with the doctor, one done, one no-show.
    for appointment, waited in ((booked[2], 34), (booked[3], 12), (booked[4], 3)):
        arrived_at = now - dt.timedelta(minutes=waited)
        # A clock stopped at the arrival (replace() with no changes returns that time).
        Schedule(records, clock=arrived_at.replace).set_status(appointment.id, "arrived")
    Schedule(records).set_status(booked[1].id, "arrived")
    Schedule(records).start_visit(booked[1].id)
    # A no-show only once its time has passed: the clinic's clock just after it started.
    no_show_at = dt.datetime.fromisoformat(booked[0].starts_at) + dt.timedelta(minutes=1)
    Schedule(records, clock=no_show_at.replace).set_status(booked[0].id, "no_show")
    Schedule(records).cancel(booked[8].id, "Patient called")
    ws.lock()

    window = signed_in_window(ws, (1400, 860))
    window.workspace.schedule.action.trigger()  # type: ignore[union-attr]
    page_ = window.workspace.schedule
    wait_for(lambda: not page_.loading() and page_.day_table.rowCount() > 0)
    page_.select(booked[3].id)
    save(window, out, "30-schedule-day")
    page_.week_button.click()
    wait_for(lambda: not page_.loading() and page_.week_table.rowCount() > 0)
    save(window, out, "31-schedule-week")
    page_.day_button.click()
    wait_for(lambda: not page_.loading())
    # The clinic's clock before the day's first slot while booking, so the overlap is
    # what is asked (09:35 gone by would be asked about first); the real clock after.
    real_clock = page_.clock
    page_.clock = lambda: dt.datetime.combine(today, dt.time(8, 0))
    dialog = page_.book(f"{today} 09:35")
    dialog.patient_search.setText("haddad")
    dialog._search("haddad")
    wait_for(lambda: dialog.patient_results.count() > 0 and not dialog.searching())
    dialog.patient_results.setCurrentRow(0)
    dialog.clinician.setCurrentIndex(dialog.clinician.findData("akim"))
    dialog.reason.setText("Sore throat")
    dialog.save()
    wait_for(dialog.overlap.isVisible)
    save(dialog, out, "32-booking-overlap")
    dialog.reject()
    page_.clock = real_clock
    save(page_.side, out, "33-waiting-room")
    assert isinstance(dialog, BookingDialog)


def vitals(out: Path, tmp: Path) -> None:
    """The Vitals tab: a year of readings (some flagged), the trend plot, a refused typo."""
    from app.chart.vitals import VitalsSection
    from core.records.vital_signs import VitalSigns

    ws = sample_clinic(tmp / "vitals", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    okafor = next(p for p in ws.records.list_patients() if p.family == "Okafor")
    signs = VitalSigns(ws.records)
    rng = random.Random(11)
    for month in range(1, 13):
        systolic = 128 + month * 2 + rng.randint(-6, 6)
        signs.record(
            okafor.id,
            {
                "systolic": str(systolic),
                "diastolic": str(systolic - 45 + rng.randint(-4, 4)),
                "pulse": str(rng.randint(64, 96) + (30 if month == 9 else 0)),
                "temperature": "101.3" if month == 9 else f"{rng.randint(973, 990) / 10}",
                "respiratory_rate": str(rng.randint(13, 19)),
                "spo2": str(rng.randint(94, 99)),
                "weight": f"{180 - month * 1.5:.1f}",
                "height": "68" if month == 1 else "",
                "pain": str(rng.randint(0, 5)),
            },
            {"temperature": "F", "weight": "lb", "height": "in"},
            # A year up to last month, at clinic hours.
            f"{2025 + (month > 1)}-{(month + 10) % 12 + 1:02d}-{rng.randint(3, 26):02d}"
            f"T{rng.randint(8, 16):02d}:{rng.choice(('05', '20', '40'))}",
        )
    ws.lock()
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.resize(1400, 900)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText("mgarcia")
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    workspace = window.workspace
    workspace.open_chart(okafor.id)
    chart = workspace.chart
    wait_for(lambda: chart.patient is not None)
    section = next(s for s in chart.sections if isinstance(s, VitalsSection))
    chart.tabs.setCurrentWidget(section.widget())
    wait_for(lambda: section.table.rowCount() == 12)
    save(window, out, "40-vitals-blood-pressure")
    section.plot_choice.setCurrentIndex(section.plot_choice.findData("temperature"))
    fields = section.fields
    fields["systolic"].edit.setText("1200")
    fields["systolic"].check()
    fields["temperature"].edit.setText("102")
    fields["temperature"].unit.setCurrentIndex(1)  # type: ignore[union-attr]
    fields["weight"].edit.setText("70")
    fields["weight"].check()
    save(window, out, "41-vitals-temperature-and-typos")
    window.shutdown()
    window.close()


def visits(out: Path, tmp: Path) -> None:
    """The Visits tab: the timeline, a visit with a signed note and an addendum, the note
    editor with a SOAP note being written."""
    ws = sample_clinic(tmp / "visits")
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.resize(1280, 820)
    window.show()
    window.start()
    page = window.sign_in_page
    page.username.setText("mgarcia")
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: window.session is not None)
    patients = window.workspace.patient_list
    wait_for(lambda: patients.model.rowCount() > 0 and not patients.model.loading)
    patient_id = patients.model.patient_id(0)
    records = ws.records
    entries, notes, visit_ops = ClinicalEntries(records), Notes(records), Visits(records)
    for when, reason in (
        ("2025-09-12T10:20", "Annual review"),
        ("2026-03-03T16:05", "Sprained ankle"),
    ):
        old = visit_ops.start(patient_id, reason)
        entries.update("encounter", old.id, {"started_at": when})
        visit_ops.close(old.id)
    today = visit_ops.start(patient_id, "Cough and fever for three days")
    # Typed as the nurse would, through the catalogue (°F and lb, stored in Cel and kg).
    VitalSigns(records).record(
        patient_id,
        {"temperature": "102", "pulse": "96", "weight": "154"},
        {"temperature": "[degF]", "weight": "[lb_av]"},
        today.started_at,
        today.id,
    )
    note = visit_ops.add_note(
        today.id,
        "Subjective:\nDry cough and fever for three days, no shortness of breath.\n\n"
        "Objective:\nT 102 °F, pulse 96. Chest: scattered wheeze, no crackles.\n\n"
        "Assessment:\nAcute bronchitis, likely viral.\n\n"
        "Plan:\nFluids, paracetamol, return if breathless or fever beyond five days.\n",
    )
    notes.sign(note.id)
    notes.add_addendum(note.id, "Phoned next day: fever settled, cough improving.")
    chart = window.workspace.chart
    window.workspace.open_chart(patient_id)
    wait_for(lambda: chart.patient is not None)
    section = next(s for s in chart.sections if isinstance(s, VisitsSection))
    chart.tabs.setCurrentWidget(section.widget())
    wait_for(lambda: len(section.visits) == 3 and section.contents is not None)
    wait_for(lambda: bool(section.contents and section.contents.notes))
    shown = section.view.toPlainText()
    for typed in ("Temperature: 102 °F ▲", "Pulse: 96/min", "Weight: 154 lb"):
        assert typed in shown, f"the visit view does not show {typed!r}"
    save(window, out, "30-visits-signed-note")
    bar = section.view.verticalScrollBar()
    bar.setValue(bar.maximum())  # down to the addendum
    save(window, out, "30b-visits-signed-note-addendum")
    section.start_visit()
    dialog = section.start_dialog
    assert dialog is not None
    wait_for(dialog.start_button.isEnabled)  # the clinicians and appointments are read
    dialog.reason.setText("Blood pressure check")
    save(dialog, out, "31-start-visit")
    dialog.start()
    wait_for(lambda: len(section.visits) == 4 and section.new_note_button.isEnabled())
    wait_for(lambda: section.contents is not None and not section.contents.notes)
    save(window, out, "32-visits-timeline-new-visit")
    section.new_note()
    wait_for(lambda: section.editor is not None)
    editor = section.editor
    assert editor is not None
    editor.body.insertPlainText("Home readings around 150/95 for two weeks.")
    save(editor, out, "33-note-editor")
    editor.reject()
    window.shutdown()
    window.close()


def demo_clinic(out: Path, tmp: Path) -> None:
    """First run's "Explore with sample data", the demo being made, and the demo open."""
    window = MainWindow(Workstation(tmp / "explore", kdf_params=FAST_PARAMS))
    window.resize(1280, 800)
    window.show()
    window.start()
    wizard = window.first_run
    assert wizard is not None
    wizard.clinic_page.demo_choice.setChecked(True)
    save(window, out, "40-first-run-explore")
    wizard.next()
    save(window, out, "41-demo-page")
    wizard.button(QWizard.WizardButton.FinishButton).click()
    wait_for(lambda: wizard.demo_page.bar.maximum() > 0, timeout=60)
    save(window, out, "42-demo-progress")
    wait_for(lambda: window.session is not None, timeout=120)
    patients = window.workspace.patient_list
    wait_for(lambda: patients.model.rowCount() > 0 and "clinic" in patients.status.text())
    save(window, out, "43-demo-patient-list")
    chart = window.workspace.chart
    patients.search.setText("o'c")
    wait_for(lambda: patients.model.query == "o'c" and not patients.model.loading)
    window.workspace.open_chart(patients.model.patient_id(0))
    wait_for(lambda: chart.patient is not None)
    save(window, out, "44-demo-chart")
    window.shutdown()
    window.close()


def printing(out: Path, tmp: Path) -> None:
    """The chart's Print summary…, its dialog, and a summary and visit note as printed."""
    from app.chart.printing import print_visit, render_pages
    from core.reports import data, pdf
    from tests.unit.reports.sample import sample_chart

    ws = sample_clinic(tmp / "printing", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    chart_ids = sample_chart(ws.records)
    ws.lock()
    window = MainWindow(ws, auto_lock_ms=600_000)
    window.show()
    window.start()
    window.sign_in_page.username.setText("mgarcia")
    window.sign_in_page.password.setText(PASSWORD)
    window.sign_in_page.button.click()
    wait_for(lambda: window.session is not None)
    chart = window.workspace.chart
    window.workspace.open_chart(chart_ids.patient_id)
    wait_for(lambda: chart.patient is not None)
    save(window, out, "60-chart-print-summary")
    chart.print_summary.open()
    dialog = chart.print_summary.dialog
    assert dialog is not None
    save(dialog, out, "61-print-dialog")
    dialog.reject()
    records = ws.records
    visit = print_visit(window, window.operations, lambda: records, chart_ids.visit_id)
    visit.save_to(str(tmp / "visit.pdf"))
    wait_for(lambda: visit.status.text().startswith("Saved to"))
    save(visit, out, "62-print-visit-saved")
    visit.reject()
    summary = pdf.summary_pdf(data.summary_report(records, chart_ids.patient_id))
    for name, document in (
        ("63-summary-pdf", summary),
        ("64-visit-pdf", (tmp / "visit.pdf").read_bytes()),
    ):
        page = render_pages(document, dpi=90)[0]
        if not page.image().save(str(out / f"{name}.png")):
            raise OSError(f"could not write {name}.png")
        print(out / f"{name}.png")
    window.shutdown()
    window.close()


def problems_and_medications(out: Path, tmp: Path) -> None:
    """The Overview with problems and medications (active, then past), the ICD-10-CM
    search, the allergy warning, and the allergy banner's three states."""
    ws = sample_clinic(tmp / "meds", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    records = ws.records
    patients = records.list_patients()
    okafor = next(p for p in patients if p.family == "Okafor")
    problems, meds = Problems(records), Medications(records)
    problems.add(okafor.id, code="E11.9", onset="2016")
    problems.add(okafor.id, code="I10", onset="2019-05")
    sprain = problems.add(okafor.id, code="S93.401A", onset="2025-10-02")
    problems.resolve(sprain.id, "2025-11-20")
    metformin = meds.start(
        okafor.id,
        {"name": "Metformin", "strength": "500 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "twice daily", "start": "2016-03-01", "reason": "Type 2 diabetes"},
    )  # fmt: skip
    meds.change_dose(metformin.id, {"strength": "1000 mg"}, "2021-09-14")
    meds.start(
        okafor.id,
        {"name": "Lisinopril", "strength": "10 mg", "dose": "1 tablet", "route": "by mouth",
         "frequency": "once daily", "start": "2019-05-20", "reason": "Hypertension"},
    )  # fmt: skip
    naproxen = meds.start(
        okafor.id, {"name": "Naproxen", "strength": "250 mg", "frequency": "as needed",
                    "start": "2025-10-02", "reason": "Ankle sprain"},
        confirm_allergy=True,
    )  # fmt: skip
    meds.stop(naproxen.id, "2025-10-16")
    nka, unasked = [p for p in patients if p.id != okafor.id][:2]
    AllergyRecords(records).record_no_known_allergies(nka.id)
    ws.lock()

    window = MainWindow(ws, auto_lock_ms=600_000)
    window.resize(1280, 1000)
    window.show()
    window.start()
    window.sign_in_page.username.setText("mgarcia")
    window.sign_in_page.password.setText(PASSWORD)
    window.sign_in_page.button.click()
    wait_for(lambda: window.session is not None)
    chart = window.workspace.chart
    window.workspace.open_chart(okafor.id)
    cards = [s for s in chart.sections if isinstance(s, ProblemsCard | MedicationsCard)]
    problem_card, med_card = cards
    assert isinstance(problem_card, ProblemsCard) and isinstance(med_card, MedicationsCard)
    wait_for(lambda: chart.patient is not None and len(med_card.medications) == 2)
    wait_for(lambda: len(problem_card.problems) == 2)
    save(window, out, "meds-01-overview")
    med_card.show_past.setChecked(True)
    problem_card.show_resolved.setChecked(True)
    wait_for(lambda: len(med_card.medications) == 4 and len(problem_card.problems) == 3)
    save(window, out, "meds-02-history")
    scroll = chart.tabs.currentWidget()
    assert isinstance(scroll, QScrollArea)
    settle()
    scroll.verticalScrollBar().setValue(scroll.verticalScrollBar().maximum())
    save(window, out, "meds-02-history-medications")
    scroll.verticalScrollBar().setValue(0)
    problem_card.add_problem()
    icd = problem_card.dialog
    assert isinstance(icd, IcdSearchDialog)
    icd.search.setText("diabetes type 2 kidney")
    icd.search.textEdited.emit(icd.search.text())
    wait_for(lambda: icd.results.rowCount() > 0, timeout=60)
    icd.results.selectRow(0)
    icd.onset.setText("2023")
    save(icd, out, "meds-03-icd-search")
    icd.reject()
    med_card.start_medication()
    start = med_card.dialog
    assert isinstance(start, MedicationDialog)
    start.fields["name"].setText("Amoxicillin")
    start.fields["strength"].setText("500 mg")
    start.fields["frequency"].setText("three times daily")
    save(start, out, "meds-04-start-medication")
    start.save()
    wait_for(lambda: start.warning_box is not None)
    assert start.warning_box is not None
    save(start.warning_box, out, "meds-05-allergy-warning")
    start.warning_box.reject()
    start.reject()
    save(chart.allergy_banner, out, "meds-06-banner-allergies")
    for patient, name in ((nka, "meds-07-banner-nka"), (unasked, "meds-08-banner-not-recorded")):
        window.workspace.open_chart(patient.id)
        wait_for(lambda p=patient: chart.patient is not None and chart.patient.id == p.id)  # type: ignore[misc]
        save(window, out, name)
    window.shutdown()
    window.close()


def break_glass_and_audit(out: Path, tmp: Path) -> None:
    """Break the glass (the button, the reason, the banner), who has seen a chart, and the
    administrators' break-glass reviews and audit log."""
    from app.admin.audit_log import AuditLogDialog
    from app.admin.break_glass_reviews import BreakGlassReviewsDialog
    from core.records.break_glass import BreakGlass

    ws = sample_clinic(tmp / "breakglass", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    ws.records.add_user("akim", "Dr Ana Kim", "clinician", PASSWORD)
    patients = ws.records.list_patients()
    okafor = next(p for p in patients if p.family == "Okafor")
    others = [p for p in patients if p.family != "Okafor"][:2]
    ws.sign_in("akim", PASSWORD)
    for p, reason in zip(
        others, ("Unresponsive in the waiting room", "Chest pain; own GP away"), strict=True
    ):
        BreakGlass(ws.records).open(p.id, reason)
        ws.records.open_chart(p.id)
    ws.lock()
    window = signed_in_window(ws, (1280, 820))
    workspace = window.workspace
    chart = workspace.chart
    workspace.open_chart(okafor.id)
    wait_for(lambda: chart.patient is not None)
    save(window, out, "90-chart-break-glass-button")
    chart.break_glass.ask()
    dialog = chart.break_glass.dialog
    assert dialog is not None
    dialog.reason.setPlainText("Anaphylaxis at reception; need the allergy list now")
    save(dialog, out, "91-break-glass-dialog")
    dialog.save()
    wait_for(lambda: chart.break_glass.banner.isVisible())
    save(window, out, "92-chart-break-glass-banner")
    chart.show_history()
    history = chart.history_dialog
    assert history is not None
    wait_for(lambda: history.table.rowCount() > 0)
    save(history, out, "93-chart-history")
    history.reject()
    tools = workspace.admin_tools
    tools.show_reviews()
    reviews = tools.dialog
    assert isinstance(reviews, BreakGlassReviewsDialog)
    wait_for(lambda: reviews.table.rowCount() == 3)
    save(reviews, out, "94-break-glass-reviews")
    tools.show_audit_log()
    log_dialog = tools.dialog
    assert isinstance(log_dialog, AuditLogDialog)
    wait_for(lambda: log_dialog.table.rowCount() > 0)
    save(log_dialog, out, "95-audit-log")
    log_dialog.person.setText("akim")
    log_dialog.refresh()
    wait_for(lambda: "under break-glass" in log_dialog.status.text())
    save(log_dialog, out, "96-audit-log-filtered")
    log_dialog.reject()
    window.shutdown()
    window.close()


SECTIONS = {
    "first_run": first_run,
    "daily_use": daily_use,
    "registration": registration,
    "conflicts": conflicts,
    "passwords_and_keys": passwords_and_keys,
    "shared_workstation": shared_workstation,
    "schedule": schedule,
    "vitals": vitals,
    "visits": visits,
    "demo_clinic": demo_clinic,
    "printing": printing,
    "problems_and_medications": problems_and_medications,
    "break_glass_and_audit": break_glass_and_audit,
}


def staff(out: Path, tmp: Path) -> None:
    """Settings → Staff (with a deactivated account, one to change their password and a
    sign-in delay), adding a staff member with the strength hint, the forced password
    change at first sign-in, and the two-factor code at an admin's sign-in."""
    ws = sample_clinic(tmp / "staff", count=6)
    ws.sign_in("mgarcia", PASSWORD)
    ws.add_staff("nokafor", "Nina Okafor", "nurse", "tulip window seventeen")
    ws.add_staff("jlee", "James Lee", "clinician", "harbour lamp winter")
    ws.add_staff("pdesk", "Priya Desai", "front_desk", "orchid paper station")
    ws.staff().deactivate("pdesk")
    ws.lock()
    for _ in range(5):
        with contextlib.suppress(AuthenticationError):
            ws.sign_in("jlee", "wrong guess")
    window = signed_in_window(ws, (1100, 720))
    window.show_staff()
    dialog = window.key_dialog
    assert isinstance(dialog, StaffDialog)
    wait_for(lambda: dialog.table.rowCount() == 4)
    dialog.table.selectRow(1)
    save(dialog, out, "staff-01-list")
    dialog.show_add()
    add = dialog.child
    assert isinstance(add, AddStaffDialog)
    add.user.setText("tnguyen")
    add.full_name.setText("Thanh Nguyen")
    add.role.setCurrentIndex(add.role.findData("nurse"))
    add.new.setText("password2024")
    save(add, out, "staff-02-add-weak-password")
    add.new.setText("lantern under blue hills")
    save(add, out, "staff-03-add-strong-password")
    add.reject()
    dialog.reject()
    window.show_two_factor()
    wait_for(lambda: isinstance(window.key_dialog, TwoFactorDialog))
    enrol = window.key_dialog
    assert isinstance(enrol, TwoFactorDialog)
    enrol.code.setText("123 456")
    save(enrol, out, "staff-07-two-factor-enrol")
    enrol.reject()
    window.sign_out()
    page = window.sign_in_page
    wait_for(lambda: window.stack.currentWidget() is page)
    page.username.setText("nokafor")
    page.password.setText("tulip window seventeen")
    page.button.click()
    wait_for(lambda: page.change_dialog is not None)
    forced = page.change_dialog
    assert forced is not None
    forced.new.setText("quiet river lantern")
    save(forced, out, "staff-04-forced-password-change")
    forced.reject()
    wait_for(lambda: page.notice.isVisible())
    save(window, out, "staff-05-declined-change")
    ws2 = Workstation(ws.data_dir, kdf_params=FAST_PARAMS)
    window.shutdown()
    window.close()
    ws2.sign_in("mgarcia", PASSWORD)
    secret = two_factor.new_secret()
    ws2.staff().enrol_totp(secret, two_factor.current_code(secret))
    ws2.lock()
    again = MainWindow(ws2, auto_lock_ms=600_000)
    again.show()
    again.start()
    page = again.sign_in_page
    page.username.setText("mgarcia")
    page.password.setText(PASSWORD)
    page.button.click()
    wait_for(lambda: page.code.isVisibleTo(page))
    save(again, out, "staff-06-two-factor-code")
    again.shutdown()
    again.close()


SECTIONS["staff"] = staff


def permissions(out: Path, tmp: Path) -> None:
    """The chart as the front desk sees it (no clinical part), and a nurse's note whose
    Sign button says only a clinician signs."""
    ws = sample_clinic(tmp / "permissions")
    ws.sign_in("mgarcia", PASSWORD)
    ws.records.add_user("jdesk", "Jo Desk", "front_desk", PASSWORD)
    ws.records.add_user("nkim", "Nari Kim", "nurse", PASSWORD)
    Visits(ws.records).start(ws.records.list_patients(1)[0].id, "Cough")
    for name in ("jdesk", "nkim"):
        ws.sign_in(name, PASSWORD)
    ws.lock()
    window = signed_in_window(ws, username="jdesk")
    chart = window.workspace.chart
    patients = window.workspace.patient_list
    window.workspace.open_chart(patients.model.patient_id(0))
    wait_for(lambda: chart.patient is not None)
    settle()
    save(window, out, "60-chart-front-desk")
    window.shutdown()
    window = signed_in_window(ws, username="nkim")
    chart = window.workspace.chart
    patient_id = window.workspace.patient_list.model.patient_id(0)
    window.workspace.open_chart(patient_id)
    wait_for(lambda: chart.patient is not None)
    section = next(s for s in chart.sections if isinstance(s, VisitsSection))
    chart.tabs.setCurrentWidget(section.widget())
    wait_for(lambda: section.new_note_button.isEnabled())
    section.new_note_button.click()
    wait_for(lambda: section.editor is not None)
    editor = section.editor
    assert editor is not None
    editor.body.insertPlainText("Dry cough for a week, no fever.")
    editor.sign_button.setFocus()
    settle()
    save(editor, out, "61-nurse-note-sign-disabled")
    editor.reject()
    window.shutdown()


SECTIONS["permissions"] = permissions


def chart_access(out: Path, tmp: Path) -> None:
    """Chart access… (a restricted chart and its care team), the header's "Restricted
    chart" marker as a nurse not on the care team sees it, and Staff → Other roles…."""
    from app.admin.staff import OtherRolesDialog
    from core.records import chart_access as ca

    ws = sample_clinic(tmp / "access", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    ws.records.add_user("jlee", "James Lee", "clinician", PASSWORD)
    ws.records.add_user("nokafor", "Nina Okafor", "nurse", PASSWORD)
    ws.records.add_user("tward", "Tom Ward", "nurse", PASSWORD)
    okafor = next(p for p in ws.records.list_patients() if p.family == "Okafor")
    ca.set_restricted(ws.records, okafor.id, True)  # mgarcia (also a clinician) joins it
    ca.add_to_care_team(ws.records, okafor.id, "nokafor")
    ws.staff().add_role("nokafor", "front_desk")
    for name in ("jlee", "nokafor", "tward"):
        ws.sign_in(name, PASSWORD)
    ws.lock()
    window = signed_in_window(ws, (1280, 820))
    chart = window.workspace.chart
    window.workspace.open_chart(okafor.id)
    wait_for(lambda: chart.patient is not None and chart.restricted_marker.isVisible())
    save(window, out, "70-chart-restricted-with-access-button")
    chart.show_access()
    dialog = chart.access_dialog
    assert dialog is not None
    wait_for(lambda: dialog.view is not None)
    save(dialog, out, "71-chart-access-dialog")
    dialog.reject()
    window.show_staff()
    staff = window.key_dialog
    assert isinstance(staff, StaffDialog)
    wait_for(lambda: staff.table.rowCount() == 4)
    row = next(i for i, r in enumerate(staff.rows) if r.member.username == "nokafor")
    staff.table.selectRow(row)
    save(staff, out, "72-staff-all-roles")
    staff.show_other_roles()
    roles = staff.child
    assert isinstance(roles, OtherRolesDialog)
    save(roles, out, "73-staff-other-roles")
    roles.reject()
    staff.reject()
    window.shutdown()
    window = signed_in_window(ws, (1280, 820), username="tward")
    chart = window.workspace.chart
    window.workspace.open_chart(okafor.id)
    wait_for(lambda: chart.patient is not None and chart.restricted_marker.isVisible())
    wait_for(lambda: chart.break_glass.button.isVisible())
    save(window, out, "74-restricted-chart-nurse-not-on-care-team")
    window.shutdown()


SECTIONS["chart_access"] = chart_access


def data_in_out(out: Path, tmp: Path) -> None:
    """Issue #16's screens: the chart's Attachments tab (two files, the Add dialog), the
    Possible duplicates review (a pair, then a merge listed), the Import patients wizard
    (mapping, the dry run's refusal), the FHIR dialog and the backup dialogs."""
    from PySide6.QtGui import QColor, QImage

    from app.admin.backup import BackupDialog, RestoreDialog
    from app.admin.fhir import FhirDialog
    from app.admin.import_patients import ImportPatientsDialog
    from app.chart.attachments import AttachmentsSection
    from app.patients.duplicates import DuplicatesDialog
    from core.sync.attachments import Attachments

    ws = sample_clinic(tmp / "data", count=12)
    ws.sign_in("mgarcia", PASSWORD)
    okafor = next(p for p in ws.records.list_patients(100) if p.family == "Okafor")
    twin = ws.records.add_patient("Okafor", okafor.given, okafor.birth_date, "male", None, None)
    ws.records.add_allergy(twin.id, "Sulfa", "Rash", "mild")
    image = QImage(320, 200, QImage.Format.Format_RGB32)
    image.fill(QColor("#c0504d"))
    photo = tmp / "IMG_20261203_0942.png"
    image.save(str(photo))
    letter = tmp / "Referral letter Dr Boateng.pdf"
    letter.write_bytes(b"%PDF-1.4\n%%EOF\n")
    files = Attachments.for_records(ws.records)
    files.add(okafor.id, letter, title="Cardiology referral", date="2026-12-01", category="letter")
    files.add(okafor.id, photo, title="Rash, left forearm", date="2026-12-03", category="photo")
    ws.lock()
    window = signed_in_window(ws, (1200, 800))
    workspace = window.workspace
    workspace.open_chart(okafor.id)
    chart = workspace.chart
    wait_for(lambda: chart.patient is not None)
    section = next(s for s in chart.sections if isinstance(s, AttachmentsSection))
    chart.tabs.setCurrentWidget(section.widget())
    wait_for(lambda: section.table.rowCount() == 2)
    save(window, out, "80-attachments")
    section.add_file(photo)
    assert section.add_dialog is not None
    section.add_dialog.date.setText("2026-02-30")
    section.add_dialog.accept()
    save(section.add_dialog, out, "81-add-attachment-wrong-date")
    section.add_dialog.reject()
    workspace.show_list()
    dialog = DuplicatesDialog(workspace._operations, workspace._records, window)
    dialog.show()
    wait_for(lambda: dialog.table.rowCount() == 1)
    save(dialog, out, "82-possible-duplicates")
    dialog.reason.setText("Same phone and birth date")
    dialog.merge()
    wait_for(lambda: dialog.merged_table.rowCount() == 1)
    save(dialog, out, "83-duplicates-merged")
    dialog.close()
    csv = tmp / "patients.csv"
    csv.write_text(
        "Surname,First name,Chart no,DOB,Sex,Allergies\n"
        "Lindqvist,Astrid,OLD-1001,03/11/1957,F,Penicillin; Latex\n"
        "Nguyen,Bao,OLD-1003,31/02/1990,M,Sulfa\n",
        encoding="utf-8",
    )
    wizard = ImportPatientsDialog(workspace._operations, workspace._records, window)
    wizard.show()
    wizard.path.setText(str(csv))
    wizard.next()
    wait_for(lambda: wizard.pages.currentIndex() == wizard.MAPPING)
    wizard.date_format.setCurrentIndex(wizard.date_format.findData("DD/MM/YYYY"))
    save(wizard, out, "84-import-mapping")
    wizard.next()
    wait_for(lambda: wizard.pages.currentIndex() == wizard.CHECK)
    save(wizard, out, "85-import-dry-run")
    wizard.close()
    fhir = FhirDialog(workspace._operations, workspace._records, window)
    fhir.show()
    save(fhir, out, "86-fhir")
    fhir.export_path.setText(str(tmp / "no such folder" / "bundle.json"))
    fhir.start_export()
    wait_for(fhir.error.isVisible)
    save(fhir, out, "87-fhir-path-refused")
    fhir.close()
    backup = BackupDialog(window.worker, ws, "mgarcia", window)
    backup.show()
    save(backup, out, "88-backup")
    backup.close()
    restore = RestoreDialog(window.worker, ws.kdf_params, window)
    restore.show()
    save(restore, out, "89-restore")
    restore.close()
    window.shutdown()
    window.close()


SECTIONS["data_in_out"] = data_in_out


def main(argv: list[str]) -> int:
    """Write the PNGs into the folder named on the command line (then, optionally, the
    names of the sections to render; default: all)."""
    out = Path(argv[1] if len(argv) > 1 else "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    chosen = argv[2:] or list(SECTIONS)
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    app = QApplication(argv[:1])
    set_up_application(app)
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            SECTIONS[name](out, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

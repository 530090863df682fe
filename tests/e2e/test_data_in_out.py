"""Data in and out of a clinic (issue #16) on the real app, on a virtual X screen, typed at
and clicked through the X server (xdotool), as its staff use it.

Akua Mensah was registered at two front desks while they were offline (one recorded her
penicillin allergy, the other her latex allergy); the desks have synced since. A doctor
finds the pair under "Possible duplicates…", merges it giving a reason, opens the merged
chart and files a scanned referral letter (PDF) and a photo of a rash through the file
dialog (the paths typed into Qt's own file dialog), with titles, dates and categories
typed; opens the photo in the app's viewer and saves a copy of the letter out. Another day
the administrator undoes the merge, moves the old clinic's patient list in from a CSV file
(mapping its columns, reading the dry run's refusal of a 31 February, importing), exports
the clinic as a FHIR bundle and imports a hospital's bundle, and backs the clinic up.

What a test knows of the app comes from the screen (window titles, screenshots) and, once
the app has exited, from the database. Screenshots of every step are kept in the test's
folder (``CARELINE_E2E_SHOTS`` names a folder to keep them in instead).

Where a control has no key of its own the test clicks it, at coordinates taken from these
screenshots: relative to the dialog's window, or to the main window (at the screen's top
left: the virtual screen has no window manager to place it).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QApplication

from core.crypto.kdf import FAST_PARAMS
from core.records.fhir.export import export_bundle
from core.records.merges import Merges
from core.records.workstation import Workstation
from core.sync.attachments import Attachments
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.conftest import PASSWORD
from tests.e2e.test_desktop_turns import screen, sign_in
from tests.e2e.xdesktop import Desktop, VirtualScreen, shots_folder

__all__ = ["screen"]  # the fixture, shared with the other desktop tests

pytestmark = pytest.mark.slow

CLINIC = "Riverside Family Practice"
DOCTOR = "dr.lee"
REASON = "Same phone, both desks"
# A scanned letter as a scanner writes it (a one-page PDF) with a line to find in it.
LETTER = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]>>endobj\n"
    b"% Referral: Akua Mensah, chest pain on exertion\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
# The old system's patient list: day-first dates, a 31 February (no such day) on row 4.
PATIENT_LIST = (
    "Surname,First name,Chart no,DOB,Sex,Phone,Allergies\n"
    "Lindqvist,Astrid,OLD-1001,03/11/1957,F,555 0201,Penicillin; Latex\n"
    "Haddad,Yusuf,OLD-1002,21/06/1988,M,555 0202,\n"
    "Nguyen,Bao,OLD-1003,31/02/1990,M,555 0203,Sulfa\n"
    "Kowalski,Agnieszka,OLD-1004,07/01/2001,F,,\n"
)


# The "Chart no" column's field, in the wizard (x): the columns are as wide as the longest
# field name needs under the app's stylesheet (screenshot 04-import-mapped).
CHART_NO_FIELD = 505


@pytest.fixture
def files() -> Iterator[Path]:
    """A folder with a short path for the files the person picks and saves (typed key by
    key, a pytest temporary path took seconds to type)."""
    folder = Path(tempfile.mkdtemp(prefix="cl-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def two_desks(root: Path) -> tuple[Path, str, str, str]:
    """Desk A (the clinic, where the app runs) and desk B (joined to it); Akua Mensah
    registered on each while offline, then synced. (desk A, A's id for her, B's, the
    recovery key.)"""
    desk_a = Workstation(root / "desk-a", kdf_params=FAST_PARAMS)
    recovery_key = desk_a.init(CLINIC, "admin", "Ada Admin", PASSWORD)
    desk_a.sign_in("admin", PASSWORD)
    desk_a.records.add_user(DOCTOR, "Dr Sam Lee", "clinician", PASSWORD)
    desk_a.records.add_patient("Okafor", "Chinedu", "1984-02-02", None, None, None)
    desk_b = Workstation(root / "desk-b", kdf_params=FAST_PARAMS)
    desk_b.prepare_join("admin", PASSWORD)
    join_test_clinic(desk_a.database)
    join_test_clinic(desk_b.database)
    peer = LocalTransport(Responder(desk_a.database))
    sync(desk_b.database, peer, "admin")
    desk_b.lock()
    desk_b.sign_in("admin", PASSWORD)
    # Offline, both desks register her; each hears of a different allergy.
    at_a = desk_a.records.add_patient("Mensah", "Akua", "1990-03-04", "female", None, "555 0101")
    desk_a.records.add_allergy(at_a.id, "Penicillin", "Hives", "moderate")
    at_b = desk_b.records.add_patient("Mensah", "Akua", "1990-03-04", "female", None, None)
    desk_b.records.add_allergy(at_b.id, "Latex", "Rash", "mild")
    sync(desk_b.database, peer, "admin")
    desk_b.lock()
    desk_a.sign_in(DOCTOR, PASSWORD)  # his key slot here (cheap parameters, for speed)
    desk_a.lock()
    return root / "desk-a", at_a.id, at_b.id, recovery_key


def photo(path: Path) -> Path:
    """A small PNG, as a phone camera's picture would be (only smaller)."""
    # A QApplication (not a bare QGuiApplication), so pytest-qt's tests that run after this
    # in the same process find the kind of application they need.
    app = QGuiApplication.instance() or QApplication(["photo", "-platform", "offscreen"])
    assert app is not None
    image = QImage(320, 200, QImage.Format.Format_RGB32)
    image.fill(QColor("#c0504d"))
    assert image.save(str(path))
    return path


class Person:
    """The app, and the hands at its keyboard and mouse."""

    def __init__(self, app: Desktop) -> None:
        self.app = app
        self.screen = app.screen
        self.dialog_title: str | None = None  # the dialog opened last

    def click(self, x: int, y: int, window: str | None = None, double: bool = False) -> None:
        """Click at (x, y) in ``window`` (default: the main window, at the screen's corner)."""
        where = ["--window", window] if window else []
        repeat = ["--repeat", "2"] if double else []
        self.screen.xdotool("mousemove", *where, str(x), str(y), "click", *repeat, "1")
        time.sleep(0.15)

    def dialog(self, title: str) -> str:
        """Wait for a window titled ``title``; click its margin so it has the keyboard (as a
        window manager would give it); its id."""
        window = self.app.wait_title(title)
        self.dialog_title = title
        self.app.pause(0.4)
        self.click(4, 4, window)
        return window

    def choose_file(self, path: Path | str) -> None:
        """In Qt's file dialog, just opened (the file name field has the keyboard): type the
        whole path over the file name and press Return."""
        self.app.pause(0.8)
        self.app.key("ctrl+a")
        self.app.type(str(path))
        self.app.key("Return")
        self.app.pause(0.6)

    def settings(self, item: int) -> None:
        """Settings (Alt+S), then the menu's ``item``-th entry by arrow keys."""
        self.app.focus()
        self.app.key("alt+s")
        self.app.pause(0.4)
        self.app.key(*["Down"] * item, "Return")

    def close_dialog(self) -> None:
        """Escape, wait for the dialog opened last to close, and the keyboard back to the
        main window."""
        assert self.dialog_title is not None, "no dialog was opened"
        self.app.key("Escape")
        self.app.wait_gone(self.dialog_title)
        self.dialog_title = None
        self.app.focus()


def wait_file(app: Desktop, path: Path, timeout: float = 20) -> Path:
    return app.wait(lambda: path if path.is_file() and path.stat().st_size else None,
                    f"{path.name} to be written", timeout)  # fmt: skip


def test_a_doctor_merges_a_duplicate_and_files_a_letter_and_a_photo(
    screen: VirtualScreen, tmp_path: Path, files: Path, no_keyring: None
) -> None:
    data, at_a, at_b, _ = two_desks(tmp_path)
    letter = files / "Referral letter.pdf"
    letter.write_bytes(LETTER)
    rash = photo(files / "IMG_0942.png")
    copy = files / "copy.pdf"
    app = Desktop(screen, data, shots_folder(tmp_path, "doctor"))
    person = Person(app)
    try:
        app.pause(1)
        app.focus()
        sign_in(app, DOCTOR, PASSWORD)
        app.shot("two-charts-for-one-person")

        # The pair, from the list's "Possible duplicates…" (Tab, Tab from the search box).
        app.key("Tab", "Tab", "space")
        duplicates = person.dialog("Possible duplicates")
        app.shot("possible-duplicates")
        person.click(400, 393, duplicates)  # the reason
        app.type(REASON)
        app.key("Tab", "space")  # Merge
        app.pause(1.5)
        app.shot("merged")
        person.close_dialog()

        # One chart now, holding both desks' allergies (the banner names both).
        app.key("ctrl+f")
        app.type("mensah")
        app.pause(1)
        app.key("Down", "Return")
        app.wait_title(f"MENSAH, Akua — {CLINIC} — Careline")
        app.pause(0.6)
        app.shot("merged-chart")

        # Attachments: the letter, through the file dialog, with a title, date, category.
        person.click(295, 211)  # the Attachments tab
        app.pause(0.6)
        app.shot("attachments-empty")
        for path, title, date, category in (
            (letter, "Cardiology referral", "2026-12-01", "letter"),
            (rash, "Rash, left forearm", "2026-12-03", "photo"),
        ):
            person.click(80, 251)  # Add file…
            person.dialog("Add a file to the chart")
            app.key("space")  # it opens on Choose file…
            person.choose_file(path)
            app.shot(f"add-{category}")
            app.type(title)  # the keyboard is in the title, its text selected
            app.key("Tab")
            app.type(date)
            app.key("Tab")
            app.type(category)
            app.key("Return")  # Add
            app.pause(1.5)
        app.shot("two-files-listed")

        # The photo opens in the app's viewer (a double click on its row).
        person.click(300, 348, double=True)  # the newest first: the photo's row
        person.dialog("Rash, left forearm")
        app.shot("photo-open")
        person.close_dialog()

        # A copy of the letter, saved out through the save dialog.
        person.click(300, 380)  # the letter's row
        person.click(284, 251)  # Save a copy…
        person.choose_file(copy)
        wait_file(app, copy)
        app.pause(0.5)
        app.shot("copy-saved")
    finally:
        code = app.quit()
    assert code == 0, app.tail()

    ws = Workstation(data)
    ws.sign_in("admin", PASSWORD)
    [(duplicate, merge)] = Merges(ws.records).merged()
    assert (merge.by, merge.reason) == (DOCTOR, REASON)
    assert {duplicate.id, merge.survivor} == {at_a, at_b}
    # The chart kept holds both desks' allergies.
    allergies = {a.substance for a in ws.records.allergies(merge.survivor)}
    assert allergies == {"Penicillin", "Latex"}
    stored = Attachments.for_records(ws.records).for_patient(merge.survivor)
    assert sorted((f.title, f.date, f.category, f.filename) for f in stored) == [
        ("Cardiology referral", "2026-12-01", "letter", letter.name),
        ("Rash, left forearm", "2026-12-03", "photo", rash.name),
    ]
    assert copy.read_bytes() == LETTER
    ws.lock()


def hospital_bundle(root: Path, path: Path) -> Path:
    """A FHIR bundle from another system: one patient with an allergy."""
    other = Workstation(root / "hospital", kdf_params=FAST_PARAMS)
    other.init("St Mary's Hospital", "admin", "Hal Admin", PASSWORD)
    other.sign_in("admin", PASSWORD)
    kofi = other.records.add_patient("Boateng", "Kofi", "1975-08-09", "male", None, None)
    other.records.add_allergy(kofi.id, "Aspirin", "Wheeze", "severe")
    path.write_text(export_bundle(other.records).json(), encoding="utf-8")
    other.lock()
    return path


def test_an_administrator_undoes_a_merge_moves_records_in_and_out_and_backs_up(
    screen: VirtualScreen, tmp_path: Path, files: Path, no_keyring: None
) -> None:
    data, at_a, at_b, recovery_key = two_desks(tmp_path)
    ws = Workstation(data)
    ws.sign_in(DOCTOR, PASSWORD)
    Merges(ws.records).merge(at_b, at_a, REASON)  # the doctor's merge, since found wrong
    ws.lock()
    patient_list = files / "patients.csv"
    patient_list.write_text(PATIENT_LIST, encoding="utf-8")
    bundle_in = hospital_bundle(tmp_path, files / "hospital.json")
    out = files
    app = Desktop(screen, data, shots_folder(tmp_path, "administrator"))
    person = Person(app)
    try:
        app.pause(1)
        app.focus()
        sign_in(app, "admin", PASSWORD)

        # Undo the merge: its row under Merged charts, then Undo merge.
        app.key("Tab", "Tab", "space")
        duplicates = person.dialog("Possible duplicates")
        person.click(200, 511, duplicates)  # the merge's row
        app.shot("merge-chosen")
        person.click(1015, 437, duplicates)  # Undo merge, beside the Merged charts heading
        app.pause(1.5)
        app.shot("merge-undone")
        person.close_dialog()

        # Settings → Import patients…: the file, its columns, the dry run, the import.
        person.settings(8)
        wizard = person.dialog("Import patients")
        person.click(400, 118, wizard)  # the file's path
        app.type(str(patient_list))
        app.key("Return")  # Next
        app.pause(1.2)
        app.shot("import-mapping")
        person.click(CHART_NO_FIELD, 161, wizard)  # the "Chart no" column's field
        app.type("M")  # MRN
        app.key("Return")
        person.click(624, 461, wizard)  # "Birth dates are written"
        app.type("D")  # DD/MM/YYYY
        app.key("Return")
        app.shot("import-mapped")
        app.key("Return")  # Check the rows
        app.pause(1.2)
        app.shot("import-dry-run")
        app.key("Return")  # Import 3 patients
        app.pause(2)
        app.shot("import-done")
        person.close_dialog()

        # Settings → FHIR export and import…: every chart out, a hospital's bundle in.
        person.settings(9)
        fhir = person.dialog("FHIR export and import")
        app.shot("fhir-dialog")
        bundle_out = out / "clinic.json"
        person.click(223, 149, fhir)  # where to save the bundle
        app.type(str(bundle_out))
        app.key("Return")  # Export
        wait_file(app, bundle_out)
        person.click(223, 195, fhir)  # the bundle to import
        app.type(str(bundle_in))
        app.key("Return")  # Import
        app.pause(2)
        app.shot("fhir-imported")
        person.close_dialog()

        # Settings → Back up now…, then Restore a backup… into a new folder.
        person.settings(11)  # after Paired workstations…
        backup_dialog = person.dialog("Back up now")
        backup = out / "clinic.clbackup"
        person.click(296, 149, backup_dialog)  # where to save the backup
        app.type(str(backup))
        app.key("Return")  # Back up
        wait_file(app, backup)
        app.pause(0.5)
        app.shot("backed-up")
        person.close_dialog()
        person.settings(12)
        restore_dialog = person.dialog("Restore a backup")
        restored = out / "restored"
        for (x, y), text in (
            ((321, 177), str(backup)),
            ((321, 217), str(restored)),
            ((373, 285), recovery_key),
            ((373, 325), "admin"),
            ((373, 365), PASSWORD),
        ):
            person.click(x, y, restore_dialog)
            app.type(text)
        app.key("Return")  # Restore
        app.wait(lambda: (restored / "clinic.db").is_file() or None, "the restore", 60)
        app.pause(2)
        app.shot("restored")
    finally:
        code = app.quit()
    assert code == 0, app.tail()

    ws = Workstation(data)
    ws.sign_in("admin", PASSWORD)
    assert Merges(ws.records).merged() == []
    assert [a.substance for a in ws.records.allergies(at_a)] == ["Penicillin"]
    assert [a.substance for a in ws.records.allergies(at_b)] == ["Latex"]
    people = {(p.family, p.given): p for p in ws.records.list_patients(100)}
    # The list's birth dates exactly as its day-first cells say; no 31 February guessed.
    born = {name: (p.birth_date, p.mrn) for name, p in people.items() if p.mrn}
    assert born == {
        ("Lindqvist", "Astrid"): ("1957-11-03", "OLD-1001"),
        ("Haddad", "Yusuf"): ("1988-06-21", "OLD-1002"),
        ("Kowalski", "Agnieszka"): ("2001-01-07", "OLD-1004"),
    }
    assert ("Nguyen", "Bao") not in people
    astrid = people["Lindqvist", "Astrid"].id
    assert sorted(a.substance for a in ws.records.allergies(astrid)) == ["Latex", "Penicillin"]
    kofi = people["Boateng", "Kofi"]
    assert [a.substance for a in ws.records.allergies(kofi.id)] == ["Aspirin"]
    exported = json.loads(bundle_out.read_text(encoding="utf-8"))
    names = sorted(
        e["resource"]["name"][0]["family"]
        for e in exported["entry"]
        if e["resource"]["resourceType"] == "Patient"
    )
    assert names == ["Haddad", "Kowalski", "Lindqvist", "Mensah", "Mensah", "Okafor"]
    ws.lock()
    # The backup, restored into a new folder, opens with the admin's password and holds
    # the clinic as it was (the list imported, the hospital's patient).
    copy = Workstation(restored)
    copy.sign_in("admin", PASSWORD)
    assert {p.family for p in copy.records.list_patients(100)} >= {"Lindqvist", "Boateng"}
    copy.lock()

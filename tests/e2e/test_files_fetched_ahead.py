"""Chart attachments fetched ahead of need (core/sync/prefetch.py, app/sync/prefetching.py):
the real app on a virtual X screen, typed at through the X server (xdotool), as the
clinic's staff meet it.

A real ``careline-server run`` holds Riverbank Clinic. The exam-room workstation joined it
the day before. Since then the front desk registered Nia Bello, booked her for today, and
filed a scanned referral letter and a photo of a rash in her chart, which went up to the
server. In the morning the doctor signs in at the exam-room workstation: its sync brings
the records, and the files follow in the background, without anyone opening them. Her
chart's Attachments tab shows both "here". Then the server goes away (the clinic's line is
down) and the doctor opens the photo: it opens, in the app's viewer. The letter, never
opened, is still only fetched ahead.

Screenshots of every step are kept in the test's folder (``CARELINE_E2E_SHOTS`` names a
folder to keep them in instead).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.records.schedule import Schedule
from core.records.workstation import Workstation
from core.sync.attachments import Attachments
from tests.conftest import PASSWORD
from tests.e2e.test_data_in_out import LETTER, photo
from tests.e2e.test_desktop_turns import screen, sign_in
from tests.e2e.xdesktop import Desktop, VirtualScreen, shots_folder
from tests.integration.server_fixtures import enroll_desk, server_process_with_admin, sync_at
from tests.integration.server_process import ServerProcess

__all__ = ["screen"]  # the fixture, shared with the other desktop tests

pytestmark = pytest.mark.slow

CLINIC = "Riverbank Clinic"
RASH = "Rash, left forearm"
WEEK = dt.timedelta(days=7)


@dataclass(frozen=True)
class Clinic:
    """The running server, the exam room's data folder, Nia Bello's files' blob ids."""

    server: ServerProcess
    exam_room: Path
    photo_blob: str
    letter_blob: str


@pytest.fixture
def clinic(tmp_path: Path, no_keyring: None) -> Iterator[Clinic]:
    """The server; the exam room joined to it; then, at the front desk, Nia Bello
    registered, booked for today, and two files filed in her chart and uploaded."""
    with server_process_with_admin(tmp_path / "server", CLINIC) as (running, admin, clinic_id):
        code, _ = admin.registry.issue_enroll_code(clinic_id, 10)
        exam_room, _ = enroll_desk(running.url, running.ca_pem, code, tmp_path / "exam-room")
        exam_room.lock()
        code, _ = admin.registry.issue_enroll_code(clinic_id, 10)
        desk, credential = enroll_desk(running.url, running.ca_pem, code, tmp_path / "desk")
        nia = desk.records.add_patient("Bello", "Nia", "1985-05-05").id
        today = dt.date.today()
        Schedule(desk.records).book(nia, f"{today}T11:30", "admin", minutes=20)
        letter = tmp_path / "referral.pdf"
        letter.write_bytes(LETTER)
        rash = photo(tmp_path / "IMG_2210.png")
        files = Attachments(desk.records, tmp_path / "desk", credential=credential)
        added = [
            files.add(
                nia, letter, title="Dermatology referral", date=str(today - WEEK), category="letter"
            ),
            files.add(nia, rash, title=RASH, date=str(today), category="photo"),
        ]
        assert files.push_pending() == 2
        sync_at(desk, credential)
        desk.lock()
        letter_blob, photo_blob = (item.blob_id for item in added)
        assert letter_blob is not None and photo_blob is not None
        yield Clinic(running, tmp_path / "exam-room", photo_blob, letter_blob)


def test_files_fetched_ahead_for_a_booked_patient_open_with_the_server_gone(
    screen: VirtualScreen, clinic: Clinic, tmp_path: Path
) -> None:
    cache = clinic.exam_room / "attachments"
    both = sorted([clinic.photo_blob, clinic.letter_blob])
    app = Desktop(screen, clinic.exam_room, shots_folder(tmp_path, "fetched-ahead"))
    try:
        app.pause(1)
        app.focus()
        sign_in(app, "admin", PASSWORD)
        app.wait_title(f"{CLINIC} — Careline")
        # The sync after signing in brings her records; the files follow in the
        # background, nobody opening them (each marked as fetched ahead).
        app.wait(
            lambda: sorted(p.name for p in (cache / "prefetched").glob("*")) == both,
            "both files to be fetched ahead",
        )
        app.shot("synced")

        # Her chart: the Attachments tab lists both files "here".
        app.key("ctrl+f")
        app.type("bello")
        app.pause(1)
        app.key("Down", "Return")
        app.wait_title(f"BELLO, Nia — {CLINIC} — Careline")
        app.pause(0.6)
        app.shot("chart")
        # "← All patients" has the keyboard: past the three buttons beside it to the
        # chart's tabs, then right to Attachments.
        app.key("Tab", "Tab", "Tab", "Tab", "Right", "Right", "Right")
        app.pause(1)
        app.shot("attachments-here")

        # The server goes away; the photo (the newest: the list's first row) opens all
        # the same, in the app's viewer. Into the tab: "Add file…", then the list (Open
        # and the buttons beside it wait for a file to be chosen); down and up to choose the
        # first row; back past Show removed, Remove…, Edit details… and Save a copy… to Open.
        clinic.server.stop()
        app.key("Tab", "Tab", "Down", "Up")
        app.shot("photo-chosen")
        app.key("shift+Tab", "shift+Tab", "shift+Tab", "shift+Tab", "shift+Tab", "space")
        app.wait_title(RASH)
        app.pause(0.5)
        app.shot("photo-open-offline")
    finally:
        code = app.quit()
    assert code == 0, app.tail()

    ws = Workstation(clinic.exam_room)
    ws.sign_in("admin", PASSWORD)
    # Opened, the photo is the doctor's now; the letter is still only fetched ahead.
    assert Attachments(ws.records, clinic.exam_room).prefetched() == [clinic.letter_blob]
    ws.lock()

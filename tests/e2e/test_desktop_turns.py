"""A front-desk morning and two people taking turns at one workstation: the real app on a
virtual X screen, typed at through the X server (xdotool), as a person would.

The receptionist (the clinic's admin) signs in, mistypes a date of birth twice (a future
date, a day February does not have), gives up on that form, tries to register a patient
who is already registered, finds O'Brien by typing ``obrien``, opens and leaves the chart
with the keyboard, and signs out. A nurse who has never signed in on this computer then
signs in and registers a baby. Afterwards the database holds exactly what was meant:
no date anyone did not type, no duplicate, the nurse's first sign-in and her own key slot.

Screenshots of every step are kept in the test's folder (``CARELINE_E2E_SHOTS`` names a
folder to keep them in instead) so that a person can look at them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records.workstation import Workstation
from tests.conftest import PASSWORD
from tests.e2e.xdesktop import Desktop, VirtualScreen, missing_tools, shots_folder

CLINIC = "Riverside Family Practice"
NURSE, NURSE_PASSWORD = "nurse.jo", "jo's own password 42"

pytestmark = pytest.mark.slow


@pytest.fixture
def screen() -> Iterator[VirtualScreen]:
    missing = missing_tools()
    if missing:
        reason = f"{', '.join(missing)} not installed (apt-get install xvfb xdotool)"
        if os.environ.get("CARELINE_REQUIRE_XVFB") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with VirtualScreen() as virtual:
        yield virtual


@pytest.fixture
def clinic(tmp_path: Path, no_keyring: None) -> Path:
    """A closed clinic: the admin has a key slot here; the nurse's account exists (as if
    synced from elsewhere) but she has never signed in on this computer."""
    data = tmp_path / "clinic"
    ws = Workstation(data)
    ws.init(CLINIC, "admin", "Ada Admin", PASSWORD)
    ws.records.add_user(NURSE, "Jo Nurse", "clinician", NURSE_PASSWORD)
    ws.records.add_patient("Okafor", "Chinedu", "1984-02-02", None, None, None)
    ws.records.add_patient("O'Brien", "Petra", "1990-05-06", None, None, None)
    ws.lock()
    assert Workstation(data).password_users() == ["admin"]
    return data


def sign_in(app: Desktop, user: str, password: str) -> None:
    """Type at the sign-in screen (the user name field has the focus)."""
    app.type(user)
    app.key("Tab")
    app.type(password)
    app.key("Return")
    app.pause(3)  # the password's Argon2id check runs on the worker


def new_patient(app: Desktop) -> None:
    """Ctrl+N, and wait for the New patient form (its first field has the keyboard)."""
    app.key("ctrl+n")
    app.wait_title("New patient")


def close_dialog(app: Desktop, title: str = "New patient") -> None:
    """Escape on a form with typed text, which asks "Discard what you typed?" (Keep
    editing has the keyboard): Tab to Discard and press it; wait for the form to close,
    then hand the keyboard back to the main window, which a window manager would do (the
    virtual screen has none)."""
    app.key("Escape")
    app.pause(0.6)
    app.shot("discard-question")
    app.key("Tab", "space")
    app.wait_gone(title)
    app.focus()


def test_a_morning_at_the_front_desk_then_a_colleague_takes_over(
    screen: VirtualScreen, clinic: Path, tmp_path: Path
) -> None:
    app = Desktop(screen, clinic, shots_folder(tmp_path, "turns"))
    try:
        app.pause(1.5)
        app.focus()
        app.shot("closed-clinic")
        sign_in(app, "admin", PASSWORD)
        app.shot("signed-in")

        # Two dates nobody could have been born on, typed and Tabbed past: refused.
        new_patient(app)
        app.type("Future")
        app.key("Tab")
        app.type("Baby")
        app.key("Tab")
        app.type("2027-01-01")
        app.key("Tab")
        app.pause(0.4)
        app.shot("future-date-refused")
        app.key("shift+Tab", "ctrl+a")  # back on the date, its text selected
        app.type("1984-02-30")
        app.key("Return")  # Save: refused, nothing written
        app.pause(0.6)
        app.shot("impossible-date-refused")
        close_dialog(app)

        # The same patient again: the possible match is shown instead of a second chart.
        new_patient(app)
        app.type("okafor")
        app.key("Tab")
        app.type("chinedu")
        app.key("Tab")
        app.type("1984-02-02")
        app.key("Return")
        app.pause(1.5)
        app.shot("possible-duplicate")
        close_dialog(app)

        # Find O'Brien without the apostrophe, open the chart, leave it with Escape.
        app.key("ctrl+f")
        app.type("obrien")
        app.pause(1.2)
        app.key("Down", "Return")
        app.wait_title(f"O'BRIEN, Petra — {CLINIC} — Careline")
        app.shot("chart")
        app.key("Escape")
        app.wait_title(f"{CLINIC} — Careline")
        app.pause(0.5)
        assert "O'BRIEN" not in app.title()

        # Sign out: nothing of the chart on screen, the clinic stays open for the next one.
        app.key("ctrl+l")
        app.pause(1.5)
        app.shot("signed-out")

        # A colleague who has never used this computer signs in and registers a baby.
        sign_in(app, NURSE, NURSE_PASSWORD)
        app.shot("nurse-signed-in")
        new_patient(app)
        app.type("Mensah")
        app.key("Tab")
        app.type("Ama")
        app.key("Tab")
        app.type("2026-10-3")
        app.key("Return")
        app.pause(1.5)
        app.shot("baby-registered")
    finally:
        code = app.quit()
    assert code == 0, app.tail()

    ws = Workstation(clinic)
    ws.sign_in("admin", PASSWORD)
    patients = {(p.family, p.given): p.birth_date for p in ws.records.list_patients()}
    # Exactly what was meant: no Future Baby (neither date), no second Okafor, the baby's
    # date as typed (the short day written out, nothing guessed).
    assert patients == {
        ("Okafor", "Chinedu"): "1984-02-02",
        ("O'Brien", "Petra"): "1990-05-06",
        ("Mensah", "Ama"): "2026-10-03",
    }
    actors = ws.database.query(
        "SELECT actor, action FROM audit_log WHERE action IN ('user.sign_in', 'patient.create')"
        " ORDER BY seq"
    )
    # (The last entry is this check's own sign-in.)
    assert [tuple(a) for a in actors][-4:-1] == [
        ("admin", "user.sign_in"),
        (NURSE, "user.sign_in"),
        (NURSE, "patient.create"),
    ]
    ws.lock()
    # Her first sign-in here gave her a key slot: tomorrow she opens the closed clinic herself.
    assert Workstation(clinic).password_users() == ["admin", NURSE]

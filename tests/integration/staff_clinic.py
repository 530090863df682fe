"""A clinic made by ``careline init`` with one account per role and one patient, for the
command-line permission tests; and running ``careline`` as one of those people."""

from __future__ import annotations

from pathlib import Path

from core.records.staff import Staff
from core.records.workstation import Workstation
from tests.conftest import PASSWORD
from tests.integration.test_cli import careline

STAFF = {"desk": "front_desk", "nina": "nurse", "doc": "clinician", "adm": "admin"}


def make_staff_clinic(data: Path, deactivated: tuple[str, ...] = ()) -> str:
    """Create the clinic in ``data`` (the accounts of :data:`STAFF`, each with a key slot
    here, plus ``deactivated`` nurses who left); returns the patient's id."""
    made = careline(
        data, "--json", "--password-stdin", "init", "--clinic", "Harbour Clinic", "--user",
        "admin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    ws = Workstation(data)
    ws.sign_in("admin", PASSWORD)
    try:
        for name, role in STAFF.items():
            ws.records.add_user(name, name.title(), role, PASSWORD)
        for name in deactivated:
            ws.records.add_user(name, name.title(), "nurse", PASSWORD)
            Staff(ws.records).deactivate(name)
        pid = ws.records.add_patient("Nakamura", "Kei", "1961-04-05").id
        ws.records.add_allergy(pid, "penicillin")
        for name in STAFF:  # a first sign-in here gives each a key slot on this workstation
            ws.sign_in(name, PASSWORD)
    finally:
        ws.lock()
    return pid


def run_as(data: Path, user: str, *args: str) -> tuple[int, str, str]:
    """``careline --json --user USER ARGS`` with that person's password: exit code, out, err."""
    done = careline(
        data, "--json", "--user", user, "--password-stdin", *args, stdin=PASSWORD + "\n"
    )
    return done.returncode, done.stdout, done.stderr

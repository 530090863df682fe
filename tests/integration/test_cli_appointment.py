"""``careline appointment ...`` as operators script it: real processes, real SQLCipher."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.integration.test_cli import PASSWORD, as_admin, careline


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A clinic (its admin also sees patients) with two patients."""
    data = tmp_path_factory.mktemp("cli-appt") / "data"
    result = careline(
        data, "--json", "--password-stdin", "init", "--clinic", "Harbour Clinic", "--user",
        "admin", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    maria = as_admin(data, "patient", "add", "--family", "Garcia", "--given", "Maria",
                     "--birth-date", "1984-03-02")  # fmt: skip
    luis = as_admin(data, "patient", "add", "--family", "Soto", "--given", "Luis",
                    "--birth-date", "1979-11-20")  # fmt: skip
    return data, maria["id"], luis["id"]


def admin(data: Path, *args: str) -> tuple[int, str, str]:
    result = careline(data, "--password-stdin", *args, stdin=PASSWORD + "\n")
    return result.returncode, result.stdout, result.stderr


def test_book_list_move_status_cancel(clinic: tuple[Path, str, str]) -> None:
    # Bookings in December 2037 (7 December a Monday, as it was in 2026 when this was
    # written): always ahead of the clock, never today.
    data, maria, _ = clinic
    booked = as_admin(
        data, "appointment", "add", maria, "--start", "2037-12-07T09:30", "--minutes", "15",
        "--clinician", "admin", "--reason", "Cough",
    )  # fmt: skip
    assert booked["starts_at"] == "2037-12-07T09:30" and booked["ends_at"] == "2037-12-07T09:45"
    assert (booked["status"], booked["patient_name"], booked["minutes"]) == (
        "booked", "GARCIA, Maria", 15,
    )  # fmt: skip
    day = as_admin(data, "appointment", "list", "--date", "2037-12-07")
    assert [a["id"] for a in day["appointments"]] == [booked["id"]]
    week = as_admin(data, "appointment", "list", "--week", "2037-12-10", "--clinician", "admin")
    assert (week["from"], week["to"]) == ("2037-12-07", "2037-12-13")
    assert [a["id"] for a in week["appointments"]] == [booked["id"]]
    # Checked in only on the appointment's day (the clinic's clock: today).
    code, _, err = admin(data, "appointment", "status", booked["id"], "arrived")
    assert code == 1 and "the appointment is on 2037-12-07: it can only be marked arrived" in err
    today = dt.date.today().isoformat()
    moved = as_admin(data, "appointment", "move", booked["id"], "--start", f"{today} 14:00")
    assert (moved["starts_at"], moved["ends_at"]) == (f"{today}T14:00", f"{today}T14:15")
    arrived = as_admin(data, "appointment", "status", booked["id"], "arrived")
    assert arrived["status"] == "arrived" and arrived["arrived_at"]
    assert as_admin(data, "appointment", "status", booked["id"], "in_visit")["status"] == "in_visit"
    assert as_admin(data, "appointment", "status", booked["id"], "done")["status"] == "done"
    code, _, err = admin(data, "appointment", "status", booked["id"], "booked")
    assert code == 1
    assert "done cannot become booked" in err
    # Plain output: one line per appointment.
    code, out, _ = admin(data, "appointment", "list", "--date", today)
    assert code == 0
    assert "14:00-14:15  admin  GARCIA, Maria  Done  Cough" in out
    other = as_admin(
        data, "appointment", "add", maria, "--start", "2037-12-09 10:00", "--end",
        "2037-12-09 10:30", "--clinician", "admin",
    )  # fmt: skip
    cancelled = as_admin(data, "appointment", "cancel", other["id"], "--reason", "Feels better")
    assert (cancelled["status"], cancelled["cancel_reason"]) == ("cancelled", "Feels better")


def test_an_overlap_is_refused_unless_allowed(clinic: tuple[Path, str, str]) -> None:
    data, maria, luis = clinic
    first = as_admin(
        data, "appointment", "add", maria, "--start", "2037-12-14T09:00", "--minutes", "30",
        "--clinician", "admin",
    )  # fmt: skip
    args = ("appointment", "add", luis, "--start", "2037-12-14T09:15", "--minutes", "15",
            "--clinician", "admin")  # fmt: skip
    result = careline(data, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n")
    assert result.returncode == 1
    assert "already has an appointment then" in result.stderr
    assert "--allow-overlap" in result.stderr
    doc = json.loads(result.stdout)
    assert doc["booked"] is None and [a["id"] for a in doc["overlaps"]] == [first["id"]]
    day = as_admin(data, "appointment", "list", "--date", "2037-12-14")
    assert len(day["appointments"]) == 1  # nothing was written
    second = as_admin(data, *args, "--allow-overlap")
    day = as_admin(data, "appointment", "list", "--date", "2037-12-14")
    assert [a["id"] for a in day["appointments"]] == [first["id"], second["id"]]


def test_a_patients_clash_says_with_whom(clinic: tuple[Path, str, str]) -> None:
    data, maria, _ = clinic
    as_admin(data, "appointment", "add", maria, "--start", "2037-12-15T09:00", "--minutes",
             "30", "--clinician", "admin")  # fmt: skip
    result = careline(data, "--password-stdin", "appointment", "add", maria, "--start",
                      "2037-12-15T09:10", "--minutes", "15", "--clinician", "admin",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert result.returncode == 1
    _, patients = result.stderr.split("the patient already has an appointment then:")
    assert "2037-12-15 09:00-09:30 GARCIA, Maria (booked, id " in patients
    assert ") with admin\n" in patients


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--start", "2026-02-30T09:00", "--minutes", "15"), "February 2026 has 28 days"),
        (("--start", "2037-12-07T24:00", "--minutes", "15"), "there is no hour 24"),
        (("--start", "2037-12-07T09:00Z", "--minutes", "15"), "names a time zone"),
        (("--start", "2037-12-07T09:00", "--minutes", "0"), "is not a length"),
    ],
)
def test_impossible_times_are_named(
    clinic: tuple[Path, str, str], args: tuple[str, ...], words: str
) -> None:
    data, maria, _ = clinic
    code, _, err = admin(data, "appointment", "add", maria, "--clinician", "admin", *args)
    assert code == 1
    assert words in err


def test_usage_errors(clinic: tuple[Path, str, str]) -> None:
    data, maria, _ = clinic
    code, _, err = admin(data, "appointment", "add", maria, "--start", "2037-12-07T09:00",
                         "--clinician", "admin")  # fmt: skip
    assert code == 2 and "--minutes" in err
    code, _, err = admin(data, "appointment", "status", "x", "sideways")
    assert code == 2 and "invalid choice" in err
    code, _, err = admin(data, "appointment", "cancel", "nope")
    assert code == 1 and "no appointment with id 'nope'" in err
    code, _, err = admin(data, "appointment", "list", "--date", "07/12/2037")
    assert code == 1 and "year last" in err

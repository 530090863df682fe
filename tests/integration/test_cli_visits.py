"""``careline visit ...`` and ``careline note ...`` as operators script them: real processes,
real SQLCipher; note text from --text or standard input (after the password line)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.staff_clinic import make_staff_clinic
from tests.integration.test_cli import PASSWORD, as_admin, careline


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("visits") / "data"
    result = careline(
        data, "--password-stdin", "init", "--clinic", "Harbour Clinic", "--user", "admin",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return data


def with_text(data: Path, text: str, *args: str) -> Any:
    """Run as the admin with ``text`` on stdin after the password line."""
    result = careline(data, "--json", "--password-stdin", *args, stdin=f"{PASSWORD}\n{text}")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_visit_with_a_signed_note_and_an_addendum(clinic: Path) -> None:
    patient = as_admin(
        clinic, "patient", "add", "--family", "Osei", "--given", "Kofi", "--birth-date",
        "1978-04-09",
    )  # fmt: skip
    visit = as_admin(clinic, "visit", "start", patient["id"], "--reason", "Back pain")
    assert visit["status"] == "open" and visit["clinician"] == "admin"
    assert visit["reason"] == "Back pain" and visit["appointment_id"] is None

    note = as_admin(clinic, "note", "add", patient["id"], "--visit", visit["id"], "--soap")
    assert note["body"].startswith("Subjective:") and note["encounter_id"] == visit["id"]
    long_text = "Subjective:\nLow back pain after lifting.\n\nPlan:\nIbuprofen, review 2 weeks.\n"
    edited = with_text(clinic, long_text, "note", "edit", note["id"])
    assert edited["body"] == long_text
    signed = as_admin(clinic, "note", "sign", note["id"])
    assert signed["signed_at"] and signed["body"] == long_text
    refused = careline(
        clinic, "--password-stdin", "note", "edit", note["id"], stdin=f"{PASSWORD}\nchanged"
    )
    assert refused.returncode == 1
    assert "the note is signed; add an addendum instead" in refused.stderr
    after = with_text(clinic, "X-ray normal.", "note", "addendum", note["id"])
    assert [a["body"] for a in after["addenda"]] == ["X-ray normal."]

    listed = as_admin(clinic, "note", "list", "--visit", visit["id"])
    assert [n["id"] for n in listed] == [note["id"]]
    text = careline(
        clinic, "--password-stdin", "note", "list", "--patient", patient["id"],
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert "Low back pain after lifting." in text.stdout and "X-ray normal." in text.stdout

    # A second visit: the list is newest first; --open leaves out the closed one.
    second = as_admin(clinic, "visit", "start", patient["id"], "--reason", "Follow-up")
    closed = as_admin(clinic, "visit", "close", visit["id"])
    assert closed["status"] == "closed" and closed["closed_by"] == "admin"
    listed_visits = as_admin(clinic, "visit", "list", "--patient", patient["id"])
    assert {v["id"] for v in listed_visits} == {visit["id"], second["id"]}
    starts = [v["started_at"] for v in listed_visits]
    assert starts == sorted(starts, reverse=True)
    assert [v["id"] for v in as_admin(clinic, "visit", "list", "--open")] == [second["id"]]
    again = careline(clinic, "--password-stdin", "visit", "close", visit["id"], stdin=PASSWORD)
    assert again.returncode == 1 and "already closed" in again.stderr
    # Closed by mistake before a note was written: reopened, it takes one.
    reopened = as_admin(clinic, "visit", "reopen", visit["id"])
    assert reopened["status"] == "open" and reopened["closed_by"] is None
    as_admin(clinic, "note", "add", patient["id"], "--visit", visit["id"], "--text", "Late.")
    open_again = careline(
        clinic, "--password-stdin", "visit", "reopen", second["id"], stdin=PASSWORD
    )
    assert open_again.returncode == 1 and "the visit is open" in open_again.stderr


def test_bad_input_is_named_and_nothing_is_written(clinic: Path) -> None:
    patient = as_admin(
        clinic, "patient", "add", "--family", "Lund", "--given", "Eva", "--birth-date",
        "1990-01-01",
    )  # fmt: skip
    unknown = careline(
        clinic, "--password-stdin", "visit", "start", patient["id"], "--clinician", "dr.who",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.returncode == 1 and "'dr.who' is not a user" in unknown.stderr
    no_appt = careline(
        clinic, "--password-stdin", "visit", "start", patient["id"], "--appointment", "nope",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert no_appt.returncode == 1 and "no appointment with id 'nope'" in no_appt.stderr
    assert as_admin(clinic, "visit", "list", "--patient", patient["id"]) == []
    visit = as_admin(clinic, "visit", "start", patient["id"])
    empty = careline(
        clinic, "--password-stdin", "note", "add", patient["id"], "--visit", visit["id"],
        stdin=PASSWORD + "\n   \n",
    )  # fmt: skip
    assert empty.returncode == 1 and "body: is required" in empty.stderr
    assert as_admin(clinic, "note", "list", "--visit", visit["id"]) == []


def test_an_untouched_soap_note_is_not_signed(clinic: Path) -> None:
    patient = as_admin(
        clinic, "patient", "add", "--family", "Berg", "--given", "Nils", "--birth-date",
        "1966-02-11",
    )  # fmt: skip
    visit = as_admin(clinic, "visit", "start", patient["id"], "--reason", "Dizziness")
    note = as_admin(clinic, "note", "add", patient["id"], "--visit", visit["id"], "--soap")
    refused = careline(
        clinic, "--password-stdin", "note", "sign", note["id"], stdin=PASSWORD + "\n"
    )
    assert refused.returncode == 1
    assert "the note holds only its headings; write the note before signing it" in refused.stderr
    [listed] = as_admin(clinic, "note", "list", "--visit", visit["id"])
    assert listed["signed_at"] is None  # not frozen: it can still be written
    written = with_text(clinic, "Subjective:\nDizzy on standing.\n", "note", "edit", note["id"])
    assert as_admin(clinic, "note", "sign", written["id"])["signed_at"]


def test_a_visit_from_an_appointment_moves_it_through_the_schedule(clinic: Path) -> None:
    patient = as_admin(
        clinic, "patient", "add", "--family", "Mensah", "--given", "Ama", "--birth-date",
        "1965-02-11",
    )  # fmt: skip
    today, tomorrow = dt.date.today(), dt.date.today() + dt.timedelta(days=1)
    later = as_admin(
        clinic, "appointment", "add", patient["id"], "--start", f"{tomorrow} 10:00",
        "--minutes", "20", "--clinician", "admin", "--reason", "BP check",
    )  # fmt: skip
    refused = careline(
        clinic, "--password-stdin", "visit", "start", patient["id"], "--appointment",
        later["id"], stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "appointment_id: is booked; a visit is started from an appointment only once the " \
        "patient has arrived" in refused.stderr  # fmt: skip
    assert as_admin(clinic, "visit", "list", "--patient", patient["id"]) == []
    assert as_admin(clinic, "appointment", "cancel", later["id"])["status"] == "cancelled"

    now = as_admin(
        clinic, "appointment", "add", patient["id"], "--start", f"{today} 00:05",
        "--minutes", "20", "--clinician", "admin", "--reason", "BP check",
    )  # fmt: skip
    as_admin(clinic, "appointment", "status", now["id"], "arrived")
    visit = as_admin(clinic, "visit", "start", patient["id"], "--appointment", now["id"])
    assert (visit["appointment_id"], visit["reason"]) == (now["id"], "BP check")

    def status() -> str:
        day = as_admin(clinic, "appointment", "list", "--date", today.isoformat())
        return str(next(a["status"] for a in day["appointments"] if a["id"] == now["id"]))

    assert status() == "in_visit"
    as_admin(clinic, "visit", "close", visit["id"])
    assert status() == "done"


def test_a_draft_on_the_wrong_chart_is_discarded_and_a_signed_note_is_not(clinic: Path) -> None:
    patient = as_admin(
        clinic, "patient", "add", "--family", "Haddad", "--given", "Rami", "--birth-date",
        "1971-05-30",
    )  # fmt: skip
    visit = as_admin(clinic, "visit", "start", patient["id"], "--reason", "Cough")
    draft = as_admin(clinic, "note", "add", patient["id"], "--visit", visit["id"], "--soap")
    kept = as_admin(clinic, "note", "add", patient["id"], "--visit", visit["id"], "--text", "Ok.")
    said = careline(clinic, "--password-stdin", "note", "discard", draft["id"], stdin=PASSWORD)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"Discarded note {draft['id']} at ")
    assert said.stdout.rstrip().endswith(": it is off the chart")
    for listing in (("--visit", visit["id"]), ("--patient", patient["id"])):
        assert [n["id"] for n in as_admin(clinic, "note", "list", *listing)] == [kept["id"]]
    again = careline(clinic, "--password-stdin", "note", "discard", draft["id"], stdin=PASSWORD)
    assert again.returncode == 1 and "the note is already discarded" in again.stderr
    edited = careline(
        clinic, "--password-stdin", "note", "edit", draft["id"], stdin=f"{PASSWORD}\nMore."
    )
    assert edited.returncode == 1 and "the note was discarded" in edited.stderr
    as_admin(clinic, "note", "sign", kept["id"])
    signed = careline(clinic, "--password-stdin", "note", "discard", kept["id"], stdin=PASSWORD)
    assert signed.returncode == 1
    assert "a signed note is the legal record and cannot be discarded" in signed.stderr
    as_json = as_admin(clinic, "note", "list", "--visit", visit["id"])
    assert [(n["id"], n["discarded_at"]) for n in as_json] == [(kept["id"], None)]
    nothing = careline(clinic, "--password-stdin", "note", "discard", "nope", stdin=PASSWORD)
    assert nothing.returncode == 1 and "no note with id 'nope'" in nothing.stderr


@pytest.fixture(scope="module")
def staff(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A clinic with a nurse (nina), clinicians (doc, and admin who made it), and one
    patient (its id)."""
    data = tmp_path_factory.mktemp("staff") / "data"
    return data, make_staff_clinic(data)


def as_user(data: Path, user: str, *args: str, text: str = "") -> Any:
    """``careline --json --user USER ARGS``, ``text`` on stdin after the password line."""
    done = careline(
        data, "--json", "--user", user, "--password-stdin", *args, stdin=f"{PASSWORD}\n{text}"
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_note_list_names_everyone_who_wrote_a_note_oldest_first(staff: tuple[Path, str]) -> None:
    """The tester's notes came back in the order of their random ids, and a draft a nurse
    and a colleague edited was listed as its starter's alone."""
    data, patient = staff
    visit = as_user(data, "doc", "visit", "start", patient, "--reason", "Headache")
    notes = [
        as_user(data, "doc", "note", "add", patient, "--visit", visit["id"], "--text", f"N{i}.")
        for i in range(8)
    ]
    first = notes[0]["id"]
    as_user(data, "nina", "note", "edit", first, text="N0.\nNURSE: BP recheck 118/76.\n")
    as_user(data, "admin", "note", "edit", first, text="N0.\nNURSE: BP recheck 118/76.\nSleep?\n")
    # Her second edit names her once, after admin: editors come in the order of their
    # latest edits.
    as_user(data, "nina", "note", "edit", first, text="N0.\nNURSE: BP recheck 118/76, 120/78.\n")
    listed = as_user(data, "doc", "note", "list", "--patient", patient)
    assert [n["id"] for n in listed] == [n["id"] for n in notes]  # in the order started
    assert (listed[0]["author"], listed[0]["editors"]) == ("doc", ["admin", "nina"])
    assert [n["editors"] for n in listed[1:]] == [[]] * 7
    assert [n["started_at"] for n in listed] == sorted(n["started_at"] for n in listed)
    text = careline(
        data, "--user", "doc", "--password-stdin", "note", "list", "--visit", visit["id"],
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    head = f"{first}  patient {patient}  visit {visit['id']}  doc, edited by admin, nina  unsigned"
    assert text.stdout.startswith(head + "\n"), text.stdout
    assert f"{notes[1]['id']}  patient {patient}  visit {visit['id']}  doc  unsigned" in text.stdout


def test_closing_a_visit_with_an_unsigned_draft_names_it(staff: tuple[Path, str]) -> None:
    """Closed as before (scripts close visits), with a warning naming each draft left
    unsigned: whose, edited by whom, started when."""
    data, patient = staff
    visit = as_user(data, "doc", "visit", "start", patient, "--reason", "Follow-up")
    signed = as_user(data, "doc", "note", "add", patient, "--visit", visit["id"], "--text", "Ok.")
    as_user(data, "doc", "note", "sign", signed["id"])
    draft = as_user(
        data, "nina", "note", "add", patient, "--visit", visit["id"], "--text", "BP 118/76."
    )
    as_user(data, "doc", "note", "edit", draft["id"], text="BP 118/76.\nReview in 4 weeks.\n")
    done = careline(
        data, "--user", "doc", "--password-stdin", "visit", "close", visit["id"],
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    closed, warning = done.stdout.rstrip("\n").split("\n")
    assert closed.startswith(f"Closed visit {visit['id']} ")
    assert warning == (
        f"Warning: the visit has 1 unsigned draft, left unsigned: note {draft['id']} by nina, "
        f"edited by doc, started {draft['started_at']}. Sign each (careline note sign ID) or "
        "discard it (careline note discard ID)."
    )
    assert as_user(data, "doc", "visit", "reopen", visit["id"])["status"] == "open"
    shown = as_user(data, "doc", "visit", "close", visit["id"])
    assert shown["status"] == "closed" and shown["warning"] == warning
    assert shown["unsigned_drafts"] == [
        {"id": draft["id"], "author": "nina", "editors": ["doc"], "started_at": draft["started_at"]}
    ]
    # Signed, the draft is no longer warned of.
    as_user(data, "doc", "visit", "reopen", visit["id"])
    as_user(data, "doc", "note", "sign", draft["id"])
    again = as_user(data, "doc", "visit", "close", visit["id"])
    assert "warning" not in again and "unsigned_drafts" not in again

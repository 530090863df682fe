"""Reads of a restricted chart through the command line (real processes, which always
enforce), as the security review's S1 and S6 made them: the front desk and a nurse off
the care team read neither a visit's notes, nor the visits' reasons, nor break-glass
openings, nor the conflict inbox's values of that chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.models import CLINICAL_HIDDEN
from core.records.workstation import Workstation
from tests.conftest import PASSWORD
from tests.integration.staff_clinic import make_staff_clinic, run_as
from tests.integration.test_cli import _sync_data_dirs, careline

SECRET = "viral load 20000 SECRETNOTE"
OUTSIDERS = ("desk", "nina")  # the front desk; a nurse off the care team
# What each is told: the front desk who may read a chart; the nurse, that she is not on
# this one's care team.
REFUSED_BY = {
    "desk": "Only a nurse or a clinician",
    "nina": "Only the people on this restricted chart's care team can",
}


def _ok(data: Path, user: str, *args: str) -> Any:
    code, out, err = run_as(data, user, *args)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A restricted chart (care team: doc) with a visit, its note, a break-glass opening,
    and its visit's reason changed on two workstations (an open conflict)."""
    root = tmp_path_factory.mktemp("cli-read-access")
    data, other = root / "one", root / "two"
    pid = make_staff_clinic(data)
    visit = _ok(data, "doc", "visit", "start", pid, "--reason", "HIV follow-up")["id"]
    _ok(data, "doc", "note", "add", pid, "--visit", visit, "--text", SECRET)
    _ok(data, "doc", "access", "restrict", pid)
    _ok(data, "doc", "break-glass", pid, "--reason", "covering the clinic")
    joined = Workstation(other, FAST_PARAMS)
    joined.prepare_join("admin", PASSWORD)
    joined.lock()
    _sync_data_dirs(other, data)
    for folder, reason in ((data, "HIV: viral load rising"), (other, "HIV: start PrEP")):
        ws = Workstation(folder, FAST_PARAMS)
        ws.unlock_with_password("admin", PASSWORD)
        try:
            doc = ClinicRecords(ws.database, "doc")
            ClinicalEntries(doc).update("encounter", visit, {"reason": reason})
        finally:
            ws.lock()
    _sync_data_dirs(other, data)
    return data, pid, visit


@pytest.fixture(scope="module")
def open_chart(clinic: tuple[Path, str, str]) -> str:
    """An unrestricted chart with a recorded allergy (tester report: the front desk's
    ``patient show`` told it from one never recorded)."""
    data = clinic[0]
    pid = _ok(data, "adm", "patient", "add", "--family", "Okafor", "--given", "Ada",
              "--birth-date", "1980-02-03")["id"]  # fmt: skip
    _ok(data, "doc", "allergy", "add", pid, "Sulfamethoxazole", "--severity", "severe")
    return str(pid)


def _shown(data: Path, who: str, pid: str) -> str:
    text = careline(data, "--user", who, "--password-stdin", "patient", "show", pid,
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert text.returncode == 0, text.stderr
    return text.stdout


@pytest.mark.parametrize(("who", "chart"), [("desk", "open"), ("desk", "restricted"),
                                            ("nina", "restricted")])  # fmt: skip
def test_patient_show_withholds_the_allergies_and_their_status(
    clinic: tuple[Path, str, str], open_chart: str, who: str, chart: str
) -> None:
    """What the app's chart shows them: the demographics and the withheld sentence, no
    allergy line (neither "not recorded yet" nor the substances), and in --json no
    allergy_status beside the sentence (its value says the patient has allergies)."""
    data = clinic[0]
    pid = open_chart if chart == "open" else clinic[1]
    text = _shown(data, who, pid)
    assert CLINICAL_HIDDEN in text
    assert "allergies" not in text.lower()
    assert "sulfamethoxazole" not in text.lower() and "penicillin" not in text.lower()
    shown = _ok(data, who, "patient", "show", pid)
    assert shown["clinical"] == CLINICAL_HIDDEN
    assert {"allergy_status", "allergies"}.isdisjoint(shown)
    if who == "desk":  # the front desk changes demographics (a nurse off the team may not)
        changed = _ok(data, who, "patient", "set", pid, "phone", "555-0199")
        assert changed["phone"] == "555-0199" and "allergy_status" not in changed
    # On the care team: the allergies and the status, as before.
    assert "allergies:" in _shown(data, "doc", pid)
    full = _ok(data, "doc", "patient", "show", pid)
    assert full["allergy_status"] == "allergies" and "clinical" not in full


def test_a_front_desk_registration_reply_holds_no_clinical_field(
    clinic: tuple[Path, str, str],
) -> None:
    added = _ok(clinic[0], "desk", "patient", "add", "--family", "Berg", "--given", "Lo",
                "--birth-date", "1990-07-08")  # fmt: skip
    assert added["family"] == "Berg" and "allergy_status" not in added


@pytest.mark.parametrize("who", OUTSIDERS)
def test_a_visits_notes_are_refused(clinic: tuple[Path, str, str], who: str) -> None:
    data, _, visit = clinic
    code, out, err = run_as(data, who, "note", "list", "--visit", visit)
    assert code != 0 and out == "" and SECRET not in err
    assert REFUSED_BY[who] in err
    assert _ok(data, "doc", "note", "list", "--visit", visit)[0]["body"] == SECRET


@pytest.mark.parametrize("who", OUTSIDERS)
def test_the_clinic_visit_list_withholds_the_reason(
    clinic: tuple[Path, str, str], who: str
) -> None:
    data, pid, visit = clinic
    [shown] = _ok(data, who, "visit", "list")
    assert (shown["id"], shown["patient_id"]) == (visit, pid)  # who is in a visit stays
    assert (shown["reason"], shown["reason_withheld"]) == (None, True)
    text = careline(data, "--user", who, "--password-stdin", "visit", "list",
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "(reason withheld: clinical)" in text.stdout and "HIV" not in text.stdout
    [full] = _ok(data, "doc", "visit", "list")
    assert full["reason"].startswith("HIV") and full["reason_withheld"] is False


@pytest.mark.parametrize("who", [*OUTSIDERS, "doc"])
def test_break_glass_openings_are_for_administrators(
    clinic: tuple[Path, str, str], who: str
) -> None:
    data, pid, _ = clinic
    for args in (("break-glass", "list"), ("break-glass", "list", "--pending")):
        code, out, err = run_as(data, who, *args)
        assert code != 0 and out == "" and "covering the clinic" not in err
        assert "Only an admin can review break-glass openings" in err
    [opening] = _ok(data, "adm", "break-glass", "list", "--pending")["openings"]
    assert (opening["patient_id"], opening["reason"]) == (pid, "covering the clinic")


@pytest.mark.parametrize("who", OUTSIDERS)
def test_the_conflict_inbox_shows_neither_the_values_nor_the_chart(
    clinic: tuple[Path, str, str], who: str
) -> None:
    data, pid, visit = clinic
    code, out, err = run_as(data, who, "conflicts", "list")
    assert (code, json.loads(out)) == (0, [])  # the list scripts parse stays a list
    assert "careline: 1 more conflict is on records you may not open" in err
    assert visit not in err and "HIV" not in err
    text = careline(data, "--user", who, "--password-stdin", "conflicts", "list",
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip() == (
        "1 more conflict is on records you may not open; someone who may read them resolves it."
    )
    code, out, err = run_as(data, "doc", "conflicts", "list")
    [conflict] = json.loads(out)
    assert conflict["record_id"] == visit and "more conflict" not in err
    code, out, err = run_as(data, who, "conflicts", "resolve", conflict["id"], "--value", "x")
    assert code != 0 and out == ""
    assert "can open this conflict" in err and pid not in err


def test_a_restricted_chart_merged_into_a_new_registration_stays_restricted(
    tmp_path: Path,
) -> None:
    """Tester report E1 through real processes: the restricted chart merged into a new,
    unrestricted registration of the person (the new one kept). The duplicates list and the
    merge say which chart is restricted; the survivor shows as restricted and a nurse off
    the care team reads neither its allergies nor its notes, by either id."""
    data = tmp_path / "merged"
    old = make_staff_clinic(data)
    visit = _ok(data, "doc", "visit", "start", old, "--reason", "HIV follow-up")["id"]
    _ok(data, "doc", "note", "add", old, "--visit", visit, "--text", SECRET)
    _ok(data, "doc", "access", "restrict", old)
    new = _ok(data, "adm", "patient", "add", "--family", "Nakamura", "--given", "Kei",
              "--birth-date", "1961-04-05", "--allow-duplicate")["id"]  # fmt: skip
    [pair] = _ok(data, "adm", "patient", "duplicates")["pairs"]
    assert f"chart NAKAMURA, Kei ({old}) is restricted" in pair["warning"]
    merge = ("patient", "merge", old, "--into", new, "--reason", "registered twice")
    text = careline(data, "--user", "adm", "--password-stdin", *merge, stdin=PASSWORD + "\n")
    assert text.returncode == 0, text.stderr
    assert f"Merged {old} into {new}" in text.stdout
    assert "The merged chart will be restricted too" in text.stdout
    for pid in (new, old):
        shown = _ok(data, "nina", "patient", "show", pid)
        assert shown["restricted"] is True and "allergies" not in shown
        # Neither the chart nor the merged-in registration says it has allergies.
        [merged_in] = shown["merged_from"]
        assert merged_in["id"] == old
        assert "allergy_status" not in shown and "allergy_status" not in merged_in
        code, out, err = run_as(data, "nina", "note", "list", "--patient", pid)
        assert code != 0 and SECRET not in out + err
        assert REFUSED_BY["nina"] in err
    assert [a["substance"] for a in _ok(data, "doc", "patient", "show", new)["allergies"]] == [
        "penicillin"
    ]
    assert _ok(data, "nina", "access", "show", new)["restricted_by"] == [old]

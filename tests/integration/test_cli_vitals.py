"""``careline vitals add|list`` as operators script it: real processes, real SQLCipher."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.workstation import Workstation
from tests.integration.test_cli import PASSWORD, _sync_data_dirs, as_admin, careline


def test_vitals_add_and_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    patient = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )
    pid = patient["id"]
    added = as_admin(
        data, "vitals", "add", pid, "--at", "2026-12-01T09:30", "--bp", "150/95",
        "--pulse", "72", "--temp", "102F", "--weight", "154lb", "--height", "170cm",
        "--spo2", "97", "--rr", "16", "--pain", "2",
    )  # fmt: skip
    by_vital = {r["vital"]: r for r in added["readings"]}
    assert set(by_vital) == {
        "systolic", "diastolic", "pulse", "temperature", "weight", "height", "spo2",
        "respiratory_rate", "pain",
    }  # fmt: skip
    temp = by_vital["temperature"]
    assert (temp["code"], temp["value"], temp["unit"]) == ("8310-5", "38.89", "Cel")
    assert (temp["entered_value"], temp["entered_unit"], temp["flag"]) == ("102", "[degF]", "high")
    assert by_vital["systolic"]["flag"] == "high" and by_vital["pulse"]["flag"] is None

    listed = as_admin(data, "vitals", "list", pid, "--code", "temperature")
    assert [r["entered_value"] for r in listed["readings"]] == ["102"]
    everything = as_admin(data, "vitals", "list", pid)
    assert len(everything["readings"]) == 9
    # Who recorded each set, as for allergies (the audit log was the only place it showed).
    assert {r["recorded_by"] for r in everything["readings"]} == {"admin"}
    assert everything["bmi"] == [
        {"observed_at": "2026-12-01T09:30", "value": "24.2", "unit": "kg/m2", "flag": None,
         "set_id": added["readings"][0]["set_id"]}
    ]  # fmt: skip

    text = careline(data, "--password-stdin", "vitals", "list", pid, stdin=PASSWORD + "\n")
    assert text.returncode == 0, text.stderr
    assert "2026-12-01T09:30  Temperature: 102 °F (high)" in text.stdout
    assert "BMI (worked out): 24.2 kg/m²" in text.stdout


def test_impossible_vitals_are_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    refused = careline(
        data, "--password-stdin", "vitals", "add", pid, "--bp", "1200/80", "--pulse", "70",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert refused.returncode == 1
    assert "1200 mmHg is not possible: must be 30 to 300 mmHg" in refused.stderr
    no_unit = careline(
        data, "--password-stdin", "vitals", "add", pid, "--weight", "70", stdin=PASSWORD + "\n"
    )
    assert no_unit.returncode == 1
    assert "needs its unit: kg or lb" in no_unit.stderr
    no_visit = careline(
        data, "--password-stdin", "vitals", "add", pid, "--pulse", "70", "--visit", "v404",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert no_visit.returncode == 1 and "no visit with id 'v404'" in no_visit.stderr
    future = careline(
        data, "--password-stdin", "vitals", "add", pid, "--pulse", "70", "--at", "2999-01-01T09:00",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert future.returncode == 1 and "2999-01-01 09:00 is in the future" in future.stderr
    # Later today is in the future too: at 21:14 the tester stored a set at 23:59.
    later = (dt.datetime.now() + dt.timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M")
    tonight = careline(
        data, "--password-stdin", "vitals", "add", pid, "--pulse", "71", "--at", later,
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert tonight.returncode == 1
    assert f"--at: {later.replace('T', ' ')} is in the future: this computer's clock says" in (
        tonight.stderr
    )
    for at, words in (
        ("2026-12-05", "--at: '2026-12-05' has no time: type the date and the time"),
        ("20261204", "--at: '20261204' has no time"),
        ("2026-12-05T10:00+05:00", "--at: '2026-12-05T10:00+05:00' names a time zone"),
    ):
        made_up = careline(
            data, "--password-stdin", "vitals", "add", pid, "--pulse", "70", "--at", at,
            stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert made_up.returncode == 1 and words in made_up.stderr, made_up.stderr
    assert as_admin(data, "vitals", "list", pid)["readings"] == []
    unknown = careline(
        data, "--json", "--password-stdin", "vitals", "list", pid, "--code", "glucose",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.returncode == 1 and "'glucose' is not a vital sign" in unknown.stderr
    assert json.loads(unknown.stdout or "null") is None


def test_two_sets_of_the_same_minute_are_listed_set_by_set(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    at = ("--at", "2026-11-05T22:59")
    first = as_admin(data, "vitals", "add", pid, *at, "--bp", "120/80", "--temp", "37.5C")
    recheck = as_admin(data, "vitals", "add", pid, *at, "--bp", "150/95", "--temp", "102F")
    listed = as_admin(data, "vitals", "list", pid)["readings"]
    sets = [first["readings"][0]["set_id"], recheck["readings"][0]["set_id"]]
    assert sets[0] != sets[1]
    assert [(r["set_id"], r["entered_value"]) for r in listed] == [
        (sets[1], "150"), (sets[1], "95"), (sets[1], "102"),
        (sets[0], "120"), (sets[0], "80"), (sets[0], "37.5"),
    ]  # fmt: skip
    text = careline(data, "--password-stdin", "vitals", "list", pid, stdin=PASSWORD + "\n")
    assert text.stdout.splitlines()[:4] == [
        "2026-11-05T22:59  Systolic blood pressure: 150 mmHg (high)",
        "2026-11-05T22:59  Diastolic blood pressure: 95 mmHg (high)",
        "2026-11-05T22:59  Temperature: 102 °F (high)",
        "2026-11-05T22:59  Systolic blood pressure: 120 mmHg",
    ]


def test_each_bmi_is_listed_with_its_own_set(tmp_path: Path) -> None:
    """Tester report: the BMI lines all came after the last set. Each follows the readings
    of the set it was worked out in; one reading recorded is "1 vital sign"."""
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    first = as_admin(data, "vitals", "add", pid, "--at", "2026-12-01T09:30", "--weight", "70kg",
                     "--height", "170cm")  # fmt: skip
    later = as_admin(data, "vitals", "add", pid, "--at", "2026-12-02T09:30", "--weight", "80kg")
    one = careline(data, "--password-stdin", "vitals", "add", pid, "--at", "2026-12-03T09:30",
                   "--pulse", "72", stdin=PASSWORD + "\n")  # fmt: skip
    assert one.returncode == 0, one.stderr
    assert one.stdout.splitlines()[0] == f"Recorded 1 vital sign for patient {pid}:"
    text = careline(data, "--password-stdin", "vitals", "list", pid, stdin=PASSWORD + "\n")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "2026-12-03T09:30  Pulse: 72 /min",
        "2026-12-02T09:30  Weight: 80 kg",
        "2026-12-02T09:30  BMI (worked out): 27.7 kg/m² (high)",
        "2026-12-01T09:30  Weight: 70 kg",
        "2026-12-01T09:30  Height: 170 cm",
        "2026-12-01T09:30  BMI (worked out): 24.2 kg/m²",
    ]
    bmi = as_admin(data, "vitals", "list", pid)["bmi"]
    sets = [later["readings"][0]["set_id"], first["readings"][0]["set_id"]]
    assert [(b["set_id"], b["value"]) for b in bmi] == [(sets[0], "27.7"), (sets[1], "24.2")]


def test_a_readings_time_typed_to_settle_a_conflict_is_refused_ahead_of_the_clock(
    tmp_path: Path, no_keyring: None
) -> None:
    """The command line changes a reading's time only by settling a conflict on it
    (``conflicts resolve --value``): a time more than 5 minutes ahead of this computer's
    clock is refused there as ``vitals add --at`` refuses it, and nothing is settled."""
    one, two = tmp_path / "one", tmp_path / "two"
    as_admin(one, "init", "--clinic", "Shared", "--user", "admin")
    joined = Workstation(two, FAST_PARAMS)
    joined.prepare_join("admin", PASSWORD)
    joined.lock()
    pid = as_admin(
        one, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    [pulse] = as_admin(one, "vitals", "add", pid, "--at", "2026-12-01T09:30", "--pulse", "72")[
        "readings"
    ]
    _sync_data_dirs(two, one)
    for folder, when in ((one, "2026-12-01 09:20"), (two, "2026-12-01 09:25")):
        ws = Workstation(folder, FAST_PARAMS)
        ws.unlock_with_password("admin", PASSWORD)
        try:  # the time corrected on each desk before they synced
            entries = ClinicalEntries(ClinicRecords(ws.database, "admin"))
            entries.update("observation", pulse["id"], {"observed_at": when})
        finally:
            ws.lock()
    _sync_data_dirs(two, one)
    [conflict] = as_admin(one, "conflicts", "list")
    assert conflict["field"] == "observed_at"

    tomorrow = (dt.datetime.now() + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    refused = careline(
        one, "--password-stdin", "conflicts", "resolve", conflict["id"], "--value", tomorrow,
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert refused.returncode != 0
    assert f"{tomorrow} is in the future: this computer's clock says " in refused.stderr
    assert [c["id"] for c in as_admin(one, "conflicts", "list")] == [conflict["id"]]
    as_admin(one, "conflicts", "resolve", conflict["id"], "--value", "2026-12-01 09:22")
    [reading] = as_admin(one, "vitals", "list", pid)["readings"]
    assert reading["observed_at"] == "2026-12-01T09:22"

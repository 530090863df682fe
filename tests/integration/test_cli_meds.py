"""``careline problem``, ``med`` and ``allergy edit|none`` as operators script them: real
processes, real SQLCipher."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_cli import clinic as clinic  # the shared module fixture
from tests.integration.test_cli_print import text_of


def _patient(clinic: Path, family: str) -> str:
    doc = as_admin(
        clinic, "patient", "add", "--family", family, "--given", "Ana", "--birth-date", "1960-04-04"
    )
    return str(doc["id"])


def test_problems_are_coded_listed_and_resolved(clinic: Path) -> None:
    pid = _patient(clinic, "Problemas")
    codes = as_admin(clinic, "problem", "codes", "diabetes type 2 without")
    assert codes[0] == {
        "code": "E11.9",
        "description": "Type 2 diabetes mellitus without complications",
        "billable": True,
    }
    added = as_admin(clinic, "problem", "add", pid, "--code", "e11.9", "--onset", "2019-05")
    assert (added["code"], added["status"], added["onset"]) == ("E11.9", "active", "2019-05")
    back = as_admin(clinic, "problem", "add", pid, "--uncoded", "Low back pain")
    as_admin(clinic, "problem", "resolve", pid, back["id"], "--date", "2024-01-02")
    assert [p["code"] for p in as_admin(clinic, "problem", "list", pid)] == ["E11.9"]
    everything = as_admin(clinic, "problem", "list", pid, "--all")
    assert [(p["description"], p["status"], p["resolved"]) for p in everything][1] == (
        "Low back pain", "resolved", "2024-01-02",
    )  # fmt: skip
    plain = careline(clinic, "--password-stdin", "problem", "list", pid, "--all",
                     stdin=PASSWORD + "\n")  # fmt: skip
    assert "E11.9 Type 2 diabetes mellitus without complications  onset 2019-05" in plain.stdout
    assert "(uncoded) Low back pain" in plain.stdout and "resolved 2024-01-02" in plain.stdout


def test_problem_input_errors_name_the_problem_and_store_nothing(clinic: Path) -> None:
    pid = _patient(clinic, "Errores")
    for args, message in (
        (("--code", "hypertension"), "'hypertension' is not an ICD-10-CM code"),
        (("--code", "I10", "--onset", "2019-13"), "there is no month 13"),
    ):
        result = careline(clinic, "--password-stdin", "problem", "add", pid, *args,
                          stdin=PASSWORD + "\n")  # fmt: skip
        assert result.returncode == 1 and message in result.stderr, result.stderr
    neither = careline(clinic, "--password-stdin", "problem", "add", pid, stdin=PASSWORD + "\n")
    assert neither.returncode == 2 and "one of the arguments --code --uncoded" in neither.stderr
    assert as_admin(clinic, "problem", "list", pid, "--all") == []


def test_a_start_given_empty_is_stored_as_unknown_not_as_today(clinic: Path) -> None:
    """``--start ""`` (a script's empty variable) is no date: the start stays unknown, as a
    start left blank in the form; only no ``--start`` at all means today."""
    pid = _patient(clinic, "Fechas")
    blank = as_admin(clinic, "med", "start", pid, "--name", "Aspirin", "--start", "")
    assert blank["start"] is None
    today = as_admin(clinic, "med", "start", pid, "--name", "Paracetamol")
    assert today["start"] == dt.date.today().isoformat()


def test_medications_start_change_stop_with_history_and_an_allergy_warning(clinic: Path) -> None:
    pid = _patient(clinic, "Medicamentos")
    allergy = as_admin(clinic, "allergy", "add", pid, "Penicillin", "--severity", "mild")
    edited = as_admin(clinic, "allergy", "edit", allergy["id"], "--reaction", "anaphylaxis",
                      "--severity", "severe")  # fmt: skip
    assert (edited["substance"], edited["reaction"], edited["severity"]) == (
        "Penicillin", "anaphylaxis", "severe",
    )  # fmt: skip
    warned = careline(clinic, "--password-stdin", "med", "start", pid, "--name", "Amoxicillin",
                      stdin=PASSWORD + "\n")  # fmt: skip
    assert warned.returncode == 1
    assert "amoxicillin is one of the penicillins" in warned.stderr
    assert "--confirm-allergy" in warned.stderr
    assert as_admin(clinic, "med", "list", pid) == []
    amox = as_admin(clinic, "med", "start", pid, "--name", "Amoxicillin", "--confirm-allergy",
                    "--start", "2025-03-01")  # fmt: skip
    met = as_admin(clinic, "med", "start", pid, "--name", "Metformin", "--strength", "500 mg",
                   "--frequency", "twice daily", "--start", "2025-01-10")  # fmt: skip
    changed = as_admin(clinic, "med", "change", pid, met["id"], "--strength", "1000 mg",
                       "--date", "2025-06-01")  # fmt: skip
    assert (changed["strength"], changed["frequency"], changed["start"]) == (
        "1000 mg", "twice daily", "2025-06-01",
    )  # fmt: skip
    as_admin(clinic, "med", "stop", pid, amox["id"], "--date", "2025-03-08")
    assert [m["id"] for m in as_admin(clinic, "med", "list", pid)] == [changed["id"]]
    history = as_admin(clinic, "med", "list", pid, "--all")
    assert [(m["name"], m["strength"], m["status"], m["stop"]) for m in history] == [
        ("Metformin", "1000 mg", "active", None),
        ("Metformin", "500 mg", "stopped", "2025-06-01"),
        ("Amoxicillin", None, "stopped", "2025-03-08"),
    ]


def test_a_dose_change_has_the_prescriber_given_or_none_and_keeps_the_reason(
    clinic: Path,
) -> None:
    pid = _patient(clinic, "Prescriptores")
    met = as_admin(clinic, "med", "start", pid, "--name", "Metformin", "--strength", "500 mg",
                   "--reason", "Type 2 diabetes", "--prescriber", "Dr Ann",
                   "--start", "2025-01-10")  # fmt: skip
    unnamed = as_admin(clinic, "med", "change", pid, met["id"], "--strength", "1000 mg",
                       "--date", "2025-06-01")  # fmt: skip
    assert (unnamed["prescriber"], unnamed["reason"]) == (None, "Type 2 diabetes")
    named = as_admin(clinic, "med", "change", pid, unnamed["id"], "--strength", "850 mg",
                     "--prescriber", "Dr Bo", "--date", "2025-09-01")  # fmt: skip
    assert (named["prescriber"], named["reason"]) == ("Dr Bo", "Type 2 diabetes")


def test_a_dose_changed_with_visit_is_recorded_in_that_visit_and_printed_with_it(
    clinic: Path, tmp_path: Path
) -> None:
    """``med change --visit`` as ``med start --visit``: the new dose names the visit, whose
    printed note lists the old dose (dose changed) and the new one."""
    pid = _patient(clinic, "Dosis")
    ibu = as_admin(clinic, "med", "start", pid, "--name", "Ibuprofen", "--strength", "400 mg",
                   "--frequency", "three times daily", "--start", "2025-01-10")  # fmt: skip
    visit = as_admin(clinic, "visit", "start", pid, "--reason", "Knee pain")
    changed = as_admin(clinic, "med", "change", pid, ibu["id"], "--strength", "200 mg",
                       "--frequency", "twice daily", "--visit", visit["id"])  # fmt: skip
    assert changed["encounter_id"] == visit["id"]
    target = tmp_path / "visit.pdf"
    as_admin(clinic, "print", "visit", visit["id"], "-o", str(target))
    text = " ".join(text_of(target).split())
    assert "400 mg, three times daily" in text and "dose changed" in text
    assert "200 mg, twice daily" in text


def test_stopped_and_resolved_with_visit_are_printed_with_that_visit(
    clinic: Path, tmp_path: Path
) -> None:
    """``med stop --visit`` and ``problem resolve --visit``: the visit's printed note lists
    the medication stopped and the problem resolved in it, with their dates."""
    pid = _patient(clinic, "Parada")
    aspirin = as_admin(clinic, "med", "start", pid, "--name", "Aspirin", "--strength", "75 mg",
                       "--frequency", "once daily", "--start", "2025-01-10")  # fmt: skip
    cough = as_admin(clinic, "problem", "add", pid, "--uncoded", "Dry cough")
    visit = as_admin(clinic, "visit", "start", pid, "--reason", "Bleeding gums")
    target = tmp_path / "before.pdf"
    as_admin(clinic, "print", "visit", visit["id"], "-o", str(target))
    assert "Aspirin" not in text_of(target)
    stop = careline(clinic, "--password-stdin", "med", "stop", pid, aspirin["id"], "--date",
                    "2026-12-06", "--visit", visit["id"], stdin=PASSWORD + "\n")  # fmt: skip
    assert stop.returncode == 0, stop.stderr
    assert stop.stdout.strip().endswith(f"stopped 2026-12-06 in visit {visit['id']}")
    resolved = as_admin(clinic, "problem", "resolve", pid, cough["id"], "--date", "2026-12-06",
                        "--visit", visit["id"])  # fmt: skip
    assert (resolved["status"], resolved["resolved"]) == ("resolved", "2026-12-06")
    target = tmp_path / "visit.pdf"
    as_admin(clinic, "print", "visit", visit["id"], "-o", str(target))
    text = " ".join(text_of(target).split())
    assert "Aspirin 75 mg, once daily 2025-01-10 2026-12-06" in text
    assert "Dry cough uncoded Resolved 2026-12-06" in text


def test_a_stop_or_resolution_naming_another_patients_visit_is_refused_naming_it(
    clinic: Path,
) -> None:
    pid, other = _patient(clinic, "Propia"), _patient(clinic, "Ajena")
    aspirin = as_admin(clinic, "med", "start", pid, "--name", "Aspirin")
    cough = as_admin(clinic, "problem", "add", pid, "--uncoded", "Dry cough")
    theirs = as_admin(clinic, "visit", "start", other, "--reason", "Fever")["id"]
    for visit in (theirs, "no-such-visit"):
        for command in (("med", "stop", pid, aspirin["id"]),
                        ("problem", "resolve", pid, cough["id"])):  # fmt: skip
            refused = careline(clinic, "--password-stdin", *command, "--visit", visit,
                               stdin=PASSWORD + "\n")  # fmt: skip
            assert refused.returncode == 1, refused.stdout
            assert f"'{visit}' is not a visit of this patient" in refused.stderr
    assert [m["status"] for m in as_admin(clinic, "med", "list", pid, "--all")] == ["active"]
    assert [p["status"] for p in as_admin(clinic, "problem", "list", pid, "--all")] == ["active"]


def test_no_known_allergies_is_refused_while_allergies_are_recorded(clinic: Path) -> None:
    pid = _patient(clinic, "Alergias")
    asked = careline(clinic, "--password-stdin", "patient", "show", pid, stdin=PASSWORD + "\n")
    assert "allergies: not recorded yet" in asked.stdout
    assert as_admin(clinic, "allergy", "none", pid)["allergy_status"] == "nka"
    nka = careline(clinic, "--password-stdin", "patient", "show", pid, stdin=PASSWORD + "\n")
    assert "allergies: no known allergies" in nka.stdout
    as_admin(clinic, "allergy", "add", pid, "Latex")
    shown = as_admin(clinic, "patient", "show", pid)
    assert shown["allergy_status"] == "allergies"
    refused = careline(clinic, "--password-stdin", "allergy", "none", pid, stdin=PASSWORD + "\n")
    assert refused.returncode == 1 and "has recorded allergies (Latex)" in refused.stderr
    doc = json.loads(careline(clinic, "--json", "--password-stdin", "patient", "show", pid,
                              stdin=PASSWORD + "\n").stdout)  # fmt: skip
    assert [a["substance"] for a in doc["allergies"]] == ["Latex"]


def _run(clinic: Path, *args: str) -> tuple[int, str, str]:
    result = careline(clinic, "--password-stdin", *args, stdin=PASSWORD + "\n")
    return result.returncode, result.stdout, result.stderr


def test_an_active_problem_added_again_is_refused_unless_allowed(clinic: Path) -> None:
    """As ``appointment add`` refuses a clash without ``--allow-overlap``: exit 1, the one
    already there named (when, by whom), nothing written; ``--json`` names it too."""
    pid = _patient(clinic, "Duplicado")
    first = as_admin(clinic, "problem", "add", pid, "--code", "I10")
    assert first["recorded_by"] == "admin" and first["recorded_at"].startswith("20")
    code, out, err = _run(clinic, "--json", "problem", "add", pid, "--code", "i10")
    assert code == 1
    refused = json.loads(out)
    assert refused["recorded"] is None
    assert [(d["id"], d["recorded_by"]) for d in refused["duplicates"]] == [(first["id"], "admin")]
    assert "I10 Essential (primary) hypertension is already an active problem" in err
    assert f"{first['id']}  I10 Essential" in err and "Recorded 20" in err
    assert "--allow-duplicate" in err
    again = as_admin(clinic, "problem", "add", pid, "--code", "I10", "--allow-duplicate")
    listed = as_admin(clinic, "problem", "list", pid)
    assert {p["id"] for p in listed} == {first["id"], again["id"]}


def test_med_list_says_who_recorded_prescribed_and_changed_each_and_refuses_a_duplicate(
    clinic: Path,
) -> None:
    pid = _patient(clinic, "Historia")
    mine = as_admin(clinic, "med", "start", pid, "--name", "Metformin", "--strength", "500 mg",
                    "--start", "2025-01-10")  # fmt: skip
    assert (mine["prescribed_by"], mine["prescriber"], mine["recorded_by"]) == (
        "admin", None, "admin",
    )  # fmt: skip
    theirs = as_admin(clinic, "med", "start", pid, "--name", "Atorvastatin", "--prescriber",
                      "Dr Lee, City Hospital")  # fmt: skip
    assert (theirs["prescribed_by"], theirs["prescriber"]) == (None, "Dr Lee, City Hospital")
    code, out, err = _run(clinic, "--json", "med", "start", pid, "--name", "METFORMIN")
    assert code == 1 and json.loads(out)["started"] is None
    assert [d["id"] for d in json.loads(out)["duplicates"]] == [mine["id"]]
    assert "METFORMIN is already an active medication" in err and "--allow-duplicate" in err
    both = _run(clinic, "med", "start", pid, "--name", "X", "--prescriber", "Dr Lee",
                "--prescribed-elsewhere")  # fmt: skip
    assert both[0] == 2 and "give one of them" in both[2]
    new = as_admin(clinic, "med", "change", pid, mine["id"], "--strength", "1000 mg",
                   "--date", "2025-06-01")  # fmt: skip
    assert (new["changed_from"], new["prescribed_by"]) == (
        mine["id"] and new["changed_from"],
        "admin",
    )
    listed = {m["strength"] or m["name"]: m for m in as_admin(clinic, "med", "list", pid, "--all")}
    old = listed["500 mg"]
    assert (old["status"], old["changed_to"], old["stopped_by"]) == ("stopped", new["id"], "admin")
    assert (new["changed_from"], old["recorded_at"]) == (old["id"], mine["recorded_at"])
    code, out, _ = _run(clinic, "med", "list", pid, "--all")
    assert code == 0
    assert "Metformin  500 mg  from 2025-01-10  dose changed 2025-06-01" in out
    assert "Dose changed to 1000 mg on 2025-06-01 by admin" in out
    assert "Prescribed by Dr Lee, City Hospital" in out and "Prescribed by admin" in out
    assert "stopped 2025-06-01" not in out

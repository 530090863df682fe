"""Importing a patient list: the dry run finds every problem and everyone already here; the
import registers the rest through the registration's own checks, in batches, and can be run
again (after a crash half-way, or by mistake) without registering anyone twice."""

from __future__ import annotations

import json

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.clinic import ClinicRecords
from core.records.csv_table import parse
from core.records.errors import NotAllowedError
from core.records.import_rows import ReadOptions, suggest_mapping
from core.records.patient_import import ImportPlan, plan_import, run_import
from core.records.workstation import Workstation

LIST = (
    "Family,Given,DOB,Sex,MRN,Allergies\n"
    "Okafor,Chinedu,1990-12-31,M,A-1,peanut;latex\n"
    "Lefèvre,Zoé,1984-03-02,F,A-2,NKA\n"
    "Okafur,Chinedu,1990-12-31,M,,\n"  # row 2's person again, one slip in the name
    "Smith,Ann,1970-01-01,F,A-1,\n"  # row 2's MRN
    "Haddad,Rami,1955-05-05,M,,\n"
)


def plan(records: ClinicRecords, text: str = LIST) -> ImportPlan:
    table = parse(text.encode())
    return plan_import(records, table, suggest_mapping(table.header), ReadOptions())


def test_the_dry_run_names_duplicates_within_the_file(workstation: Workstation) -> None:
    found = plan(workstation.records)
    assert [r.row for r in found.to_add] == [2, 3, 6]
    assert [(p.row, p.reason) for p in found.problems] == [
        (4, "the same patient as row 2"),
        (5, "row 2 has this MRN too"),
    ]
    assert workstation.records.count_patients() == 0


def test_import_registers_with_allergies_and_a_rerun_adds_nobody(
    workstation: Workstation,
) -> None:
    records = workstation.records
    seen: list[tuple[int, int]] = []
    result = run_import(records, plan(records), lambda done, total: seen.append((done, total)))
    assert (result.added, result.allergies) == (3, 2)
    assert seen == [(3, 3)]
    okafor = records.search_patients("Okafor")[0]
    assert sorted(a.substance for a in records.allergies(okafor.id)) == ["latex", "peanut"]
    zoe = records.open_chart(records.search_patients("Lefèvre")[0].id)
    assert zoe.patient.allergy_status == "nka" and not zoe.allergies

    again = plan(records)
    assert again.to_add == []
    assert [(a.row, a.why) for a in again.already_present] == [
        (2, "same MRN"),
        (3, "same MRN"),
        (6, "same name and birth date"),
    ]
    assert run_import(records, again).added == 0
    assert records.count_patients() == 3


def test_an_mrn_of_another_patient_is_a_problem_not_a_match(workstation: Workstation) -> None:
    records = workstation.records
    records.add_patient("Brown", "Tom", "1960-06-06", mrn="A-1")
    found = plan(records)
    assert (2, "MRN", "A-1") in [(p.row, p.column, p.value) for p in found.problems]
    reason = next(p.reason for p in found.problems if p.row == 2)
    assert "already used by BROWN, Tom" in reason


def test_an_mrn_in_another_letter_case_is_the_same_mrn(workstation: Workstation) -> None:
    """As registration reads MRNs: a-1 is A-1, in the file and in the clinic."""
    records = workstation.records
    lower = LIST.replace("Smith,Ann,1970-01-01,F,A-1", "Smith,Ann,1970-01-01,F,a-1")
    assert (5, "row 2 has this MRN too") in [
        (p.row, p.reason) for p in plan(records, lower).problems
    ]
    records.add_patient("Brown", "Tom", "1960-06-06", mrn="a-1")
    found = plan(records)
    reason = next(p.reason for p in found.problems if p.row == 2)
    assert "already used by BROWN, Tom" in reason
    records.add_patient("Lefevre", "Zoe", "1984-03-02", mrn="a-2")
    assert [(a.row, a.why) for a in plan(records).already_present] == [(3, "same MRN")]


def test_an_import_stopped_half_way_is_finished_by_running_it_again(
    workstation: Workstation,
) -> None:
    records = workstation.records
    rows = "".join(f"Fam{i},Giv{i},1980-01-{i % 28 + 1:02d},,M{i},\n" for i in range(25))
    text = "Family,Given,DOB,Sex,MRN,Allergies\n" + rows

    def crash(done: int, total: int) -> None:
        if done == 10:
            raise KeyboardInterrupt  # the laptop closed after the first batch

    with pytest.raises(KeyboardInterrupt):
        run_import(records, plan(records, text), crash, batch_rows=10)
    assert records.count_patients() == 10
    finished = run_import(records, plan(records, text), batch_rows=10)
    assert (finished.added, len(finished.already_present)) == (15, 10)
    assert records.count_patients() == 25


def test_the_import_is_audited_as_one_batch_without_names(workstation: Workstation) -> None:
    records = workstation.records
    result = run_import(records, plan(records))
    entries = records.db.query(
        "SELECT details FROM audit_log WHERE action = 'patient.import' ORDER BY seq"
    )
    details = [json.loads(row[0]) for row in entries]
    assert [d["stage"] for d in details] == ["started", "ended"]
    assert {d["import_id"] for d in details} == {result.import_id}
    assert details[1]["added"] == 3 and details[1]["problem_rows"] == 2
    assert "Okafor" not in json.dumps(details)
    registered = records.db.query(
        "SELECT details FROM audit_log WHERE action = 'patient.create' ORDER BY seq"
    )
    assert [json.loads(row[0]) for row in registered] == [{"import_id": result.import_id}] * 3


@pytest.mark.strict_authz
def test_only_an_admin_imports_and_allergies_need_clinical_staff(
    workstation: Workstation,
) -> None:
    records = workstation.records
    records.add_user("fay", "Fay Desk", "front_desk", "a long enough password")
    records.add_user("ben", "Ben Admin", "admin", "a long enough password")
    with pytest.raises(NotAllowedError, match="Only an admin can import a patient list"):
        plan(ClinicRecords(records.db, "fay", FAST_PARAMS))
    ben = ClinicRecords(records.db, "ben", FAST_PARAMS)
    with pytest.raises(NotAllowedError, match="also a nurse or a clinician"):
        run_import(ben, plan(ben))
    assert records.count_patients() == 0
    without_allergies = "\n".join(line.rsplit(",", 1)[0] for line in LIST.splitlines())
    assert run_import(ben, plan(ben, without_allergies)).added == 3


def test_allergies_come_with_their_reaction_and_severity(workstation: Workstation) -> None:
    """``penicillin (rash, severe); latex`` records both, the first with what it does and
    how badly; a cell that cannot be read is a problem of its row in the dry run, which
    says why, and that row is not imported."""
    records = workstation.records
    text = (
        "Family,Given,DOB,Allergies\n"
        'Okafor,Chinedu,1990-12-31,"penicillin (rash, severe); latex"\n'
        "Haddad,Rami,1955-05-05,penicillin (rash\n"
    )
    found = plan(records, text)
    assert [r.row for r in found.to_add] == [2]
    assert [(p.row, p.column, p.reason) for p in found.problems] == [
        (3, "Allergies", "'penicillin (rash' has a '(' without its ')'")
    ]
    assert run_import(records, found).allergies == 2
    okafor = records.search_patients("Okafor")[0]
    shown = sorted((a.substance, a.reaction, a.severity) for a in records.allergies(okafor.id))
    assert shown == [("latex", None, None), ("penicillin", "rash", "severe")]
    assert records.count_patients() == 1


def test_a_substance_named_twice_with_other_details_keeps_its_row_out(
    workstation: Workstation,
) -> None:
    """The second entry (the severe one) was dropped without a word: the chart said a mild
    rash only. Now the dry run lists the row, naming both entries, and nothing of it is
    imported; an exact repeat is one allergy."""
    records = workstation.records
    text = (
        "Family,Given,DOB,Allergies\n"
        'Evans,Eve,1955-03-03,"penicillin (rash, mild); Penicillin (anaphylaxis, severe)"\n'
        'Okafor,Chinedu,1990-12-31,"latex (hives); LATEX (hives)"\n'
    )
    found = plan(records, text)
    assert [r.row for r in found.to_add] == [3]
    [problem] = found.problems
    assert (problem.row, problem.column) == (2, "Allergies")
    assert "names Penicillin twice, with different details" in problem.reason
    assert "'penicillin (rash, mild)' and 'Penicillin (anaphylaxis, severe)'" in problem.reason
    assert run_import(records, found).allergies == 1
    assert records.search_patients("Evans") == []
    okafor = records.search_patients("Okafor")[0]
    assert [(a.substance, a.reaction) for a in records.allergies(okafor.id)] == [("latex", "hives")]


def test_a_stopped_import_keeps_whole_batches_and_is_audited(workstation: Workstation) -> None:
    records = workstation.records
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1  # after the first batch

    result = run_import(records, plan(records), batch_rows=2, stop=stop)
    assert (result.cancelled, result.added, result.rows_left) == (True, 2, 1)
    assert records.count_patients() == 2
    [ended] = [
        json.loads(d)
        for (d,) in records.db.query(
            "SELECT details FROM audit_log WHERE action = 'patient.import' ORDER BY seq"
        )
        if json.loads(d)["stage"] == "ended"
    ]
    assert ended["cancelled"] is True and ended["added"] == 2
    assert run_import(records, plan(records)).added == 1  # the rest, nobody twice

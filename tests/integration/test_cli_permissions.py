"""The permission matrix through the command line (real processes, which always enforce):
a refused command exits non-zero and says on stderr who may do it; an allowed one works;
the front desk reads demographics only. A subset of the matrix (the full table is
tests/unit/records/test_permission_matrix.py, through the same core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.records.models import CLINICAL_HIDDEN
from tests.integration.staff_clinic import make_staff_clinic, run_as


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("cli-permissions") / "data"
    return data, make_staff_clinic(data)


_as = run_as


@pytest.mark.parametrize(
    ("user", "args", "refusal"),
    [
        ("desk", ("allergy", "add", "{pid}", "latex"), "can record an allergy"),
        ("desk", ("med", "start", "{pid}", "--name", "warfarin"), "Only a clinician can start"),
        ("nina", ("med", "start", "{pid}", "--name", "warfarin"), "Only a clinician can start"),
        ("adm", ("med", "start", "{pid}", "--name", "warfarin"), "Only a clinician can start"),
        ("nina", ("problem", "add", "{pid}", "--uncoded", "asthma"), "Only a clinician can add"),
        ("desk", ("note", "list", "--patient", "{pid}"), "can read a patient's notes"),
    ],
)
def test_a_refused_command_exits_non_zero_and_names_who_may(
    clinic: tuple[Path, str], user: str, args: tuple[str, ...], refusal: str
) -> None:
    data, pid = clinic
    code, out, err = _as(data, user, *(a.format(pid=pid) for a in args))
    assert code != 0
    assert refusal in err
    assert out == ""


@pytest.mark.parametrize(
    ("user", "args"),
    [
        ("nina", ("allergy", "add", "{pid}", "latex")),
        ("doc", ("med", "start", "{pid}", "--name", "metformin")),
        ("admin", ("med", "start", "{pid}", "--name", "ibuprofen")),  # admin and clinician
        ("desk", ("patient", "set", "{pid}", "phone", "555-0199")),
    ],
)
def test_an_allowed_command_works(
    clinic: tuple[Path, str], user: str, args: tuple[str, ...]
) -> None:
    data, pid = clinic
    code, _out, err = _as(data, user, *(a.format(pid=pid) for a in args))
    assert code == 0, err


def test_the_front_desk_sees_demographics_only(clinic: tuple[Path, str]) -> None:
    data, pid = clinic
    code, out, err = _as(data, "desk", "patient", "show", pid)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["family"] == "Nakamura"
    assert "allergies" not in shown
    assert shown["clinical"] == CLINICAL_HIDDEN
    code, out, err = _as(data, "nina", "patient", "show", pid)
    assert [a["substance"] for a in json.loads(out)["allergies"]][:1] == ["penicillin"]

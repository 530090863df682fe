"""Chart access and extra roles through the command line (real processes, which always
enforce): restricting a chart shuts a nurse out of its clinical data until she is on its
care team; the front desk cannot restrict; errors name the problem; an extra role counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.integration.staff_clinic import make_staff_clinic, run_as
from tests.integration.test_cli import careline


@pytest.fixture(scope="module")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data = tmp_path_factory.mktemp("cli-access") / "data"
    return data, make_staff_clinic(data, deactivated=("gone",))


_as = run_as


def test_a_restricted_chart_is_read_only_by_its_care_team(clinic: tuple[Path, str]) -> None:
    data, pid = clinic
    assert _as(data, "nina", "note", "list", "--patient", pid)[0] == 0  # not yet restricted

    code, out, err = _as(data, "doc", "access", "restrict", pid)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["restricted"] is True
    # The clinician who restricted it went on its care team, so she still reads it.
    assert [m["username"] for m in shown["care_team"]] == ["doc"]
    assert _as(data, "doc", "note", "list", "--patient", pid)[0] == 0

    for args in (("note", "list", "--patient", pid), ("vitals", "list", pid)):
        code, out, err = _as(data, "nina", *args)
        assert code != 0 and out == ""
        # A nurse is told why: she is not on the care team (not "only a nurse can").
        assert "Only the people on this restricted chart's care team can" in err
    code, out, err = _as(data, "doc", "access", "add", pid, "nina")
    assert code == 0, err
    assert [m["username"] for m in json.loads(out)["care_team"]] == ["doc", "nina"]

    for args in (("note", "list", "--patient", pid), ("vitals", "list", pid)):
        code, _out, err = _as(data, "nina", *args)
        assert code == 0, err

    done = careline(data, "--user", "adm", "--password-stdin", "access", "show", pid,
                    stdin=PASSWORD + "\n")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "RESTRICTED" in done.stdout and "nina" in done.stdout

    code, out, err = _as(data, "adm", "access", "remove", pid, "nina")
    assert code == 0, err
    assert [m["username"] for m in json.loads(out)["care_team"]] == ["doc"]
    assert _as(data, "nina", "note", "list", "--patient", pid)[0] != 0
    code, out, err = _as(data, "adm", "access", "unrestrict", pid)
    assert code == 0 and json.loads(out)["restricted"] is False, err
    assert _as(data, "nina", "note", "list", "--patient", pid)[0] == 0


def test_the_front_desk_cannot_restrict_a_chart(clinic: tuple[Path, str]) -> None:
    data, pid = clinic
    code, out, err = _as(data, "desk", "access", "restrict", pid)
    assert code != 0 and out == ""
    assert "Only a clinician with access to the chart, or an admin can change who may see" in err
    code, out, _err = _as(data, "desk", "access", "show", pid)
    assert code == 0 and json.loads(out)["restricted"] is False


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("access", "show", "no-such-patient"), "no patient with id 'no-such-patient'"),
        (("access", "add", "{pid}", "ghost"), "no staff member 'ghost'"),
        (("access", "add", "{pid}", "gone"), "'gone' is deactivated"),
        (("access", "remove", "{pid}", "desk"), "'desk' is not on the care team"),
    ],
)
def test_errors_name_the_problem(
    clinic: tuple[Path, str], args: tuple[str, ...], problem: str
) -> None:
    data, pid = clinic
    code, out, err = _as(data, "adm", *(a.format(pid=pid) for a in args))
    assert code != 0 and out == ""
    assert problem in err


def test_an_extra_role_counts_and_the_primary_role_stays(clinic: tuple[Path, str]) -> None:
    data, pid = clinic
    assert _as(data, "desk", "note", "list", "--patient", pid)[0] != 0
    code, out, err = _as(data, "adm", "user", "roles", "desk", "--add", "nurse")
    assert code == 0, err
    assert json.loads(out)["roles"] == ["front_desk", "nurse"]
    code, _out, err = _as(data, "desk", "note", "list", "--patient", pid)
    assert code == 0, err  # a nurse now, too

    code, _out, err = _as(data, "adm", "user", "roles", "desk", "--remove", "front_desk")
    assert code != 0 and "primary role" in err
    code, _out, err = _as(data, "nina", "user", "roles", "desk", "--remove", "nurse")
    assert code != 0 and "only an administrator" in err

    code, out, err = _as(data, "adm", "user", "roles", "desk", "--remove", "nurse")
    assert code == 0, err
    assert json.loads(out)["roles"] == ["front_desk"]
    assert _as(data, "desk", "note", "list", "--patient", pid)[0] != 0

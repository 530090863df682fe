"""``careline break-glass`` and ``careline audit list`` as operators script them: real
processes, a real SQLCipher clinic, the clock moved with libfaketime for expiry."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_release_upgrade import OldData, old  # noqa: F401 (the fixture)


def _clinic(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    pid = as_admin(
        data, "patient", "add", "--family", "Reyes", "--given", "Ana", "--birth-date", "1970-03-04"
    )["id"]
    return data, pid


def test_break_glass_open_list_review(tmp_path: Path) -> None:
    data, pid = _clinic(tmp_path)
    no_reason = careline(data, "--password-stdin", "break-glass", pid, stdin=PASSWORD + "\n")
    assert no_reason.returncode != 0 and "needs --reason" in no_reason.stderr
    blank = careline(
        data, "--password-stdin", "break-glass", pid, "--reason", "  ", stdin=PASSWORD + "\n"
    )
    assert blank.returncode != 0 and "needs --reason" in blank.stderr

    grant = as_admin(data, "break-glass", pid, "--reason", "collapsed at reception")
    assert grant["patient_id"] == pid and grant["username"] == "admin"
    assert grant["reason"] == "collapsed at reception" and grant["reviewed_at"] is None

    pending = as_admin(data, "break-glass", "list", "--pending")["openings"]
    assert [(g["id"], g["active"]) for g in pending] == [(grant["id"], True)]
    text = careline(data, "--password-stdin", "break-glass", "list", stdin=PASSWORD + "\n")
    assert "PENDING" in text.stdout and "collapsed at reception" in text.stdout

    reviewed = as_admin(data, "break-glass", "review", grant["id"])
    assert reviewed["reviewed_by"] == "admin" and reviewed["reviewed_at"]
    assert as_admin(data, "break-glass", "list", "--pending")["openings"] == []
    assert [g["id"] for g in as_admin(data, "break-glass", "list")["openings"]] == [grant["id"]]
    unknown = careline(
        data, "--password-stdin", "break-glass", "review", "nope", stdin=PASSWORD + "\n"
    )
    assert unknown.returncode != 0 and "no break-glass opening with id 'nope'" in unknown.stderr


def test_views_under_a_grant_are_marked_until_it_expires(
    tmp_path: Path, faketime: Callable[[str], dict[str, str]]
) -> None:
    data, pid = _clinic(tmp_path)
    grant = as_admin(data, "break-glass", pid, "--reason", "emergency", "--minutes", "5")
    as_admin(data, "patient", "show", pid)
    later = careline(
        data, "--json", "--password-stdin", "patient", "show", pid,
        stdin=PASSWORD + "\n", env=faketime("+10m"),
    )  # fmt: skip
    assert later.returncode == 0, later.stderr
    listed = careline(
        data, "--json", "--password-stdin", "break-glass", "list",
        stdin=PASSWORD + "\n", env=faketime("+10m"),
    )  # fmt: skip
    assert [g["active"] for g in json.loads(listed.stdout)["openings"]] == [False]

    opens = as_admin(data, "audit", "list", "--patient", pid, "--action", "chart.open")["entries"]
    # Newest first: the view after expiry is ordinary, the one within the grant names it.
    assert [e["break_glass"] for e in opens] == [None, grant["id"]]
    assert all(
        e["actor"] == "admin" and e["workstation"].startswith("this workstation") for e in opens
    )


def test_audit_list_filters_and_csv(tmp_path: Path) -> None:
    data, pid = _clinic(tmp_path)
    other = as_admin(
        data, "patient", "add", "--family", "Ng", "--given", "Tom", "--birth-date", "1980-01-01"
    )["id"]
    as_admin(data, "allergy", "add", pid, "penicillin", "--severity", "severe")
    as_admin(data, "patient", "show", other)
    wrong = careline(data, "--password-stdin", "patient", "search", "x", stdin="nope\n")
    assert wrong.returncode != 0

    mine = as_admin(data, "audit", "list", "--patient", pid)["entries"]
    assert {e["action"] for e in mine} == {"patient.create", "allergy.add"}
    assert all(e["entity_id"] == pid for e in mine)
    charts = as_admin(data, "audit", "list", "--action", "chart")["entries"]
    assert [e["entity_id"] for e in charts] == [other]
    failed = as_admin(data, "audit", "list", "--action", "user.sign_in_failed")["entries"]
    assert [e["entity_id"] for e in failed] == ["admin"]
    by_admin = as_admin(data, "audit", "list", "--user", "admin", "--since", "2000-01-01")
    assert len(by_admin["entries"]) >= 4
    assert as_admin(data, "audit", "list", "--until", "2000-01-01")["entries"] == []
    bad = careline(
        data, "--password-stdin", "audit", "list", "--since", "yesterday", stdin=PASSWORD + "\n"
    )
    assert (
        bad.returncode != 0
        and "'yesterday' is not a date: type a date (e.g. 2026-12-07)"
        " or a date and the clinic's local time (e.g. 2026-12-07 09:30)"
        in bad.stderr
    )
    # The words of every other date field (the tester's D6), the time form too.
    for flag, typed, said in (
        ("--since", "2026-02-30", "'2026-02-30' is not a date: February 2026 has 28 days"),
        ("--until", "31/12/2026", "'31/12/2026' has the year last"),
        ("--since", "2026-12-01 24:10", "'2026-12-01 24:10' is not a time: there is no hour 24"),
    ):
        bad = careline(
            data, "--password-stdin", "audit", "list", flag, typed, stdin=PASSWORD + "\n"
        )
        assert bad.returncode != 0 and said in bad.stderr, bad.stderr
    at_a_time = as_admin(data, "audit", "list", "--since", "2000-01-01 09:30")["entries"]
    assert len(at_a_time) >= 4

    out = tmp_path / "audit.csv"
    written = as_admin(data, "audit", "list", "--patient", pid, "--csv", str(out))
    assert written["written"] == 2
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [r["action"] for r in rows] == ["allergy.add", "patient.create"]
    assert {r["patient"] for r in rows} == {pid} and {r["person"] for r in rows} == {"admin"}
    # The export is audited, naming the filters used, not what they held.
    [export] = as_admin(data, "audit", "list", "--action", "audit.export")["entries"]
    assert export["details"] == {"filters": ["patient"], "entries": 2}
    by_name = as_admin(data, "audit", "list", "--patient", "reyes ana")["entries"]
    assert {e["action"] for e in by_name} == {"patient.create", "allergy.add"}


def test_an_old_release_workstation_gains_break_glass_and_lists_its_old_entries(
    old: OldData,  # noqa: F811 (the fixture imported above)
    no_keyring: None,
) -> None:
    """Migration V11 on data the previous release made: its audit entries list, filtered
    by patient, and a break-glass opening works there."""
    desk, seen = old.folder / "workstation", old.manifest["workstation"]
    pid = seen["patient_ids"][0]
    env = {"CARELINE_PASSWORD_FILE": str(old.folder / "password.txt")}
    (old.folder / "password.txt").write_text(old.password + "\n", encoding="utf-8")

    def run(*args: str) -> Any:
        result = careline(desk, "--json", "--user", "admin", *args, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    everything = run("audit", "list")["entries"]
    assert len(everything) >= seen["audit_verify"]["entries"]
    about = run("audit", "list", "--patient", pid)["entries"]
    assert about and "patient.create" in {e["action"] for e in about}
    grant = run("break-glass", pid, "--reason", "after the upgrade")
    assert run("break-glass", "list", "--pending")["openings"][0]["id"] == grant["id"]

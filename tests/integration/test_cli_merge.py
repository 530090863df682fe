"""``careline patient duplicates|merge|unmerge`` as operators script them (real processes,
a real SQLCipher clinic), and on a workstation made by the previous release (migration V12)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_release_upgrade import OldData, old  # noqa: F401 (the fixture)


def _add(data: Path, family: str, given: str) -> str:
    args = ("--family", family, "--given", given, "--birth-date", "1984-02-02")
    return str(as_admin(data, "patient", "add", *args, "--allow-duplicate")["id"])


def test_duplicates_merge_and_unmerge(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    kept, dup = _add(data, "Okafor", "Chinedu"), _add(data, "Okafur", "Chinedu")
    as_admin(data, "allergy", "add", dup, "Latex")
    [pair] = as_admin(data, "patient", "duplicates")["pairs"]
    assert {pair["first"]["id"], pair["second"]["id"]} == {kept, dup}

    no_reason = careline(
        data, "--password-stdin", "patient", "merge", dup, "--into", kept, "--reason", " ",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert no_reason.returncode != 0 and "merge_reason" in no_reason.stderr
    done = as_admin(data, "patient", "merge", dup, "--into", kept, "--reason", "same person")
    assert (done["survivor"], done["by"], done["reason"]) == (kept, "admin", "same person")
    shown = as_admin(data, "patient", "show", dup)
    assert shown["id"] == kept
    assert [a["substance"] for a in shown["allergies"]] == ["Latex"]
    [merged] = shown["merged_from"]
    assert (merged["id"], merged["family"], merged["merge"]["reason"]) == (
        dup,
        "Okafur",
        "same person",
    )
    assert [p["id"] for p in as_admin(data, "patient", "search", "chinedu")] == [kept]
    assert as_admin(data, "patient", "duplicates")["pairs"] == []

    undone = as_admin(data, "patient", "unmerge", dup)
    assert undone == {"unmerged": dup, "was_into": kept}
    assert as_admin(data, "patient", "show", dup)["id"] == dup
    actions = {e["action"] for e in as_admin(data, "audit", "list", "--patient", dup)["entries"]}
    assert {"patient.merge", "patient.unmerge"} <= actions


def test_an_old_release_workstation_merges_after_the_upgrade(
    old: OldData,  # noqa: F811 (the fixture imported above)
    no_keyring: None,
) -> None:
    """Migration V12 on data the previous release made: its patients list and open as
    before, and two of them can be merged and unmerged."""
    desk, seen = old.folder / "workstation", old.manifest["workstation"]
    env = {"CARELINE_PASSWORD_FILE": str(old.folder / "password.txt")}
    (old.folder / "password.txt").write_text(old.password + "\n", encoding="utf-8")

    def run(*args: str) -> Any:
        result = careline(desk, "--json", "--user", "admin", *args, env=env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    ids = list(seen["patient_ids"])
    assert len(ids) >= 2
    before = {p["id"] for p in run("patient", "search", "")}
    assert set(ids) <= before
    dup, kept = ids[0], ids[1]
    run("patient", "merge", dup, "--into", kept, "--reason", "registered twice")
    assert run("patient", "show", dup)["id"] == kept
    assert {p["id"] for p in run("patient", "search", "")} == before - {dup}
    run("patient", "unmerge", dup)
    assert {p["id"] for p in run("patient", "search", "")} == before
    assert run("db", "check")["ok"] is True


def test_not_duplicate_and_its_undo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    as_admin(data, "init", "--clinic", "Harbour Clinic", "--user", "admin")
    one, other = _add(data, "Okafor", "Chinedu"), _add(data, "Okafur", "Chinedu")
    shown = as_admin(data, "patient", "not-duplicate", one, other)
    assert shown == {"pair": [one, other], "dismissed": True}
    assert as_admin(data, "patient", "duplicates")["pairs"] == []
    as_admin(data, "patient", "not-duplicate", other, one, "--undo")
    assert len(as_admin(data, "patient", "duplicates")["pairs"]) == 1
    actions = [
        e["action"]
        for e in as_admin(data, "audit", "list", "--patient", min(one, other))["entries"]
    ]
    assert "patient.not_duplicate" in actions and "patient.not_duplicate_undo" in actions

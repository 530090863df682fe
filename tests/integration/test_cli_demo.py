"""``careline init --demo`` and ``careline --demo ...`` as real processes."""

from __future__ import annotations

import json
from pathlib import Path

from core.records.demo import DEMO_PASSWORD
from tests.integration.test_cli import careline

NOTICE = "careline: DEMO — sample data, not real patients"


def test_init_demo_then_use_it_apart_from_the_clinic(tmp_path: Path) -> None:
    data = tmp_path / "careline"
    made = careline(data, "init", "--demo", "--patients", "20")
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "careline-demo"
    assert f"in {folder}" in made.stdout
    assert f"Sign in as 'demo' with the password '{DEMO_PASSWORD}'" in made.stdout
    assert "careline --demo" in made.stdout
    assert "20 of 20" in made.stderr  # progress
    assert not data.exists()  # the real clinic's folder is not made or touched

    found = careline(data, "--demo", "--json", "patient", "search", "a")
    assert found.returncode == 0, found.stderr
    assert found.stderr.splitlines() == [f"{NOTICE} ({folder})"]  # one line, on stderr
    patients = json.loads(found.stdout)
    assert patients and all(p["mrn"].startswith("DEMO") for p in patients)

    # Never syncs: pairing and enrolling are refused with a clear message, exit 1.
    for refused in (
        ("pair", "code"),
        ("enroll", "--server", "https://127.0.0.1:9", "--code", "ABCD"),
        ("pair", "join", "--code", "ABCD", "--peer", "127.0.0.1:9"),
    ):
        result = careline(data, "--demo", *refused)
        assert result.returncode == 1, (refused, result.stderr)
        assert "this is the demo clinic (sample data, not real patients): it cannot" in (
            result.stderr
        )

    # A second demo is not made over the first; the real clinic is still to be set up.
    again = careline(data, "--json", "init", "--demo")
    assert again.returncode == 1 and "already holds a clinic" in again.stderr
    real = careline(data, "patient", "search", "a")
    assert real.returncode == 2 and "no clinic in" in real.stderr and NOTICE not in real.stderr


def test_init_demo_json_and_the_same_seed(tmp_path: Path) -> None:
    docs = []
    for name in ("one", "two"):
        result = careline(tmp_path / name, "--json", "init", "--demo", "--patients", "5")
        assert result.returncode == 0, result.stderr
        docs.append(json.loads(result.stdout))
    assert docs[0]["user"] == "demo" and docs[0]["password"] == DEMO_PASSWORD
    assert docs[0]["data_dir"] == str(tmp_path / "one-demo") and docs[0]["demo"] is True
    assert docs[0]["counts"] == docs[1]["counts"] and docs[0]["counts"]["patients"] == 5
    names = [
        careline(tmp_path / n, "--demo", "--json", "patient", "search", "").stdout
        for n in ("one", "two")
    ]
    assert json.loads(names[0]) and [
        (p["family"], p["given"], p["birth_date"]) for p in json.loads(names[0])
    ] == [(p["family"], p["given"], p["birth_date"]) for p in json.loads(names[1])]


def test_demo_without_one_says_how_to_make_it(tmp_path: Path) -> None:
    result = careline(tmp_path / "x", "--demo", "patient", "search", "a")
    assert result.returncode == 1
    assert "no demo clinic in" in result.stderr and "careline init --demo" in result.stderr

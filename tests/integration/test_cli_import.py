"""``careline import patients`` as an admin moving a clinic in scripts it (real processes):
the dry run lists every unreadable row, the import registers the rest with their allergies,
and running the same file again adds nobody twice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_cli_keys import new_clinic
from tests.integration.test_cli_user import FIRST, OWN

# Exported by a spreadsheet in a European clinic: semicolons, day first, Windows-1252.
PATIENT_LIST = (
    "Nom;Prénom;Date de naissance;Sexe;Téléphone;N° dossier;Allergies\n"
    "Lefèvre;Amélie;02/03/1984;F;+33 1 23 45 67 89;A-1001;pénicilline, latex\n"
    "Okafor;Chinedu;31/12/1990;M;;A-1002;\n"
    "Martin;Zoé;30/02/1985;F;;A-1003;\n"  # there is no 30 February
    "Dubois;Marc;1984-03-02;M;;A-1004;NKA\n"  # not in the chosen format
    "Nguyen;Lan;15/06/2001;X;;A-1005;\n"  # not a sex the form knows
)
MAP = ["--map", "Nom=family", "--map", "Prénom=given", "--map", "Date de naissance=birth_date",
       "--map", "Sexe=sex", "--map", "N° dossier=mrn", "--map", "Téléphone=phone"]  # fmt: skip
OPTIONS = ["--date-format", "DD/MM/YYYY", "--allergy-separator", ","]


def run_import(data: Path, csv: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = careline(
        data, "--json", "--password-stdin", "import", "patients", str(csv), *MAP, *OPTIONS,
        *extra, stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_dry_run_import_and_rerun(tmp_path: Path) -> None:
    data, csv = tmp_path / "d", tmp_path / "patients.csv"
    new_clinic(data)
    csv.write_bytes(PATIENT_LIST.encode("cp1252"))

    code, dry = run_import(data, csv, "--dry-run")
    assert code == 4  # rows with problems
    assert dry["encoding"] == "Windows-1252" and dry["rows"] == 5 and dry["to_add"] == 2
    assert [(p["row"], p["column"], p["value"]) for p in dry["problems"]] == [
        (4, "Date de naissance", "30/02/1985"),
        (5, "Date de naissance", "1984-03-02"),
        (6, "Sexe", "X"),
    ]
    reasons = [p["reason"] for p in dry["problems"]]
    assert "February 1985 has 28 days" in reasons[0]
    assert "DD/MM/YYYY" in reasons[1]
    assert as_admin(data, "patient", "search", "Lefèvre") == []  # the dry run wrote nothing

    code, done = run_import(data, csv)
    assert code == 4 and done["added"] == 2 and done["allergies"] == 2
    found = as_admin(data, "patient", "search", "Lefèvre")
    assert [(p["given"], p["birth_date"], p["mrn"], p["sex"]) for p in found] == [
        ("Amélie", "1984-03-02", "A-1001", "female")
    ]
    chart = as_admin(data, "patient", "show", found[0]["id"])
    assert sorted(a["substance"] for a in chart["allergies"]) == ["latex", "pénicilline"]

    code, again = run_import(data, csv)
    assert again["added"] == 0
    assert [(a["row"], a["why"]) for a in again["already_present"]] == [
        (2, "same MRN"),
        (3, "same MRN"),
    ]
    assert len(as_admin(data, "patient", "search", "Okafor")) == 1


def test_only_an_admin_imports_and_a_bad_mapping_is_named(tmp_path: Path) -> None:
    data, csv = tmp_path / "d", tmp_path / "patients.csv"
    new_clinic(data)
    csv.write_text("Family,Given,DOB\nSmith,Ann,1970-01-01\n", encoding="utf-8-sig")
    unknown = careline(
        data, "--password-stdin", "import", "patients", str(csv), "--map", "Birth=birth_date",
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert unknown.returncode == 2
    assert "no column 'Birth'" in unknown.stderr and "'DOB'" in unknown.stderr
    added = careline(
        data, "--json", "--password-stdin", "user", "add", "nina", "--full-name", "Nina N",
        "--role", "nurse", stdin=PASSWORD + "\n" + FIRST + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    careline(data, "--user", "nina", "--password-stdin", "password", "change",
             stdin=f"{FIRST}\n{OWN}\n")  # fmt: skip
    refused = careline(
        data, "--user", "nina", "--password-stdin", "import", "patients", str(csv),
        stdin=OWN + "\n",
    )  # fmt: skip
    assert refused.returncode != 0
    assert "Only an admin can import a patient list" in refused.stderr
    assert as_admin(data, "patient", "search", "Smith") == []


def test_a_substance_named_twice_with_other_details_is_a_problem_not_dropped(
    tmp_path: Path,
) -> None:
    """The security review's file: the import kept 'penicillin (rash, mild)' and dropped
    the anaphylaxis without a word, in the dry run too."""
    data, csv = tmp_path / "d", tmp_path / "dup_allergy.csv"
    new_clinic(data)
    cell = "penicillin (rash, mild); Penicillin (anaphylaxis, severe)"
    csv.write_text(f'Last name,First name,DOB,Allergies\nEvans,Eve,1955-03-03,"{cell}"\n')

    def run(*extra: str) -> Any:
        return careline(
            data, "--password-stdin", "import", "patients", str(csv), *extra,
            stdin=PASSWORD + "\n",
        )  # fmt: skip

    dry = run("--dry-run")
    assert dry.returncode == 4, dry.stderr
    assert "would add 0, already present 0, rows with problems 1" in dry.stdout
    assert (
        f"row 2, column 'Allergies': {cell!r}: names Penicillin twice, with different details "
        "('penicillin (rash, mild)' and 'Penicillin (anaphylaxis, severe)')"
    ) in dry.stdout
    done = run()
    assert done.returncode == 4 and "added 0 patients" in done.stdout
    assert as_admin(data, "patient", "search", "Evans") == []

"""``careline fhir export|import`` as operators script them: real processes, real SQLCipher,
the bundle read back with the FHIR models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.unit.records.fhir.test_import_integrity import ADAMS, note, patient, peanut
from tests.unit.reports.sample import sample_chart


def _clinic(data: Path) -> None:
    ws = Workstation(data, kdf_params=FAST_PARAMS)
    ws.init("Harbour Clinic", "admin", "Ada Admin", PASSWORD)
    ws.lock()


@pytest.fixture(scope="module")
def charted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A clinic with the sample chart (allergies, vitals, a visit with notes, ...)."""
    data = tmp_path_factory.mktemp("fhir") / "data"
    ws = Workstation(data, kdf_params=FAST_PARAMS)
    ws.init("Harbour Clinic", "admin", "Ada Admin", PASSWORD)
    ws.sign_in("admin", PASSWORD)
    try:
        patient_id = sample_chart(ws.records).patient_id
    finally:
        ws.lock()
    return data, patient_id


def test_export_then_import_into_another_clinic(charted: tuple[Path, str], tmp_path: Path) -> None:
    data, patient_id = charted
    bundle_file = tmp_path / "bundle.json"
    done = as_admin(data, "fhir", "export", "--patient", patient_id, "-o", str(bundle_file))
    assert done["file"] == str(bundle_file) and done["resources"]["Patient"] == 1
    assert bundle_file.stat().st_mode & 0o777 == 0o600  # it holds patient data
    bundle = Bundle.model_validate_json(bundle_file.read_text(encoding="utf-8"))
    assert bundle.type == "collection" and bundle.entry

    other = tmp_path / "other"
    _clinic(other)
    report = as_admin(other, "fhir", "import", str(bundle_file))
    assert report["created"][0]["resource"] == f"Patient/{patient_id}"
    assert not report["matched"]
    again = careline(
        other, "--password-stdin", "fhir", "import", str(bundle_file), stdin=PASSWORD + "\n"
    )
    assert again.returncode == 0, again.stderr
    assert "Created 0" in again.stdout and "already imported" in again.stdout
    audit = careline(other, "--password-stdin", "audit", "verify", stdin=PASSWORD + "\n")
    assert audit.returncode == 0, audit.stderr


def test_refusals_name_the_problem(charted: tuple[Path, str], tmp_path: Path) -> None:
    data, _ = charted
    not_json = tmp_path / "notes.txt"
    not_json.write_text("hello", encoding="utf-8")
    result = careline(
        data, "--password-stdin", "fhir", "import", str(not_json), stdin=PASSWORD + "\n"
    )
    assert result.returncode != 0 and "bundle: is not JSON" in result.stderr
    patient = tmp_path / "patient.json"
    entry = {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "yesterday"}}
    patient.write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [entry]})
    )
    result = careline(
        data, "--password-stdin", "fhir", "import", str(patient), stdin=PASSWORD + "\n"
    )
    assert result.returncode != 0 and "Patient/p1.birthDate" in result.stderr
    missing = careline(
        data,
        "--password-stdin",
        "fhir",
        "import",
        str(tmp_path / "nope.json"),
        stdin=PASSWORD + "\n",
    )
    assert missing.returncode != 0 and "cannot read" in missing.stderr
    existing = tmp_path / "there.json"
    existing.write_text("keep", encoding="utf-8")
    refused = careline(
        data, "--password-stdin", "fhir", "export", "-o", str(existing), stdin=PASSWORD + "\n"
    )
    assert refused.returncode != 0 and "--force" in refused.stderr
    assert existing.read_text(encoding="utf-8") == "keep"


def _import(data: Path, bundle_file: Path, *texts: dict[str, Any]) -> Any:
    bundle_file.write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": list(texts)})
    )
    return careline(
        data, "--password-stdin", "fhir", "import", str(bundle_file), stdin=PASSWORD + "\n"
    )


def test_a_bundle_with_two_entries_of_one_id_is_refused(tmp_path: Path) -> None:
    """The security review's bundle: Adams's severe peanut allergy landed on Brown's chart,
    Adams was not imported, and the report said 'Created 2'."""
    data = tmp_path / "data"
    _clinic(data)
    adams, brown = ADAMS, "urn:uuid:bbbbbbbb-0000-0000-0000-000000000001"
    refused = _import(
        data,
        tmp_path / "dup_ids.json",
        {"fullUrl": adams, "resource": patient("p1", "Adams", "Alice", "1950-05-05")},
        {"fullUrl": "urn:uuid:a2", "resource": peanut("a1", adams)},
        {"fullUrl": brown, "resource": patient("p1", "Brown", "Bob", "1990-09-09")},
    )
    assert refused.returncode != 0 and refused.stdout == ""
    assert refused.stderr.startswith(
        f"careline: error: Bundle.entry[2]: Patient/p1, fullUrl {brown} has the same "
        f"resourceType/id, 'Patient/p1', as Bundle.entry[0] (Patient/p1, fullUrl {adams})"
    )
    assert "nothing was imported" in refused.stderr
    assert as_admin(data, "patient", "search", "Adams") == []
    assert as_admin(data, "patient", "search", "Brown") == []


def test_imported_notes_pass_the_write_paths_checks_and_print_safely(tmp_path: Path) -> None:
    """An author of terminal escapes and an addendum on an unsigned note are refused; a
    note's own text is free, so the terminal gets its escapes as visible text, not raw."""
    data = tmp_path / "data"
    _clinic(data)
    carter = {"fullUrl": ADAMS, "resource": patient("c1", "Carter", "Carol", "1960-06-06")}
    forged = note(ADAMS, "Seen.", author={"display": "dr\x1b[2J\x1b[31m evil\x07"})
    refused = _import(data, tmp_path / "forged.json", carter, {"resource": forged})
    assert refused.returncode != 0
    assert "DocumentReference/n1.author: contains control characters" in refused.stderr
    assert "\x1b" not in refused.stderr
    unsigned = note(ADAMS, "draft note", "   ", status="preliminary")
    refused = _import(data, tmp_path / "unsigned.json", carter, {"resource": unsigned})
    assert refused.returncode != 0
    assert "DocumentReference/n1.docStatus: the note is not signed" in refused.stderr
    assert as_admin(data, "patient", "search", "Carter") == []

    clin = {"identifier": {"system": "urn:careline:username", "value": "clin"}}
    escapes = note(ADAMS, "BP fine\x1b[2J\x1b]0;owned\x07\u009b31m", author=clin)
    done = _import(data, tmp_path / "note.json", carter, {"resource": escapes})
    assert done.returncode == 0, done.stderr
    (found,) = as_admin(data, "patient", "search", "Carter")
    (listed,) = as_admin(data, "note", "list", "--patient", found["id"])
    assert listed["author"] == "admin"  # the importer's: 'clin' may be someone else here
    assert listed["body"] == "BP fine\x1b[2J\x1b]0;owned\x07\u009b31m"  # kept as it came
    shown = careline(
        data, "--password-stdin", "note", "list", "--patient", found["id"],
        stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "  BP fine\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\n" in shown.stdout
    assert not any(ch in shown.stdout for ch in "\x1b\x07\u009b")


def test_a_bundle_past_the_size_limit_is_refused_by_its_size(
    charted: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = charted
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(64 * 1024 * 1024 + 1)  # sparse
    result = careline(data, "--password-stdin", "fhir", "import", str(huge), stdin=PASSWORD + "\n")
    assert result.returncode != 0
    assert "bundle: is 67,108,865 bytes, more than the 67,108,864 a bundle may be" in result.stderr
    assert "import it in parts" in result.stderr

"""``careline fhir export|import`` as operators script them: real processes, real SQLCipher,
the bundle read back with the FHIR models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from tests.integration.test_cli import PASSWORD, as_admin, careline
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

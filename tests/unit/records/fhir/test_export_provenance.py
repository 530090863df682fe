"""FHIR export's Provenance for problems and medications: who recorded an item, and who
resolved or stopped it, each named for what they did. Resolving or stopping replaces an item
by a copy; the export credited whoever made the copy as the item's recorder."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.records.clinic import ClinicRecords
from core.records.fhir.export import export_bundle
from core.records.fhir.importer import import_bundle
from core.records.medications import Medications
from core.records.problems import Problems
from tests.unit.records.fhir.test_round_trip import PASSWORD, _clinic

pytestmark = pytest.mark.strict_authz


def _provenance(bundle: str, resource_type: str) -> list[tuple[str, str]]:
    """(activity code, user name) of each Provenance whose target is a ``resource_type``."""
    found = []
    for entry in json.loads(bundle)["entry"]:
        r: dict[str, Any] = entry["resource"]
        if r["resourceType"] == "Provenance" and r["target"][0]["reference"].startswith(
            resource_type + "/"
        ):
            code = r["activity"]["coding"][0]["code"]
            found.append((code, r["agent"][0]["who"]["identifier"]["value"]))
    return sorted(found)


def test_the_recorder_is_credited_and_whoever_ended_it_is_named_apart() -> None:
    records = _clinic("Harbour")  # admin: the founder, also a clinician
    records.add_user("drlee", "Doug Lee", "clinician", PASSWORD)
    lee = ClinicRecords(records.db, "drlee")
    patient = records.add_patient("Mensah", "Ama", "1979-05-05")
    med = Medications(records).start(patient.id, {"name": "Naproxen"}, prescribing=True)
    problem = Problems(records).add(patient.id, uncoded="Back pain")
    Medications(lee).stop(med.id)
    Problems(lee).resolve(problem.id)

    bundle = export_bundle(records, patient.id).json()
    assert _provenance(bundle, "MedicationStatement") == [("CREATE", "admin"), ("UPDATE", "drlee")]
    assert _provenance(bundle, "Condition") == [("CREATE", "admin"), ("UPDATE", "drlee")]

    # An item still active has one Provenance: its recorder's.
    active = Medications(lee).start(patient.id, {"name": "Paracetamol"}, prescribing=True)
    bundle = export_bundle(records, patient.id).json()
    rows = [
        (
            r["resource"]["activity"]["coding"][0]["code"],
            r["resource"]["agent"][0]["who"]["display"],
        )
        for r in json.loads(bundle)["entry"]
        if r["resource"]["resourceType"] == "Provenance"
        and r["resource"]["target"][0]["reference"].endswith(active.id)
    ]
    assert rows == [("CREATE", "drlee")]

    # Imported elsewhere, the import's audit entry keeps both rows of the stopped item,
    # the second saying what its person did.
    other = _clinic("Elsewhere")
    import_bundle(other, bundle)
    rows = other.db.query(
        "SELECT details FROM audit_log WHERE action = 'fhir.import' AND entity = 'patient'"
    )
    kept = [row for r in rows for row in json.loads(r[0])["provenance"]]
    whom = sorted(tuple(row[1:2] + row[3:]) for row in kept)
    assert whom.count(("drlee", "UPDATE")) == 2  # the medication stopped, the problem resolved
    assert whom.count(("drlee",)) == 1  # Paracetamol, which drlee recorded
    assert ("admin", "UPDATE") not in whom

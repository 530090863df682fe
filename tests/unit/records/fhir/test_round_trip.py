"""FHIR export and import: a rich synthetic clinic exported, imported into an empty clinic
and exported again holds the same clinical content; every exported resource parses back
with the library's models; a re-run duplicates nothing; matches are offered for merge."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from core.records.allergy_status import AllergyRecords
from core.records.clinic import ClinicRecords
from core.records.demo_data import generate
from core.records.entries import ClinicalEntries
from core.records.fhir.common import RECORD_ID
from core.records.fhir.export import export_bundle
from core.records.fhir.importer import import_bundle
from core.records.fhir.reader import MODELS
from core.records.notes import Notes
from tests.unit.sync.replicas import new_replica

pytestmark = pytest.mark.strict_authz

PASSWORD = "correct horse battery"
TODAY = dt.date.today()


def _clinic(name: str) -> ClinicRecords:
    """A new clinic whose founder (admin and clinician) acts."""
    founder = new_replica("admin")
    founder.set_up_clinic(name, "admin", "Ada Admin", PASSWORD)
    return founder


@pytest.fixture(scope="module")
def source() -> tuple[ClinicRecords, str]:
    records = _clinic("Source")
    generate(records, seed=11, patients=8, today=TODAY)
    # What the demo does not make: a resolved problem, a stopped medication with its
    # strength, an addendum on a signed note, an attachment's metadata.
    pid = records.list_patients(1)[0].id
    # A patient asked about allergies who has none ("No known allergies").
    asked = records.add_patient("Nkaperson", "Ola", "1999-09-09", "female", mrn="NKA-1")
    AllergyRecords(records).record_no_known_allergies(asked.id)
    entries = ClinicalEntries(records)
    problem = {"description": "Back pain", "status": "resolved", "onset": "2019-05",
               "resolved": "2020-01-10"}  # fmt: skip
    entries.add_to_list(pid, "problems", problem)
    medication = {"name": "Naproxen", "strength": "250 mg", "status": "stopped",
                  "start": "2019-05-02", "stop": "2019-06-01", "reason": "Back pain"}  # fmt: skip
    entries.add_to_list(pid, "medications", medication)
    notes = Notes(records)
    note = notes.create(pid, "Seen for back pain. Better.")
    notes.sign(note.id)
    notes.add_addendum(note.id, "Phoned: fully recovered.")
    entries.add("attachment", pid, {"filename": "letter.pdf", "media_type": "application/pdf",
                                    "size": "1234", "sha256": "ab" * 32})  # fmt: skip
    return records, export_bundle(records).json()


def _references(resource: dict[str, Any], names: dict[str, str]) -> Any:
    """The resource with ids replaced by the content names of what they point at."""
    text = json.dumps(resource, sort_keys=True)
    for ref, name in names.items():
        text = text.replace(f'"{ref}"', f'"{name}"')
    return json.loads(text)


def _content(bundle_json: str) -> dict[str, list[str]]:
    """Clinical content by resource type, ids, record-id identifiers, import stamps
    and Provenance (the importer's own writes) left out; references named by content."""
    resources = [e["resource"] for e in json.loads(bundle_json)["entry"]]
    names: dict[str, str] = {}
    for r in resources:
        if r["resourceType"] == "Patient":
            names[f"Patient/{r['id']}"] = "patient:" + r["name"][0]["family"] + r["birthDate"]
        elif r["resourceType"] == "Encounter":
            names[f"Encounter/{r['id']}"] = "encounter:" + r["period"]["start"]
        elif r["resourceType"] == "Appointment":
            names[f"Appointment/{r['id']}"] = "appointment:" + r["start"]
    # A vital sign's set is named by its id, new on import: by its members' content instead.
    members: dict[str, list[str]] = {}
    for r in resources:
        for ext in r.get("extension", []) if r["resourceType"] == "Observation" else []:
            if ext["url"].endswith(":vital-set"):
                codes = [c["code"]["coding"][0]["code"] for c in r.get("component", [])]
                members.setdefault(ext["valueString"], []).extend(
                    codes or [r["code"]["coding"][0]["code"]]
                )
                names[ext["valueString"]] = f"set:{r['effectiveDateTime']}"
    for key, codes in members.items():
        names[key] += ":" + ",".join(sorted(codes))
    out: dict[str, list[str]] = {}
    for r in resources:
        if r["resourceType"] == "Provenance":
            continue
        r = dict(r)
        r.pop("id")
        r["identifier"] = [i for i in r.get("identifier", []) if i["system"] != RECORD_ID]
        if r["resourceType"] == "AllergyIntolerance":
            r.pop("recordedDate", None), r.pop("recorder", None)  # stamped by the write
        if r["resourceType"] == "DocumentReference":
            for c in r["content"]:
                c["attachment"].pop("creation", None)  # an addendum's stamp
            # A note is imported as the importing person's, its source author reported
            # (test_import_integrity): the demo's notes are its clinicians'.
            r.pop("author", None), r.pop("authenticator", None)
        out.setdefault(r["resourceType"], []).append(
            json.dumps(_references(r, names), sort_keys=True)
        )
    return {k: sorted(v) for k, v in out.items()}


def test_every_exported_resource_parses_back_with_the_library(
    source: tuple[ClinicRecords, str],
) -> None:
    _, exported = source
    bundle = Bundle.model_validate_json(exported)
    resources: list[Any] = [e.resource for e in bundle.entry or []]
    kinds = {r.get_resource_type() for r in resources}
    assert kinds == set(MODELS)  # every resource type the brief names is exported
    for resource in resources:
        data = resource.model_dump()
        again = MODELS[data["resourceType"]].model_validate(data)
        assert again.model_dump() == data
    observations = [r for r in resources if r.get_resource_type() == "Observation"]
    profiles = {p for o in observations for p in o.meta.profile}
    assert profiles == {
        "http://hl7.org/fhir/StructureDefinition/vitalsigns",
        "http://hl7.org/fhir/StructureDefinition/bp",  # both pressures: one panel
    }
    values = [o for o in observations if o.valueQuantity] + [
        c for o in observations for c in o.component or []
    ]
    assert {v.valueQuantity.system for v in values} == {"http://unitsofmeasure.org"}
    assert {c.system for v in values for c in v.code.coding} == {"http://loinc.org"}
    panels = [o for o in observations if o.component]
    assert panels and all(
        [c.code.coding[0].code for c in o.component] == ["8480-6", "8462-4"] for o in panels
    )


def test_a_clinic_survives_export_import_export(source: tuple[ClinicRecords, str]) -> None:
    records, exported = source
    target = _clinic("Target")
    report = import_bundle(target, exported)
    assert not report.matched
    # Only the attachment's file is not in a bundle: skipped, with the reason.
    assert [o.resource.split("/")[0] for o in report.skipped] == ["DocumentReference"]
    assert "file" in (report.skipped[0].reason or "")
    assert target.count_patients() == records.count_patients()
    nka = target.db.query("SELECT allergy_status FROM patients WHERE family = 'Nkaperson'")
    assert nka[0][0] == "nka"
    again = export_bundle(target).json()
    before, after = _content(exported), _content(again)
    before["DocumentReference"] = [d for d in before["DocumentReference"] if "letter.pdf" not in d]
    assert after == before


def test_running_the_same_bundle_again_duplicates_nothing(
    source: tuple[ClinicRecords, str],
) -> None:
    _, exported = source
    target = _clinic("Target")
    first = import_bundle(target, exported)
    counts = {
        t: target.db.query(f"SELECT count(*) FROM {t}")[0][0]
        for t in (
            "patients",
            "notes",
            "observations",
            "encounters",
            "appointments",
            "conditions",
            "medications",
            "allergies",
        )
    }
    second = import_bundle(target, exported)
    assert {t: target.db.query(f"SELECT count(*) FROM {t}")[0][0] for t in counts} == counts
    assert not second.created
    assert all(
        "already imported" in (o.reason or "")
        for o in second.skipped
        if o.resource.startswith("Patient/")
    )
    assert len(first.created) > 0

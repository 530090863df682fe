"""FHIR import: bad input is refused naming the resource and field with nothing written;
unknown resource types are reported; a patient already registered is matched and offered
for merge, not duplicated; an interrupted import resumes without duplicates; only an
admin imports or exports."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.records.clinic import ClinicRecords
from core.records.errors import NotAllowedError
from core.records.fhir import reader
from core.records.fhir.common import FhirError
from core.records.fhir.export import export_bundle
from core.records.fhir.importer import import_bundle
from core.records.merges import Merges
from core.records.staff import Staff
from core.records.vital_signs import VitalSigns
from tests.unit.sync.replicas import new_replica

pytestmark = pytest.mark.strict_authz

PASSWORD = "correct horse battery"


def _clinic(name: str) -> ClinicRecords:
    founder = new_replica("admin")
    founder.set_up_clinic(name, "admin", "Ada Admin", PASSWORD)
    return founder


@pytest.fixture(scope="module")
def exported() -> str:
    """Three patients, each with an allergy and a set of vitals."""
    source = _clinic("Source")
    for family, given, born in (("Okafor", "Chinedu", "1984-02-02"), ("Ames", "Bo", "1970-01-01"),
                                ("Silva", "Rosa", "1990-07-15")):  # fmt: skip
        p = source.add_patient(family, given, born, "female", mrn=f"M-{family}")
        source.add_allergy(p.id, "Penicillin", "Hives", "moderate")
        VitalSigns(source).record(p.id, {"systolic": "120", "diastolic": "80", "pulse": "70"})
    return export_bundle(source).json()


def _counts(records: ClinicRecords) -> dict[str, int]:
    tables = ("patients", "allergies", "observations", "audit_log")
    return {t: int(records.db.query(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}


def _edited(exported: str, change: Any) -> str:
    doc = json.loads(exported)
    change(doc)
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda text: "{not json", "bundle: is not JSON"),
        (lambda text: json.dumps({"resourceType": "Patient"}), "not a FHIR Bundle"),
        (
            lambda text: _edited(text, lambda d: d.update(type="searchset")),
            "Bundle.type",
        ),
        (
            lambda text: _edited(
                text, lambda d: d["entry"][-1]["resource"].update(birthDate="1984-13-45")
            ),
            ".birthDate",
        ),
        (
            lambda text: _edited(
                text,
                lambda d: next(e for e in d["entry"] if "valueQuantity" in e["resource"])[
                    "resource"
                ]["valueQuantity"].update(value=900),
            ),
            "Observation/",
        ),
    ],
    ids=["not-json", "not-a-bundle", "wrong-bundle-type", "bad-birth-date", "impossible-pulse"],
)
def test_bad_input_is_refused_by_name_and_nothing_is_written(
    exported: str, make: Any, named: str
) -> None:
    target = _clinic("Target")
    before = _counts(target)
    with pytest.raises(FhirError) as refused:
        import_bundle(target, make(exported))
    assert named in str(refused.value)
    assert _counts(target) == before


def test_a_refused_resource_is_named_with_its_element(exported: str) -> None:
    doc = json.loads(exported)
    patient = next(
        e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    patient["gender"] = 7
    with pytest.raises(FhirError) as refused:
        import_bundle(_clinic("Target"), json.dumps(doc))
    assert str(refused.value).startswith(f"Patient/{patient['id']}.gender")


def test_unknown_resource_types_are_reported_not_dropped(exported: str) -> None:
    doc = json.loads(exported)
    doc["entry"].append({"resource": {"resourceType": "Immunization", "id": "imm1"}})
    report = import_bundle(_clinic("Target"), json.dumps(doc))
    assert ("Immunization/imm1", "Immunization resources are not imported") in [
        (o.resource, o.reason) for o in report.skipped
    ]


def test_a_patient_already_registered_is_offered_for_merge_not_duplicated(
    exported: str,
) -> None:
    """A bundle patient matching one already here (a similar name and the same birth date,
    or the same MRN) comes in as a new chart flagged as its likely duplicate: everything on
    it is imported, the pair is on the review list, and merging it gives one chart."""
    target = _clinic("Target")
    # Same person, typed with a slip and another MRN: the registration rules match them.
    existing = target.add_patient("Okafur", "Chinedu", "1984-02-02", mrn="LOCAL-1")
    same_mrn = target.add_patient("Someone", "Else", "2001-01-01", mrn="M-Ames")
    report = import_bundle(target, exported)
    matched = {o.record_id: o.reason or "" for o in report.matched}
    assert set(matched) == {existing.id, same_mrn.id}
    assert "listed under Possible duplicates to merge" in matched[existing.id]
    assert "the same MRN" in matched[same_mrn.id]
    assert target.count_patients() == 5  # three imported, two of them flagged
    flagged = dict(
        (str(d), str(o))
        for d, o in target.db.query(
            "SELECT id, duplicate_of FROM patients WHERE duplicate_of != ''"
        )
    )
    assert sorted(flagged.values()) == sorted([existing.id, same_mrn.id])
    assert len(target.allergies(existing.id)) == 0  # nothing written into a matched chart
    new_okafor = next(d for d, o in flagged.items() if o == existing.id)
    assert [a.substance for a in target.allergies(new_okafor)] == ["Penicillin"]
    # The MRN stays with the chart holding it; the new one has none.
    assert target.get_patient(next(d for d, o in flagged.items() if o == same_mrn.id)).mrn is None
    merges = Merges(target)
    pairs = {frozenset((p.first.id, p.second.id)) for p in merges.candidates()}
    assert {frozenset(pair) for pair in flagged.items()} <= pairs
    merges.merge(new_okafor, existing.id, "imported twice")
    assert [a.substance for a in target.allergies(existing.id)] == ["Penicillin"]
    assert frozenset((new_okafor, existing.id)) not in {
        frozenset((p.first.id, p.second.id)) for p in merges.candidates()
    }
    # Importing the bundle again creates nothing: each chart names its source.
    again = import_bundle(target, exported)
    assert again.created == [] and target.count_patients() == 4  # one merged away


def test_the_same_careline_record_is_not_imported_into_its_own_clinic(exported: str) -> None:
    source_doc = json.loads(exported)
    first = next(
        e["resource"] for e in source_doc["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    target = _clinic("Target")
    import_bundle(target, exported)
    again = export_bundle(target).json()
    report = import_bundle(target, again)
    assert report.created == [] and target.count_patients() == 3
    assert all("the same Careline record" in (o.reason or "") for o in report.matched)
    assert first["name"][0]["family"] in {p.family for p in target.list_patients()}


@pytest.mark.parametrize("role", ["clinician", "nurse", "front_desk"])
def test_only_an_admin_imports_or_exports(exported: str, role: str) -> None:
    target = _clinic("Target")
    target.add_user("someone", "Some One", role, PASSWORD)
    them = ClinicRecords(target.db, "someone")
    with pytest.raises(NotAllowedError, match="Only an admin can import"):
        import_bundle(them, exported)
    with pytest.raises(NotAllowedError, match="Only an admin can export"):
        export_bundle(them)
    assert target.count_patients() == 0


def test_an_admin_without_clinical_access_exports_demographics_only(exported: str) -> None:
    target = _clinic("Target")
    import_bundle(target, exported)
    target.add_user("boss", "Bo Admin", "admin", PASSWORD)
    result = export_bundle(ClinicRecords(target.db, "boss"))
    assert len(result.withheld) == 3  # an admin who is not a clinician or nurse
    assert set(result.counts) == {"Patient", "Provenance"}
    audited = target.db.query(
        "SELECT count(*) FROM audit_log WHERE actor = 'boss' AND action = 'fhir.export'"
    )
    assert audited[0][0] == 1


def _foreign_bundle() -> str:
    """A transaction bundle as another system writes one: urn:uuid references, its own
    MRN, a blood-pressure panel, a lab result, a coded diagnosis made in a visit."""
    from fhir.resources.R4B.bundle import Bundle, BundleEntry, BundleEntryRequest

    def entry(uuid: str, resource: dict[str, Any]) -> BundleEntry:
        return BundleEntry(
            fullUrl=f"urn:uuid:{uuid}",
            resource=reader.MODELS[resource["resourceType"]].model_validate(resource),
            request=BundleEntryRequest(method="POST", url=resource["resourceType"]),
        )

    patient = {"resourceType": "Patient", "identifier": [
        {"system": "https://hospital.example/mrn", "value": "H-77",
         "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                              "code": "MR"}]}}],
        "name": [{"family": "Mensah", "given": ["Ama", "Serwa"]}],
        "gender": "female", "birthDate": "1988-03-14"}  # fmt: skip
    subject = {"reference": "urn:uuid:p"}
    visit = {"resourceType": "Encounter", "status": "finished",
             "class": {"code": "AMB"}, "subject": subject,
             "period": {"start": "2026-11-02T09:30:00+00:00", "end": "2026-11-02T10:00:00+00:00"},
             "reasonCode": [{"text": "Thirsty all the time"}]}  # fmt: skip
    mmhg = {"system": "http://unitsofmeasure.org", "code": "mm[Hg]", "unit": "mmHg"}
    bp = {"resourceType": "Observation", "status": "final", "subject": subject,
          "encounter": {"reference": "urn:uuid:e"},
          "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
          "effectiveDateTime": "2026-11-02T09:35:00+00:00", "component": [
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
               "valueQuantity": {"value": 150, **mmhg}},
              {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
               "valueQuantity": {"value": 95, **mmhg}}]}  # fmt: skip
    glucose = {"resourceType": "Observation", "status": "final", "subject": subject,
               "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
               "valueQuantity": {"value": 11.2, "system": "http://unitsofmeasure.org",
                                 "code": "mmol/L"}}  # fmt: skip
    diabetes = {"resourceType": "Condition", "subject": subject,
                "encounter": {"reference": "urn:uuid:e"},
                "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                     "code": "E119", "display": "Type 2 diabetes"}]}}  # fmt: skip
    bundle = Bundle(type="transaction", entry=[
        entry("p", patient), entry("e", visit), entry("bp", bp), entry("g", glucose),
        entry("c", diabetes)])  # fmt: skip
    return str(bundle.model_dump_json())


def test_a_transaction_bundle_from_another_system_is_imported() -> None:
    target = _clinic("Target")
    report = import_bundle(target, _foreign_bundle())
    assert [o.resource for o in report.skipped] == ["Observation (entry 3)"]
    assert "LOINC 2345-7 is not a vital sign" in (report.skipped[0].reason or "")
    (patient,) = target.list_patients()
    assert (patient.family, patient.given, patient.mrn) == ("Mensah", "Ama Serwa", "H-77")
    rows = target.db.query(
        "SELECT c.code, c.description, e.reason FROM conditions c "
        "JOIN encounters e ON e.id = c.encounter_id"
    )
    assert [tuple(r) for r in rows] == [("E11.9", "Type 2 diabetes", "Thirsty all the time")]
    pressures = target.db.query("SELECT code, value, flag FROM observations ORDER BY code")
    assert [tuple(r) for r in pressures] == [("8462-4", "95", "high"), ("8480-6", "150", "high")]


def test_an_admin_without_clinical_permissions_is_refused_up_front(exported: str) -> None:
    """Each record needs its own permission (other workstations check it too): an admin who
    is not a clinician is refused before anything is written, told which permissions the
    bundle needs and how to get them; the refusal is audited."""
    target = _clinic("Target")
    target.add_user("boss", "Bo Admin", "admin", PASSWORD)
    before = target.db.query("SELECT count(*) FROM record_states")[0][0]
    with pytest.raises(NotAllowedError) as refused:
        import_bundle(ClinicRecords(target.db, "boss"), exported)
    message = str(refused.value)
    assert message.startswith("boss may not write the records this bundle holds")
    assert "record allergy (a nurse or a clinician" in message
    assert "record vitals" in message and "register patient" not in message
    assert "an admin who is also a clinician" in message
    assert target.count_patients() == 0
    assert target.db.query("SELECT count(*) FROM record_states")[0][0] == before
    audited = target.db.query(
        "SELECT details FROM audit_log WHERE actor = 'boss' AND action = 'action.refused'"
    )
    assert [json.loads(d)["action"] for (d,) in audited] == ["fhir.import"]
    # Given the clinician role beside admin, the same person imports it.
    Staff(target).add_role("boss", "clinician")
    import_bundle(ClinicRecords(target.db, "boss"), exported)
    assert target.count_patients() == 3


def test_the_import_is_audited_with_the_sources_provenance(exported: str) -> None:
    target = _clinic("Target")
    report = import_bundle(target, exported)
    rows = target.db.query(
        "SELECT entity, details FROM audit_log WHERE action = 'fhir.import' ORDER BY seq"
    )
    details = [(str(r[0]), json.loads(r[1])) for r in rows]
    assert [d["phase"] for e, d in details if e == "clinic"] == ["start", "done"]
    charts = [d for e, d in details if e == "patient"]
    assert len(charts) == 3 and {d["batch"] for d in charts} == {report.batch}
    # Who recorded each record at the source: the allergy, the vitals and the patient.
    assert all(len(d["provenance"]) == 4 for d in charts)
    assert {who for d in charts for _, who, _ in d["provenance"]} == {"admin"}

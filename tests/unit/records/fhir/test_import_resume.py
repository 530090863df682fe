"""An import killed midway resumes without duplicates, on the same workstation or on
another one after sync: each imported record carries its source, replicated with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import crdt
from core.records.clinic import ClinicRecords
from core.records.fhir.export import export_bundle
from core.records.fhir.importer import import_bundle
from core.records.vital_signs import VitalSigns
from core.store.database import Database
from core.store.state_codec import unpack_state
from tests.clinic_identity import join_test_clinic
from tests.unit.sync.replicas import new_replica, sync_pair

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[4]


def _bundle() -> str:
    """Three patients, each with an allergy, a visit and a set of vitals."""
    source = new_replica("admin")
    source.set_up_clinic("Source", "admin", "Ada Admin", PASSWORD)
    for family, given, born in (("Okafor", "Chinedu", "1984-02-02"), ("Ames", "Bo", "1970-01-01"),
                                ("Silva", "Rosa", "1990-07-15")):  # fmt: skip
        p = source.add_patient(family, given, born, "female", mrn=f"M-{family}")
        source.add_allergy(p.id, "Penicillin", "Hives", "moderate")
        VitalSigns(source).record(p.id, {"systolic": "120", "diastolic": "80", "pulse": "70"})
    return export_bundle(source).json()


def _counts(db: Database) -> dict[str, int]:
    tables = ("patients", "allergies", "observations")
    return {t: int(db.query(f"SELECT count(*) FROM {t}")[0][0]) for t in tables}


def test_an_import_killed_midway_resumes_here_and_elsewhere_without_duplicates(
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text(_bundle(), encoding="utf-8")
    key = os.urandom(32)
    path = tmp_path / "clinic.db"
    db = Database.create(path, SecureMemory.from_bytes(bytearray(key)))
    join_test_clinic(db)
    ClinicRecords(db, "admin", FAST_PARAMS).set_up_clinic("Target", "admin", "Ada", PASSWORD)
    db.close()

    child = subprocess.run(
        [sys.executable, "-m", "tests.unit.records.fhir.import_worker", str(path), str(bundle),
         "1"],
        input=key.hex() + "\n", capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr  # killed by SIGKILL after the first chart

    db = Database.open(path, SecureMemory.from_bytes(bytearray(key)))
    records = ClinicRecords(db, "admin", FAST_PARAMS)
    assert _counts(db) == {"patients": 1, "allergies": 1, "observations": 3}  # one whole chart
    report = import_bundle(records, bundle.read_bytes())
    assert _counts(db) == {"patients": 3, "allergies": 3, "observations": 9}
    resumed = [o for o in report.skipped if o.resource.startswith("Patient/")]
    assert len(resumed) == 1 and "already imported" in (resumed[0].reason or "")
    # Each record names where it came from: the patient's column, each reading's register.
    sources = [str(s) for (s,) in db.query("SELECT source FROM patients ORDER BY source")]
    assert len(set(sources)) == 3 and all(s.startswith("fhir:") for s in sources)
    (state,) = db.query("SELECT state FROM record_states WHERE type = 'observation' LIMIT 1")[0]
    reading = crdt.winner(crdt.load(unpack_state(state), 0), "source")
    assert reading is not None and "|Observation/" in str(reading.value)

    # Another workstation, once synced, creates nothing either: the sources came with it.
    other = new_replica("admin")
    sync_pair(records, other)
    again = import_bundle(other, bundle.read_bytes())
    assert again.created == [] and _counts(other.db) == _counts(db)
    db.close()

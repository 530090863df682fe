"""V6 (problems, medications, allergy status in use) upgrades a clinic file in place."""

from __future__ import annotations

import os
from pathlib import Path

from core.crypto.secure_memory import SecureMemory
from core.records.allergy_status import AllergyState, allergy_state
from core.records.clinic import ClinicRecords
from core.records.medications import Medications
from core.records.problems import Problems
from core.store.database import Database
from core.store.migrations import LATEST_VERSION, MIGRATIONS


def test_problems_and_medications_recorded_before_v6_keep_their_values_and_read_as_active(
    tmp_path: Path,
) -> None:
    key = SecureMemory.from_bytes(bytearray(os.urandom(32)))
    path = tmp_path / "v2.db"
    before = [m for m in MIGRATIONS if m[0] <= 2]
    old = Database.create(path, key, migrations=tuple(before))
    with old.write("t", "patient.create", "patient", "p1") as tx:
        tx.execute(
            "INSERT INTO patients (id, family, given, birth_date, sort_key, created_at, "
            "updated_at) VALUES ('p1', 'Soto', 'Luis', '1961-01-01', 'soto', 'x', 'x')"
        )
        tx.execute(
            "INSERT INTO medications (id, patient_id, name, dose, route, frequency) "
            "VALUES ('m1', 'p1', 'Metformin', '500 mg', 'oral', 'twice daily')"
        )
        tx.execute(
            "INSERT INTO conditions (id, patient_id, code, description, onset) "
            "VALUES ('c1', 'p1', 'I10', 'Essential (primary) hypertension', '2019-05-01')"
        )
    old.close()

    db = Database.open(path, key)
    assert [r[0] for r in db.query("SELECT version FROM schema_version ORDER BY version")][
        -1
    ] == LATEST_VERSION
    assert db.integrity_problems() == []
    records = ClinicRecords(db, "t")
    [med] = Medications(records).list("p1")
    assert (med.name, med.dose, med.route, med.frequency) == (
        "Metformin", "500 mg", "oral", "twice daily",
    )  # fmt: skip
    assert med.active and (med.strength, med.start, med.stop, med.status) == (None,) * 4
    [problem] = Problems(records).list("p1")
    assert (problem.code, problem.status, problem.onset, problem.resolved) == (
        "I10", "active", "2019-05-01", None,
    )  # fmt: skip
    patient = records.get_patient("p1")
    assert patient.allergy_status is None
    assert allergy_state(patient, []) is AllergyState.NOT_RECORDED
    db.close()

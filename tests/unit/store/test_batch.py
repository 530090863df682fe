"""``Database.batch``: many units of work, one transaction, each unit still all-or-nothing."""

from __future__ import annotations

import pytest

from core.records.errors import ValidationError
from tests.unit.sync.replicas import new_replica


def test_a_failed_unit_in_a_batch_is_undone_alone() -> None:
    records = new_replica("demo")
    with records.db.batch():
        first = records.add_patient("Ortiz", "Ana", "1990-01-01", mrn="M-1")
        with pytest.raises(ValidationError):  # same MRN: refused inside the batch
            records.add_patient("Ortiz", "Bea", "1991-01-01", mrn="M-1")
        records.add_patient("Ortiz", "Cy", "1992-01-01")
    assert sorted(p.given for p in records.list_patients()) == ["Ana", "Cy"]
    assert records.get_patient(first.id).mrn == "M-1"
    # The refused unit left no op and no audit entry; each kept unit has its own.
    assert records.db.query("SELECT count(*) FROM oplog") == [(2,)]
    assert records.db.query("SELECT count(*) FROM audit_log WHERE action = 'patient.create'") == [
        (2,)
    ]


def test_a_failed_batch_leaves_nothing() -> None:
    records = new_replica("demo")
    # Joining the test clinic is audited; the batch must add nothing to it.
    audit_before = records.db.query("SELECT count(*) FROM audit_log")

    def interrupted() -> None:
        with records.db.batch():
            records.add_patient("Ortiz", "Ana", "1990-01-01")
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        interrupted()
    assert records.count_patients() == 0
    assert records.db.query("SELECT count(*) FROM oplog") == [(0,)]
    assert records.db.query("SELECT count(*) FROM audit_log") == audit_before
    records.add_patient("Ortiz", "Ana", "1990-01-01")  # the database is usable afterwards
    assert records.count_patients() == 1

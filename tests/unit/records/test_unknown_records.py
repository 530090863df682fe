"""A replica keeps, relays and (once upgraded) shows what a newer release wrote.

The newer release is simulated by tests/newer_release.py: a ``referral`` record type, a
patient's ``preferred_name`` and a medication's ``pharmacy``. The older replica is this
code as it is.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import unknown
from core.records.clinic import ClinicRecords
from core.records.crdt import load
from core.records.materialize import derive
from core.records.medications import Medications
from core.records.types import PATIENT, RECORD_TYPES
from core.store.database import Database
from core.store.state_codec import unpack_state
from tests.clinic_identity import join_test_clinic
from tests.newer_release import (
    NEWER_MIGRATIONS,
    NEWER_PATIENT,
    newer_chart,
    newer_code,
    newer_replica,
)
from tests.unit.sync.replicas import assert_converged, new_replica, pull_from


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


def _ops(records: ClinicRecords, origin: str) -> list[tuple[int, str, bytes, bytes]]:
    rows = records.db.query(
        "SELECT seq, record_type, doc_update, deps FROM oplog WHERE origin = ? ORDER BY seq",
        (origin,),
    )
    return [(int(r[0]), str(r[1]), bytes(r[2]), bytes(r[3])) for r in rows]


@dataclass
class Mixed:
    """A newer replica with a chart of everything new, and an older file-backed replica
    (with a patient of its own, so it pulls ops rather than a snapshot) that pulled it."""

    newer: ClinicRecords
    older: ClinicRecords
    pid: str
    path: Path
    key: SecureMemory


@pytest.fixture
def mixed(tmp_path: Path) -> Mixed:
    newer = newer_replica("newer")
    pid = newer_chart(newer)
    key = _key()
    path = tmp_path / "older.db"
    older = ClinicRecords(Database.create(path, key), "older", FAST_PARAMS)
    join_test_clinic(older.db)
    older.add_patient("Brun", "Lea", "1975-06-07")
    pull_from(older, newer)
    return Mixed(newer, older, pid, path, key)


def test_an_older_replica_keeps_relays_and_after_upgrading_shows_a_newer_ones_records(
    mixed: Mixed,
) -> None:
    newer, older, pid, path, key = mixed.newer, mixed.older, mixed.pid, mixed.path, mixed.key

    # Nothing refused, nothing lost: every op is held byte for byte, ready to relay.
    origin = newer.db.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0]
    assert "referral" in [op[1] for op in _ops(older, origin)]
    assert _ops(older, origin) == _ops(newer, origin)
    assert unknown.by_type(older.db) == {"patient": 1, "referral": 1}
    assert unknown.notice(unknown.count(older.db)) == (
        "Update Careline to see 2 newer records: newer workstations made them"
    )
    # What it understands it shows as before.
    assert older.get_patient(pid).family == "Okafor"
    assert [m.name for m in Medications(older).list(pid)] == ["Metformin"]
    older.update_patient(pid, {"given": "Adaeze"})

    # Relayed through the older replica to another newer one: everything arrives, and the
    # older replica's own edit merges with the fields it could not read.
    third = newer_replica("third")
    with newer_code():
        pull_from(third, older)
        pull_from(newer, older)
        for replica in (third, newer):
            row = replica.db.query(
                "SELECT given, preferred_name FROM patients WHERE id = ?", (pid,)
            )
            assert tuple(row[0]) == ("Adaeze", "Dee")
            assert replica.db.query("SELECT to_clinic FROM referrals")[0][0] == "Cardiology"
            assert replica.db.query("SELECT pharmacy FROM medications")[0][0] == (
                "Main Street Pharmacy"
            )
        assert unknown.count(third.db) == 0

    # Upgraded: the newer release opens the older one's file and shows all of it, from
    # the stored documents, with nothing synced again.
    older.db.close()
    with newer_code():
        upgraded = ClinicRecords(Database.open(path, key, migrations=NEWER_MIGRATIONS), "older")
        assert unknown.refresh(upgraded.db) == 3  # the two, and Brun (a patient)
        assert unknown.count(upgraded.db) == 0
        assert upgraded.db.query("SELECT to_clinic FROM referrals")[0][0] == "Cardiology"
        preferred = upgraded.db.query("SELECT preferred_name FROM patients WHERE id = ?", (pid,))
        assert preferred[0][0] == "Dee"
        assert_converged([upgraded, newer, third])
        assert unknown.refresh(upgraded.db) == 0  # once is enough


def test_a_snapshot_holding_a_newer_releases_records_is_kept_whole() -> None:
    newer = newer_replica("newer")
    pid = newer_chart(newer)
    fresh = new_replica("fresh")

    report = pull_from(fresh, newer)  # an empty replica bootstraps from a snapshot

    assert report.snapshot_records == 2
    assert unknown.by_type(fresh.db) == {"patient": 1, "referral": 1}
    assert fresh.get_patient(pid).given == "Ada"
    held = fresh.db.query("SELECT type FROM record_states ORDER BY type")
    assert [str(r[0]) for r in held] == ["patient", "referral"]


def test_the_parts_a_version_does_not_know_are_named() -> None:
    newer = newer_replica("newer")
    pid = newer_chart(newer)
    [state] = newer.db.query("SELECT state FROM record_states WHERE id = ?", (pid,))
    doc = load(unpack_state(state[0]), 1)

    assert derive(pid, NEWER_PATIENT, doc).unknown == ()
    assert derive(pid, PATIENT, doc).unknown == (
        "field:preferred_name",
        "list:medications.pharmacy",
    )


def test_an_upgrade_that_understands_part_of_a_record_shows_that_part_and_keeps_the_rest_listed(
    mixed: Mixed, monkeypatch: pytest.MonkeyPatch
) -> None:
    older, pid, path, key = mixed.older, mixed.pid, mixed.path, mixed.key
    assert unknown.refresh(older.db) == 0  # nothing more is understood: nothing re-derived
    older.db.close()

    # A release between the two: it knows the preferred name, not yet the pharmacy.
    between = dataclasses.replace(
        PATIENT,
        fields=NEWER_PATIENT.fields,
        columns=NEWER_PATIENT.columns,
    )
    monkeypatch.setitem(RECORD_TYPES, "patient", between)
    upgraded = Database.open(path, key, migrations=NEWER_MIGRATIONS)

    assert unknown.refresh(upgraded) == 2  # Ada, and Brun (the migration lists patients)
    row = upgraded.query("SELECT preferred_name FROM patients WHERE id = ?", (pid,))
    assert row[0][0] == "Dee"
    listed = upgraded.query("SELECT type, parts FROM unknown_records ORDER BY type")
    assert [tuple(r) for r in listed] == [
        ("patient", "list:medications.pharmacy"),
        ("referral", "type"),
    ]

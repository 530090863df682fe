"""SIGKILL a process in the middle of a sync session, 50 times: the database stays intact,
nothing committed is lost, nothing half-applied shows, and the next sync completes.

The source clinic's history is a realistic mix from two workstations: new patients, edits of
existing ones, allergies, problems and medications added and removed, the same fields edited
on both desks at once (conflicts), edits racing deletions, and conflicts resolved later. The
child applies it through a real sync session. After every kill, every derived table of the
target (rows, record documents, conflicts, the full-text index) must equal, row for row, a
reference replica that applied exactly the ops the target holds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.crypto.kdf import FAST_PARAMS
from core.crypto.secure_memory import SecureMemory
from core.records import op_trust
from core.records.clinic import ClinicRecords
from core.records.entries import ClinicalEntries
from core.records.replication import apply_ops, ops_for
from core.store.database import Database
from core.store.oplog import Op, version_vector
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport
from tests.clinic_identity import join_test_clinic
from tests.unit.sync.replicas import materialized, new_replica, sync_pair

KILLS = 50
BATCH = 5
PATIENTS = 250
ROUNDS = 26


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


def _visible(r: ClinicRecords) -> list[str]:
    return sorted(str(i) for (i,) in r.db.query("SELECT id FROM patients"))


def _desk_work(r: ClinicRecords, rng: random.Random, tag: str) -> None:
    """One workstation's share of a round: edits, list additions and removals."""
    entries = ClinicalEntries(r)
    patients = _visible(r)
    for pid in rng.sample(patients, 12):
        r.update_patient(pid, {"phone": f"555-{rng.randrange(10_000):04d}"})
    for pid in rng.sample(patients, 8):
        r.add_allergy(pid, rng.choice(("Latex", "Penicillin", "Peanut", "Codeine")))
    for pid in rng.sample(patients, 4):
        entries.add_to_list(pid, "medications", {"name": rng.choice(("Insulin", "Statin"))})
        entries.add_to_list(pid, "problems", {"description": f"Problem {tag}"})
    allergies = r.db.query("SELECT id FROM allergies ORDER BY id")
    for (aid,) in rng.sample(allergies, min(4, len(allergies))):
        r.remove_allergy(str(aid))
    medications = r.db.query("SELECT patient_id, id FROM medications ORDER BY id")
    for pid, mid in rng.sample(medications, min(2, len(medications))):
        entries.remove_from_list(str(pid), "medications", str(mid))


def _certificates(source: Database) -> list[str]:
    """The device certificates of every origin the source holds, sent along with its ops."""
    return op_trust.certificates_for(source, list(version_vector(source)))


def _clinic_history(source: ClinicRecords) -> None:
    """Two workstations (``source`` and another) working offline and syncing each round."""
    rng = random.Random(20261128)
    # Their staff accounts first: the crash worker is a real process, which checks authors.
    source.add_user("ann", "Ann Source", "clinician", "ann horse battery")
    source.add_user("bob", "Bob Other", "clinician", "bob horse battery")
    other = new_replica("bob")
    other.add_patient("Bob's", "First", "1970-01-01")
    for i in range(PATIENTS):
        source.add_patient(f"Family{i:05d}", "Given", "1980-01-01")
    sync_pair(other, source)
    for n in range(ROUNDS):
        _desk_work(source, rng, f"a{n}")
        _desk_work(other, rng, f"b{n}")
        # The same patients changed on both desks before either synced: conflicts.
        shared = rng.sample(_visible(source), 6)
        for pid in shared[:4]:
            source.update_patient(pid, {"given": f"Ann-{n}"})
            other.update_patient(pid, {"given": f"Bob-{n}"})
        source.delete_patient(shared[4])  # while the other desk edits it
        other.update_patient(shared[4], {"phone": "555-0000"})
        source.add_allergy(shared[5], "Aspirin")  # the same allergy recorded twice
        other.add_allergy(shared[5], "Aspirin")
        for conflict in source.conflicts()[:4]:  # settle some of what is already shown
            choice = "merged" if conflict.kind == "set" else conflict.candidates[-1].id
            source.resolve_conflict(conflict.id, choose=choice)
        sync_pair(other, source)


def _ops_up_to(source: Database, start: dict[str, int], end: dict[str, int]) -> list[Op]:
    """The source's ops after ``start`` up to ``end``, in the order it sends them."""
    ops = ops_for(source, start, 1_000_000)
    return [op for op in ops if op.seq <= end.get(op.origin, 0)]


def _oplog(db: Database) -> list[tuple[object, ...]]:
    return db.query(
        "SELECT origin, seq, record_id, record_type, doc_update, deps, hlc, author "
        "FROM oplog ORDER BY origin, seq"
    )


def test_sigkill_during_sync_loses_nothing(tmp_path: Path) -> None:
    source_key, target_key = _key(), _key()
    source = Database.create(tmp_path / "source.db", source_key)
    join_test_clinic(source)
    _clinic_history(ClinicRecords(source, "ann", FAST_PARAMS))
    total = len(_oplog(source))
    # The target starts from the source's first few ops, so the session pulls ops (a brand
    # new replica would download a snapshot instead) and has nothing of its own to push.
    target = Database.create(tmp_path / "target.db", target_key)
    join_test_clinic(target)
    reference = new_replica("reference")  # applies exactly what the target holds
    for db in (target, reference.db):
        apply_ops(db, ops_for(source, {}, BATCH), "seed", _certificates(source))
    held = version_vector(target)
    target.close()

    rng = random.Random(20261128)
    kills = 0
    stdin = f"{source_key.hex()}\n{target_key.hex()}\n"
    while kills < KILLS:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.crash_worker",
             str(tmp_path / "source.db"), str(tmp_path / "target.db"), str(BATCH)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(stdin)
        child.stdin.close()
        # Let a few batches commit, then kill at a random point inside the next ones.
        lines = [child.stdout.readline().strip() for _ in range(rng.randint(1, 4))]
        time.sleep(rng.uniform(0, 0.02))
        child.send_signal(signal.SIGKILL)
        lines += child.stdout.read().splitlines()
        child.stdout.close()
        child.wait(timeout=30)
        kills += 1
        reported = [json.loads(x) for x in lines if x.startswith("{")]
        committed = reported[-1] if reported else held

        db = Database.open(tmp_path / "target.db", target_key, key_is_known_good=True)
        try:
            assert db.integrity_problems() == []
            now = version_vector(db)
            for origin, seq in committed.items():
                assert now.get(origin, 0) >= seq, "a batch reported as committed was lost"
            # Atomic batches: the target holds exactly the source's ops up to its vector,
            # and every derived row is what applying exactly those ops gives.
            apply_ops(
                reference.db, _ops_up_to(source, held, now), "reference", _certificates(source)
            )
            held = now
            assert _oplog(db) == _ops_in(source, held)
            assert materialized(db) == materialized(reference)
        finally:
            db.close()
        if "done" in lines:
            break
    assert kills == KILLS, "the source ran out of ops before every kill landed"
    assert sum(held.values()) < total  # the kills landed while there was history left

    target = Database.open(tmp_path / "target.db", target_key)
    sync(target, LocalTransport(Responder(source)), "after-crash")
    assert version_vector(target) == version_vector(source)
    assert _oplog(target) == _oplog(source)
    assert materialized(target) == materialized(source)
    assert target.query("SELECT count(*) FROM conflicts")[0][0] > 0  # conflicts did travel
    source.close()
    target.close()


def _ops_in(source: Database, vector: dict[str, int]) -> list[tuple[object, ...]]:
    """The source's op-log rows up to ``vector``."""
    return [row for row in _oplog(source) if int(str(row[1])) <= vector.get(str(row[0]), 0)]

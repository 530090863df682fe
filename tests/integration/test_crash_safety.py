"""SIGKILL a process in the middle of applying sync batches, 50 times: the database stays
intact, nothing committed is lost, and the next sync completes."""

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
from core.records.clinic import ClinicRecords
from core.store.database import Database
from core.store.oplog import version_vector
from core.sync.responder import Responder
from core.sync.session import sync
from core.sync.transport import LocalTransport

KILLS = 50
PATIENTS = 2000
BATCH = 5


def _key() -> SecureMemory:
    return SecureMemory.from_bytes(bytearray(os.urandom(32)))


def test_sigkill_during_apply_loses_nothing(tmp_path: Path) -> None:
    source_key, target_key = _key(), _key()
    source = Database.create(tmp_path / "source.db", source_key)
    records = ClinicRecords(source, "seed", FAST_PARAMS)
    for i in range(PATIENTS):
        records.add_patient(f"Family{i:05d}", "Given", "1980-01-01")
    origin = next(iter(version_vector(source)))
    target = Database.create(tmp_path / "target.db", target_key)
    target.close()
    source.close()

    rng = random.Random(20261128)
    committed = 0
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
        reported = [json.loads(x)[origin] for x in lines if x.startswith("{")]
        if reported:
            committed = max(committed, reported[-1])

        db = Database.open(tmp_path / "target.db", target_key, key_is_known_good=True)
        try:
            assert db.integrity_problems() == []
            held = version_vector(db).get(origin, 0)
            assert held >= committed, "a batch reported as committed was lost"
            # Atomic: every applied op has its record and rows, and nothing more.
            assert db.query("SELECT count(*) FROM oplog")[0][0] == held
            assert db.query("SELECT count(*) FROM patients")[0][0] == held
            committed = held
        finally:
            db.close()
        if "done" in lines:
            break
    assert kills == KILLS, "the source ran out of ops before every kill landed"

    source = Database.open(tmp_path / "source.db", source_key)
    target = Database.open(tmp_path / "target.db", target_key)
    sync(target, LocalTransport(Responder(source)), "after-crash")
    assert version_vector(target) == version_vector(source)
    assert target.query("SELECT * FROM patients ORDER BY id") == source.query(
        "SELECT * FROM patients ORDER BY id"
    )
    source.close()
    target.close()

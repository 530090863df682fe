"""The restore drill (README "Backup and restore"): two workstations sync with a live server;
one is backed up, both keep working, the backed-up one is lost and restored from the
backup into a new folder; it takes a new identity, joins again and syncs. Nothing is lost
but what the lost machine never sent after its backup, nothing is duplicated, no false
conflict appears, and every (origin, seq) is one op."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records import op_trust
from core.records.replication import replica_id
from core.records.workstation import Workstation
from core.server.service import ClinicServer
from core.store.oplog import version_vector
from core.sync.backup import create_backup, restore_backup, restored_identity
from core.sync.enroll import load_credential
from core.sync.join import JoinRequest, join_clinic
from core.sync.session import sync
from tests.conftest import PASSWORD
from tests.integration.server_fixtures import Live

PASSPHRASE = "drill passphrase for the safe"

pytestmark = pytest.mark.slow


def _sync(ws: Workstation) -> None:
    credential = load_credential(ws.database)
    assert credential is not None
    with contextlib.closing(credential.transport()) as transport:
        sync(ws.database, transport, "admin")


def _lose(ws: Workstation) -> None:
    ws.lock()
    shutil.rmtree(ws.data_dir)


def _restore(backup: Path, folder: Path, live: Live, clinic: str) -> Workstation:
    """Restore ``backup`` into ``folder`` and join the clinic again with a new code."""
    restore_backup(backup, folder, "passphrase", PASSPHRASE, "admin", PASSWORD,
                   lambda ws: ws.sign_in("admin", PASSWORD), FAST_PARAMS)  # fmt: skip
    ws = Workstation(folder, FAST_PARAMS)
    ws.sign_in("admin", PASSWORD)
    assert restored_identity(ws.database) is not None  # told to join again
    code, _ = live.server.registry.issue_enroll_code(clinic, 10)
    join_clinic(ws, JoinRequest("admin", server_url=live.url, enroll_code=code, ca_pem=live.ca_pem))
    assert restored_identity(ws.database) is None
    return ws


def _families(ws: Workstation) -> list[str]:
    return sorted(p.family for p in ws.records.list_patients(limit=1000))


def _server_ops_are_unique(server: ClinicServer, clinic: str) -> dict[str, int]:
    store = server.sync_store(clinic)
    held = store.ops_for({}, 1_000_000)
    assert len({(op.origin, op.seq) for op in held}) == len(held), "an op is stored twice"
    vv = store.version_vector()
    for origin, top in vv.items():
        assert sorted(op.seq for op in held if op.origin == origin) == list(range(1, top + 1))
    return vv


def _quiet(ws: Workstation) -> None:
    """No conflict and nothing quarantined: the restore made no false conflicts."""
    assert ws.records.conflicts() == []
    assert op_trust.quarantined(ws.database) == []


def test_a_lost_workstation_restored_from_its_backup_rejoins_and_loses_only_unsent_work(
    live: Live, two_desks: tuple[str, Workstation, Workstation], tmp_path: Path
) -> None:
    clinic, a, b = two_desks
    first = a.records.add_patient("Before", "Synced", "1970-01-01")
    b.records.add_patient("Bee", "One", "1971-01-01")
    for ws in (a, b, a):
        _sync(ws)
    old_id = replica_id(a.database)

    backup = tmp_path / "a.clbackup"
    create_backup(a, backup, PASSPHRASE, "admin")
    # A keeps working: some of it reaches the server before the disk dies, some does not.
    a.records.add_patient("After", "Synced", "1972-01-01")
    a.records.update_patient(first.id, {"phone": "555-0100"})
    _sync(a)
    a.records.add_patient("Never", "Sent", "1973-01-01")
    old_top = version_vector(a.database)[old_id]
    b.records.add_patient("Bee", "Two", "1974-01-01")
    b.records.update_patient(first.id, {"given": "Synced-Again"})
    _sync(b)
    _lose(a)

    restored = _restore(backup, tmp_path / "a-restored", live, clinic)
    new_id = replica_id(restored.database)
    assert new_id != old_id
    restored.records.add_patient("Restored", "New", "1975-01-01")
    for ws in (restored, b, restored):
        _sync(ws)

    expected = ["After", "Bee", "Bee", "Before", "Restored"]
    assert _families(restored) == _families(b) == expected  # "Never" was never sent: lost
    again = restored.records.get_patient(first.id)
    assert (again.phone, again.given) == ("555-0100", "Synced-Again")
    for ws in (restored, b):
        _quiet(ws)
    vv = _server_ops_are_unique(live.server, clinic)
    # The old origin stops where the old machine's last sync left it; new work is the new id's.
    assert vv[old_id] == old_top - 1
    assert vv[new_id] == version_vector(restored.database)[new_id] >= 1
    newest = "SELECT origin FROM oplog WHERE record_type = 'patient' ORDER BY rowid DESC LIMIT 1"
    new_ops = restored.database.query(newest)
    assert new_ops == [(new_id,)]
    restored.lock()


def test_changes_only_in_the_backup_are_sent_by_the_restored_workstation_as_the_old_origin(
    live: Live, two_desks: tuple[str, Workstation, Workstation], tmp_path: Path
) -> None:
    clinic, a, b = two_desks
    old_id = replica_id(a.database)
    a.records.add_patient("Only", "InBackup", "1970-01-01")  # never synced by the old machine
    backup = tmp_path / "a.clbackup"
    create_backup(a, backup, PASSPHRASE, "admin")
    old_top = version_vector(a.database)[old_id]
    _lose(a)

    restored = _restore(backup, tmp_path / "a-restored", live, clinic)
    _sync(b)
    assert "Only" in _families(b)
    vv = _server_ops_are_unique(live.server, clinic)
    assert vv[old_id] == old_top  # sent as the old origin, signed by the old device
    for ws in (restored, b):
        _quiet(ws)
    restored.lock()

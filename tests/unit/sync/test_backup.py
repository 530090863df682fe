"""Restoring a workstation backup gives the replica a new identity and never signs as the
old one; the holder of a LAN clinic's CA certifies its new identity itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.errors import CarelineError
from core.keys.errors import NoSlotError
from core.keys.keychain import KEYSLOT_FILE_NAME, Keychain
from core.records.op_trust import device_key
from core.records.workstation import Workstation
from core.store import op_signer
from core.store.oplog import identity
from core.sync.backup import (
    BackupError,
    RestoreResult,
    confirm_recovery_key,
    create_backup,
    restore_backup,
)
from core.sync.lan import identity as lan
from tests.conftest import PASSWORD

PHRASE = "a long backup passphrase"


def _restore(backup: Path, folder: Path) -> Workstation:
    result = restore_backup(backup, folder, "passphrase", PHRASE, "admin", PASSWORD,
                            lambda ws: ws.sign_in("admin", PASSWORD), FAST_PARAMS)  # fmt: skip
    ws = Workstation(folder, FAST_PARAMS)
    ws.sign_in("admin", PASSWORD)
    assert result.new_replica_id == identity(ws.database).replica_id
    return ws


def test_the_lan_ca_holder_certifies_its_new_identity_and_signs_as_it(
    workstation: Workstation, tmp_path: Path
) -> None:
    old = identity(workstation.database)
    lan.ensure_identity(workstation.database, "admin")  # the clinic's first LAN workstation
    old_ca = lan.load_identity(workstation.database)
    assert old_ca is not None
    workstation.records.add_patient("Before", "Backup", "1970-01-01")
    backup = tmp_path / "ca.clbackup"
    create_backup(workstation, backup, PHRASE, "admin")

    restored = _restore(backup, tmp_path / "restored")
    new = identity(restored.database)
    assert new.replica_id != old.replica_id and new.client_id != old.client_id
    mine = lan.load_identity(restored.database)
    assert mine is not None and mine.device_id != old_ca.device_id
    assert mine.ca_certificate == old_ca.ca_certificate  # the same clinic CA
    bound = device_key(mine.certificate, mine.ca_certificate)
    assert bound is not None and (bound.replica_id, bound.yjs_client) == (
        new.replica_id, new.client_id,
    )  # fmt: skip
    signer = op_signer.current(restored.database)
    assert signer is not None and signer.kind == "device"
    restored.records.add_patient("After", "Restore", "1971-01-01")
    last = restored.database.query("SELECT origin, signer FROM oplog ORDER BY rowid DESC LIMIT 1")
    assert last == [(new.replica_id, "device")]
    # The old replica's ops stay as they were: its origin, its signatures.
    held = restored.database.query("SELECT DISTINCT origin FROM oplog ORDER BY origin")
    assert {o for (o,) in held} == {old.replica_id, new.replica_id}
    restored.lock()


def test_a_restore_refuses_an_existing_file_or_folder(
    workstation: Workstation, tmp_path: Path
) -> None:
    backup = tmp_path / "a.clbackup"
    create_backup(workstation, backup, None, "admin")
    with pytest.raises(BackupError, match="already exists"):
        create_backup(workstation, backup, None, "admin")
    with pytest.raises(CarelineError, match="cannot be opened with a backup passphrase"):
        _restore(backup, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="not an empty folder"):
        _restore(backup, used)
    assert [p.name for p in used.iterdir()] == ["keep.txt"]


def test_a_restore_target_that_is_a_symbolic_link_is_refused_by_name(tmp_path: Path) -> None:
    # A link to an empty folder passed the "new, empty folder" check, then failed at the
    # very end with a bare "Not a directory" after the whole backup had been decrypted.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "restored").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BackupError, match="symbolic link"):
        restore_backup(tmp_path / "none.clbackup", tmp_path / "restored", "passphrase", PHRASE,
                       "admin", PASSWORD, lambda ws: None, FAST_PARAMS)  # fmt: skip


def test_a_short_backup_passphrase_is_refused(workstation: Workstation, tmp_path: Path) -> None:
    # The file travels (USB disks, cloud folders): a short passphrase is guessed offline,
    # whatever Argon2id costs per guess. The app's dialog and the CLI ask the same.
    with pytest.raises(BackupError, match="at least 12 characters"):
        create_backup(workstation, tmp_path / "short.clbackup", "eleven char", "admin")
    assert not (tmp_path / "short.clbackup").exists()


def _held_restore(backup: Path, folder: Path) -> RestoreResult:
    return restore_backup(backup, folder, "passphrase", PHRASE, "admin", PASSWORD,
                          lambda ws: ws.sign_in("admin", PASSWORD), FAST_PARAMS,
                          hold_recovery_key=True)  # fmt: skip


def test_a_held_recovery_key_opens_nothing_until_confirmed(
    workstation: Workstation, tmp_path: Path
) -> None:
    """The app's restore: the new key is staged until the person confirms storing it;
    an app killed before then leaves it staged, and the restored computer's first open
    withdraws it (its password still opens it)."""
    backup = tmp_path / "a.clbackup"
    create_backup(workstation, backup, PHRASE, "admin")
    kept = _held_restore(backup, tmp_path / "kept")
    chain = Keychain.load(tmp_path / "kept" / KEYSLOT_FILE_NAME)
    assert chain.recovery_slot() is None
    assert chain.pending_recovery is not None
    assert chain.pending_recovery.slot_id == kept.recovery_slot_id
    confirm_recovery_key(kept.data_dir, kept.recovery_slot_id)
    chain.reload()
    chain.unlock_with_recovery_key(kept.recovery_key).close()  # in force now

    lost = _held_restore(backup, tmp_path / "lost")  # never confirmed: Careline killed
    restored = Workstation(lost.data_dir, FAST_PARAMS)
    restored.sign_in("admin", PASSWORD)
    restored.lock()
    chain = Keychain.load(lost.data_dir / KEYSLOT_FILE_NAME)
    assert chain.recovery_slot() is None and chain.pending_recovery is None
    with pytest.raises(NoSlotError):
        confirm_recovery_key(lost.data_dir, lost.recovery_slot_id)

"""``careline backup create|restore|info`` as operators script them: real processes, real
SQLCipher, the recovery key printed at ``init``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from core.crypto.kdf import FAST_PARAMS
from core.records.workstation import Workstation
from core.sync.backup import restored_identity
from tests.integration.staff_clinic import make_staff_clinic, run_as
from tests.integration.test_cli import PASSWORD, as_admin, careline
from tests.integration.test_cli_keys import new_clinic

PASSPHRASE = "a passphrase for the backup"


@pytest.fixture
def clinic(tmp_path: Path) -> tuple[Path, str]:
    """A clinic with one patient; returns its folder and recovery key."""
    data = tmp_path / "clinic"
    recovery = new_clinic(data)
    as_admin(data, "patient", "add", "--family", "Okafor", "--given", "Ada",
             "--birth-date", "1980-02-03")  # fmt: skip
    return data, recovery


def _backup(
    data: Path, target: Path, *extra: str, stdin: str = PASSWORD + "\n"
) -> dict[str, object]:
    result = careline(data, "--json", "--password-stdin", "backup", "create", str(target), *extra,
                      stdin=stdin)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _restore(
    backup: Path, target: Path, secret: str, *how: str
) -> subprocess.CompletedProcess[str]:
    return careline(
        target.parent / "unused", "--json", "--user", "admin", "--password-stdin", "backup",
        "restore", str(backup), "--data-dir", str(target), *how, stdin=f"{PASSWORD}\n{secret}\n",
    )  # fmt: skip


def _replica(data: Path) -> str:
    ws = Workstation(data, FAST_PARAMS)
    ws.unlock_with_password("admin", PASSWORD)
    try:
        return str(ws.database.query("SELECT value FROM meta WHERE key = 'replica_id'")[0][0])
    finally:
        ws.lock()


def test_restore_with_the_recovery_key_gives_the_records_under_a_new_identity(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, recovery = clinic
    backup = tmp_path / "clinic.clbackup"
    made = _backup(data, backup)
    assert made["opens_with"] == ["recovery"]
    assert backup.stat().st_mode & 0o777 == 0o600
    assert b"Okafor" not in backup.read_bytes()

    restored = tmp_path / "restored"
    result = _restore(backup, restored, recovery, "--recovery-key-stdin")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["needs_join"] is True and doc["recovery_key"] != recovery
    assert doc["old_replica_id"] == _replica(data) != doc["replica_id"] == _replica(restored)
    found = as_admin(restored, "patient", "search", "okafor")
    assert len(found) == 1
    verified = careline(restored, "--password-stdin", "audit", "verify", stdin=PASSWORD + "\n")
    assert verified.returncode == 0, verified.stderr
    refused = careline(restored, "--password-stdin", "sync", "--once", stdin=PASSWORD + "\n")
    assert refused.returncode != 0 and "restored from a backup" in refused.stderr
    ws = Workstation(restored, FAST_PARAMS)
    ws.unlock_with_recovery_key(doc["recovery_key"])  # the new key opens the new key file
    marker = restored_identity(ws.database)
    ws.lock()
    assert marker is not None and marker["old_replica_id"] == doc["old_replica_id"]


def test_a_passphrase_backup_opens_with_the_passphrase_and_not_another(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = clinic
    backup = tmp_path / "clinic.clbackup"
    made = _backup(data, backup, "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n")
    assert made["opens_with"] == ["recovery", "passphrase"]
    info = careline(data, "--json", "backup", "info", str(backup))
    assert json.loads(info.stdout)["opens_with"] == ["recovery", "passphrase"]

    wrong = _restore(backup, tmp_path / "wrong", "not the passphrase", "--passphrase-stdin")
    assert wrong.returncode != 0
    assert "passphrase does not open" in wrong.stderr
    assert not (tmp_path / "wrong").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    right = _restore(backup, tmp_path / "right", PASSPHRASE, "--passphrase-stdin")
    assert right.returncode == 0, right.stderr
    assert len(as_admin(tmp_path / "right", "patient", "search", "okafor")) == 1


def test_a_damaged_backup_or_a_used_folder_is_refused_and_nothing_is_written(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, recovery = clinic
    backup = tmp_path / "clinic.clbackup"
    _backup(data, backup)
    raw = backup.read_bytes()
    (tmp_path / "cut.clbackup").write_bytes(raw[: len(raw) // 2])
    cut = _restore(tmp_path / "cut.clbackup", tmp_path / "t1", recovery, "--recovery-key-stdin")
    assert cut.returncode != 0 and "nothing was restored" in cut.stderr
    assert not (tmp_path / "t1").exists()

    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    refused = _restore(backup, used, recovery, "--recovery-key-stdin")
    assert refused.returncode != 0 and "not an empty folder" in refused.stderr
    assert [p.name for p in used.iterdir()] == ["notes.txt"]

    other = new_clinic(tmp_path / "other")  # another workstation's recovery key
    wrong = _restore(backup, tmp_path / "t2", other, "--recovery-key-stdin")
    assert wrong.returncode != 0 and "recovery key does not open" in wrong.stderr
    assert not (tmp_path / "t2").exists()


def test_scheduled_backups_into_a_folder_keep_the_newest(
    clinic: tuple[Path, str], tmp_path: Path
) -> None:
    data, _ = clinic
    folder = tmp_path / "backups"
    (folder).mkdir()
    (folder / "not-ours.txt").write_text("left alone")
    made = []
    for _ in range(3):
        result = careline(data, "--json", "--password-stdin", "backup", "create", "--dir",
                          str(folder), "--keep", "2", stdin=PASSWORD + "\n")  # fmt: skip
        assert result.returncode == 0, result.stderr
        made.append(json.loads(result.stdout)["file"])
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted([Path(made[1]).name, Path(made[2]).name, "not-ours.txt"])


def test_only_an_administrator_backs_up_or_restores(tmp_path: Path) -> None:
    data = tmp_path / "clinic"
    make_staff_clinic(data)
    code, _, err = run_as(data, "nina", "backup", "create", str(tmp_path / "nurse.clbackup"))
    assert code != 0 and "admin" in err
    assert not (tmp_path / "nurse.clbackup").exists()
    made = careline(
        data, "--user", "adm", "--password-stdin", "backup", "create",
        str(tmp_path / "adm.clbackup"), "--passphrase-stdin", stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    restore = careline(
        tmp_path / "unused", "--user", "nina", "--password-stdin", "backup", "restore",
        str(tmp_path / "adm.clbackup"), "--data-dir", str(tmp_path / "r"), "--passphrase-stdin",
        stdin=f"{PASSWORD}\n{PASSPHRASE}\n",
    )  # fmt: skip
    assert "admin" in restore.stderr, restore.stderr
    assert restore.returncode != 0 and not (tmp_path / "r").exists()

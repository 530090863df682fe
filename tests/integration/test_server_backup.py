"""``careline-server admin backup|restore`` on the embedded server, with real processes:
back up while it serves, lose the data folder, restore, serve again; the workstation that
synced before syncs on, and a new one enrolls and receives everything."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from core.records.clinic import ClinicRecords
from core.records.replication import replica_id
from core.server.backup import ServerBackupError, adopt_restored, backup_server, restore_server
from core.server.settings import load_server_settings
from core.store.oplog import version_vector
from tests.conftest import PASSWORD
from tests.crafted_backups import write_crafted
from tests.integration.server_fixtures import make_server
from tests.integration.server_process import ServerProcess, clinic_server, server_admin
from tests.integration.test_cli import careline

OPERATOR = "operator passphrase kept in the safe"


def _enroll(server: ServerProcess, clinic: str, desk: Path) -> None:
    code = server_admin(server.data, {}, "enroll-code", clinic, "--ttl", "10")["code"]
    done = careline(
        desk, "--user", "admin", "--password-stdin", "enroll", "--server", server.url,
        "--code", code, "--ca-file", str(server.data / "tls" / "server.pem"), stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def _desk(desk: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return careline(desk, "--json", "--password-stdin", *args, stdin=PASSWORD + "\n")


def _admin(
    server: ServerProcess, *args: str, stdin: str = OPERATOR + "\n"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*server.program, "--data-dir", str(server.data), "--json", "admin", *args],
        input=stdin, capture_output=True, text=True, env=server.env, timeout=120, check=False,
    )  # fmt: skip


def _found(desk: Path, text: str) -> int:
    found = _desk(desk, "patient", "search", text)
    assert found.returncode == 0, found.stderr
    return len(json.loads(found.stdout))


def test_an_embedded_server_restored_from_its_backup_serves_the_clinic(tmp_path: Path) -> None:
    desk, data = tmp_path / "desk", tmp_path / "server"
    backup, keys = tmp_path / "server.clbackup", tmp_path / "server-keys.clbackup"
    with clinic_server(data, "Harbour Clinic") as (server, clinic):
        _enroll(server, clinic, desk)
        assert _desk(desk, "patient", "add", "--family", "Abara", "--given", "Ada",
                     "--birth-date", "1970-01-01").returncode == 0  # fmt: skip
        assert _desk(desk, "sync", "--once").returncode == 0
        # Online: the server keeps serving while it is backed up.
        made = _admin(server, "backup", str(backup), "--keys-out", str(keys))
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["clinics"] == 1
        # A backup that leaves the key file behind would be unopenable: refused, not written.
        keyless = _admin(server, "backup", str(tmp_path / "keyless.clbackup"))
        assert keyless.returncode != 0 and "--keys-out" in keyless.stderr
        assert not (tmp_path / "keyless.clbackup").exists()
        port = server.port
    for secret in (b"master-keys", b"Harbour", b"Abara"):
        assert secret not in backup.read_bytes()
    shutil.rmtree(data)  # the server's disk is lost

    restored = ServerProcess(data, port)
    wrong = _admin(restored, "restore", str(backup), "--keys-file", str(keys), stdin="nope\n")
    assert wrong.returncode != 0 and "passphrase does not open" in wrong.stderr
    assert not data.exists()
    no_keys = _admin(restored, "restore", str(backup))  # the data without its master key
    assert no_keys.returncode != 0
    assert not data.exists()
    done = _admin(restored, "restore", str(backup), "--keys-file", str(keys))
    assert done.returncode == 0, done.stderr

    restored.start()
    try:
        assert _desk(desk, "patient", "add", "--family", "Bello", "--given", "Ben",
                     "--birth-date", "1971-01-01").returncode == 0  # fmt: skip
        synced = _desk(desk, "sync", "--once")
        assert synced.returncode == 0, synced.stderr
        second = tmp_path / "second"
        _enroll(restored, clinic, second)
        assert (_found(second, "abara"), _found(second, "bello")) == (1, 1)
    finally:
        restored.stop()


def test_a_restored_server_numbers_its_own_ops_under_a_new_origin(tmp_path: Path) -> None:
    # The lost server may have made ops of its own after the backup (admin writes) that
    # workstations hold: a restored one numbering ops (old origin, seq) again would collide.
    data, restored = tmp_path / "server", tmp_path / "restored"
    backup, keys = tmp_path / "server.clbackup", tmp_path / "keys.clbackup"
    server = make_server(data)
    try:
        clinic = server.create_clinic("Harbour Clinic")  # the server's own op, seq 1
        old = replica_id(server.replica(clinic.id))
        backup_server(server, backup, keys, OPERATOR)
    finally:
        server.close()
    settings = load_server_settings(cli={"data_dir": restored}, env={})
    restore_server(backup, keys, restored, OPERATOR, lambda f: adopt_restored(f, settings))

    again = make_server(restored)
    try:
        db = again.replica(clinic.id)
        new = replica_id(db)
        ClinicRecords(db, "server").set_clinic_name("Harbour Clinic East")
        own = db.query("SELECT origin, seq FROM oplog ORDER BY rowid DESC LIMIT 1")[0]
        assert new != old and (own[0], own[1]) == (new, 1)
        # The old origin's ops stay, so those made after the backup are still taken in.
        assert version_vector(db)[old] == 1
    finally:
        again.close()


def test_a_short_operator_passphrase_is_refused(tmp_path: Path) -> None:
    server = make_server(tmp_path / "server")
    try:
        with pytest.raises(ServerBackupError, match="at least 12 characters"):
            backup_server(server, tmp_path / "b.clbackup", tmp_path / "k.clbackup", "short")
        assert not (tmp_path / "b.clbackup").exists()
    finally:
        server.close()


def test_a_crafted_server_backup_header_is_refused_naming_the_file(tmp_path: Path) -> None:
    """``careline-server admin restore`` of a file whose header anyone could have written:
    refused naming the file and what is wrong, nothing restored, no unexpected error."""
    crafted = write_crafted(tmp_path, "server")
    expected = {"nested": "its header is nested too deeply",
                "empty_salt": "the operator opener's salt has 0 bytes, not 16",
                "escapes": "its kind must be 1-64 printable characters"}  # fmt: skip
    target = ServerProcess(tmp_path / "restored", 0)
    for name, reason in expected.items():
        result = _admin(target, "restore", str(crafted[name]))
        assert result.returncode != 0
        assert f"backup {crafted[name]} is damaged: " in result.stderr, result.stderr
        assert reason in result.stderr and "nothing was restored" in result.stderr
        assert "did not expect" not in result.stderr and "Traceback" not in result.stderr
        assert "\x1b" not in result.stderr
        assert not target.data.exists()
